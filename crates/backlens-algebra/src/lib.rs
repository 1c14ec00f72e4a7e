//! `backlens-algebra`: the low-rank algebra of one linear layer's gradient.
//!
//! For a linear layer `y_i = W x_i` applied to each token `i = 1..n` (candle / PyTorch `Linear`
//! layout: `W` is `(d_out, d_in)`), one backward pass gives
//!
//! ```text
//! dL/dW = sum_i delta_i x_i^T = Delta^T X        (Backward Lens, Eq. 8)
//! ```
//!
//! with `X` `(n, d_in)` the stacked forward inputs and `Delta` `(n, d_out)` the stacked
//! vector-Jacobian products (VJPs) `dL/dy_i`. The gradient is therefore a sum of `n` outer
//! products and has rank at most `n` (Lemma 4.1 of Katz et al., "Backward Lens", EMNLP 2024).
//!
//! [`LowRankGradient`] keeps the gradient as its two factors and answers questions about it
//! (its spectrum, numerical rank, Frobenius norm, per-token terms and the paper's "neuron
//! views") without forming the dense `(d_out, d_in)` matrix unless asked to.
//!
//! # Neuron views (Section 4.2 of the paper)
//!
//! * Row `j` of `dL/dW` (output unit `j`, a `d_in` vector) is `sum_i Delta[i, j] x_i`, a
//!   combination of the **inputs** `x_i`: [`LowRankGradient::output_neurons`].
//! * Column `j` of `dL/dW` (input unit `j`, a `d_out` vector) is `sum_i X[i, j] delta_i`, a
//!   combination of the **VJPs** `delta_i`: [`LowRankGradient::input_neurons`].
//!
//! For **FF1** (Llama `up_proj` / `gate_proj`, GPT-2 `mlp.c_fc`) the projectable, `d_model`-sized
//! gradient neurons are the [`output_neurons`](LowRankGradient::output_neurons) (spanned by the
//! `x_i`, Eq. 9). For **FF2** (Llama `down_proj`, GPT-2 `mlp.c_proj`) they are the
//! [`input_neurons`](LowRankGradient::input_neurons) (spanned by the `delta_i`, Eq. 10).
//! Both views are expressed in terms of the factors `x` `(n, d_in)` and `delta` `(n, d_out)` of
//! the layer as it runs, so they do not depend on how a checkpoint stores the weight (GPT-2's
//! `Conv1D` stores `(d_in, d_out)`; use [`LowRankGradient::dense_transposed`] for that layout).
//!
//! # The paper's statements
//!
//! * Lemma 4.1 (rank ≤ n, and with a bias `dL/db = sum_i delta_i`): [`LowRankGradient::dense`],
//!   [`LowRankGradient::bias_gradient`], [`LowRankGradient::numerical_rank`].
//! * Lemma 5.2 (imprint and shift) and the Forward Pass Shift of Section 7, exactly:
//!   [`imprint_shift`].
//! * Neuron-level analysis (Appendix C): [`neurons`] (cosine similarity, signed top-k lens
//!   intersection).
//! * Beyond the paper: whitened keys for rank-one edits (ROME's `C⁻¹x`), [`whitening`].
//!
//! The crate's `README.md` lists each statement with the test that proves it.
//!
//! # Numerics
//!
//! Spectral quantities ([`LowRankGradient::singular_values`],
//! [`LowRankGradient::numerical_rank`], [`LowRankGradient::frobenius_norm`]) are computed in
//! `f64` on the CPU whatever the factors' dtype and device. Singular values use thin QR
//! factorisations of `X^T` and `Delta^T` and the SVD of the small core `R_delta R_x^T` (faer);
//! the cost is `O((d_in + d_out) n^2)` instead of the `O(d_out d_in min(d_out, d_in))` of a dense
//! SVD.
//!
//! # Example
//!
//! ```
//! use backlens_algebra::{LowRankGradient, RankTolerance};
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dev = Device::Cpu;
//! // n = 2 tokens through a layer with d_in = 3, d_out = 2.
//! let x = Tensor::new(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]], &dev)?; // (n, d_in)
//! let delta = Tensor::new(&[[3.0f32, 0.0], [0.0, 4.0]], &dev)?; // (n, d_out)
//! let grad = LowRankGradient::new(x, delta)?;
//! assert_eq!(grad.dense()?.dims(), &[2, 3]); // (d_out, d_in), like the Linear weight
//! assert_eq!(grad.numerical_rank(RankTolerance::Default)?, 2); // <= n (Lemma 4.1)
//! let sv = grad.singular_values()?;
//! assert!((sv[0] - 4.0).abs() < 1e-9 && (sv[1] - 3.0).abs() < 1e-9);
//! assert!((grad.frobenius_norm()? - 5.0).abs() < 1e-9);
//! // FF1-style neuron view: output unit 1 is 4 * x_2.
//! assert_eq!(grad.output_neurons(&[1])?.to_vec2::<f32>()?, vec![vec![0.0, 4.0, 0.0]]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod imprint_shift;
pub mod neurons;
pub mod whitening;

pub use imprint_shift::{forward_pass_shift, forward_pass_shift_change, predicted_change, single_token_step};
pub use neurons::{cosine_similarity, top_k_intersection, LensReading, SpanningSet};
pub use whitening::{SecondMoment, Whitener};

use candle_core::{DType, Device, Tensor};
use faer::Mat;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum AlgebraError {
    /// An error raised by candle (tensor arithmetic, dtype or device transfer).
    #[error("candle error: {0}")]
    Candle(#[from] candle_core::Error),

    /// The factors are not both 2-D.
    #[error(
        "the factors must be 2-D: x (n, d_in) and delta (n, d_out); got x with shape {x:?} and delta with shape {delta:?}"
    )]
    NotTwoDimensional {
        /// Shape of the inputs `x`.
        x: Vec<usize>,
        /// Shape of the VJPs `delta`.
        delta: Vec<usize>,
    },

    /// The factors disagree on the number of tokens `n` (their first dimension).
    #[error(
        "token count mismatch: x has shape {x:?} (n = {}) but delta has shape {delta:?} (n = {}); both must be (n, _)",
        x[0], delta[0]
    )]
    TokenCountMismatch {
        /// Shape of the inputs `x`.
        x: Vec<usize>,
        /// Shape of the VJPs `delta`.
        delta: Vec<usize>,
    },

    /// A factor has a zero-sized dimension (`n`, `d_in` or `d_out` is 0).
    #[error("empty factor: x has shape {x:?} and delta has shape {delta:?}; n, d_in and d_out must all be >= 1")]
    EmptyFactor {
        /// Shape of the inputs `x`.
        x: Vec<usize>,
        /// Shape of the VJPs `delta`.
        delta: Vec<usize>,
    },

    /// The factors have different dtypes.
    #[error(
        "dtype mismatch: x {x_shape:?} is {x:?} but delta {delta_shape:?} is {delta:?}; both must be f32 or both f64"
    )]
    DTypeMismatch {
        /// Dtype of `x`.
        x: DType,
        /// Dtype of `delta`.
        delta: DType,
        /// Shape of `x`.
        x_shape: Vec<usize>,
        /// Shape of `delta`.
        delta_shape: Vec<usize>,
    },

    /// The factors have a dtype other than f32 or f64.
    #[error(
        "unsupported dtype {dtype:?} for x {x_shape:?} and delta {delta_shape:?}: only f32 and f64 factors are supported (convert with to_dtype)"
    )]
    UnsupportedDType {
        /// The common dtype of the factors.
        dtype: DType,
        /// Shape of `x`.
        x_shape: Vec<usize>,
        /// Shape of `delta`.
        delta_shape: Vec<usize>,
    },

    /// The factors live on different devices.
    #[error("device mismatch: x {x_shape:?} is on {x:?} but delta {delta_shape:?} is on {delta:?}")]
    DeviceMismatch {
        /// Device of `x`.
        x: String,
        /// Device of `delta`.
        delta: String,
        /// Shape of `x`.
        x_shape: Vec<usize>,
        /// Shape of `delta`.
        delta_shape: Vec<usize>,
    },

    /// A unit (neuron) index is out of range.
    #[error(
        "{axis} unit index {index} out of range: dL/dW has shape (d_out = {d_out}, d_in = {d_in}), so {axis} units are 0..{bound}"
    )]
    UnitOutOfRange {
        /// `"output"` (rows of dL/dW) or `"input"` (columns of dL/dW).
        axis: &'static str,
        /// The offending index.
        index: usize,
        /// Number of output units of the layer.
        d_out: usize,
        /// Number of input units of the layer.
        d_in: usize,
        /// The exclusive upper bound for `index`.
        bound: usize,
    },

    /// A token index is out of range.
    #[error(
        "token index {index} out of range: the gradient has n = {n} tokens (x {x_shape:?}, delta {delta_shape:?})"
    )]
    TokenOutOfRange {
        /// The offending index.
        index: usize,
        /// Number of tokens.
        n: usize,
        /// Shape of `x`.
        x_shape: Vec<usize>,
        /// Shape of `delta`.
        delta_shape: Vec<usize>,
    },

    /// A dense matrix argument is not 2-D.
    #[error("expected a 2-D matrix, got shape {shape:?}")]
    NotAMatrix {
        /// The offending shape.
        shape: Vec<usize>,
    },

    /// A rank tolerance is negative or not finite.
    #[error("invalid rank tolerance {0:?}: tolerances must be finite and >= 0")]
    InvalidTolerance(RankTolerance),

    /// A factor contains NaN or infinite values, so no spectrum exists.
    #[error("non-finite values (NaN or infinity) in {what} with shape {shape:?}")]
    NonFinite {
        /// Which matrix.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// Arguments of a rank-one update, a similarity or a comparison have incompatible shapes or
    /// dtypes.
    #[error("{op}: {detail}")]
    ShapeMismatch {
        /// The function that refused its arguments.
        op: &'static str,
        /// What was expected and what was given (shapes, dtypes).
        detail: String,
    },

    /// faer's SVD did not converge.
    #[error("SVD of a {rows}x{cols} matrix did not converge: {message}")]
    SvdFailed {
        /// Rows of the decomposed matrix.
        rows: usize,
        /// Columns of the decomposed matrix.
        cols: usize,
        /// faer's message.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, AlgebraError>;

/// How [`LowRankGradient::numerical_rank`] decides that a singular value is zero.
///
/// A singular value `sigma` counts towards the rank when it is **strictly** greater than the
/// threshold, so an all-zero gradient has rank 0 under every variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RankTolerance {
    /// numpy/torch `matrix_rank` default: `sigma > max(d_out, d_in) * eps(dtype of the factors) * sigma_max`,
    /// with `eps = f32::EPSILON` for f32 factors and `f64::EPSILON` for f64 factors.
    Default,
    /// `sigma > rtol * sigma_max`.
    Relative(f64),
    /// `sigma > atol`.
    Absolute(f64),
}

/// `dL/dW` of one linear layer, kept as its two factors: `dL/dW = Delta^T X`.
///
/// `X` stacks the layer's forward inputs `x_i` and `Delta` the VJPs `delta_i = dL/dy_i` of its
/// outputs `y_i = W x_i`, one row per token. Nothing is copied or converted on construction.
///
/// # Shapes
/// * `x`: `(n, d_in)`
/// * `delta`: `(n, d_out)`
/// * dense gradient ([`dense`](Self::dense)): `(d_out, d_in)`, the layout of `W` in candle /
///   PyTorch `Linear`.
#[derive(Debug, Clone)]
pub struct LowRankGradient {
    x: Tensor,
    delta: Tensor,
}

impl LowRankGradient {
    /// Builds the gradient from the stacked forward inputs `x` and VJPs `delta`.
    ///
    /// Errors if either factor is not 2-D, if they disagree on `n`, if any of `n`, `d_in`,
    /// `d_out` is 0, if their dtypes differ or are not f32/f64, or if they are on different
    /// devices. Every error message names both shapes.
    ///
    /// # Shapes
    /// * `x`: `(n, d_in)`
    /// * `delta`: `(n, d_out)`
    pub fn new(x: Tensor, delta: Tensor) -> Result<Self> {
        let xs = x.dims().to_vec();
        let ds = delta.dims().to_vec();
        if xs.len() != 2 || ds.len() != 2 {
            return Err(AlgebraError::NotTwoDimensional { x: xs, delta: ds });
        }
        if xs[0] != ds[0] {
            return Err(AlgebraError::TokenCountMismatch { x: xs, delta: ds });
        }
        if xs[0] == 0 || xs[1] == 0 || ds[1] == 0 {
            return Err(AlgebraError::EmptyFactor { x: xs, delta: ds });
        }
        if x.dtype() != delta.dtype() {
            return Err(AlgebraError::DTypeMismatch {
                x: x.dtype(),
                delta: delta.dtype(),
                x_shape: xs,
                delta_shape: ds,
            });
        }
        if !matches!(x.dtype(), DType::F32 | DType::F64) {
            return Err(AlgebraError::UnsupportedDType { dtype: x.dtype(), x_shape: xs, delta_shape: ds });
        }
        if !x.device().same_device(delta.device()) {
            return Err(AlgebraError::DeviceMismatch {
                x: format!("{:?}", x.device().location()),
                delta: format!("{:?}", delta.device().location()),
                x_shape: xs,
                delta_shape: ds,
            });
        }
        Ok(Self { x, delta })
    }

    /// The stacked forward inputs `X`.
    ///
    /// # Shapes
    /// Returns `(n, d_in)`.
    pub fn inputs(&self) -> &Tensor {
        &self.x
    }

    /// The stacked VJPs `Delta` (`delta_i = dL/dy_i`).
    ///
    /// # Shapes
    /// Returns `(n, d_out)`.
    pub fn vjps(&self) -> &Tensor {
        &self.delta
    }

    /// Number of tokens `n` (rows of both factors), the upper bound on the rank (Lemma 4.1).
    pub fn n_tokens(&self) -> usize {
        self.x.dims()[0]
    }

    /// Input dimension `d_in` of the layer (columns of `X` and of `dL/dW`).
    pub fn d_in(&self) -> usize {
        self.x.dims()[1]
    }

    /// Output dimension `d_out` of the layer (columns of `Delta`, rows of `dL/dW`).
    pub fn d_out(&self) -> usize {
        self.delta.dims()[1]
    }

    /// The dense gradient `dL/dW = Delta^T X`, in the layout of a candle / PyTorch `Linear`
    /// weight. One matmul, in the factors' dtype and on their device.
    ///
    /// # Shapes
    /// Returns `(d_out, d_in)`.
    pub fn dense(&self) -> Result<Tensor> {
        Ok(self.delta.t()?.matmul(&self.x)?)
    }

    /// The gradient of a bias `b` of the same layer, `y_i = W x_i + b`: **Lemma 4.1 with a bias**,
    /// `dL/db = sum_i delta_i` (the column sums of `Delta`), while `dL/dW` is still
    /// [`dense`](Self::dense) `= Delta^T X`.
    ///
    /// Equivalently the bias is a weight column whose input is the constant 1: the gradient of
    /// the augmented weight `[W | b]` is `Delta^T [X | 1]`, again a sum of `n` outer products, so
    /// its rank is also at most `n`. Proven by `tests/properties.rs::bias_gradient_equals_autograd`
    /// and `bias_gradient_equals_finite_differences`.
    ///
    /// # Shapes
    /// Returns `(d_out)`.
    pub fn bias_gradient(&self) -> Result<Tensor> {
        Ok(self.delta.sum(0)?)
    }

    /// The transposed dense gradient `X^T Delta`, in the layout of a GPT-2 `Conv1D` weight
    /// (stored `(in, out)`). One matmul.
    ///
    /// # Shapes
    /// Returns `(d_in, d_out)`.
    pub fn dense_transposed(&self) -> Result<Tensor> {
        Ok(self.x.t()?.matmul(&self.delta)?)
    }

    /// Singular values of `dL/dW`, in descending order, computed in f64 without forming the
    /// dense matrix.
    ///
    /// With thin QR factorisations `X^T = Q_x R_x` and `Delta^T = Q_delta R_delta` (faer),
    /// `dL/dW = Q_delta (R_delta R_x^T) Q_x^T`; the `Q` factors have orthonormal columns, so the
    /// singular values are those of the small core `R_delta R_x^T`
    /// (`min(n, d_out) x min(n, d_in)`), which faer's SVD computes.
    ///
    /// # Shapes
    /// Returns a vector of length `min(n, d_in, d_out)`.
    pub fn singular_values(&self) -> Result<Vec<f64>> {
        let (n, d_in, d_out) = (self.n_tokens(), self.d_in(), self.d_out());
        // X^T (d_in, n) and Delta^T (d_out, n) as faer matrices.
        let xt = to_faer_transposed(&self.x, "x")?;
        let dt = to_faer_transposed(&self.delta, "delta")?;
        let r_x = xt.qr().thin_R().to_owned(); // (min(d_in, n), n)
        let r_d = dt.qr().thin_R().to_owned(); // (min(d_out, n), n)
        let core: Mat<f64> = &r_d * r_x.transpose(); // (min(d_out, n), min(d_in, n))
        let sv = faer_singular_values(&core)?;
        debug_assert_eq!(sv.len(), n.min(d_in).min(d_out));
        Ok(sv)
    }

    /// Numerical rank of `dL/dW`: the number of singular values strictly above the threshold
    /// given by `tol` (see [`RankTolerance`]). An all-zero gradient has rank 0.
    ///
    /// Errors with [`AlgebraError::InvalidTolerance`] for a negative or non-finite tolerance.
    pub fn numerical_rank(&self, tol: RankTolerance) -> Result<usize> {
        match tol {
            RankTolerance::Relative(t) | RankTolerance::Absolute(t) if !(t.is_finite() && t >= 0.0) => {
                return Err(AlgebraError::InvalidTolerance(tol));
            }
            _ => {}
        }
        let sv = self.singular_values()?;
        let sigma_max = sv.first().copied().unwrap_or(0.0);
        let threshold = match tol {
            RankTolerance::Default => {
                let eps = match self.x.dtype() {
                    DType::F32 => f32::EPSILON as f64,
                    _ => f64::EPSILON,
                };
                self.d_out().max(self.d_in()) as f64 * eps * sigma_max
            }
            RankTolerance::Relative(rtol) => rtol * sigma_max,
            RankTolerance::Absolute(atol) => atol,
        };
        Ok(sv.iter().filter(|&&s| s > threshold).count())
    }

    /// The rank-1 term `delta_i x_i^T` of token `i`, as a one-token [`LowRankGradient`].
    /// Summing the dense forms of all `n` terms gives [`dense`](Self::dense).
    ///
    /// # Shapes
    /// The returned factors are `x`: `(1, d_in)` and `delta`: `(1, d_out)`.
    pub fn token_contribution(&self, i: usize) -> Result<LowRankGradient> {
        let n = self.n_tokens();
        if i >= n {
            return Err(AlgebraError::TokenOutOfRange {
                index: i,
                n,
                x_shape: self.x.dims().to_vec(),
                delta_shape: self.delta.dims().to_vec(),
            });
        }
        LowRankGradient::new(self.x.narrow(0, i, 1)?, self.delta.narrow(0, i, 1)?)
    }

    /// Rows `j in units` of `dL/dW` (output units), `sum_i Delta[i, j] x_i`: combinations of the
    /// forward inputs. One matmul: `Delta[:, J]^T X`.
    ///
    /// These are the paper's gradient neurons for **FF1** (Llama `up_proj` / `gate_proj`, GPT-2
    /// `mlp.c_fc`): `d_model`-sized vectors spanned by the `x_i` (Eq. 9), projectable with the
    /// logit lens.
    ///
    /// Errors with [`AlgebraError::UnitOutOfRange`] if some `j >= d_out`.
    ///
    /// # Shapes
    /// Returns `(units.len(), d_in)`; row `k` is row `units[k]` of `dL/dW`.
    pub fn output_neurons(&self, units: &[usize]) -> Result<Tensor> {
        let idx = self.unit_index(units, "output", self.d_out())?;
        if units.is_empty() {
            return Ok(Tensor::zeros((0, self.d_in()), self.x.dtype(), self.x.device())?);
        }
        let coeffs = self.delta.index_select(&idx, 1)?; // (n, |J|)
        Ok(coeffs.t()?.matmul(&self.x)?)
    }

    /// Columns `j in units` of `dL/dW` (input units), returned as rows:
    /// `sum_i X[i, j] delta_i`, combinations of the VJPs. One matmul: `X[:, J]^T Delta`.
    ///
    /// These are the paper's gradient neurons for **FF2** (Llama `down_proj`, GPT-2
    /// `mlp.c_proj`): `d_model`-sized vectors spanned by the `delta_i` (Eq. 10), projectable with
    /// the logit lens (read their *bottom* tokens: a descent step subtracts them).
    ///
    /// Errors with [`AlgebraError::UnitOutOfRange`] if some `j >= d_in`.
    ///
    /// # Shapes
    /// Returns `(units.len(), d_out)`; row `k` is column `units[k]` of `dL/dW`.
    pub fn input_neurons(&self, units: &[usize]) -> Result<Tensor> {
        let idx = self.unit_index(units, "input", self.d_in())?;
        if units.is_empty() {
            return Ok(Tensor::zeros((0, self.d_out()), self.x.dtype(), self.x.device())?);
        }
        let coeffs = self.x.index_select(&idx, 1)?; // (n, |J|)
        Ok(coeffs.t()?.matmul(&self.delta)?)
    }

    /// Frobenius norm of `dL/dW`, from the factors:
    /// `||Delta^T X||_F^2 = sum_ij (X X^T)_ij (Delta Delta^T)_ij`, two `n x n` Gram matrices and
    /// no dense gradient. Computed in f64.
    pub fn frobenius_norm(&self) -> Result<f64> {
        let x = self.x.to_dtype(DType::F64)?;
        let d = self.delta.to_dtype(DType::F64)?;
        let gx = x.matmul(&x.t()?)?; // (n, n)
        let gd = d.matmul(&d.t()?)?; // (n, n)
        let sq = (gx * gd)?.sum_all()?.to_scalar::<f64>()?;
        // Rounding can make an exactly-zero gradient's value a tiny negative number.
        Ok(sq.max(0.0).sqrt())
    }

    fn unit_index(&self, units: &[usize], axis: &'static str, bound: usize) -> Result<Tensor> {
        let mut idx = Vec::with_capacity(units.len());
        for &j in units {
            if j >= bound {
                return Err(AlgebraError::UnitOutOfRange {
                    axis,
                    index: j,
                    d_out: self.d_out(),
                    d_in: self.d_in(),
                    bound,
                });
            }
            idx.push(u32::try_from(j).map_err(|_| AlgebraError::UnitOutOfRange {
                axis,
                index: j,
                d_out: self.d_out(),
                d_in: self.d_in(),
                bound,
            })?);
        }
        Ok(Tensor::from_vec(idx, units.len(), self.x.device())?)
    }
}

/// Singular values of any dense 2-D tensor, in descending order, via faer's SVD in f64 (on the
/// CPU). Meant for verification against [`LowRankGradient::singular_values`].
///
/// # Shapes
/// `m`: `(rows, cols)`; returns a vector of length `min(rows, cols)`.
pub fn dense_singular_values(m: &Tensor) -> Result<Vec<f64>> {
    let dims = m.dims();
    if dims.len() != 2 {
        return Err(AlgebraError::NotAMatrix { shape: dims.to_vec() });
    }
    if dims[0] == 0 || dims[1] == 0 {
        return Ok(Vec::new());
    }
    // The singular values of m^T are those of m.
    faer_singular_values(&to_faer_transposed(m, "matrix")?)
}

/// Copies a 2-D tensor `(r, c)` to a faer f64 matrix holding its **transpose** `(c, r)`.
///
/// The tensor's row-major data is exactly the column-major data of its transpose, so this is a
/// single contiguous copy.
fn to_faer_transposed(t: &Tensor, what: &'static str) -> Result<Mat<f64>> {
    let (r, c) = t.dims2()?;
    let data: Vec<f64> = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    if data.iter().any(|v| !v.is_finite()) {
        return Err(AlgebraError::NonFinite { what, shape: vec![r, c] });
    }
    // Row-major (r, c) data read column-major as (c, r): element (a, b) = t[b, a].
    Ok(Mat::from_fn(c, r, |a, b| data[b * c + a]))
}

fn faer_singular_values(m: &Mat<f64>) -> Result<Vec<f64>> {
    let (rows, cols) = (m.nrows(), m.ncols());
    // faer's Householder-based decompositions handle zero columns, but an all-zero matrix
    // has a trivial spectrum: answer it exactly.
    if m.col_iter().all(|c| c.iter().all(|&v| v == 0.0)) {
        return Ok(vec![0.0; rows.min(cols)]);
    }
    let mut sv = m.singular_values().map_err(|e| AlgebraError::SvdFailed { rows, cols, message: format!("{e:?}") })?;
    if sv.iter().any(|s| !s.is_finite()) {
        return Err(AlgebraError::SvdFailed { rows, cols, message: "non-finite singular values".to_string() });
    }
    // faer sorts in nonincreasing order already; make it explicit and robust.
    sv.sort_by(|a, b| b.total_cmp(a));
    Ok(sv)
}
