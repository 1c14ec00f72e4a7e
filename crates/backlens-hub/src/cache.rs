//! The standard Hub cache layout (shared with Python's `huggingface_hub` and hf-hub):
//!
//! ```text
//! <cache_dir>/models--org--name/
//!     refs/<revision>                 # text file: the commit hash the revision pointed to
//!     blobs/<etag>                    # file contents, named by etag (git sha1 or LFS sha256)
//!     snapshots/<commit>/<file>       # relative symlink to ../../blobs/<etag> (a copy where symlinks fail)
//!     .no_exist/<commit>/<file>       # empty marker: the server said 404 for this file at this commit
//! ```

use crate::spec::is_commit_hash;
use crate::{HubError, HubSpec};
use std::path::{Path, PathBuf};

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    pub(crate) root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io { path: path.to_path_buf(), source }
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, spec: &HubSpec) -> Self {
        RepoCache { root: cache_dir.join(spec.cache_folder_name()) }
    }

    pub(crate) fn ref_path(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }

    pub(crate) fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub(crate) fn blob_path(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    pub(crate) fn no_exist_path(&self, commit: &str, file: &str) -> PathBuf {
        self.root.join(".no_exist").join(commit).join(file)
    }

    /// The commit a revision points to in the cache: `refs/<revision>`, or the revision itself when
    /// it is a commit hash with a snapshot folder. On failure: the path looked at and what was missing.
    pub(crate) fn resolve_commit(&self, revision: &str) -> Result<String, (PathBuf, String)> {
        let ref_path = self.ref_path(revision);
        if let Ok(text) = std::fs::read_to_string(&ref_path) {
            let commit = text.trim();
            if !commit.is_empty() && is_safe_segment(commit) {
                return Ok(commit.to_string());
            }
        }
        if is_commit_hash(revision) && self.snapshot_dir(revision).is_dir() {
            return Ok(revision.to_string());
        }
        if !self.root.is_dir() {
            return Err((
                self.root.clone(),
                "the repository was never downloaded into this cache (no such folder)".into(),
            ));
        }
        Err((ref_path, format!("revision `{revision}` was never downloaded into this cache (no such ref file)")))
    }

    /// Records that `revision` points to `commit` (`refs/<revision>`).
    pub(crate) fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        let path = self.ref_path(revision);
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::write(&path, commit).map_err(io_err(&path))
    }

    /// Records that the server has no `file` at `commit` (Python-compatible `.no_exist` marker).
    pub(crate) fn mark_no_exist(&self, commit: &str, file: &str) -> Result<(), HubError> {
        let path = self.no_exist_path(commit, file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::write(&path, b"").map_err(io_err(&path))
    }

    /// Makes `snapshots/<commit>/<file>` point at an existing blob (relative symlink, or a copy
    /// where symlinks are not available).
    pub(crate) fn link_blob(&self, blob: &Path, pointer: &Path) -> Result<(), HubError> {
        let parent = pointer.parent().expect("pointer has a parent");
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        let rel = relative_to(blob, parent);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&rel, pointer).is_ok();
        #[cfg(windows)]
        let linked = std::os::windows::fs::symlink_file(&rel, pointer).is_ok();
        #[cfg(not(any(unix, windows)))]
        let linked = false;
        if !linked && !pointer.exists() {
            std::fs::copy(blob, pointer).map_err(io_err(pointer))?;
        }
        Ok(())
    }
}

/// `target` expressed relative to the directory `from` (both under the same root).
fn relative_to(target: &Path, from: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// A single path segment that cannot escape its folder.
pub(crate) fn is_safe_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// Checks that a repository file name is a plain relative path (`a/b.json`), returning why not.
pub(crate) fn check_file_name(file: &str) -> Result<(), String> {
    if file.is_empty() {
        return Err("it is empty".into());
    }
    if file.starts_with('/') || file.contains('\\') || file.contains(':') {
        return Err("it must be a relative path with '/' separators".into());
    }
    if file.split('/').any(|seg| !is_safe_segment(seg)) {
        return Err("it has an empty, '.' or '..' path segment".into());
    }
    if file.chars().any(|c| c.is_control()) {
        return Err("it contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let r = relative_to(Path::new("/c/m/blobs/abc"), Path::new("/c/m/snapshots/123/sub"));
        assert_eq!(r, PathBuf::from("../../../blobs/abc"));
    }

    #[test]
    fn file_names() {
        assert!(check_file_name("config.json").is_ok());
        assert!(check_file_name("onnx/model.onnx").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "C:x", "./a"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }
}
