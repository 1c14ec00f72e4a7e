//! The `backlens` command end to end on the default model: files, the JSON interface, errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn backlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backlens")).args(args).output().expect("running backlens")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("backlens-cli-{}-{name}", std::process::id()))
}

#[test]
fn lens_writes_json_svg_png_and_prints_the_table() {
    let out = scratch("lens");
    let run = backlens(&[
        "lens",
        "--prompt",
        "Lionel Messi plays for",
        "--target",
        " Paris",
        "--out",
        out.to_str().unwrap(),
        "--top-k",
        "3",
        "--sites",
        "attn.o.vjp",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("mlp.down.vjp: least likely token"), "{stdout}");
    assert!(stdout.contains("Paris*"), "the terminal table marks bottom-ranked targets: {stdout}");

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("lens.json")).unwrap()).unwrap();
    assert_eq!(json["prompt"], "Lionel Messi plays for");
    assert_eq!(json["target"], " Paris");
    assert_eq!(json["target_id"], 7042);
    assert_eq!(json["token_ids"], serde_json::json!([60, 285, 299, 11960, 89, 4566, 327]));
    assert_eq!(json["tokens"].as_array().unwrap().len(), 7);
    assert!(json["loss"].as_f64().unwrap() > 0.0);
    assert!(json["model"].as_str().unwrap().contains("SmolLM2-135M-Instruct"));
    for site in ["mlp.up.input", "mlp.down.vjp", "attn.o.vjp"] {
        let layers = json["sites"][site].as_array().unwrap_or_else(|| panic!("site {site} missing"));
        assert_eq!(layers.len(), 30, "{site}");
        for row in layers {
            assert_eq!(row.as_array().unwrap().len(), 7);
        }
    }
    let cell = &json["sites"]["mlp.down.vjp"][25][6];
    assert_eq!(cell["target_rank"], 49151, "{cell}");
    assert_eq!(cell["bottom"][0], 7042);
    assert_eq!(cell["top"].as_array().unwrap().len(), 3);
    assert!(cell["norm"].as_f64().unwrap() > 0.0);
    let zero = &json["sites"]["mlp.down.vjp"][29][0];
    assert!(zero["target_rank"].is_null() && zero["norm"] == 0.0, "{zero}");

    for name in ["mlp.down.vjp", "mlp.up.input"] {
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Paris"), "{name}.svg");
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}.png");
    }
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let cases: [(&[&str], &str); 4] = [
        (&["lens", "--target", "Barcelona", "--out", "/tmp/unused"], "leading space"),
        (&["lens", "--prompt", "", "--out", "/tmp/unused"], "prompt is empty"),
        (&["lens", "--model", "/nonexistent.gguf", "--out", "/tmp/unused"], "/nonexistent.gguf"),
        (&["lens", "--sites", "mlp.up.sideways", "--out", "/tmp/unused"], "unknown hook name"),
    ];
    for (args, expected) in cases {
        let run = backlens(args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_reports_every_phase() {
    let run = backlens(&["bench", "--repeat", "1"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    for phase in
        ["model load", "tokenizer", "forward + backward", "projection", "whole `lens` query", "peak resident memory"]
    {
        assert!(stdout.contains(phase), "missing {phase}: {stdout}");
    }
}

fn golden(name: &str) -> String {
    // The workspace root holds tests/golden (tiny transformers-built checkpoints).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("tests/golden").join(name).to_string_lossy().into_owned()
}

#[test]
fn lens_runs_on_hugging_face_folders_of_both_architectures() {
    for name in ["gpt2-tiny", "llama-tiny"] {
        let out = scratch(name);
        let run = backlens(&[
            "lens",
            "--model",
            &golden(name),
            "--prompt",
            "The capital of France is",
            "--target",
            " Paris",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("lens.json")).unwrap()).unwrap();
        assert_eq!(json["model"], name);
        assert_eq!(json["target_id"], 279, "{name}");
        assert_eq!(json["sites"]["mlp.down.vjp"].as_array().unwrap().len(), 2, "{name}: two layers");
        // GPT-2's final norm has a bias, so even a zero VJP has a ranking (the paper's "ZERO
        // VECTOR" rows); RMSNorm maps it to all-zero logits, which have none.
        let zero_cell = &json["sites"]["mlp.down.vjp"][1][0];
        assert_eq!(zero_cell["norm"], 0.0, "{name}");
        assert_eq!(zero_cell["target_rank"].is_null(), name.starts_with("llama"), "{name}: {zero_cell}");
        std::fs::remove_dir_all(out).ok();
    }
}

#[test]
fn an_uncached_hub_model_fails_fast_when_offline() {
    let cache = scratch("empty-hub-cache");
    let start = std::time::Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_backlens"))
        .args(["lens", "--model", "hf:openai-community/gpt2", "--out", "/tmp/unused"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("openai-community/gpt2")
            && stderr.contains("config.json")
            && stderr.contains(&*cache.to_string_lossy()),
        "{stderr}"
    );
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
}

/// The Hub-layout HTTP server of the hub crate's tests, shared rather than copied.
#[path = "../../backlens-hub/tests/common/mod.rs"]
mod fake_hub;

/// `--model hf:org/name` end to end: a local server speaking the Hub's URL layout (`HF_ENDPOINT`)
/// serves the golden tiny GPT-2; the CLI downloads it into `HF_HOME`, loads and traces it. A
/// second run, offline with the server gone, is served from the cache.
#[test]
fn lens_downloads_a_hub_model_from_a_local_hub_server() {
    let dir = PathBuf::from(golden("gpt2-tiny"));
    let mut repo = fake_hub::FakeRepo::new("acme/gpt2-tiny", "0123456789abcdef0123456789abcdef01234567");
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        repo = repo.file(file, std::fs::read(dir.join(file)).unwrap());
    }
    let hub = fake_hub::FakeHub::start(vec![repo]);
    let home = scratch("hf-home");
    let out = scratch("hub-out");
    let run_with = |extra_env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backlens"));
        cmd.args([
            "lens",
            "--model",
            "hf:acme/gpt2-tiny",
            "--prompt",
            "The capital of France is",
            "--target",
            " Paris",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("HF_HOME", &home)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let online = run_with(&[("HF_ENDPOINT", &hub.endpoint)]);
    assert!(online.status.success(), "{}", String::from_utf8_lossy(&online.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("lens.json")).unwrap()).unwrap();
    assert_eq!(json["target_id"], 279);
    assert!(hub.request_count() >= 3, "the files came from the server");
    assert!(home.join("hub/models--acme--gpt2-tiny/snapshots").is_dir());
    hub.stop();

    let offline = run_with(&[("HF_HUB_OFFLINE", "1")]);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    std::fs::remove_dir_all(&home).ok();
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn reproduce_writes_pictures_numbers_and_statements() {
    let out = scratch("reproduce");
    let run = backlens(&["reproduce", "--figure", "3,fig22", "--limit", "3", "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("== gradient-rank") && stdout.contains("== cosine"), "{stdout}");
    for file in [
        "fig3-gradient-rank.svg",
        "fig3-gradient-rank.png",
        "gradient-rank.json",
        "gradient-rank.md",
        "fig23-last-token-mean.svg",
        "cosine.json",
    ] {
        assert!(std::fs::metadata(out.join(file)).is_ok_and(|m| m.len() > 0), "{file} missing; stdout: {stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("gradient-rank.json")).unwrap()).unwrap();
    assert_eq!(json["prompts"], 3);
    assert_eq!(json["percent_rank_equals_n"]["mlp.up"].as_array().unwrap().len(), 30);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn reproduce_rejects_unknown_figures_and_missing_datasets_before_loading() {
    let run = backlens(&["reproduce", "--figure", "10"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown figure \"10\"") && stderr.contains("gradient-rank"), "{stderr}");

    let run = backlens(&["reproduce", "--figure", "5", "--dataset", "/nonexistent/cf.json"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("/nonexistent/cf.json"), "{stderr}");

    let run = backlens(&["reproduce", "--figure", "5", "--limit", "0"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--limit must be at least 1"));
}

/// `--top-k 0` is refused at parsing, before loading (it used to print contradictory labels); a k
/// above the vocabulary is refused by the lens (`backlens-lens`' test `project_bounds_k_to_the_vocabulary`).
#[test]
fn top_k_is_bounded_to_one_through_the_vocabulary() {
    for k in ["0", "-1", "x"] {
        let run = backlens(&["lens", &format!("--top-k={k}"), "--model", "/nonexistent/model.gguf"]);
        assert!(!run.status.success(), "--top-k {k}");
        assert!(String::from_utf8_lossy(&run.stderr).contains("--top-k"), "--top-k {k}");
    }
    let run = backlens(&["edit", "--top-k", "0", "--model", "/nonexistent/model.gguf"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("must be at least 1"));
}
