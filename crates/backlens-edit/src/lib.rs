//! Knowledge editing with the shift mechanism of the Backward Lens (Katz et al., EMNLP 2024,
//! Section 7 and Appendix I), with gradient baselines and CounterFact-style evaluation.
//!
//! * [`methods`]: the [`EditMethod`] trait; [`ForwardPassShift`] (raw or scale-free [`Eta`],
//!   several edits at once), [`OneStepSgd`] and [`OneStepAdam`] on one FF2 (`mlp.down`) matrix
//!   from the trace's low-rank gradient factors, and the [`FineTune`] baseline (Adam on one MLP
//!   layer).
//! * [`keys`]: forward pass shift's key, the paper's `x_n` or a whitened `C⁻¹x_n` (ROME's
//!   trick, beyond the paper) estimated on `data/key-corpus.txt` or on the prompt's template.
//! * [`defaults`]: the documented default settings (layer 23, η 500 scale-free, SGD lr 1.5, Adam
//!   lr 0.011, …) and [`MethodSettings`]; [`registry`]: the one table of edit methods (name,
//!   help, constructor from the settings, step size for the sweep) the command line reads.
//! * [`apply`]: an [`Edit`] is a set of new weights; [`EditGuard`] applies it through
//!   `LanguageModel::set_weight` and puts the original tensors back when dropped.
//! * [`metrics`] and [`eval`]: efficacy, paraphrase and neighborhood accuracy as the authors
//!   computed them (argmax, teacher-forced, mean and population std ×100), n-gram entropy of
//!   greedy generations, and perplexity on a fixed corpus ([`corpus`]).
//! * [`step`] and [`sweep`]: methods whose update is `W + s U` ([`StepSizeMethod`]), and the
//!   layer × learning-rate sweep of the paper's Figure 26 (minimum step size of a successful edit
//!   per layer, perplexity there) for forward pass shift, SGD and Adam.
//!
//! # Module dependencies
//!
//! No module cycle; each module uses only modules listed before it:
//!
//! ```text
//! error
//! eta        error
//! defaults   eta
//! request    error
//! metrics    error
//! corpus     error
//! apply      error
//! keys       error, corpus, request, apply
//! methods    error, eta, defaults, request, apply, keys
//! step       error, eta, request, apply, keys, methods
//! eval       error, request, metrics, apply, methods
//! search     error, eta, request, apply, keys, methods, eval
//! registry   error, eta, defaults, corpus, keys, methods, step
//! sweep      error, request, metrics, apply, step, eval, registry
//! ```
//!
//! ```no_run
//! use backlens_edit::{EditGuard, EditMethod, EditRequest, Eta, ForwardPassShift};
//! use backlens_model::{default_model, LanguageModel, Llama};
//! let mut model = Llama::from_gguf(&default_model::ensure_default_model()?, &candle_core::Device::Cpu)?;
//! let request = EditRequest::from_text(model.tokenizer(), "Lionel Messi plays for", " Paris")?;
//! let edit = ForwardPassShift::new(20, Eta::ScaleFree(8.0)).compute(&model, &[request.clone()])?;
//! let edited = EditGuard::apply(&mut model, &edit)?;
//! println!("{}", backlens_edit::eval::predicts(edited.model(), &request.prompt, &request.target)?);
//! drop(edited); // the original weights are back
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apply;
pub mod corpus;
pub mod defaults;
mod error;
pub mod eta;
pub mod eval;
pub mod keys;
pub mod methods;
pub mod metrics;
pub mod registry;
pub mod request;
pub mod search;
pub mod step;
pub mod sweep;

pub use apply::{Edit, EditGuard, WeightUpdate};
pub use defaults::MethodSettings;
pub use error::{EditError, Result};
pub use eta::{Eta, EtaKind};
pub use eval::{evaluate, EvalOptions, EvalReport, EvalSummary, RecordEval};
pub use keys::{Key, LayerWhitener};
pub use methods::{AdamConfig, AdamState, EditMethod, FineTune, ForwardPassShift, OneStepAdam, OneStepSgd};
pub use registry::{MethodEntry, METHODS};
pub use request::EditRequest;
pub use step::StepSizeMethod;
