//! Differentiable building blocks shared by the model and the lens.
//!
//! candle's fused kernels (`rms_norm`, `layer_norm`, `softmax_last_dim`, `rope*`, `sdpa`,
//! `QMatMul`) record no backward pass and raise no error, so every op here is composed from
//! primitive ops that do, and each one is guarded by a gradient test (see `tests/`).
//!
//! Two things live here because two crates need the same code:
//! - [`Norm`]: the model's norms, reused by the logit lens as its final norm, so the lens can
//!   never disagree with the forward pass;
//! - [`linear`]: `y = x Wᵀ` whose backward returns only `dL/dx`. Weight gradients are never
//!   needed directly (any `dL/dW` is `Δᵀ X` from the trace), and letting candle compute them
//!   costs a 3-6x slower backward and ~0.5 GB for a 135M model.

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod linear;
mod norm;

pub use linear::{linear, linear_with_weight_grad};
pub use norm::Norm;
