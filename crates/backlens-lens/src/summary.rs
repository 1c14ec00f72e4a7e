//! Reading one row of logits: top-k, bottom-k and ranks.

use serde::Serialize;

/// What to read from each projected vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectOptions {
    /// How many most- and least-likely tokens to keep.
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
/// One pass with a small sorted buffer: O(V) comparisons against the current k-th best.
fn extreme_k(logits: &[f32], k: usize, better: impl Fn(f32, f32) -> bool) -> Vec<u32> {
    let k = k.min(logits.len());
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return Vec::new();
    }
    for (id, &x) in logits.iter().enumerate() {
        if best.len() == k && !better(x, best[k - 1].0) {
            continue;
        }
        // Insert after every entry that is at least as good (stable for ties).
        let pos = best.iter().position(|&(y, _)| better(x, y)).unwrap_or(best.len());
        best.insert(pos, (x, id as u32));
        best.truncate(k);
    }
    best.into_iter().map(|(_, id)| id).collect()
}
