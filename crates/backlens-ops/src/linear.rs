//! `y = x Wᵀ (+ b)` with a backward pass that skips the weight gradient.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `y = x Wᵀ` as a custom op whose backward returns only `g W` for `x`.
struct InputGradOnlyMatmul;

impl CustomOp2 for InputGradOnlyMatmul {
    fn name(&self) -> &'static str {
        "backlens-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (n, k_w) = w_layout.shape().dims2()?;
        if k != k_w {
            candle_core::bail!("linear: input has {k} features but the weight expects {k_w}")
        }
        // Wᵀ as a strided view: no copy.
        let w_t = w_layout.transpose(0, 1)?;
        let y = x.matmul(w, (1, m, n, k), x_layout, &w_t)?;
        Ok((y, Shape::from((m, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        x_layout: &Layout,
        w: &candle_core::CudaStorage,
        w_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (n, _) = w_layout.shape().dims2()?;
        let w_t = w_layout.transpose(0, 1)?;
        let y = x.matmul(w, (1, m, n, k), x_layout, &w_t)?;
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(&self, _x: &Tensor, w: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // dL/dx = g W; dL/dW deliberately not computed.
        Ok((Some(grad_y.matmul(w)?), None))
    }
}

/// `y = x Wᵀ + b` whose backward pass propagates to `x` only.
///
/// The weight is treated as a constant even when it is a `Var`: use
/// [`linear_with_weight_grad`] when a test needs candle's own `dL/dW`.
///
/// # Shapes
/// - `x`: (T, d_in)
/// - `weight`: (d_out, d_in), the checkpoint layout of `nn.Linear` and GGUF
/// - `bias`: (d_out)
/// - returns (T, d_out)
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.apply_op2(weight, InputGradOnlyMatmul)?; // (T, d_out)
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `y = x Wᵀ + b` with candle's ordinary matmul, so that `W` (a `Var`) receives its gradient.
///
/// Used to verify trace-based gradients against autograd.
///
/// # Shapes
/// Same as [`linear`].
pub fn linear_with_weight_grad(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?; // (T, d_out)
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}
