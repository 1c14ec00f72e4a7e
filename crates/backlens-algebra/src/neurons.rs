//! Helpers for the paper's neuron-level analysis (Section 4.2 and Appendix C): cosine
//! similarities between gradient neurons and spanning vectors, the signed top-k intersection of
//! their logit-lens readings, and the norm order and norm groups of the neurons.
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

impl LensReading {
    /// The other end of the ranking. Under a bias-free RMSNorm the lens is odd (`LL(-v)` reverses
    /// the ranking of `LL(v)`), so the reading of `-v` is the opposite reading of `v`.
    pub const fn opposite(self) -> LensReading {
        match self {
            LensReading::MostLikely => LensReading::LeastLikely,
            LensReading::LeastLikely => LensReading::MostLikely,
        }
    }
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

/// The paper's signed lens intersection of one neuron with one spanning vector (Figure 7a):
/// `same = |R(neuron) ∩ R(spanning)|`, `flipped = |R(-neuron) ∩ R(spanning)|` for a reading `R`
/// (the top-100 in the paper); the score is `-flipped` when `flipped > same`, else `same`.
///
/// `neuron`, `negated_neuron` and `spanning` are the token-id lists `R(neuron)`, `R(-neuron)` and
/// `R(spanning)`. A vector without a ranking (all logits tie) has an empty list and scores 0.
pub fn signed_intersection(neuron: &[u32], negated_neuron: &[u32], spanning: &[u32]) -> i32 {
    let same = top_k_intersection(neuron, spanning);
    let flipped = top_k_intersection(negated_neuron, spanning);
    if flipped > same {
        -(flipped as i32)
    } else {
        same as i32
    }
}

/// [`signed_intersection`] of every spanning vector with every neuron.
///
/// # Shapes
/// `neurons` and `negated` hold one list per neuron (`N`), `spanning` one per spanning vector
/// (`T`); returns `[T][N]`.
pub fn signed_intersection_matrix(neurons: &[Vec<u32>], negated: &[Vec<u32>], spanning: &[Vec<u32>]) -> Vec<Vec<i32>> {
    spanning.iter().map(|s| neurons.iter().zip(negated).map(|(n, m)| signed_intersection(n, m, s)).collect()).collect()
}

/// Indices sorted by descending norm (ties: lower index first; NaN last).
pub fn order_by_norm(norms: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| if norms[i].is_nan() { f32::NEG_INFINITY } else { norms[i] };
        key(b).total_cmp(&key(a)).then(a.cmp(&b))
    });
    order
}

/// Positions (in descending-norm order) of the biggest, medium and smallest groups of `per_group`
/// neurons out of `n`: the first, the middle and the last `per_group` (each `min(per_group, n)`
/// long), in that order.
pub fn norm_groups(n: usize, per_group: usize) -> [Vec<usize>; 3] {
    let m = per_group.min(n);
    let mid = (n / 2).saturating_sub(m / 2).min(n - m);
    [(0..m).collect(), (mid..mid + m).collect(), (n - m..n).collect()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_norm_is_descending_with_ties_by_index() {
        let norms = [0.5, 2.0, f32::NAN, 0.5, 3.0, 0.0];
        assert_eq!(order_by_norm(&norms), vec![4, 1, 0, 3, 5, 2]);
        assert!(order_by_norm(&[]).is_empty());
    }

    #[test]
    fn signed_intersection_takes_the_larger_overlap_with_its_sign() {
        let spanning = [1, 2, 3, 4];
        // v shares 3 tokens, -v shares 1: +3.
        assert_eq!(signed_intersection(&[1, 2, 3, 9], &[4, 7, 8, 6], &spanning), 3);
        // -v shares more: negative.
        assert_eq!(signed_intersection(&[9, 8, 7, 1], &[1, 2, 3, 6], &spanning), -3);
        // A tie counts as positive; an empty (tied-logit) reading scores 0.
        assert_eq!(signed_intersection(&[1, 2], &[3, 4], &spanning), 2);
        assert_eq!(signed_intersection(&[], &[], &spanning), 0);
        let m = signed_intersection_matrix(
            &[vec![1, 2], vec![5]],
            &[vec![3], vec![1, 2, 3]],
            &[spanning.to_vec(), vec![5]],
        );
        assert_eq!(m, vec![vec![2, -3], vec![0, 1]]);
    }

    #[test]
    fn norm_groups_are_first_middle_last() {
        let [biggest, medium, smallest] = norm_groups(10, 3);
        assert_eq!(biggest, vec![0, 1, 2]);
        assert_eq!(medium, vec![4, 5, 6]);
        assert_eq!(smallest, vec![7, 8, 9]);
        let g = norm_groups(2, 3);
        assert!(g.iter().all(|p| p.len() == 2 && p.iter().all(|&r| r < 2)));
    }

    #[test]
    fn opposite_reading_swaps_the_ends() {
        assert_eq!(LensReading::MostLikely.opposite(), LensReading::LeastLikely);
        assert_eq!(LensReading::LeastLikely.opposite(), LensReading::MostLikely);
    }
}
