//! The key of forward pass shift's rank-one term `c e kᵀ`: the edited prompt's FF2 input `x_n`
//! (the paper) or a whitened key `∝ C_λ⁻¹x_n` (ROME's trick; beyond the paper).
//!
//! `C` is the second moment of `mlp.down`'s inputs at the edited layer over a generic text
//! corpus, by default `data/key-corpus.txt` (self-written, disjoint from the perplexity
//! corpus); the algebra is in [`backlens_algebra::whitening`]. The whitened key is normalised so
//! that `kᵀx_n = |x_n|²`: at the edited prompt's last token both keys shift FF2's output by the
//! same `c |x_n|² e`, and only the spill-over onto other inputs (the neighborhood prompts)
//! differs.

use crate::error::{EditError, Result};
use crate::eval::load_corpus;
use backlens_algebra::{SecondMoment, Whitener};
use backlens_model::{Kind, LanguageModel, Module, Site, TraceOptions};
use candle_core::Tensor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The key of a forward pass shift.
#[derive(Debug, Clone, Default)]
pub enum Key {
    /// `k = x_n`, the paper's forward pass shift.
    #[default]
    Input,
    /// `k = (|x_n|²/x_nᵀC_λ⁻¹x_n) C_λ⁻¹x_n` with the statistics of one layer.
    Whitened(Arc<LayerWhitener>),
}

impl Key {
    /// The key for the FF2 input `x_n` at `layer`.
    ///
    /// # Shapes
    /// * `x_n`: `(d_ff)`; returns `(d_ff)`
    pub fn key(&self, layer: usize, x_n: &Tensor) -> Result<Tensor> {
        match self {
            Key::Input => Ok(x_n.clone()),
            Key::Whitened(w) => {
                if w.layer != layer {
                    return Err(EditError::Setting(format!(
                        "the whitened key was estimated at layer {} but the edit is at layer {layer}; estimate it at the edited layer",
                        w.layer
                    )));
                }
                Ok(w.whitener.key(x_n)?)
            }
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Input => write!(f, "key x_n"),
            Key::Whitened(w) => write!(f, "whitened key, shrinkage {}, {} tokens", w.whitener.shrinkage(), w.tokens),
        }
    }
}

/// `C_λ⁻¹` of `mlp.down`'s inputs at one layer.
#[derive(Debug, Clone)]
pub struct LayerWhitener {
    /// The layer whose FF2 inputs were collected.
    pub layer: usize,
    /// How many token positions went into `C`.
    pub tokens: usize,
    pub whitener: Whitener,
}

impl LayerWhitener {
    /// Estimates `C` at `layer` from token sequences (every position of every sequence, one
    /// forward pass each) and inverts `C_λ` with `shrinkage` λ ∈ (0, 1].
    pub fn estimate(model: &dyn LanguageModel, layer: usize, sequences: &[Vec<u32>], shrinkage: f64) -> Result<LayerWhitener> {
        let moment = ff2_input_moment(model, layer, sequences)?;
        Ok(LayerWhitener { layer, tokens: moment.count(), whitener: moment.whitener(shrinkage)? })
    }

    /// [`estimate`](Self::estimate) from a corpus file (passages separated by blank lines, each
    /// truncated to 256 tokens), e.g. [`default_key_corpus_path`].
    pub fn from_corpus(model: &dyn LanguageModel, layer: usize, corpus: &Path, shrinkage: f64) -> Result<LayerWhitener> {
        LayerWhitener::estimate(model, layer, &load_corpus(model, corpus, 256)?, shrinkage)
    }
}

/// The project's key corpus, `data/key-corpus.txt` (self-written, disjoint from the perplexity
/// corpus so that perplexity is never measured on the text the edit was whitened on).
pub fn default_key_corpus_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/key-corpus.txt")
}

/// The second moment of `mlp.down`'s inputs at `layer` over every position of `sequences`
/// (sequences shorter than two tokens are skipped: the trace needs a next token).
pub fn ff2_input_moment(model: &dyn LanguageModel, layer: usize, sequences: &[Vec<u32>]) -> Result<SecondMoment> {
    crate::apply::check_layer(model, layer)?;
    let site = Site::new(Module::MlpDown, Kind::Input);
    let options = TraceOptions::only([site]).with_layers([layer]);
    let mut moment: Option<SecondMoment> = None;
    for ids in sequences.iter().filter(|s| s.len() >= 2) {
        let (prompt, next) = ids.split_at(ids.len() - 1);
        let trace = model.trace(prompt, next[0], &options)?;
        let xs = trace.require(site.at(layer))?; // (T, d_ff)
        let m = match &mut moment {
            Some(m) => m,
            None => moment.insert(SecondMoment::new(xs.dims2()?.1)?),
        };
        m.add(xs)?;
    }
    moment.ok_or_else(|| EditError::Setting("the key corpus has no sequence of two or more tokens".into()))
}
