//! Cache location, endpoint and network policy, from the environment.

use crate::HubError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Environment variable: seconds allowed for resolving the Hub's host name and for each TCP (and
/// proxy) connection; default [`DEFAULT_CONNECT_TIMEOUT`].
pub const CONNECT_TIMEOUT_VAR: &str = "BACKLENS_HUB_CONNECT_TIMEOUT";
/// Environment variable: seconds allowed for each read from (or write to) a connection, i.e. how
/// long the Hub may stay silent before a request is given up (a slow but steady download never
/// trips it); default [`DEFAULT_READ_TIMEOUT`].
pub const READ_TIMEOUT_VAR: &str = "BACKLENS_HUB_READ_TIMEOUT";
/// Default of [`HubConfig::connect_timeout`] (`BACKLENS_HUB_CONNECT_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`HubConfig::read_timeout`] (`BACKLENS_HUB_READ_TIMEOUT`).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A malformed environment variable met while building a [`HubConfig`]; [`crate::fetch`] reports
/// it as [`HubError::InvalidEnv`] before doing anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEnv {
    /// The variable's name.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What is wrong with it and what is expected.
    pub reason: String,
}

impl From<InvalidEnv> for HubError {
    fn from(e: InvalidEnv) -> HubError {
        HubError::InvalidEnv { variable: e.variable, value: e.value, reason: e.reason }
    }
}

/// Parses a timeout in seconds (`"10"`, `"0.5"`): a finite number greater than 0.
pub(crate) fn parse_seconds(variable: &str, value: &str) -> Result<Duration, InvalidEnv> {
    let invalid = |reason: &str| InvalidEnv {
        variable: variable.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let secs: f64 = value.trim().parse().map_err(|_| invalid("expected a number of seconds, e.g. `10` or `0.5`"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(invalid("expected a number of seconds greater than 0 (and at most 1e9)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

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
    /// Limit for resolving the host name and for each TCP connection (`BACKLENS_HUB_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Limit for each read from or write to a connection, including the wait for the response
    /// headers (`BACKLENS_HUB_READ_TIMEOUT`). It bounds silence, not the length of a download.
    pub read_timeout: Duration,
    /// A malformed variable met by [`HubConfig::from_vars`] (whose field then holds its default);
    /// [`crate::fetch`] fails with it at once. Use [`HubConfig::try_from_vars`] to fail earlier.
    pub invalid_env: Option<InvalidEnv>,
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
    /// - `connect_timeout`: `BACKLENS_HUB_CONNECT_TIMEOUT` seconds (default 10; fractions allowed).
    /// - `read_timeout`: `BACKLENS_HUB_READ_TIMEOUT` seconds (default 30; fractions allowed).
    ///
    /// A malformed timeout (not a number, 0 or negative) keeps the default and is recorded in
    /// `invalid_env`, so that [`crate::fetch`] fails with [`HubError::InvalidEnv`], which names the
    /// variable; [`HubConfig::try_from_vars`] returns that error directly.
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
        let mut invalid_env = None;
        let mut seconds = |name: &str, default: Duration| match var(name).map(|v| parse_seconds(name, &v)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                invalid_env.get_or_insert(e);
                default
            }
        };
        let connect_timeout = seconds(CONNECT_TIMEOUT_VAR, DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = seconds(READ_TIMEOUT_VAR, DEFAULT_READ_TIMEOUT);
        HubConfig { cache_dir, endpoint, offline, progress, token, connect_timeout, read_timeout, invalid_env }
    }

    /// Like [`HubConfig::from_vars`], but a malformed variable is an error at once.
    ///
    /// ```
    /// use backlens_hub::{HubConfig, HubError};
    /// let err = HubConfig::try_from_vars(|k| (k == "BACKLENS_HUB_READ_TIMEOUT").then(|| "soon".into())).unwrap_err();
    /// assert!(matches!(&err, HubError::InvalidEnv { variable, .. } if variable == "BACKLENS_HUB_READ_TIMEOUT"));
    /// ```
    pub fn try_from_vars(get: impl Fn(&str) -> Option<String>) -> Result<HubConfig, HubError> {
        let config = Self::from_vars(get);
        match config.invalid_env {
            Some(e) => Err(e.into()),
            None => Ok(config),
        }
    }

    /// Like [`HubConfig::from_env`], but a malformed variable is an error at once.
    pub fn try_from_env() -> Result<HubConfig, HubError> {
        Self::try_from_vars(|name| std::env::var(name).ok())
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
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            invalid_env: None,
        }
    }
}
