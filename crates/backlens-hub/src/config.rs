//! Cache location, endpoint and network policy, from the environment.

use std::path::{Path, PathBuf};

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where Hub files live and whether the network may be used.
///
/// Build it with [`HubConfig::from_env`] (or the pure [`HubConfig::from_vars`]), or fill the
/// fields directly (tests point `endpoint` at a local server and `cache_dir` at a temporary folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// The Hub cache root, which holds `models--org--name/{refs,blobs,snapshots}`.
    pub cache_dir: PathBuf,
    /// Base URL of the Hub, without a trailing `/` (files are at `{endpoint}/{org}/{name}/resolve/{revision}/{file}`).
    pub endpoint: String,
    /// Never use the network: resolve everything from `cache_dir` or fail at once.
    pub offline: bool,
    /// Draw a progress bar on stderr while downloading (hidden automatically when stderr is not a terminal).
    pub progress: bool,
    /// Access token for private or gated repositories (`HF_TOKEN`); when `None`, hf-hub reads the
    /// token file `<cache_dir>/../token` written by `huggingface-cli login`, if any.
    pub token: Option<String>,
}

/// Python's `huggingface_hub` truthiness for environment flags: `1`, `ON`, `YES`, `TRUE` (any case).
pub(crate) fn is_truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

fn expand_home(value: &str, home: Option<&Path>) -> PathBuf {
    match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if value == "~" && home.is_some() => home.unwrap().to_path_buf(),
        _ => PathBuf::from(value),
    }
}

impl HubConfig {
    /// Reads the process environment; see [`HubConfig::from_vars`] for the rules.
    pub fn from_env() -> HubConfig {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from a variable lookup (`get(name)` returns the value of an
    /// environment variable), so that it can be tested without touching the process environment.
    /// Empty values count as unset.
    ///
    /// - `cache_dir`: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE` (legacy), else `$HF_HOME/hub`,
    ///   else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (`~` from `HOME`,
    ///   or `USERPROFILE`); a leading `~/` is expanded in all of them.
    /// - `endpoint`: `HF_ENDPOINT` (trailing `/` removed), else `https://huggingface.co`.
    /// - `offline`: `HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on` (any case).
    /// - `progress`: on unless `HF_HUB_DISABLE_PROGRESS_BARS` is true.
    /// - `token`: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN` (legacy).
    ///
    /// ```
    /// use backlens_hub::HubConfig;
    /// let c = HubConfig::from_vars(|k| match k {
    ///     "HF_HOME" => Some("/data/hf".into()),
    ///     "HF_HUB_OFFLINE" => Some("1".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(c.cache_dir, std::path::PathBuf::from("/data/hf/hub"));
    /// assert!(c.offline);
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> HubConfig {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let home = var("HOME").or_else(|| var("USERPROFILE")).map(PathBuf::from);
        let home = home.as_deref();
        let cache_dir = if let Some(dir) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
            expand_home(&dir, home)
        } else if let Some(hf_home) = var("HF_HOME") {
            expand_home(&hf_home, home).join("hub")
        } else if let Some(xdg) = var("XDG_CACHE_HOME") {
            expand_home(&xdg, home).join("huggingface").join("hub")
        } else {
            home.map(Path::to_path_buf).unwrap_or_default().join(".cache").join("huggingface").join("hub")
        };
        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        let progress = !var("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| is_truthy(&v));
        let token = var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")).map(|t| t.trim().to_string());
        HubConfig { cache_dir, endpoint, offline, progress, token }
    }

    /// A configuration for `endpoint` and `cache_dir`, online, without progress bar or token
    /// (handy for tests and local mirrors).
    pub fn new(cache_dir: impl Into<PathBuf>, endpoint: impl Into<String>) -> HubConfig {
        HubConfig {
            cache_dir: cache_dir.into(),
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            offline: false,
            progress: false,
            token: None,
        }
    }
}
