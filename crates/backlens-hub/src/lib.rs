//! # backlens-hub
//!
//! Resolves a model specification `hf:org/name[@revision]` to a local folder of files in the
//! standard Hugging Face Hub cache, downloading what is missing with the
//! [`hf-hub`](https://docs.rs/hf-hub/0.5) crate (sync API, the version candle uses).
//!
//! ```no_run
//! use backlens_hub::{fetch, HubConfig, HubSpec};
//! let spec: HubSpec = "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0".parse()?;
//! let dir = fetch(
//!     &spec,
//!     &["config.json", "tokenizer.json", "model.safetensors"],
//!     &["generation_config.json"],
//!     &HubConfig::from_env(),
//! )?;
//! assert!(dir.join("config.json").exists());
//! # Ok::<(), backlens_hub::HubError>(())
//! ```
//!
//! Policy:
//! - **Cache first.** When every required file (and every optional file, or a record that the server
//!   lacks it) is already in the cache snapshot that `refs/<revision>` points to, no request is made
//!   (like hf-hub's `ApiRepo::get`). A moving branch such as `main` is therefore not refreshed once
//!   cached; pin a commit or delete `refs/<revision>` to refresh.
//! - **Offline** (`HF_HUB_OFFLINE=1`, [`HubConfig::offline`]; hf-hub 0.5 ignores the variable): only the
//!   cache is read, and a missing file fails at once with [`HubError::NotCached`], which names the
//!   repository, the revision, the file, the exact cache path and the ways to fix it.
//! - **Timeouts**: every request has a connect timeout (`BACKLENS_HUB_CONNECT_TIMEOUT`, default 10 s,
//!   also for DNS) and a read timeout (`BACKLENS_HUB_READ_TIMEOUT`, default 30 s: the longest the
//!   server may stay silent, while waiting for the response headers or between body reads; a long
//!   download that keeps flowing is never cut). The requests are made here with ureq 3 rather than
//!   through hf-hub 0.5's `Api`, whose agents have no timeouts and cannot be configured; see
//!   `src/http.rs` for why this beats a worker thread with a deadline.
//! - **Network failure** (refused connection, DNS failure, timeout, HTTP 5xx): the cache is used as
//!   in offline mode (a file already cached is used, a missing one fails with
//!   [`HubError::NotCached`]); a partial download is removed.
//! - **Sharded checkpoints**: any fetched `*.index.json` with a `weight_map` makes every listed shard
//!   required; a required `X.safetensors` that does not exist falls back to `X.safetensors.index.json`.
//! - **Optional files** that the server answers 404 for are skipped, and recorded like Python does
//!   (`.no_exist/<commit>/<file>`), so later calls need no request.

#![warn(missing_docs)]
// Errors are rare and carry the full context for the message; boxing them buys nothing here.
#![allow(clippy::result_large_err)]
// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod config;
mod error;
mod http;
mod spec;

pub use config::{
    HubConfig, InvalidEnv, CONNECT_TIMEOUT_VAR, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT, DEFAULT_READ_TIMEOUT,
    READ_TIMEOUT_VAR,
};
pub use error::HubError;
pub use spec::{HubSpec, DEFAULT_REVISION, HUB_PREFIX};

use cache::{check_file_name, is_safe_segment, RepoCache};
use http::{Client, Fail};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Fetches `files` of `spec` (e.g. `["config.json", "tokenizer.json", "model.safetensors"]`) and
/// returns the snapshot folder (`<cache>/models--org--name/snapshots/<commit>`) that holds them all.
///
/// `optional` files (e.g. `"model.safetensors.index.json"`, `"generation_config.json"`) are fetched
/// when present and skipped when the server answers 404 (or, offline, when they are not cached).
/// See the [crate documentation](crate) for the cache, offline and sharding rules.
pub fn fetch(spec: &HubSpec, files: &[&str], optional: &[&str], config: &HubConfig) -> Result<PathBuf, HubError> {
    if let Some(invalid) = &config.invalid_env {
        return Err(invalid.clone().into());
    }
    if files.is_empty() {
        return Err(HubError::NoFiles { repo: spec.repo.clone(), revision: spec.revision.clone() });
    }
    for file in files.iter().chain(optional) {
        check_file_name(file).map_err(|reason| invalid_file(spec, file, reason))?;
    }
    let cache = RepoCache::new(&config.cache_dir, spec);
    let cached = lookup_cache(spec, &cache, files, optional)?;
    let not_cached = |reason: String| match &cached {
        CacheState::Miss { file, looked_in, detail } => HubError::NotCached {
            repo: spec.repo.clone(),
            revision: spec.revision.clone(),
            file: file.clone(),
            looked_in: looked_in.clone(),
            detail: detail.clone(),
            reason,
            repo_folder: spec.cache_folder_name(),
            cache_dir: config.cache_dir.clone(),
        },
        _ => unreachable!("only called on a cache miss"),
    };
    if config.offline {
        return match &cached {
            CacheState::Complete(dir) | CacheState::RequiredOnly(dir) => Ok(dir.clone()),
            CacheState::Miss { .. } => {
                Err(not_cached("offline mode is on (HF_HUB_OFFLINE / HubConfig::offline)".into()))
            }
        };
    }
    if let CacheState::Complete(dir) = &cached {
        return Ok(dir.clone());
    }
    let online = fetch_online(spec, &cache, files, optional, config);
    match online {
        Ok(dir) => Ok(dir),
        Err(Online::Hub(e)) => Err(e),
        Err(Online::Network(msg)) => match &cached {
            CacheState::RequiredOnly(dir) => Ok(dir.clone()),
            CacheState::Complete(_) => unreachable!(),
            CacheState::Miss { .. } => {
                Err(not_cached(format!("the Hub at {} cannot be reached ({msg})", config.endpoint)))
            }
        },
    }
}

fn invalid_file(spec: &HubSpec, file: &str, reason: String) -> HubError {
    HubError::InvalidFileName {
        repo: spec.repo.clone(),
        revision: spec.revision.clone(),
        file: file.to_string(),
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Walking the requested files (shared by the cache and the online paths)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}

/// Visits the required files, then the optional ones, then shards listed by any index file found.
/// `get` returns `Ok(None)` when a file is absent; `missing(file)` builds the error for an absent
/// required file (after the `X.safetensors` -> `X.safetensors.index.json` fallback).
fn walk<E>(
    spec: &HubSpec,
    files: &[&str],
    optional: &[&str],
    mut get: impl FnMut(&str, Need) -> Result<Option<PathBuf>, E>,
    missing: impl Fn(&str) -> E,
) -> Result<(), E>
where
    E: From<HubError>,
{
    let mut queue: VecDeque<(String, Need, Option<String>)> = files
        .iter()
        .map(|f| (f.to_string(), Need::Required, None))
        .chain(optional.iter().map(|f| (f.to_string(), Need::Optional, None)))
        .collect();
    let mut seen = HashSet::new();
    while let Some((file, need, fallback_for)) = queue.pop_front() {
        if !seen.insert(file.clone()) {
            continue;
        }
        match get(&file, need)? {
            Some(path) => {
                if file.ends_with(".index.json") {
                    for shard in read_index(&path)? {
                        check_file_name(&shard).map_err(|r| invalid_file(spec, &shard, r))?;
                        queue.push_back((shard, Need::Required, None));
                    }
                }
            }
            None if need == Need::Optional => {}
            None => {
                let index = format!("{file}.index.json");
                if fallback_for.is_none() && file.ends_with(".safetensors") && !seen.contains(&index) {
                    queue.push_front((index, Need::Required, Some(file)));
                } else {
                    return Err(missing(fallback_for.as_deref().unwrap_or(&file)));
                }
            }
        }
    }
    Ok(())
}

/// The shard file names listed in the `weight_map` of a checkpoint index, deduplicated, in order.
fn read_index(path: &Path) -> Result<Vec<String>, HubError> {
    let invalid = |reason: String| HubError::InvalidIndex { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|source| HubError::Io { path: path.to_path_buf(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let map =
        json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| invalid("no `weight_map` object".into()))?;
    let mut shards: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| invalid(format!("weight_map[{tensor:?}] is not a string")))?;
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    if shards.is_empty() {
        return Err(invalid("the `weight_map` is empty".into()));
    }
    Ok(shards)
}

// ---------------------------------------------------------------------------------------------
// Cache

enum CacheState {
    /// Every file is cached (optional ones cached or recorded as absent).
    Complete(PathBuf),
    /// Every required file is cached; some optional file is neither cached nor known to be absent.
    RequiredOnly(PathBuf),
    /// A required file is missing.
    Miss { file: String, looked_in: PathBuf, detail: String },
}

struct CacheMiss(String, PathBuf, String);

impl From<HubError> for CacheMiss {
    fn from(e: HubError) -> Self {
        // Only an index file read from the cache can fail here; treat it as a miss so that an
        // online fetch can repair it, and keep the reason for the offline message.
        match &e {
            HubError::InvalidIndex { path, .. } | HubError::Io { path, .. } => {
                CacheMiss(String::new(), path.clone(), e.to_string())
            }
            _ => CacheMiss(String::new(), PathBuf::new(), e.to_string()),
        }
    }
}

fn lookup_cache(spec: &HubSpec, cache: &RepoCache, files: &[&str], optional: &[&str]) -> Result<CacheState, HubError> {
    let commit = match cache.resolve_commit(&spec.revision) {
        Ok(c) => c,
        Err((looked_in, detail)) => return Ok(CacheState::Miss { file: files[0].to_string(), looked_in, detail }),
    };
    let snapshot = cache.snapshot_dir(&commit);
    let mut optional_unknown = false;
    let result = walk(
        spec,
        files,
        optional,
        |file, need| {
            let path = snapshot.join(file);
            if path.exists() {
                return Ok(Some(path));
            }
            if need == Need::Optional && !cache.no_exist_path(&commit, file).exists() {
                optional_unknown = true;
            }
            Ok(None)
        },
        |file| CacheMiss(file.to_string(), snapshot.join(file), "no such file".into()),
    );
    Ok(match result {
        Ok(()) if optional_unknown => CacheState::RequiredOnly(snapshot),
        Ok(()) => CacheState::Complete(snapshot),
        Err(CacheMiss(file, looked_in, detail)) => {
            CacheState::Miss { file: if file.is_empty() { files[0].to_string() } else { file }, looked_in, detail }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Online

/// Why the online path stopped: a network-level failure (fall back to the cache) or a definite error.
enum Online {
    Network(String),
    Hub(HubError),
}

impl From<HubError> for Online {
    fn from(e: HubError) -> Self {
        Online::Hub(e)
    }
}

struct OnlineCtx<'a> {
    spec: &'a HubSpec,
    config: &'a HubConfig,
    cache: &'a RepoCache,
    client: Client,
}

impl OnlineCtx<'_> {
    fn download_error(&self, file: &str, message: String) -> Online {
        Online::Hub(HubError::Download {
            repo: self.spec.repo.clone(),
            revision: self.spec.revision.clone(),
            file: file.to_string(),
            endpoint: self.config.endpoint.clone(),
            message,
        })
    }

    /// `{endpoint}/{org}/{name}/resolve/{revision}/{file}`, the layout hf-hub and the Hub use
    /// (a `/` in the revision is written `%2F`).
    fn url(&self, file: &str) -> String {
        let revision = self.spec.revision.replace('/', "%2F");
        format!("{}/{}/resolve/{revision}/{file}", self.config.endpoint.trim_end_matches('/'), self.spec.repo)
    }

    /// Sorts a request failure: `Ok(None)` for 404, network-level failures (timeouts included),
    /// or definite errors.
    fn classify(&self, file: &str, err: Fail) -> Result<Option<(PathBuf, String)>, Online> {
        match err {
            Fail::Http(e) => match e {
                ureq::Error::StatusCode(404) => Ok(None),
                ureq::Error::StatusCode(status @ (401 | 403)) => Err(Online::Hub(HubError::AccessDenied {
                    repo: self.spec.repo.clone(),
                    revision: self.spec.revision.clone(),
                    file: file.to_string(),
                    endpoint: self.config.endpoint.clone(),
                    status,
                })),
                ureq::Error::StatusCode(status) if status >= 500 => {
                    Err(Online::Network(format!("server error HTTP {status}")))
                }
                ureq::Error::StatusCode(status) => {
                    Err(self.download_error(file, format!("unexpected HTTP status {status}")))
                }
                e @ (ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl) => {
                    Err(self.download_error(file, e.to_string()))
                }
                e => Err(Online::Network(e.to_string())),
            },
            Fail::Read(e) => Err(Online::Network(format!("reading `{file}` failed: {e}"))),
            Fail::Protocol(message) => Err(self.download_error(file, message)),
            Fail::Io(path, source) => Err(Online::Hub(HubError::Io { path, source })),
        }
    }

    /// Downloads one file (or links an existing blob); `Ok(None)` when the server has no such file.
    fn fetch_one(&self, file: &str) -> Result<Option<(PathBuf, String)>, Online> {
        let url = self.url(file);
        let meta = match self.client.metadata(&url) {
            Ok(meta) => meta,
            Err(e) => return self.classify(file, e),
        };
        let (commit, etag) = (meta.commit, meta.etag);
        if !is_safe_segment(&commit) || !is_safe_segment(&etag) {
            return Err(self
                .download_error(file, format!("the server sent an unusable commit ({commit:?}) or etag ({etag:?})")));
        }
        let pointer = self.cache.snapshot_dir(&commit).join(file);
        let blob = self.cache.blob_path(&etag);
        if !pointer.exists() {
            let blob_ok = std::fs::metadata(&blob).is_ok_and(|m| m.len() == meta.size);
            if !blob_ok {
                if let Err(e) = self.client.download(&url, meta.size, &blob, file) {
                    return match self.classify(file, e)? {
                        None => Ok(None),
                        Some(_) => unreachable!("classify never succeeds with a path"),
                    };
                }
            }
            self.cache.link_blob(&blob, &pointer)?;
        }
        self.cache.write_ref(&self.spec.revision, &commit)?;
        Ok(Some((pointer, commit)))
    }
}

fn fetch_online(
    spec: &HubSpec,
    cache: &RepoCache,
    files: &[&str],
    optional: &[&str],
    config: &HubConfig,
) -> Result<PathBuf, Online> {
    let ctx = OnlineCtx { spec, config, cache, client: Client::new(config) };
    let mut commit: Option<String> = None;
    walk(
        spec,
        files,
        optional,
        |file, need| match ctx.fetch_one(file)? {
            Some((path, got)) => match &commit {
                Some(expected) if *expected != got => Err(Online::Hub(HubError::SnapshotChanged {
                    repo: spec.repo.clone(),
                    revision: spec.revision.clone(),
                    file: file.to_string(),
                    expected: expected.clone(),
                    got,
                })),
                _ => {
                    commit = Some(got);
                    Ok(Some(path))
                }
            },
            None => {
                if let (Need::Optional, Some(c)) = (need, &commit) {
                    cache.mark_no_exist(c, file)?;
                }
                Ok(None)
            }
        },
        |file| {
            Online::Hub(HubError::NotFound {
                repo: spec.repo.clone(),
                revision: spec.revision.clone(),
                file: file.to_string(),
                endpoint: config.endpoint.clone(),
            })
        },
    )?;
    let commit = commit.expect("at least one required file was fetched");
    Ok(cache.snapshot_dir(&commit))
}
