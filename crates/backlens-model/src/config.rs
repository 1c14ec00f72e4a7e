//! Hyper-parameters of a Llama-architecture model.

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::hf_folder::HfFolder;

/// How Q and K pair their dimensions for the rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs (2i, 2i+1): GGUF files, whose converter permutes Q and K.
    Interleaved,
    /// Pairs (i, i + head_dim/2): Hugging Face checkpoints (`rotate_half`).
    HalfSplit,
}

/// The hyper-parameters the forward pass needs, read from GGUF metadata or config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Number of transformer blocks: GGUF `llama.block_count`, HF `num_hidden_layers`.
    pub n_layers: usize,
    /// Width of the residual stream: GGUF `llama.embedding_length`, HF `hidden_size`.
    pub d_model: usize,
    /// Width of the MLP's inner (gate/up output, down input) layer: GGUF
    /// `llama.feed_forward_length`, HF `intermediate_size`.
    pub d_ff: usize,
    /// Number of query heads: GGUF `llama.attention.head_count`, HF `num_attention_heads`.
    /// Divides `d_model` into an even per-head size ([`head_dim`](Self::head_dim)).
    pub n_heads: usize,
    /// Number of key/value heads (grouped-query attention; equal to `n_heads` without it):
    /// GGUF `llama.attention.head_count_kv`, HF `num_key_value_heads` (default `n_heads`).
    /// Divides `n_heads`.
    pub n_kv_heads: usize,
    /// Rotary embedding base θ (dimension pair i turns by `θ^(-2i/head_dim)` radians per
    /// position): GGUF `llama.rope.freq_base`, HF `rope_theta`; 10000 when missing.
    pub rope_base: f64,
    /// RMSNorm epsilon, added to the mean square: GGUF `llama.attention.layer_norm_rms_epsilon`,
    /// HF `rms_norm_eps` (default 1e-6).
    pub rms_eps: f64,
    /// The longest prompt, in tokens: GGUF `llama.context_length`, HF `max_position_embeddings`.
    pub context_length: usize,
    /// Number of tokens `V` (rows of the embedding and unembedding): the length of GGUF
    /// `tokenizer.ggml.tokens`, HF `vocab_size`.
    pub vocab_size: usize,
    /// How rotary dimensions pair up: [`RopeLayout::Interleaved`] for GGUF,
    /// [`RopeLayout::HalfSplit`] for Hugging Face folders.
    pub rope: RopeLayout,
}

impl LlamaConfig {
    /// Reads `llama.*` metadata; the vocabulary size comes from the tokenizer's token list.
    pub fn from_gguf(gguf: &GgufFile) -> Result<LlamaConfig> {
        let arch = gguf.string("general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::UnsupportedArchitecture(format!(
                "`{arch}` (GGUF general.architecture); backlens reads GGUF files of architecture `llama` \
                 (other architectures load from a Hugging Face folder: llama, gpt2)"
            )));
        }
        let cfg = LlamaConfig {
            n_layers: gguf.usize("llama.block_count")?,
            d_model: gguf.usize("llama.embedding_length")?,
            d_ff: gguf.usize("llama.feed_forward_length")?,
            n_heads: gguf.usize("llama.attention.head_count")?,
            n_kv_heads: gguf.usize("llama.attention.head_count_kv")?,
            rope_base: gguf.f64("llama.rope.freq_base").unwrap_or(10_000.0),
            rms_eps: gguf.f64("llama.attention.layer_norm_rms_epsilon")?,
            context_length: gguf.usize("llama.context_length")?,
            vocab_size: gguf.strings("tokenizer.ggml.tokens")?.len(),
            rope: RopeLayout::Interleaved,
        };
        cfg.validate(&ConfigSource::Gguf)?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `LlamaConfig` (config.json).
    pub fn from_hf_folder(folder: &HfFolder) -> Result<LlamaConfig> {
        if let Some(kind) = folder.config().get("model_type").and_then(|v| v.as_str()) {
            if kind != "llama" {
                return Err(ModelError::UnsupportedArchitecture(format!(
                    "`{kind}` (config.json model_type); the Llama loader reads `llama`"
                )));
            }
        }
        if folder.config().get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Err(ModelError::UnsupportedArchitecture(
                "llama with rope_scaling (config.json): scaled rotary embeddings are not implemented".to_string(),
            ));
        }
        let n_heads = folder.usize("num_attention_heads")?;
        let cfg = LlamaConfig {
            n_layers: folder.usize("num_hidden_layers")?,
            d_model: folder.usize("hidden_size")?,
            d_ff: folder.usize("intermediate_size")?,
            n_heads,
            n_kv_heads: folder.usize_or("num_key_value_heads", n_heads)?,
            rope_base: folder.f64_or("rope_theta", 10_000.0)?,
            rms_eps: folder.f64_or("rms_norm_eps", 1e-6)?,
            context_length: folder.usize("max_position_embeddings")?,
            vocab_size: folder.usize("vocab_size")?,
            rope: RopeLayout::HalfSplit,
        };
        cfg.validate(&ConfigSource::HfConfig(folder.dir().join("config.json")))?;
        Ok(cfg)
    }

    /// Per-head size.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Refuses values that make no sense at load, naming the key as the source spells it: a
    /// size of 0, a norm epsilon or RoPE base that is not a positive finite number, heads that
    /// do not split `d_model` into even head sizes, query heads not a multiple of the KV heads.
    /// Sizes are checked against the tensors separately (`Llama`'s loaders), before anything
    /// sized by them is allocated.
    pub(crate) fn validate(&self, source: &ConfigSource) -> Result<()> {
        use ConfigField as F;
        for (field, value) in [
            (F::Layers, self.n_layers),
            (F::DModel, self.d_model),
            (F::DFf, self.d_ff),
            (F::Heads, self.n_heads),
            (F::KvHeads, self.n_kv_heads),
            (F::Context, self.context_length),
            (F::Vocab, self.vocab_size),
        ] {
            if value == 0 {
                return Err(source.error(field, "is 0; it must be positive: fix the model's configuration".to_string()));
            }
        }
        for (field, value) in [(F::RmsEps, self.rms_eps), (F::RopeBase, self.rope_base)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(source.error(
                    field,
                    format!("is {value}; it must be a positive finite number (typically 1e-5 for the epsilon, 10000 for the base)"),
                ));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) || !(self.d_model / self.n_heads).is_multiple_of(2) {
            return Err(source.error(
                F::Heads,
                format!(
                    "{} heads do not split {} {} into even head sizes: set a head count that does",
                    self.n_heads,
                    source.key(F::DModel),
                    self.d_model
                ),
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(source.error(
                F::KvHeads,
                format!(
                    "{} query heads ({}) are not a multiple of {} KV heads: set a divisor of the query heads",
                    self.n_heads,
                    source.key(F::Heads),
                    self.n_kv_heads
                ),
            ));
        }
        Ok(())
    }
}

/// A field of [`LlamaConfig`], for error messages that name its key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConfigField {
    Layers,
    DModel,
    DFf,
    Heads,
    KvHeads,
    RopeBase,
    RmsEps,
    Context,
    Vocab,
}

/// Where a [`LlamaConfig`] was read from: errors name the key as that source spells it.
pub(crate) enum ConfigSource {
    /// GGUF metadata ([`ModelError::Metadata`] with the `llama.*` key).
    Gguf,
    /// A Hugging Face `config.json` at this path ([`ModelError::Config`] with its key).
    HfConfig(std::path::PathBuf),
}

impl ConfigSource {
    /// The key of `field` in this source.
    pub(crate) fn key(&self, field: ConfigField) -> &'static str {
        use ConfigField as F;
        match (self, field) {
            (ConfigSource::Gguf, F::Layers) => "llama.block_count",
            (ConfigSource::Gguf, F::DModel) => "llama.embedding_length",
            (ConfigSource::Gguf, F::DFf) => "llama.feed_forward_length",
            (ConfigSource::Gguf, F::Heads) => "llama.attention.head_count",
            (ConfigSource::Gguf, F::KvHeads) => "llama.attention.head_count_kv",
            (ConfigSource::Gguf, F::RopeBase) => "llama.rope.freq_base",
            (ConfigSource::Gguf, F::RmsEps) => "llama.attention.layer_norm_rms_epsilon",
            (ConfigSource::Gguf, F::Context) => "llama.context_length",
            (ConfigSource::Gguf, F::Vocab) => "tokenizer.ggml.tokens",
            (ConfigSource::HfConfig(_), F::Layers) => "num_hidden_layers",
            (ConfigSource::HfConfig(_), F::DModel) => "hidden_size",
            (ConfigSource::HfConfig(_), F::DFf) => "intermediate_size",
            (ConfigSource::HfConfig(_), F::Heads) => "num_attention_heads",
            (ConfigSource::HfConfig(_), F::KvHeads) => "num_key_value_heads",
            (ConfigSource::HfConfig(_), F::RopeBase) => "rope_theta",
            (ConfigSource::HfConfig(_), F::RmsEps) => "rms_norm_eps",
            (ConfigSource::HfConfig(_), F::Context) => "max_position_embeddings",
            (ConfigSource::HfConfig(_), F::Vocab) => "vocab_size",
        }
    }

    /// An error about `field`'s value; `problem` follows the key in the message.
    pub(crate) fn error(&self, field: ConfigField, problem: String) -> ModelError {
        let key = self.key(field).to_string();
        match self {
            ConfigSource::Gguf => ModelError::Metadata { key, problem },
            ConfigSource::HfConfig(path) => ModelError::Config { path: path.clone(), key, problem },
        }
    }
}
