//! What each tensor of a checkpoint is. Lives apart from the architectures and from
//! [`crate::testing`], which both use it: the architectures name the role of every tensor they
//! build from a function (`from_fn`), and the tiny random models draw each tensor by its role.

/// What a tensor is, which decides how a random test model draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Token embedding (V, d): N(0, 1) untied, N(0, 1/d)·1.5² when it is also the unembedding.
    Embedding,
    /// GPT-2's learned positions (context, d): N(0, 0.5²).
    Positions,
    /// Untied unembedding (V, d): N(0, 1.5²/d), logits of order one.
    Unembedding,
    /// A norm's gain (d): 1 + N(0, 0.1²).
    NormGain,
    /// A LayerNorm's bias (d): N(0, 0.1²).
    NormBias,
    /// A linear weight (out, in): N(0, 1/in).
    Weight,
    /// A linear bias (out): N(0, 0.1²).
    Bias,
}
