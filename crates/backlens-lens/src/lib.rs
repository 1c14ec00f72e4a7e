//! The logit lens `LL(v) = unembed(final_norm(v))` for any batch of d_model vectors.
//!
//! The lens needs only a final norm and an unembedding matrix, not a model. Projection is one
//! matrix product for the whole batch; the per-row summaries (top-k, bottom-k, ranks) are then
//! read off the logits.
//!
//! Ranks are computed on logits, never on softmax probabilities: in f32 a probability underflows
//! to exactly 0 once its logit is ~104 below the maximum, which creates large ties at the bottom,
//! exactly where the Backward Lens reads FF2's VJPs.

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod lens;
mod summary;

pub use lens::{LensError, LogitLens};
pub use summary::{rank_of, summarize_row, ProjectOptions, Projection};
