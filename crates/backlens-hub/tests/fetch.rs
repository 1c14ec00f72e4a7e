//! `fetch` against a real local HTTP server (see `common/mod.rs`) and a temporary cache.

mod common;

use backlens_hub::{fetch, HubConfig, HubError, HubSpec};
use common::{etag_of, FakeHub, FakeRepo};
use std::path::Path;
use std::time::{Duration, Instant};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const COMMIT_B: &str = "fedcba9876543210fedcba9876543210fedcba98";
const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

fn weights(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn tiny_repo() -> FakeRepo {
    FakeRepo::new("acme/tiny", COMMIT)
        .file("config.json", br#"{"hidden_size": 8}"#.to_vec())
        .file("tokenizer.json", br#"{"model": {"type": "BPE"}}"#.to_vec())
        .file("model.safetensors", weights(70_000, 1))
}

fn sharded_repo() -> FakeRepo {
    let index = r#"{"metadata": {"total_size": 0}, "weight_map": {
        "a.weight": "model-00001-of-00002.safetensors",
        "b.weight": "model-00002-of-00002.safetensors",
        "c.weight": "model-00001-of-00002.safetensors"}}"#;
    FakeRepo::new("acme/sharded", COMMIT_B)
        .file("config.json", br#"{"hidden_size": 16}"#.to_vec())
        .file("model.safetensors.index.json", index.as_bytes().to_vec())
        .file("model-00001-of-00002.safetensors", weights(5000, 2))
        .file("model-00002-of-00002.safetensors", weights(3000, 3))
}

fn config(hub_endpoint: &str, cache: &Path) -> HubConfig {
    HubConfig::new(cache, hub_endpoint)
}

fn spec(s: &str) -> HubSpec {
    s.parse().unwrap()
}

/// An endpoint on a loopback port that nothing listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[test]
fn downloads_into_the_standard_cache_layout() {
    let repo = tiny_repo();
    let hub = FakeHub::start(vec![repo.clone()]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fetch(&spec("hf:acme/tiny"), &FILES, &[], &config(&hub.endpoint, tmp.path())).unwrap();

    let root = tmp.path().join("models--acme--tiny");
    assert_eq!(dir, root.join("snapshots").join(COMMIT));
    assert_eq!(std::fs::read_to_string(root.join("refs/main")).unwrap(), COMMIT);
    for f in FILES {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), repo.bytes(f), "{f}");
        let blob = root.join("blobs").join(etag_of(f, repo.bytes(f)));
        assert_eq!(std::fs::read(&blob).unwrap(), repo.bytes(f), "blob of {f}");
        #[cfg(unix)]
        assert!(std::fs::symlink_metadata(dir.join(f)).unwrap().file_type().is_symlink());
    }
    // The LFS file went through the 302 to the CDN path; nothing was requested without a Range.
    let log = hub.requests();
    assert!(log.iter().any(|r| r.path.starts_with("/cdn/")), "{log:?}");
    assert!(log.iter().all(|r| r.range.is_some()), "{log:?}");
}

#[test]
fn second_fetch_uses_the_cache_without_any_request() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&hub.endpoint, tmp.path());
    let s = spec("hf:acme/tiny");
    let first = fetch(&s, &FILES, &["generation_config.json"], &cfg).unwrap();
    let n = hub.request_count();
    assert!(n > 0);

    // Online, server up: everything (and the 404 of the optional file) is known, so no request.
    assert_eq!(fetch(&s, &FILES, &["generation_config.json"], &cfg).unwrap(), first);
    assert_eq!(hub.request_count(), n);

    // Server gone: still served from the cache, online or offline.
    assert_eq!(hub.stop(), n);
    assert_eq!(fetch(&s, &FILES, &["generation_config.json"], &cfg).unwrap(), first);
    let offline = HubConfig { offline: true, ..cfg.clone() };
    assert_eq!(fetch(&s, &FILES, &[], &offline).unwrap(), first);
    // Offline, a commit-hash revision resolves without a ref file too.
    let pinned = HubSpec::new("acme/tiny", COMMIT).unwrap();
    assert_eq!(fetch(&pinned, &FILES, &[], &offline).unwrap(), first);
}

#[test]
fn offline_with_an_empty_cache_fails_fast_and_explains() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = HubConfig { offline: true, ..config(&hub.endpoint, tmp.path()) };
    let t = Instant::now();
    let err = fetch(&spec("hf:acme/tiny@v1.0"), &FILES, &[], &cfg).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(hub.request_count(), 0);
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    let msg = err.to_string();
    let root = tmp.path().join("models--acme--tiny");
    for needle in
        ["acme/tiny", "v1.0", "config.json", &root.display().to_string(), "HF_HUB_OFFLINE", "local folder", "copy"]
    {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

#[test]
fn offline_names_the_exact_snapshot_path_of_a_missing_file() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&hub.endpoint, tmp.path());
    fetch(&spec("hf:acme/tiny"), &["config.json"], &[], &cfg).unwrap();
    let offline = HubConfig { offline: true, ..cfg };
    let err = fetch(&spec("hf:acme/tiny"), &FILES, &[], &offline).unwrap_err();
    let want = tmp.path().join("models--acme--tiny/snapshots").join(COMMIT).join("tokenizer.json");
    match &err {
        HubError::NotCached { file, looked_in, .. } => {
            assert_eq!(file, "tokenizer.json");
            assert_eq!(looked_in, &want);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&want.display().to_string()));
}

#[test]
fn unreachable_server_falls_back_to_the_cache_and_fails_fast_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&dead_endpoint(), tmp.path());
    let t = Instant::now();
    let err = fetch(&spec("hf:acme/tiny"), &FILES, &[], &cfg).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    assert!(msg.contains("cannot be reached") && msg.contains("acme/tiny"), "{msg}");

    // Fill the cache (required files only), then an unknown optional file with the server down
    // is skipped instead of failing.
    let hub = FakeHub::start(vec![tiny_repo()]);
    let online = config(&hub.endpoint, tmp.path());
    let dir = fetch(&spec("hf:acme/tiny"), &FILES, &[], &online).unwrap();
    hub.stop();
    let down = HubConfig { endpoint: online.endpoint.clone(), ..cfg };
    assert_eq!(fetch(&spec("hf:acme/tiny"), &FILES, &["generation_config.json"], &down).unwrap(), dir);
}

#[test]
fn sharded_checkpoint_fetches_every_shard() {
    let repo = sharded_repo();
    let hub = FakeHub::start(vec![repo.clone()]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&hub.endpoint, tmp.path());
    // Index listed as optional.
    let dir = fetch(&spec("hf:acme/sharded"), &["config.json"], &["model.safetensors.index.json"], &cfg).unwrap();
    for f in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), repo.bytes(f), "{f}");
    }
    // `model.safetensors` asked for but absent: falls back to its index (from the cache, offline).
    let offline = HubConfig { offline: true, ..cfg.clone() };
    assert_eq!(fetch(&spec("hf:acme/sharded"), &["config.json", "model.safetensors"], &[], &offline).unwrap(), dir);

    // Same fallback online, in a fresh cache.
    let tmp2 = tempfile::tempdir().unwrap();
    let dir2 = fetch(
        &spec("hf:acme/sharded"),
        &["config.json", "model.safetensors"],
        &[],
        &config(&hub.endpoint, tmp2.path()),
    )
    .unwrap();
    assert!(dir2.join("model-00002-of-00002.safetensors").exists());
    assert!(dir2.join("model.safetensors.index.json").exists());
    assert!(!dir2.join("model.safetensors").exists());
}

#[test]
fn shard_names_that_escape_the_snapshot_are_rejected() {
    let evil = FakeRepo::new("acme/evil", COMMIT)
        .file("config.json", b"{}".to_vec())
        .file("model.safetensors.index.json", br#"{"weight_map": {"w": "../../../evil.safetensors"}}"#.to_vec());
    let hub = FakeHub::start(vec![evil]);
    let tmp = tempfile::tempdir().unwrap();
    let err =
        fetch(&spec("hf:acme/evil"), &["config.json", "model.safetensors"], &[], &config(&hub.endpoint, tmp.path()))
            .unwrap_err();
    assert!(matches!(err, HubError::InvalidFileName { .. }), "{err:?}");
}

#[test]
fn missing_files_required_fail_optional_are_skipped() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&hub.endpoint, tmp.path());
    let s = spec("hf:acme/tiny");

    let err = fetch(&s, &["config.json", "vocab.txt"], &[], &cfg).unwrap_err();
    assert!(matches!(&err, HubError::NotFound { file, .. } if file == "vocab.txt"), "{err:?}");
    assert!(err.to_string().contains("vocab.txt") && err.to_string().contains("acme/tiny"));

    let dir = fetch(&s, &["config.json"], &["generation_config.json", "tokenizer.json"], &cfg).unwrap();
    assert!(dir.join("tokenizer.json").exists());
    assert!(!dir.join("generation_config.json").exists());
    // The 404 is remembered the way Python's huggingface_hub does.
    assert!(tmp.path().join("models--acme--tiny/.no_exist").join(COMMIT).join("generation_config.json").exists());

    // Unknown repository and unknown revision: the server's 404 becomes NotFound.
    let err = fetch(&spec("hf:acme/nope"), &["config.json"], &[], &cfg).unwrap_err();
    assert!(matches!(err, HubError::NotFound { .. }), "{err:?}");
    let err = fetch(&spec("hf:acme/tiny@no-such-branch"), &["config.json"], &[], &cfg).unwrap_err();
    assert!(err.to_string().contains("no-such-branch"), "{err}");
    // Bad file names never reach the network.
    let n = hub.request_count();
    let err = fetch(&s, &["../config.json"], &[], &cfg).unwrap_err();
    assert!(matches!(err, HubError::InvalidFileName { .. }), "{err:?}");
    assert!(matches!(fetch(&s, &[], &[], &cfg).unwrap_err(), HubError::NoFiles { .. }));
    assert_eq!(hub.request_count(), n);
}

#[test]
fn a_new_commit_reuses_unchanged_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tiny_repo();
    let hub = FakeHub::start(vec![old.clone()]);
    fetch(&spec("hf:acme/tiny"), &FILES, &[], &config(&hub.endpoint, tmp.path())).unwrap();
    hub.stop();

    // Commit B changes only the tokenizer.
    let mut new = FakeRepo::new("acme/tiny", COMMIT_B);
    for (name, bytes) in &old.files {
        let bytes = if name == "tokenizer.json" { b"{\"v\": 2}".to_vec() } else { bytes.clone() };
        new = new.file(name, bytes);
    }
    let hub = FakeHub::start(vec![new.clone()]);
    let pinned = HubSpec::new("acme/tiny", COMMIT_B).unwrap();
    let dir = fetch(&pinned, &FILES, &[], &config(&hub.endpoint, tmp.path())).unwrap();
    assert!(dir.ends_with(COMMIT_B));
    for f in FILES {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), new.bytes(f), "{f}");
    }
    // Only the tokenizer's body was downloaded (`bytes=0-`); the others were linked to old blobs.
    let downloads: Vec<_> =
        hub.requests().into_iter().filter(|r| r.range.as_deref() == Some("bytes=0-")).map(|r| r.path).collect();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert!(downloads[0].ends_with("tokenizer.json"), "{downloads:?}");
}
