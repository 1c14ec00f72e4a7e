//! Whitened keys for rank-one edits (ROME's trick, applied to forward pass shift).
//!
//! A rank-one edit `W' = W + c e kᵀ` changes the layer's output on every input `x` by
//! `c (kᵀx) e`. Forward pass shift uses the edited prompt's own input as the key, `k = x_n`, so
//! every input that points roughly the same way as `x_n` (the same prompt template with another
//! subject, say) receives much of the same shift. ROME (Meng et al., 2022) instead uses
//! `k ∝ C⁻¹x_n`, with `C = E[x xᵀ]` the (uncentred) second moment of the layer's inputs on
//! generic text: directions that generic inputs share carry little weight, directions that are
//! particular to `x_n` carry much.
//!
//! [`SecondMoment`] accumulates `Σ xxᵀ` over any number of token batches; [`SecondMoment::whitener`]
//! shrinks the estimate towards a multiple of the identity (a few thousand tokens do not
//! determine a `d × d` matrix),
//!
//! ```text
//! C_λ = (1 - λ) C + λ (tr C / d) I,        0 < λ ≤ 1,
//! ```
//!
//! and inverts it (Cholesky, faer, f64). [`Whitener::key`] returns the key normalised so that
//! `kᵀx_n = |x_n|²`: the edit then changes the output *at `x_n`* exactly as the plain key does,
//! for any step size, and only its effect on other inputs differs. With `λ = 1`, `k = x_n`.

use crate::{AlgebraError, Result};
use candle_core::{DType, Device, Tensor};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

/// The running uncentred second moment `C = (1/N) Σ_i x_i x_iᵀ` of `d`-dimensional vectors.
///
/// # Shapes
/// * every batch passed to [`add`](Self::add): `(T, d)`
/// * [`matrix`](Self::matrix): `(d, d)`, f64
#[derive(Debug, Clone)]
pub struct SecondMoment {
    sum: Tensor, // (d, d) f64, Σ x xᵀ
    count: usize,
}

impl SecondMoment {
    /// An empty accumulator for `d`-dimensional vectors.
    pub fn new(d: usize) -> Result<SecondMoment> {
        Ok(SecondMoment { sum: Tensor::zeros((d, d), DType::F64, &Device::Cpu)?, count: 0 })
    }

    /// Adds the rows of `xs` (one batch matmul, accumulated in f64 on the CPU).
    ///
    /// # Shapes
    /// * `xs`: `(T, d)`
    pub fn add(&mut self, xs: &Tensor) -> Result<()> {
        let (t, d) = xs.dims2()?;
        if d != self.dim() {
            return Err(AlgebraError::ShapeMismatch {
                op: "SecondMoment::add",
                detail: format!("expected rows of width {}, got a batch of shape {:?}", self.dim(), xs.dims()),
            });
        }
        let xs = xs.to_device(&Device::Cpu)?.to_dtype(DType::F64)?; // (T, d)
        if !xs.sqr()?.sum_all()?.to_scalar::<f64>()?.is_finite() {
            return Err(AlgebraError::NonFinite { what: "second-moment batch", shape: vec![t, d] });
        }
        self.sum = (&self.sum + xs.t()?.matmul(&xs)?)?; // (d, d)
        self.count += t;
        Ok(())
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.sum.dims()[0]
    }

    /// How many vectors were added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `C = (1/N) Σ x xᵀ`. Errors if nothing was added.
    ///
    /// # Shapes
    /// `(d, d)`, f64
    pub fn matrix(&self) -> Result<Tensor> {
        if self.count == 0 {
            return Err(AlgebraError::ShapeMismatch {
                op: "SecondMoment::matrix",
                detail: "no vectors were added".into(),
            });
        }
        Ok((&self.sum / self.count as f64)?)
    }

    /// The inverse of the shrunk second moment `C_λ = (1 - λ) C + λ (tr C / d) I`.
    ///
    /// Errors if `shrinkage` is not in `(0, 1]`, if nothing was added, if `C` is zero, or if
    /// `C_λ` is not positive definite (which a valid `C` and `λ > 0` rule out).
    pub fn whitener(&self, shrinkage: f64) -> Result<Whitener> {
        if !(shrinkage > 0.0 && shrinkage <= 1.0) {
            return Err(AlgebraError::ShapeMismatch {
                op: "SecondMoment::whitener",
                detail: format!("shrinkage must be in (0, 1] (1 = no whitening), got {shrinkage}"),
            });
        }
        let c = self.matrix()?;
        let d = self.dim();
        let data: Vec<f64> = c.flatten_all()?.to_vec1()?;
        let mean_variance = (0..d).map(|i| data[i * d + i]).sum::<f64>() / d as f64; // tr C / d
        if mean_variance.is_nan() || mean_variance <= 0.0 {
            return Err(AlgebraError::ShapeMismatch {
                op: "SecondMoment::whitener",
                detail: "the second moment is zero: every vector added was 0".into(),
            });
        }
        let shrunk = Mat::from_fn(d, d, |i, j| {
            (1.0 - shrinkage) * data[i * d + j] + if i == j { shrinkage * mean_variance } else { 0.0 }
        });
        let inverse = shrunk.llt(Side::Lower).map_err(|e| AlgebraError::ShapeMismatch {
            op: "SecondMoment::whitener",
            detail: format!("the shrunk second moment is not positive definite ({e:?}); use a larger shrinkage"),
        })?;
        let inverse = inverse.inverse(); // (d, d), symmetric
        let flat: Vec<f64> = (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| inverse[(i, j)]).collect();
        Ok(Whitener { inverse: Tensor::from_vec(flat, (d, d), &Device::Cpu)?, shrinkage })
    }
}

/// `C_λ⁻¹` of a [`SecondMoment`], which turns an input into a whitened key.
///
/// # Shapes
/// * [`inverse`](Self::inverse): `(d, d)`, f64, on the CPU
#[derive(Debug, Clone)]
pub struct Whitener {
    inverse: Tensor,
    shrinkage: f64,
}

impl Whitener {
    /// The λ it was built with.
    pub fn shrinkage(&self) -> f64 {
        self.shrinkage
    }

    /// `C_λ⁻¹`.
    pub fn inverse(&self) -> &Tensor {
        &self.inverse
    }

    /// The whitened key of `x`: `k = (|x|² / xᵀC_λ⁻¹x) C_λ⁻¹x`, so that `kᵀx = |x|²`. Returned
    /// in `x`'s dtype and on its device.
    ///
    /// # Shapes
    /// * `x`: `(d)`; returns `(d)`
    pub fn key(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.inverse.dims()[0];
        if x.dims() != [d] {
            return Err(AlgebraError::ShapeMismatch {
                op: "Whitener::key",
                detail: format!("expected an input of shape [{d}], got {:?}", x.dims()),
            });
        }
        let x64 = x.to_device(&Device::Cpu)?.to_dtype(DType::F64)?; // (d)
        let cx = self.inverse.matmul(&x64.unsqueeze(1)?)?.squeeze(1)?; // (d)
        let x_cx = (&x64 * &cx)?.sum_all()?.to_scalar::<f64>()?;
        if x_cx.is_nan() || x_cx <= 0.0 {
            return Err(AlgebraError::ShapeMismatch {
                op: "Whitener::key",
                detail: "the input is zero; a zero input has no key".into(),
            });
        }
        let sq = x64.sqr()?.sum_all()?.to_scalar::<f64>()?;
        Ok((cx * (sq / x_cx))?.to_dtype(x.dtype())?.to_device(x.device())?)
    }
}
