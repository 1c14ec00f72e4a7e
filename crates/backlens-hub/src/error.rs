//! The error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while resolving a model specification to local files.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The text is not a valid `hf:org/name[@revision]` specification.
    #[error("invalid model specification {input:?}: {reason} (expected `hf:org/name` or `hf:org/name@revision`)")]
    InvalidSpec {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An environment variable read by [`HubConfig::from_vars`](crate::HubConfig::from_vars)
    /// has a malformed value (e.g. `BACKLENS_HUB_READ_TIMEOUT=soon`).
    #[error("invalid environment variable {variable}={value:?}: {reason}; fix or unset it")]
    InvalidEnv {
        /// The variable's name.
        variable: String,
        /// Its value.
        value: String,
        /// What is wrong with it and what is expected.
        reason: String,
    },

    /// A requested file name is not a plain relative path inside the repository
    /// (empty, absolute, or containing `..`); shard names from an index file are checked too.
    #[error("invalid file name {file:?} for {repo}@{revision}: {reason}")]
    InvalidFileName {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The offending name.
        file: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `fetch` was called without any required file.
    #[error("no files requested for {repo}@{revision}: pass at least one required file (e.g. \"config.json\")")]
    NoFiles {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
    },

    /// A required file is not in the local cache and the network may not (or could not) be used.
    #[error(
        "`{file}` of {repo}@{revision} is not in the local Hugging Face cache (looked in {looked_in}: {detail}) \
         and it cannot be downloaded: {reason}. To fix: connect to the network (and unset HF_HUB_OFFLINE if set); \
         or download the model on a connected machine (e.g. `huggingface-cli download {repo} --revision {revision}`) \
         and copy its cache folder `{repo_folder}` into {cache_dir}; or pass a local folder that holds the model files \
         instead of `hf:{repo}`"
    )]
    NotCached {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The first required file that is missing.
        file: String,
        /// The exact path that was looked at (the snapshot file, or the `refs/<revision>` file
        /// when the revision itself is unknown to the cache).
        looked_in: PathBuf,
        /// What was missing at `looked_in`.
        detail: String,
        /// Why the network was not used (offline mode, or the network error).
        reason: String,
        /// The cache folder of the repository (`models--org--name`).
        repo_folder: String,
        /// The cache root (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
        cache_dir: PathBuf,
    },

    /// The server answered 404 for a required file.
    #[error(
        "`{file}` was not found in {repo}@{revision} on {endpoint} (HTTP 404: the repository, the revision or the file \
         does not exist; check the spelling, the revision and the file list)"
    )]
    NotFound {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The missing file.
        file: String,
        /// The Hub endpoint that was asked.
        endpoint: String,
    },

    /// The server refused access (HTTP 401/403): a private or gated repository.
    #[error(
        "access to `{file}` of {repo}@{revision} on {endpoint} was refused (HTTP {status}): the repository does not exist, \
         or it is private or gated (then accept its terms on the Hub and set HF_TOKEN, or run `huggingface-cli login`)"
    )]
    AccessDenied {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The file being fetched.
        file: String,
        /// The Hub endpoint that was asked.
        endpoint: String,
        /// HTTP status code.
        status: u16,
    },

    /// Any other failure of the download itself (unexpected HTTP status, bad headers, I/O while writing).
    #[error("downloading `{file}` of {repo}@{revision} from {endpoint} failed: {message}")]
    Download {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The file being fetched.
        file: String,
        /// The Hub endpoint that was asked.
        endpoint: String,
        /// The underlying error, as text.
        message: String,
    },

    /// The revision moved while files were being downloaded, so they do not form one snapshot.
    #[error(
        "{repo}@{revision} changed during the download (`{file}` is at commit {got}, earlier files at {expected}); run again"
    )]
    SnapshotChanged {
        /// Repository id (`org/name`).
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The file whose commit differs.
        file: String,
        /// Commit of the first file.
        expected: String,
        /// Commit of this file.
        got: String,
    },

    /// A sharded-checkpoint index (`*.index.json`) could not be read or has no usable `weight_map`.
    #[error("invalid checkpoint index {path}: {reason}")]
    InvalidIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file-system operation on the cache failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
