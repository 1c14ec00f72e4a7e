//! The logit lens over a batch of vectors.

use crate::summary::{summarize_row, ProjectOptions, Projection};
use backlens_ops::{linear, Norm};
use candle_core::{Tensor, D};

/// Errors of the lens.
#[derive(Debug, thiserror::Error)]
pub enum LensError {
    /// [`LogitLens::logits`] or [`LogitLens::project`] was given something other than an
    /// `(N, d_model)` matrix, e.g. an MLP-inner (`d_ff`-wide) vector or a 1-D tensor.
    #[error("the lens projects {expected}-dimensional vectors, got shape {found:?}: only d_model-sized vectors (residual-stream inputs or VJPs) can be projected")]
    Dimension {
        /// The lens's width, `d_model` (the final norm's size).
        expected: usize,
        /// The shape of the tensor passed in.
        found: Vec<usize>,
    },
    /// [`LogitLens::new`] was given an unembedding that is not `(V, d)` with `V > 0` and `d` the
    /// final norm's size.
    #[error("the unembedding has shape {unembed:?} but the final norm has size {norm}; expected (V, {norm})")]
    Mismatch {
        /// The shape of the unembedding matrix passed in.
        unembed: Vec<usize>,
        /// The final norm's size ([`Norm::dim`]).
        norm: usize,
    },
    /// [`ProjectOptions::rank_tokens`] holds a token id `>= V`.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        /// The first out-of-range id.
        id: u32,
        /// The vocabulary size `V` (rows of the unembedding).
        vocab: usize,
    },
    /// [`ProjectOptions::k`] is 0 or larger than the vocabulary: the lens keeps `1..=V` most and
    /// least likely tokens per vector.
    #[error("the number of top and bottom tokens per vector (k, --top-k) is {k}; it must be between 1 and the vocabulary size {vocab}")]
    TopK {
        /// The requested k.
        k: usize,
        /// The vocabulary size `V` (rows of the unembedding).
        vocab: usize,
    },
    /// A vector's L2 norm (in f32) is NaN or infinite: it holds a NaN or an infinity, or is too
    /// large to square in f32. Reported by [`LogitLens::project`].
    #[error("vector {row} contains NaN or infinity")]
    NonFinite {
        /// 0-based row of the first such vector in the `(N, d)` input.
        row: usize,
    },
    /// A tensor operation failed (dtype, device, or out of memory).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `LL(v) = unembed(final_norm(v))`.
///
/// The final norm is applied to every vector, VJPs included, with its gain (and bias), exactly as
/// the authors' code does; its statistics are those of the projected vector itself.
#[derive(Debug, Clone)]
pub struct LogitLens {
    norm: Norm,
    unembed: Tensor,
}

impl LogitLens {
    /// A lens from a model's final norm and unembedding matrix.
    ///
    /// # Shapes
    /// - `unembed`: (V, d)
    pub fn new(norm: Norm, unembed: Tensor) -> Result<LogitLens, LensError> {
        match unembed.dims() {
            [v, d] if *v > 0 && *d == norm.dim() => Ok(LogitLens { norm, unembed }),
            dims => Err(LensError::Mismatch { unembed: dims.to_vec(), norm: norm.dim() }),
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.unembed.dim(0).unwrap_or(0)
    }

    /// Width of the projected vectors.
    pub fn d_model(&self) -> usize {
        self.norm.dim()
    }

    /// Logits of every vector, in one matrix product.
    ///
    /// # Shapes
    /// - `vectors`: (N, d); returns (N, V)
    pub fn logits(&self, vectors: &Tensor) -> Result<Tensor, LensError> {
        self.check(vectors)?;
        Ok(linear(&self.norm.forward(vectors)?, &self.unembed, None)?)
    }

    /// Projects every vector and summarises each row.
    ///
    /// Refuses `options.k` outside `1..=V` ([`LensError::TopK`]) and rank tokens outside the
    /// vocabulary ([`LensError::TokenOutOfRange`]) before any computation.
    ///
    /// # Shapes
    /// - `vectors`: (N, d); returns N projections
    pub fn project(&self, vectors: &Tensor, options: &ProjectOptions) -> Result<Vec<Projection>, LensError> {
        self.check(vectors)?;
        let vocab = self.vocab_size();
        if options.k == 0 || options.k > vocab {
            return Err(LensError::TopK { k: options.k, vocab });
        }
        if let Some(&id) = options.rank_tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(LensError::TokenOutOfRange { id, vocab });
        }
        let norms = vectors.sqr()?.sum(D::Minus1)?.sqrt()?; // (N)
        let input = if options.normalize {
            // A zero row stays zero (and is reported as such) instead of becoming NaN.
            vectors.broadcast_div(&norms.maximum(f32::MIN_POSITIVE)?.unsqueeze(1)?)?
        } else {
            vectors.clone()
        };
        let logits = self.logits(&input)?.to_device(&candle_core::Device::Cpu)?; // (N, V)
        let norms = norms.to_vec1::<f32>()?;
        if let Some(row) = norms.iter().position(|n| !n.is_finite()) {
            return Err(LensError::NonFinite { row });
        }
        let (storage, layout) = logits.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { unreachable!("moved to the CPU above") };
        let flat = match layout.contiguous_offsets() {
            Some((start, end)) => &cpu.as_slice::<f32>()?[start..end],
            None => unreachable!("matmul output is contiguous"),
        };
        Ok(summarize_rows(flat, vocab, &norms, options))
    }

    fn check(&self, vectors: &Tensor) -> Result<(), LensError> {
        match vectors.dims() {
            [_, d] if *d == self.d_model() => Ok(()),
            dims => Err(LensError::Dimension { expected: self.d_model(), found: dims.to_vec() }),
        }
    }
}

/// Summarises N rows of V logits, splitting the rows over all cores (each row is O(V log k)).
fn summarize_rows(flat: &[f32], vocab: usize, norms: &[f32], options: &ProjectOptions) -> Vec<Projection> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows_per_thread = norms.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = flat
            .chunks(rows_per_thread * vocab)
            .zip(norms.chunks(rows_per_thread))
            .map(|(rows, norms)| {
                scope.spawn(move || {
                    rows.chunks(vocab).zip(norms).map(|(row, &n)| summarize_row(row, n, options)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("summary thread panicked")).collect()
    })
}
