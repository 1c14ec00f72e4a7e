//! RMSNorm and LayerNorm from primitive (differentiable) ops.

use candle_core::{Result, Tensor, D};

/// A normalisation layer over the last dimension, in one canonical form for every architecture.
///
/// Built from primitive candle ops so that gradients flow through it (candle's fused
/// `rms_norm`/`layer_norm` kernels silently drop them). Statistics are always computed from the
/// vector being normalised: nothing is cached between calls.
#[derive(Debug, Clone)]
pub enum Norm {
    /// `x / sqrt(mean(x²) + eps) * weight` (Llama, SmolLM2).
    Rms {
        /// The gain, shape `(d)` (Llama: GGUF `blk.L.attn_norm`, `blk.L.ffn_norm`, `output_norm`;
        /// Hugging Face `input_layernorm`, `post_attention_layernorm`, `model.norm`).
        weight: Tensor,
        /// Added to the mean square before the square root (Llama: GGUF
        /// `llama.attention.layer_norm_rms_epsilon`, Hugging Face `rms_norm_eps`).
        eps: f64,
    },
    /// `(x - mean(x)) / sqrt(var(x) + eps) * weight + bias` (GPT-2).
    Layer {
        /// The gain, shape `(d)` (GPT-2 `ln_1.weight`, `ln_2.weight`, `ln_f.weight`).
        weight: Tensor,
        /// The bias, shape `(d)` (GPT-2 `ln_1.bias`, `ln_2.bias`, `ln_f.bias`).
        bias: Tensor,
        /// Added to the variance (the mean of squares, divided by `d`) before the square root
        /// (GPT-2 `config.json` `layer_norm_epsilon`).
        eps: f64,
    },
}

impl Norm {
    /// Applies the norm to each row.
    ///
    /// # Shapes
    /// - `x`: (..., d)
    /// - returns (..., d)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Rms { weight, eps } => {
                let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
                let x_hat = x.broadcast_div(&(mean_sq + *eps)?.sqrt()?)?;
                x_hat.broadcast_mul(weight)
            }
            Norm::Layer { weight, bias, eps } => {
                let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
                let x_hat = centered.broadcast_div(&(var + *eps)?.sqrt()?)?;
                x_hat.broadcast_mul(weight)?.broadcast_add(bias)
            }
        }
    }

    /// The size of the vectors this norm accepts.
    pub fn dim(&self) -> usize {
        match self {
            Norm::Rms { weight, .. } | Norm::Layer { weight, .. } => weight.elem_count(),
        }
    }

    /// Whether `norm(c·v)` ranks tokens like `norm(v)` for every `c > 0` (bias-free norms).
    ///
    /// True for RMSNorm; false for LayerNorm, whose bias dominates as `c → 0`.
    pub fn is_scale_invariant(&self) -> bool {
        matches!(self, Norm::Rms { .. })
    }

    /// Moves the parameters to another dtype (f64 for finite-difference checks).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Norm> {
        Ok(match self {
            Norm::Rms { weight, eps } => Norm::Rms { weight: weight.to_dtype(dtype)?, eps: *eps },
            Norm::Layer { weight, bias, eps } => {
                Norm::Layer { weight: weight.to_dtype(dtype)?, bias: bias.to_dtype(dtype)?, eps: *eps }
            }
        })
    }
}
