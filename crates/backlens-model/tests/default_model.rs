//! Integrity of the cached default model, on a small fake file with a known SHA-256 (no download):
//! the stamped check, detection of a flipped byte, and removal of stale `.fetch-<pid>` folders.

use backlens_model::default_model::{check_file, remove_stale_fetch_dirs, stamp_path, Checked};
use std::io::{Seek, SeekFrom, Write};

/// SHA-256 of `b"hello backlens\n"` (`printf 'hello backlens\n' | sha256sum`).
const CONTENT: &[u8] = b"hello backlens\n";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh folder under the system temp dir (the crate has no `tempfile` dev-dependency),
/// removed when dropped.
struct TempHome(std::path::PathBuf);

impl TempHome {
    fn new(name: &str) -> TempHome {
        let p = std::env::temp_dir().join(format!("backlens-default-model-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempHome(p)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fake_model(name: &str) -> (TempHome, std::path::PathBuf, String) {
    let home = TempHome::new(name);
    let dir = home.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fake.gguf");
    std::fs::write(&path, CONTENT).unwrap();
    (home, path, sha256_hex(CONTENT))
}

#[test]
fn first_use_hashes_and_a_matching_stamp_skips_hashing() {
    let (_home, path, sha) = fake_model("stamp");
    let size = CONTENT.len() as u64;
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::Hashed);
    assert!(stamp_path(&path).exists());
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::StampMatched);
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::StampMatched);
    // A stamp for another expected digest does not count.
    let other = "0".repeat(64);
    assert!(check_file(&path, size, &other).is_err());
    // Deleting the stamp forces a full check.
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::Hashed);
    std::fs::remove_file(stamp_path(&path)).unwrap();
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::Hashed);
}

#[test]
fn a_flipped_byte_after_the_stamp_is_detected_even_with_the_mtime_restored() {
    let (_home, path, sha) = fake_model("flip");
    let size = CONTENT.len() as u64;
    assert_eq!(check_file(&path, size, &sha).unwrap(), Checked::Hashed);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Flip one byte in place (same size, same inode), then set the mtime back: only the ctime,
    // which no program can set, still tells that the file changed.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(3)).unwrap();
    f.write_all(&[CONTENT[3] ^ 0x01]).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    let err = check_file(&path, size, &sha).unwrap_err().to_string();
    let mut flipped = CONTENT.to_vec();
    flipped[3] ^= 0x01;
    for needle in [path.display().to_string(), sha.clone(), sha256_hex(&flipped), "Delete it".into()] {
        assert!(err.contains(&needle), "{needle:?} missing from: {err}");
    }
    // The stale stamp is gone, so the error repeats until the file is replaced.
    assert!(!stamp_path(&path).exists());
    assert!(check_file(&path, size, &sha).is_err());
}

#[test]
fn a_wrong_size_is_an_error() {
    let (_home, path, sha) = fake_model("size");
    assert!(check_file(&path, CONTENT.len() as u64 + 1, &sha).unwrap_err().to_string().contains("bytes"));
}

#[test]
fn stale_fetch_folders_are_removed_but_not_live_ones() {
    let home = TempHome::new("fetch");
    let dir = home.path().join("models");
    let stale = dir.join(".fetch-999999999");
    let own = dir.join(format!(".fetch-{}", std::process::id()));
    // pid 1 runs as long as the system does.
    let live = dir.join(".fetch-1");
    let unrelated = dir.join(".fetch-notapid");
    for d in [&stale, &own, &live, &unrelated] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("partial.whl"), b"x").unwrap();
    }
    let removed = remove_stale_fetch_dirs(&dir);
    assert_eq!(removed, vec![stale.clone()]);
    assert!(!stale.exists());
    assert!(own.exists() && unrelated.exists());
    if cfg!(target_os = "linux") {
        assert!(live.exists());
    }
}
