//! Lemma 5.2 ("imprint and shift") and the forward-pass-shift edit of Section 7: exact
//! statements about rank-one updates of a linear layer, rerun on the input that produced them.
//!
//! Canonical layout throughout: `W` is `(d_out, d_in)` and the layer computes `y = W x` for one
//! token. The single-token gradient of `W` is `delta_i x_i^T` (see
//! [`LowRankGradient::token_contribution`](crate::LowRankGradient::token_contribution)).
//!
//! # The identity behind both statements
//!
//! For any `W`, vectors `u` (`d_out`) and `x` (`d_in`) and scalar `c`,
//!
//! ```text
//! (W + c u x^T) x - W x = c (x^T x) u = c |x|^2 u
//! ```
//!
//! so rerunning the updated layer on the very input `x` that defined the update moves the output
//! by a multiple of `u` alone, with a non-negative factor `|x|^2`:
//!
//! * gradient descent with one token's term, `c = -lr`, `u = delta_i`: the output moves by
//!   `-lr |x_i|^2 delta_i` ([`single_token_step`], [`predicted_change`]). For **FF1** (`up` and,
//!   in SwiGLU, `gate`) output unit `j` is neuron `j`'s pre-activation, which moves by
//!   `-lr |x_i|^2 delta_i[j]` ("imprint", Eq. 17 of the paper); for **FF2** (`down`) the layer
//!   output moves by `-lr |x_i|^2 delta_i` ("shift", Eq. 18 summed over the neurons).
//! * Forward Pass Shift, `c = +eta`, `u = D^T[t]` (the target's unembedding row), `x = x_n`: the
//!   output at the last token moves by `eta |x_n|^2 D^T[t]` ([`forward_pass_shift`],
//!   [`forward_pass_shift_change`]).
//!
//! These are statements about the linear map alone: they hold whatever precedes or follows it
//! (norms, activations, attention), and they are exact up to floating-point rounding.

use crate::{AlgebraError, Result};
use candle_core::{DType, Tensor};

/// Checks that `w` is `(d_out, d_in)`, `u` is `(d_out)` and `x` is `(d_in)`, all of one dtype.
fn check_update(op: &'static str, w: &Tensor, u: &Tensor, x: &Tensor) -> Result<()> {
    let (wd, ud, xd) = (w.dims(), u.dims(), x.dims());
    if wd.len() != 2 || ud.len() != 1 || xd.len() != 1 || wd[0] != ud[0] || wd[1] != xd[0] {
        return Err(AlgebraError::ShapeMismatch {
            op,
            detail: format!(
                "the weight must be (d_out, d_in), the output-side vector (d_out) and the input (d_in); got weight {wd:?}, output-side vector {ud:?}, input {xd:?}"
            ),
        });
    }
    check_dtypes(op, &[w, u, x])
}

fn check_dtypes(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    let d = ts[0].dtype();
    if ts.iter().any(|t| t.dtype() != d) || !matches!(d, DType::F32 | DType::F64) {
        return Err(AlgebraError::ShapeMismatch {
            op,
            detail: format!(
                "all arguments must be f32 or all f64; got {:?}",
                ts.iter().map(|t| t.dtype()).collect::<Vec<_>>()
            ),
        });
    }
    Ok(())
}

/// `W + c u x^T`, one outer product, in `w`'s dtype and on its device.
fn rank_one_update(op: &'static str, w: &Tensor, u: &Tensor, x: &Tensor, c: f64) -> Result<Tensor> {
    check_update(op, w, u, x)?;
    let outer = u.unsqueeze(1)?.matmul(&x.unsqueeze(0)?)?; // (d_out, d_in)
    Ok((w + outer.affine(c, 0.0)?)?)
}

/// `c |x|^2 u`: the change of `W x` under `W <- W + c u x^T`.
fn rank_one_change(op: &'static str, x: &Tensor, u: &Tensor, c: f64) -> Result<Tensor> {
    if x.dims().len() != 1 || u.dims().len() != 1 {
        return Err(AlgebraError::ShapeMismatch {
            op,
            detail: format!("both vectors must be 1-D; got {:?} and {:?}", x.dims(), u.dims()),
        });
    }
    check_dtypes(op, &[x, u])?;
    let sq = x.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    Ok(u.affine(c * sq, 0.0)?)
}

/// One gradient-descent step of a linear layer with the gradient of a **single token** `i`:
/// `W <- W - lr delta_i x_i^T` (canonical layout).
///
/// **Lemma 5.2 (imprint and shift), exact form.** Rerunning the updated layer on the same
/// input gives `W' x_i = W x_i - lr |x_i|^2 delta_i`, i.e. every output unit `j` moves by exactly
/// `-lr |x_i|^2 delta_i[j]` ([`predicted_change`]):
/// * FF1 (`up`, and `gate` with its own VJP in SwiGLU): neuron `j`'s pre-activation moves by
///   `-lr |x_i|^2 delta_i[j]`, in the direction that lowers the loss ("imprint");
/// * FF2 (`down`, with `x_i` its `d_ff` input): the layer output moves by `-lr |x_i|^2 delta_i`,
///   i.e. `delta_i` is *subtracted* ("shift"), which is why the Backward Lens reads the
///   *least* likely tokens of `LL(delta_i)`.
///
/// Proven by `crates/backlens-algebra/tests/imprint_shift.rs`.
///
/// # Shapes
/// * `w`: `(d_out, d_in)`; `x_i`: `(d_in)`; `delta_i`: `(d_out)`
/// * returns `(d_out, d_in)`
pub fn single_token_step(w: &Tensor, x_i: &Tensor, delta_i: &Tensor, lr: f64) -> Result<Tensor> {
    rank_one_update("single_token_step", w, delta_i, x_i, -lr)
}

/// The exact change of the layer's output at `x_i` caused by [`single_token_step`]:
/// `-lr |x_i|^2 delta_i` (Lemma 5.2; Eq. 17 per FF1 neuron, Eq. 18 summed over FF2 neurons).
///
/// `|x_i|^2` is accumulated in f64; the result has `delta_i`'s dtype.
///
/// # Shapes
/// * `x_i`: `(d_in)`; `delta_i`: `(d_out)`
/// * returns `(d_out)`
pub fn predicted_change(x_i: &Tensor, delta_i: &Tensor, lr: f64) -> Result<Tensor> {
    rank_one_change("predicted_change", x_i, delta_i, -lr)
}

/// The Forward Pass Shift edit of Section 7: `FF2 <- FF2 + eta D^T[t] x_n^T` (canonical layout:
/// the outer product of the target's unembedding row and the FF2 input at the last token).
///
/// **Statement (Section 7).** Rerunning the edited layer on `x_n` moves its output at the last
/// token by exactly `eta |x_n|^2 D^T[t]` ([`forward_pass_shift_change`]), so its projection on
/// the target direction grows by `eta |x_n|^2 |D^T[t]|^2`. With `eta > 0` this is the sign of a
/// gradient-descent step on the top layer: there the VJP is
/// `delta_n = -(1 - p_t) D^T[t] + sum_{k != t} p_k D^T[k]`, so
/// `W - lr delta_n x_n^T = W + lr (1 - p_t) D^T[t] x_n^T - lr sum_{k != t} p_k D^T[k] x_n^T`
/// (digest section 3.7).
///
/// Proven by `crates/backlens-algebra/tests/imprint_shift.rs`.
///
/// # Shapes
/// * `w2`: `(d_model, d_ff)`; `x_n`: `(d_ff)`; `target_embedding`: `(d_model)`
/// * returns `(d_model, d_ff)`
pub fn forward_pass_shift(w2: &Tensor, x_n: &Tensor, target_embedding: &Tensor, eta: f64) -> Result<Tensor> {
    rank_one_update("forward_pass_shift", w2, target_embedding, x_n, eta)
}

/// The exact change of FF2's output at `x_n` caused by [`forward_pass_shift`]:
/// `eta |x_n|^2 D^T[t]`.
///
/// # Shapes
/// * `x_n`: `(d_ff)`; `target_embedding`: `(d_model)`
/// * returns `(d_model)`
pub fn forward_pass_shift_change(x_n: &Tensor, target_embedding: &Tensor, eta: f64) -> Result<Tensor> {
    rank_one_change("forward_pass_shift_change", x_n, target_embedding, eta)
}
