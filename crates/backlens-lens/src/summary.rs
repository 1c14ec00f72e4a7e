//! Reading one row of logits: top-k, bottom-k and ranks.

use serde::Serialize;

/// What to read from each projected vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectOptions {
    /// How many most- and least-likely tokens to keep: `1..=V` (the vocabulary size).
    /// [`LogitLens::project`](crate::LogitLens::project) refuses anything else with
    /// [`LensError::TopK`](crate::LensError::TopK); [`summarize_row`] clamps it to the row's length.
    pub k: usize,
    /// Tokens whose rank to report for every vector (e.g. the target).
    pub rank_tokens: Vec<u32>,
    /// Project `v / |v|` instead of `v` (the paper's "normalized logit lens", App. H). For a
    /// bias-free RMSNorm the rankings are identical; for LayerNorm they are not.
    pub normalize: bool,
}

impl Default for ProjectOptions {
    fn default() -> Self {
        ProjectOptions { k: 5, rank_tokens: Vec::new(), normalize: false }
    }
}

/// The vocabulary reading of one vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    /// The L2 norm of the vector (before any normalisation).
    pub norm: f32,
    /// The k most likely tokens, most likely first (ties: lower id first).
    pub top: Vec<u32>,
    /// The k least likely tokens, least likely first (ties: lower id first).
    pub bottom: Vec<u32>,
    /// Rank of each of [`ProjectOptions::rank_tokens`]: the number of tokens with a strictly
    /// greater logit (0 = most likely, V-1 = least likely). `None` when all logits tie, as for a
    /// zero vector under a bias-free norm (RMSNorm): it carries no update and has no ranking.
    /// Under LayerNorm with a bias a zero vector projects to `β·D` and is ranked like any other.
    pub ranks: Vec<Option<usize>>,
}

/// Rank of `token` in `logits`: the count of tokens with a strictly greater logit.
pub fn rank_of(logits: &[f32], token: u32) -> usize {
    let t = logits[token as usize];
    logits.iter().filter(|&&x| x > t).count()
}

/// Summarises one row of logits of a vector with L2 norm `norm`.
///
/// A row whose logits all tie has no ranking: empty top/bottom lists and `None` ranks.
/// `options.k` is clamped to the row's length (0 gives empty lists); the top and bottom lists cost
/// O(V log k) each.
pub fn summarize_row(logits: &[f32], norm: f32, options: &ProjectOptions) -> Projection {
    if logits.iter().all(|&x| x == logits[0]) {
        return Projection { norm, top: Vec::new(), bottom: Vec::new(), ranks: vec![None; options.rank_tokens.len()] };
    }
    Projection {
        norm,
        top: extreme_k(logits, options.k, |a, b| a > b),
        bottom: extreme_k(logits, options.k, |a, b| a < b),
        ranks: options.rank_tokens.iter().map(|&t| Some(rank_of(logits, t))).collect(),
    }
}

/// The ids of the k most extreme logits under `better`, best first; ties keep the lower id first.
///
/// One pass over the row with a bounded binary heap holding the k best so far (its root is the
/// worst of them): O(V log k) comparisons, O(k) memory, whatever k is (k = V included). A NaN logit
/// is less extreme than every number at both ends (the lens reports non-finite vectors as errors
/// before summarising, so it only matters to direct callers of [`summarize_row`]).
fn extreme_k(logits: &[f32], k: usize, better: impl Fn(f32, f32) -> bool) -> Vec<u32> {
    use std::cmp::Ordering;
    use std::collections::BinaryHeap;

    /// One candidate; a better one is `Less`, so the (max-)heap's root is the worst one kept.
    struct Candidate<'a, F> {
        x: f32,
        id: u32,
        better: &'a F,
    }
    impl<F: Fn(f32, f32) -> bool> Candidate<'_, F> {
        /// `Less` when `self` comes before `other` in the output (better, or tied with a lower id).
        fn rank(&self, other: &Self) -> Ordering {
            let by_value = match (self.x.is_nan(), other.x.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ if (self.better)(self.x, other.x) => Ordering::Less,
                _ if (self.better)(other.x, self.x) => Ordering::Greater,
                _ => Ordering::Equal,
            };
            by_value.then(self.id.cmp(&other.id))
        }
    }
    impl<F: Fn(f32, f32) -> bool> PartialEq for Candidate<'_, F> {
        fn eq(&self, other: &Self) -> bool {
            self.rank(other) == Ordering::Equal
        }
    }
    impl<F: Fn(f32, f32) -> bool> Eq for Candidate<'_, F> {}
    impl<F: Fn(f32, f32) -> bool> PartialOrd for Candidate<'_, F> {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl<F: Fn(f32, f32) -> bool> Ord for Candidate<'_, F> {
        fn cmp(&self, other: &Self) -> Ordering {
            self.rank(other)
        }
    }

    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let better = &better;
    let mut heap: BinaryHeap<Candidate<'_, _>> = BinaryHeap::with_capacity(k);
    // The value at the heap's root once it is full: most logits are rejected by one comparison
    // with it (the hot path: V logits per row, k of them kept).
    let mut worst_x = f32::NAN;
    for (id, &x) in logits.iter().enumerate() {
        if heap.len() < k {
            heap.push(Candidate { x, id: id as u32, better });
            if heap.len() == k {
                worst_x = heap.peek().map_or(f32::NAN, |c| c.x);
            }
        } else if better(x, worst_x) || (worst_x.is_nan() && !x.is_nan()) {
            // Exactly `Candidate::rank(new, worst) == Less`: strictly better by value (a number
            // beats a NaN); a tie never displaces the worst kept, whose id is lower (ids arrive
            // in increasing order).
            if let Some(mut worst) = heap.peek_mut() {
                *worst = Candidate { x, id: id as u32, better };
            }
            worst_x = heap.peek().map_or(f32::NAN, |c| c.x);
        }
    }
    // Ascending in `Ord`, i.e. best first.
    heap.into_sorted_vec().into_iter().map(|c| c.id).collect()
}
