//! Pieces every decoder architecture shares, written with differentiable ops only.

use crate::error::{ModelError, Result};
use crate::hooks::Module;
use backlens_ops::{linear, Norm};
use candle_core::{DType, Device, Tensor, D};

/// The additive causal mask: 0 on and below the diagonal, -inf above it.
///
/// # Shapes
/// Returns (T, T).
pub fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
    Ok(Tensor::from_vec(mask, (t, t), device)?)
}

/// Explicit causal attention (no fused kernel, so gradients flow): softmax(q kᵀ · scale + mask) v,
/// with the heads concatenated again.
///
/// # Shapes
/// - `q`, `k`, `v`: (H, T, hd) (grouped-query callers repeat k and v first), `mask`: (T, T)
/// - returns (T, H·hd)
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, mask: &Tensor) -> Result<Tensor> {
    let (h, t, hd) = q.dims3()?;
    let scores = (q.matmul(&k.t()?)? * scale)?; // (H, T, T)
    let probs = candle_nn::ops::softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
    let mixed = probs.matmul(v)?; // (H, T, hd)
    Ok(mixed.transpose(0, 1)?.reshape((t, h * hd))?) // (T, H·hd)
}

/// The next-token logits after the last position: only that position reaches the loss, so at
/// the last layer every other token's VJP is exactly zero.
///
/// # Shapes
/// - `h`: (T, d) final residual stream, `unembed`: (V, d); returns (V)
pub fn last_token_logits(h: &Tensor, final_norm: &Norm, unembed: &Tensor) -> Result<Tensor> {
    let last = h.narrow(0, h.dim(0)? - 1, 1)?; // (1, d)
    Ok(linear(&final_norm.forward(&last)?, unembed, None)?.squeeze(0)?) // (V)
}

/// The next-token logits after every position (no gradient is recorded: the weights are plain
/// tensors). Row `i` predicts token `i + 1`.
///
/// # Shapes
/// - `h`: (T, d) final residual stream, `unembed`: (V, d); returns (T, V)
pub fn all_token_logits(h: &Tensor, final_norm: &Norm, unembed: &Tensor) -> Result<Tensor> {
    Ok(linear(&final_norm.forward(h)?, unembed, None)?) // (T, V)
}

/// The slot of `module`'s weight in a block's weight array, or an error naming the weight when the
/// layer is out of range or the architecture has no such module (`index` is `None`, explained by
/// `missing`).
pub(crate) fn weight_slot(
    layer: usize,
    n_layers: usize,
    module: Module,
    index: Option<usize>,
    missing: &str,
) -> Result<usize> {
    let name = format!("layers.{layer}.{}", module.name());
    if layer >= n_layers {
        return Err(ModelError::HookName { name, reason: format!("the model has {n_layers} layers") });
    }
    index.ok_or_else(|| ModelError::HookName { name, reason: missing.to_string() })
}

/// Replaces a weight with an edited one of the same shape, stored as contiguous f32 on the old
/// weight's device.
///
/// # Shapes
/// - `slot` and `weight`: (d_out, d_in)
pub(crate) fn replace_weight(slot: &mut Tensor, layer: usize, module: Module, weight: Tensor) -> Result<()> {
    if slot.dims() != weight.dims() {
        return Err(ModelError::ShapeMismatch {
            name: format!("layers.{layer}.{}", module.name()),
            expected: slot.dims().to_vec(),
            found: weight.dims().to_vec(),
        });
    }
    *slot = weight.to_dtype(DType::F32)?.to_device(slot.device())?.contiguous()?;
    Ok(())
}
