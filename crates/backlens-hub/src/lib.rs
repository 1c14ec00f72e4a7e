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
//! - **Network failure**: the endpoint is probed with a short TCP connect timeout before hf-hub is
//!   called (its ureq agent has no timeouts and cannot be configured), then the cache is used as in
//!   offline mode.
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
mod spec;

pub use config::{HubConfig, DEFAULT_ENDPOINT};
pub use error::HubError;
pub use spec::{HubSpec, DEFAULT_REVISION, HUB_PREFIX};

use cache::{check_file_name, is_safe_segment, RepoCache};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use std::collections::{HashSet, VecDeque};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the reachability probe waits for DNS and for the TCP connection, each.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Fetches `files` of `spec` (e.g. `["config.json", "tokenizer.json", "model.safetensors"]`) and
/// returns the snapshot folder (`<cache>/models--org--name/snapshots/<commit>`) that holds them all.
///
/// `optional` files (e.g. `"model.safetensors.index.json"`, `"generation_config.json"`) are fetched
/// when present and skipped when the server answers 404 (or, offline, when they are not cached).
/// See the [crate documentation](crate) for the cache, offline and sharding rules.
pub fn fetch(spec: &HubSpec, files: &[&str], optional: &[&str], config: &HubConfig) -> Result<PathBuf, HubError> {
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
    let online = probe(&config.endpoint).and_then(|()| fetch_online(spec, &cache, files, optional, config));
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

/// True when the process has a proxy configured (ureq then connects to the proxy, not the endpoint).
fn proxy_configured() -> bool {
    ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

/// `(host, port)` of an `http(s)://host[:port][/path]` endpoint.
fn endpoint_host_port(endpoint: &str) -> Option<(String, u16)> {
    let (rest, default_port) = if let Some(r) = endpoint.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (r, 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

/// Checks quickly that the endpoint accepts TCP connections (DNS and connect each bounded by
/// [`CONNECT_TIMEOUT`]), because hf-hub's HTTP agent has no timeouts.
fn probe(endpoint: &str) -> Result<(), Online> {
    if proxy_configured() {
        return Ok(());
    }
    let Some((host, port)) = endpoint_host_port(endpoint) else {
        return Ok(()); // let the HTTP client report the malformed endpoint
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let h = host.clone();
    std::thread::spawn(move || {
        let _ = tx.send((h.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<SocketAddr>>()));
    });
    let addrs = match rx.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => return Err(Online::Network(format!("`{host}` has no address"))),
        Ok(Err(e)) => return Err(Online::Network(format!("cannot resolve `{host}`: {e}"))),
        Err(_) => return Err(Online::Network(format!("resolving `{host}` took longer than {CONNECT_TIMEOUT:?}"))),
    };
    let mut last = String::new();
    for addr in addrs.iter().take(3) {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(Online::Network(last))
}

fn build_api(config: &HubConfig) -> Result<Api, HubError> {
    let mut builder = ApiBuilder::from_cache(Cache::new(config.cache_dir.clone()))
        .with_endpoint(config.endpoint.trim_end_matches('/').to_string())
        .with_progress(config.progress)
        .with_retries(0)
        .with_user_agent("backlens-hub", env!("CARGO_PKG_VERSION"));
    if let Some(token) = &config.token {
        builder = builder.with_token(Some(token.clone()));
    }
    builder.build().map_err(|e| HubError::Download {
        repo: String::new(),
        revision: String::new(),
        file: String::new(),
        endpoint: config.endpoint.clone(),
        message: format!("cannot build the HTTP client: {e}"),
    })
}

struct OnlineCtx<'a> {
    spec: &'a HubSpec,
    config: &'a HubConfig,
    cache: &'a RepoCache,
    repo: ApiRepo,
    api: Api,
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

    /// Sorts an hf-hub error: `Ok(None)` for 404, network-level failures, or definite errors.
    fn classify(&self, file: &str, err: ApiError) -> Result<Option<(PathBuf, String)>, Online> {
        match err {
            ApiError::RequestError(e) => match *e {
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
            e => Err(self.download_error(file, e.to_string())),
        }
    }

    /// Downloads one file (or links an existing blob); `Ok(None)` when the server has no such file.
    fn fetch_one(&self, file: &str) -> Result<Option<(PathBuf, String)>, Online> {
        let url = self.repo.url(file);
        let meta = match self.api.metadata(&url) {
            Ok(meta) => meta,
            Err(e) => return self.classify(file, e),
        };
        let commit = meta.commit_hash().trim().to_string();
        let etag = meta.etag().trim().to_string();
        if !is_safe_segment(&commit) || !is_safe_segment(&etag) {
            return Err(self
                .download_error(file, format!("the server sent an unusable commit ({commit:?}) or etag ({etag:?})")));
        }
        let pointer = self.cache.snapshot_dir(&commit).join(file);
        let blob = self.cache.blob_path(&etag);
        if !pointer.exists() {
            let blob_ok = std::fs::metadata(&blob).is_ok_and(|m| m.len() == meta.size() as u64);
            if blob_ok {
                self.cache.link_blob(&blob, &pointer)?;
            } else {
                let path = match self.repo.download(file) {
                    Ok(path) => path,
                    Err(e) => {
                        return match self.classify(file, e)? {
                            None => Ok(None),
                            Some(_) => unreachable!("classify never succeeds with a path"),
                        }
                    }
                };
                if path != pointer {
                    // hf-hub asked again and got another commit: the revision moved meanwhile.
                    return Err(Online::Hub(HubError::SnapshotChanged {
                        repo: self.spec.repo.clone(),
                        revision: self.spec.revision.clone(),
                        file: file.to_string(),
                        expected: commit,
                        got: path.display().to_string(),
                    }));
                }
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if len != meta.size() as u64 {
                    let _ = std::fs::remove_file(&blob);
                    let _ = std::fs::remove_file(&path);
                    return Err(self
                        .download_error(file, format!("incomplete download: {len} bytes instead of {}", meta.size())));
                }
            }
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
    let api = build_api(config)?;
    let repo = api.repo(Repo::with_revision(spec.repo.clone(), RepoType::Model, spec.revision.clone()));
    let ctx = OnlineCtx { spec, config, cache, repo, api };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint_host_port("https://huggingface.co"), Some(("huggingface.co".into(), 443)));
        assert_eq!(endpoint_host_port("http://127.0.0.1:8080/"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(endpoint_host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(endpoint_host_port("http://u:p@host"), Some(("host".into(), 80)));
        assert_eq!(endpoint_host_port("ftp://host"), None);
    }
}
