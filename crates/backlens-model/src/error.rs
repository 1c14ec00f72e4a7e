//! Errors of model loading, tokenization and tracing.

use std::path::PathBuf;

/// Everything that can go wrong between a model file and a trace.
///
/// Messages say what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}. Pass an existing GGUF file (e.g. --model PATH) or omit it to use the default model")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a readable GGUF file ({reason}); the file may be truncated or corrupt: delete it and fetch it again")]
    Gguf { path: PathBuf, reason: String },
    #[error("GGUF metadata key `{key}`: {problem}")]
    Metadata { key: String, problem: String },
    #[error("unsupported architecture `{0}`: backlens reads GGUF files of architecture `llama`")]
    UnsupportedArchitecture(String),
    #[error("tensor `{0}` is missing from the model file")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, but the metadata implies {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` contains non-finite values (NaN or infinity): the weights are corrupt")]
    NonFinite { name: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("the prompt is empty: give at least one token of text")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens but the model's context holds {context}: shorten it")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("the target {target:?} is {} tokens {pieces:?} (ids {ids:?}), but the Backward Lens needs exactly one target token{hint}", ids.len())]
    TargetNotOneToken { target: String, ids: Vec<u32>, pieces: Vec<String>, hint: String },
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("unknown hook name `{name}`: {reason}")]
    HookName { name: String, reason: String },
    #[error("`{0}` was not recorded in this trace: add its site and layer to TraceOptions")]
    NotRecorded(String),
    #[error("{path}: {problem}")]
    HfFolder { path: PathBuf, problem: String },
    #[error("{path}: key `{key}`: {problem}")]
    Config { path: PathBuf, key: String, problem: String },
    #[error(
        "{path} is not a readable safetensors file ({reason}); the file may be truncated or corrupt: download it again"
    )]
    Safetensors { path: PathBuf, reason: String },
    #[error("fetching the default model failed: {0}")]
    Fetch(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
