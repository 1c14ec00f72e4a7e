//! Language models with hooks for the Backward Lens.
//!
//! Load a model ([`Llama::from_gguf`], or [`default_model::ensure_default_model`] for
//! SmolLM2-135M-Instruct), then [`LanguageModel::trace`] one forward and one backward pass of
//! `L = -log p(target | prompt)`. The [`Trace`] holds, for every layer and every linear module,
//! the forward inputs x_i and the VJPs δ_i = dL/d(output) at every token, under stable
//! [`HookPoint`] names such as `layers.12.mlp.down.vjp`.
//!
//! Weights are kept in one canonical layout, (out, in) like `nn.Linear` and GGUF, so analysis
//! code is architecture-agnostic.

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

/// Implements [`LanguageModel`] for an architecture struct with the fields `name`, `tokenizer`,
/// `embed`, `unembed`, `final_norm` and `config` (itself with `n_layers`, `d_model`,
/// `context_length`, `vocab_size`), and the inherent methods `forward(&self, &mut Recorder,
/// &[u32]) -> Result<Tensor>` (the last position's logits), `hidden` (same arguments, the final
/// residual stream (T, d)), `weight` and `set_weight`. The accessors are the same for every
/// architecture; only those methods differ.
macro_rules! impl_language_model {
    ($ty:ident) => {
        impl $crate::LanguageModel for $ty {
            fn name(&self) -> &str {
                &self.name
            }
            fn n_layers(&self) -> usize {
                self.config.n_layers
            }
            fn d_model(&self) -> usize {
                self.config.d_model
            }
            fn context_length(&self) -> usize {
                self.config.context_length
            }
            fn tokenizer(&self) -> &$crate::TextTokenizer {
                &self.tokenizer
            }
            fn final_norm(&self) -> &$crate::Norm {
                &self.final_norm
            }
            fn unembedding(&self) -> &candle_core::Tensor {
                &self.unembed
            }
            fn embedding(&self) -> &candle_core::Tensor {
                &self.embed
            }
            fn trace(
                &self,
                token_ids: &[u32],
                target_id: u32,
                options: &$crate::TraceOptions,
            ) -> $crate::Result<$crate::Trace> {
                let limits = $crate::trace::PromptLimits {
                    vocab_size: self.config.vocab_size,
                    context_length: self.config.context_length,
                };
                $crate::trace::run(token_ids, target_id, options, limits, |rec| self.forward(rec, token_ids))
            }
            fn logits(&self, token_ids: &[u32]) -> $crate::Result<candle_core::Tensor> {
                let limits = $crate::trace::PromptLimits {
                    vocab_size: self.config.vocab_size,
                    context_length: self.config.context_length,
                };
                $crate::trace::all_logits(token_ids, limits, &self.final_norm, &self.unembed, |rec| {
                    self.hidden(rec, token_ids)
                })
            }
            fn weight(&self, layer: usize, module: $crate::Module) -> $crate::Result<&candle_core::Tensor> {
                $ty::weight(self, layer, module)
            }
            fn set_weight(
                &mut self,
                layer: usize,
                module: $crate::Module,
                weight: candle_core::Tensor,
            ) -> $crate::Result<()> {
                $ty::set_weight(self, layer, module, weight)
            }
            fn boxed_clone(&self) -> Box<dyn $crate::LanguageModel> {
                Box::new(self.clone())
            }
        }
    };
}

pub mod config;
pub mod default_model;
mod error;
#[cfg(feature = "evcxr")]
mod evcxr;
pub mod gguf;
mod gpt2;
pub mod hf_folder;
pub mod hooks;
pub mod layers;
mod llama;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokenizer;
pub mod trace;
#[cfg(feature = "testing")]
mod weight_role;

pub use backlens_ops::Norm;
pub use config::{LlamaConfig, RopeLayout};
pub use error::{ModelError, Result};
pub use gpt2::{Gpt2, Gpt2Activation, Gpt2Config};
pub use hf_folder::HfFolder;
pub use hooks::{HookPoint, Kind, Module, Site};
pub use llama::Llama;
pub use tokenizer::TextTokenizer;
pub use trace::{Trace, TraceOptions};

use candle_core::Tensor;

/// What the lens and the reports need from a model, whatever its architecture.
pub trait LanguageModel: Send + Sync {
    /// A human-readable model name.
    fn name(&self) -> &str;
    /// Number of transformer blocks.
    fn n_layers(&self) -> usize;
    /// Width of the residual stream.
    fn d_model(&self) -> usize;
    /// The longest prompt the model accepts, in tokens.
    fn context_length(&self) -> usize;
    /// The model's tokenizer.
    fn tokenizer(&self) -> &TextTokenizer;
    /// The norm applied before the unembedding.
    fn final_norm(&self) -> &Norm;
    /// The unembedding matrix. # Shapes (V, d_model)
    fn unembedding(&self) -> &Tensor;
    /// The input embedding matrix. # Shapes (V, d_model)
    fn embedding(&self) -> &Tensor;
    /// One forward and one backward pass of `-log p(target_id | token_ids)`, recording hooks.
    fn trace(&self, token_ids: &[u32], target_id: u32, options: &TraceOptions) -> Result<Trace>;
    /// The next-token logits after every position of `token_ids`: one forward pass, no
    /// gradient, no hooks (for evaluation and generation; [`LanguageModel::trace`] is the
    /// differentiable path). Row `i` predicts token `i + 1`; the last row is the trace's
    /// `logits`. # Shapes (T, V)
    fn logits(&self, token_ids: &[u32]) -> Result<Tensor>;
    /// The weight of a linear module. # Shapes (d_out, d_in), the canonical layout
    fn weight(&self, layer: usize, module: Module) -> Result<&Tensor>;
    /// Replaces the weight of a linear module (same shape), e.g. for an edit.
    fn set_weight(&mut self, layer: usize, module: Module, weight: Tensor) -> Result<()>;
    /// A copy whose weights can be edited without touching this one (tensors are shared until
    /// replaced, so this is cheap).
    fn boxed_clone(&self) -> Box<dyn LanguageModel>;
}

/// Loads a model from a path: a GGUF file (Llama architecture) or a Hugging Face folder whose
/// config.json says `model_type` `llama` or `gpt2`.
pub fn load(path: &std::path::Path, device: &candle_core::Device) -> Result<Box<dyn LanguageModel>> {
    if path.is_dir() {
        let folder = HfFolder::open(path)?;
        let model_type = folder.config().get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        return match model_type {
            "llama" => Ok(Box::new(Llama::from_hf_folder(path, device)?)),
            "gpt2" => Ok(Box::new(Gpt2::from_hf_folder(path, device)?)),
            other => Err(ModelError::UnsupportedArchitecture(format!(
                "{other:?} (config.json model_type in {}); supported: llama, gpt2",
                path.display()
            ))),
        };
    }
    Ok(Box::new(Llama::from_gguf(path, device)?))
}
