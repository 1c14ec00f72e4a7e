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
