//! `HubSpec` parsing and `HubConfig::from_vars` (no process environment involved).

use backlens_hub::{HubConfig, HubError, HubSpec, DEFAULT_ENDPOINT};
use std::collections::HashMap;
use std::path::PathBuf;

#[test]
fn parses_and_round_trips() {
    let s: HubSpec = "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0".parse().unwrap();
    assert_eq!(s, HubSpec { repo: "TinyLlama/TinyLlama-1.1B-Chat-v1.0".into(), revision: "main".into() });
    assert_eq!(s.to_string(), "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0");
    for text in [
        "hf:a/b",
        "hf:a/b@v1.0",
        "hf:org_x/model.name@refs/pr/1",
        "hf:Qwen/Qwen2.5-0.5B@0123456789abcdef0123456789abcdef01234567",
    ] {
        let spec: HubSpec = text.parse().unwrap();
        assert_eq!(spec.to_string(), text);
        assert_eq!(spec.to_string().parse::<HubSpec>().unwrap(), spec);
    }
    assert_eq!("hf:a/b@main".parse::<HubSpec>().unwrap().to_string(), "hf:a/b");
    assert_eq!("hf:a/b@dev".parse::<HubSpec>().unwrap().revision, "dev");
    assert_eq!(HubSpec::new("a/b", "dev").unwrap().to_string(), "hf:a/b@dev");
    assert_eq!("hf:a/b".parse::<HubSpec>().unwrap().cache_folder_name(), "models--a--b");
    assert!(HubSpec::is_hub_spec("hf:a/b") && !HubSpec::is_hub_spec("./models/a"));
    // Legacy canonical repositories have no organisation.
    let gpt2: HubSpec = "hf:gpt2".parse().unwrap();
    assert_eq!((gpt2.repo.as_str(), gpt2.cache_folder_name().as_str()), ("gpt2", "models--gpt2"));
    assert_eq!(gpt2.to_string(), "hf:gpt2");
}

#[test]
fn rejects_malformed_specs_with_clear_reasons() {
    let cases = [
        ("hf:", "missing"),
        ("hf:a/b@", "empty"),
        ("hf:a/b/c", "more than one '/'"),
        ("hf:/b", "organisation is empty"),
        ("hf:a/", "model name is empty"),
        ("hf: a/b", "whitespace"),
        ("hf:a/b ", "whitespace"),
        ("hf:a/b@x y", "whitespace"),
        ("a/b", "does not start with `hf:`"),
        ("hf:a/b@x@y", "more than one '@'"),
        ("hf:a/b@../x", "'..'"),
        ("hf:a/b@/x", "empty"),
        ("hf:a--x/b", "'--'"),
        ("hf:a/b?c", "contains '?'"),
    ];
    for (input, reason) in cases {
        let err = input.parse::<HubSpec>().unwrap_err();
        assert!(matches!(err, HubError::InvalidSpec { .. }), "{input}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(reason), "{input:?}: {msg:?} lacks {reason:?}");
        assert!(msg.contains("hf:org/name"), "{msg}");
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn config_defaults() {
    let c = HubConfig::from_vars(vars(&[("HOME", "/home/u")]));
    assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
    assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
    assert!(!c.offline && c.progress && c.token.is_none());
}

#[test]
fn config_honours_the_environment() {
    let c = HubConfig::from_vars(vars(&[("HOME", "/home/u"), ("HF_HOME", "/data/hf")]));
    assert_eq!(c.cache_dir, PathBuf::from("/data/hf/hub"));
    let c = HubConfig::from_vars(vars(&[("HOME", "/home/u"), ("HF_HOME", "~/hf")]));
    assert_eq!(c.cache_dir, PathBuf::from("/home/u/hf/hub"));
    // HF_HUB_CACHE wins over HF_HOME.
    let c = HubConfig::from_vars(vars(&[("HF_HOME", "/data/hf"), ("HF_HUB_CACHE", "/fast/cache")]));
    assert_eq!(c.cache_dir, PathBuf::from("/fast/cache"));
    let c = HubConfig::from_vars(vars(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]));
    assert_eq!(c.cache_dir, PathBuf::from("/xdg/huggingface/hub"));
    // Empty values count as unset.
    let c = HubConfig::from_vars(vars(&[("HOME", "/h"), ("HF_HOME", ""), ("HF_ENDPOINT", "")]));
    assert_eq!(c.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
    assert_eq!(c.endpoint, DEFAULT_ENDPOINT);

    let c = HubConfig::from_vars(vars(&[("HF_ENDPOINT", "http://127.0.0.1:8080/")]));
    assert_eq!(c.endpoint, "http://127.0.0.1:8080");

    for (v, want) in [
        ("1", true),
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("false", false),
        ("", false),
    ] {
        let c = HubConfig::from_vars(vars(&[("HF_HUB_OFFLINE", v)]));
        assert_eq!(c.offline, want, "HF_HUB_OFFLINE={v:?}");
    }
    let c = HubConfig::from_vars(vars(&[("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_TOKEN", "hf_x ")]));
    assert!(!c.progress);
    assert_eq!(c.token.as_deref(), Some("hf_x"));
}

#[test]
fn from_env_reads_the_process_environment() {
    // Only checks consistency with from_vars (no mutation of the environment: tests run in parallel).
    assert_eq!(HubConfig::from_env(), HubConfig::from_vars(|k| std::env::var(k).ok()));
}
