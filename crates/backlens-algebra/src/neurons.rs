//! Helpers for the paper's neuron-level analysis (Section 4.2 and Appendix C): cosine
//! similarities between gradient neurons and spanning vectors, and the signed top-k
//! intersection of their logit-lens readings.
//!
//! The crate stays independent of the lens: [`top_k_intersection`] takes token-id lists, which
//! the caller obtains from any logit lens (e.g. `backlens_lens::LogitLens::project`), choosing
//! the most or least likely tokens as [`SpanningSet::reading`] says.

use crate::{AlgebraError, Result};
use candle_core::{DType, Tensor, D};
use std::collections::HashSet;

/// Which factor spans a module's projectable (`d_model`-sized) gradient neurons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanningSet {
    /// The forward inputs `x_i`: FF1 (`up`, `gate`; GPT-2 `c_fc`), whose gradient neurons are
    /// [`LowRankGradient::output_neurons`](crate::LowRankGradient::output_neurons) (Eq. 9).
    Inputs,
    /// The VJPs `delta_i`: FF2 (`down`; GPT-2 `c_proj`), whose gradient neurons are
    /// [`LowRankGradient::input_neurons`](crate::LowRankGradient::input_neurons) (Eq. 10).
    Vjps,
}

/// Which end of a logit-lens ranking carries the meaning of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LensReading {
    /// The most likely tokens (the top of `LL(v)`).
    MostLikely,
    /// The least likely tokens (the bottom of `LL(v)`).
    LeastLikely,
}

impl SpanningSet {
    /// The paper's signed reading (end of Section 5.2, Appendix C): gradient descent *adds* or
    /// subtracts the inputs `x_i` to FF1's neurons, read by their **most** likely tokens; it
    /// *subtracts* the VJPs `delta_i` from FF2's neurons, read by their **least** likely tokens
    /// (top-100 vs bottom-100 in Appendix C). The same reading applies to a gradient neuron and
    /// to the spanning vectors it is compared with.
    pub const fn reading(self) -> LensReading {
        match self {
            SpanningSet::Inputs => LensReading::MostLikely,
            SpanningSet::Vjps => LensReading::LeastLikely,
        }
    }
}

/// Cosine similarity of every row of `a` with every row of `b`, in one matrix product of the
/// row-normalised matrices. A zero row has similarity 0 with everything (instead of NaN).
///
/// Used to compare gradient neurons (rows of [`LowRankGradient::output_neurons`] /
/// [`LowRankGradient::input_neurons`](crate::LowRankGradient::input_neurons)) with the spanning
/// vectors `x_i` / `delta_i`.
///
/// # Shapes
/// * `a`: `(m, d)`; `b`: `(k, d)`
/// * returns `(m, k)`; entry `(r, s)` is `cos(a_r, b_s)`, in `[-1, 1]` up to rounding
///
/// [`LowRankGradient::output_neurons`]: crate::LowRankGradient::output_neurons
pub fn cosine_similarity(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    if ad.len() != 2 || bd.len() != 2 || ad[1] != bd[1] {
        return Err(AlgebraError::ShapeMismatch {
            op: "cosine_similarity",
            detail: format!("expected a (m, d) and b (k, d); got a {ad:?} and b {bd:?}"),
        });
    }
    if a.dtype() != b.dtype() || !matches!(a.dtype(), DType::F32 | DType::F64) {
        return Err(AlgebraError::ShapeMismatch {
            op: "cosine_similarity",
            detail: format!("both must be f32 or both f64; got {:?} and {:?}", a.dtype(), b.dtype()),
        });
    }
    let unit = |t: &Tensor| -> Result<Tensor> {
        let norms = t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?; // (rows, 1)
                                                              // A zero row divided by 1 stays zero; non-zero rows are divided by their norm.
        let safe = norms.eq(0.0)?.where_cond(&norms.ones_like()?, &norms)?;
        Ok(t.broadcast_div(&safe)?)
    };
    Ok(unit(a)?.matmul(&unit(b)?.t()?)?)
}

/// The number of distinct token ids that appear in both lists: the paper's lens intersection
/// (Appendix C: project a gradient neuron and a spanning vector with the logit lens, take the
/// top-100 tokens of each, or the bottom-100 for FF2/VJP-spanned neurons, see
/// [`SpanningSet::reading`], and count the common tokens).
///
/// Divide by `k` for the fraction. Duplicates count once.
pub fn top_k_intersection(a: &[u32], b: &[u32]) -> usize {
    let b: HashSet<u32> = b.iter().copied().collect();
    let a: HashSet<u32> = a.iter().copied().collect();
    a.intersection(&b).count()
}
