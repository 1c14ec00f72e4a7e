//! The key of forward pass shift's rank-one term `c e kᵀ`: the edited prompt's FF2 input `x_n`
//! (the paper) or a whitened key `∝ C_λ⁻¹x_n` (beyond the paper). Two choices of `C`, the second
//! moment of `mlp.down`'s inputs at the edited layer:
//!
//! * [`Key::Whitened`] (ROME's trick): every position of a generic text corpus, by default
//!   `data/key-corpus.txt` (self-written, disjoint from the perplexity corpus). It protects
//!   generic text, not the neighbors: on SmolLM2 at layer 23 the share of the shift reaching
//!   generic tokens falls from 0.18 to 0.02, the share reaching neighborhood prompts only from
//!   0.82 to 0.71 (`examples/spillover.rs`).
//! * [`Key::TemplateContrast`]: the last token of the request's own template filled with
//!   invented subjects ([`INVENTED_SUBJECTS`]): "the same question about someone else". The key
//!   then points where this subject's question differs from everyone else's, and the share
//!   reaching the neighborhood prompts falls to 0.28.
//!
//! The algebra is in [`backlens_algebra::whitening`]. Whitened keys are normalised so that
//! `kᵀx_n = |x_n|²`: at the edited prompt's last token every key shifts FF2's output by the same
//! `c |x_n|² e`, and only the spill-over onto other inputs differs.

use crate::corpus::load_corpus;
use crate::error::{EditError, Result};
use crate::request::EditRequest;
use backlens_algebra::{SecondMoment, Whitener};
use backlens_model::{Kind, LanguageModel, Module, Site, TraceOptions};
use candle_core::{Tensor, TensorId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The key of a forward pass shift.
#[derive(Debug, Clone, Default)]
pub enum Key {
    /// `k = x_n`, the paper's forward pass shift.
    #[default]
    Input,
    /// `k = (|x_n|²/x_nᵀC_λ⁻¹x_n) C_λ⁻¹x_n` with the statistics of one layer on generic text.
    Whitened(Arc<LayerWhitener>),
    /// The same, with `C` from the request's template filled with other subjects (computed per
    /// request; needs [`EditRequest::template`]).
    TemplateContrast(Arc<TemplateContrast>),
}

impl Key {
    /// The key for the FF2 input `x_n` of `request` at `layer`.
    ///
    /// # Shapes
    /// * `x_n`: `(d_ff)`; returns `(d_ff)`
    pub fn key(&self, model: &dyn LanguageModel, layer: usize, request: &EditRequest, x_n: &Tensor) -> Result<Tensor> {
        match self {
            Key::Input => Ok(x_n.clone()),
            Key::TemplateContrast(t) => {
                let template = request.template.as_deref().ok_or_else(|| {
                    EditError::Request("the template-contrast key needs the prompt's template (`{}` for the subject): build the request with EditRequest::from_record or with_template".into())
                })?;
                Ok(t.whitener(model, layer, template)?.key(x_n)?)
            }
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
            Key::TemplateContrast(t) => {
                write!(f, "template-contrast key, shrinkage {}, {} subjects", t.shrinkage(), t.subjects().len())
            }
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
    /// `C_λ⁻¹` and the key it gives.
    pub whitener: Whitener,
}

impl LayerWhitener {
    /// Estimates `C` at `layer` from token sequences (every position of every sequence, one
    /// forward pass each) and inverts `C_λ` with `shrinkage` λ ∈ (0, 1].
    pub fn estimate(
        model: &dyn LanguageModel,
        layer: usize,
        sequences: &[Vec<u32>],
        shrinkage: f64,
    ) -> Result<LayerWhitener> {
        let moment = ff2_input_moment(model, layer, sequences)?;
        Ok(LayerWhitener { layer, tokens: moment.count(), whitener: moment.whitener(shrinkage)? })
    }

    /// [`estimate`](Self::estimate) from a corpus file (passages separated by blank lines, each
    /// truncated to 256 tokens), e.g. [`default_key_corpus_path`](crate::corpus::default_key_corpus_path).
    pub fn from_corpus(
        model: &dyn LanguageModel,
        layer: usize,
        corpus: &Path,
        shrinkage: f64,
    ) -> Result<LayerWhitener> {
        LayerWhitener::estimate(model, layer, &load_corpus(model, corpus, 256)?, shrinkage)
    }
}

/// The second moment of `mlp.down`'s inputs at `layer` over every position of `sequences`
/// (sequences shorter than two tokens are skipped: the trace needs a next token).
pub fn ff2_input_moment(model: &dyn LanguageModel, layer: usize, sequences: &[Vec<u32>]) -> Result<SecondMoment> {
    crate::apply::check_layer(model, layer)?;
    let mut moment: Option<SecondMoment> = None;
    for ids in sequences.iter().filter(|s| s.len() >= 2) {
        let (prompt, next) = ids.split_at(ids.len() - 1);
        let xs = ff2_inputs(model, layer, prompt, next[0])?; // (T, d_ff)
        let m = match &mut moment {
            Some(m) => m,
            None => moment.insert(SecondMoment::new(xs.dims2()?.1)?),
        };
        m.add(&xs)?;
    }
    moment.ok_or_else(|| EditError::Setting("the key corpus has no sequence of two or more tokens".into()))
}

/// The inputs of `mlp.down` at `layer` for every position of `ids`, from one trace whose loss
/// is `-log p(next | ids)` (no VJP is recorded, so the backward pass has nothing to do).
///
/// # Shapes
/// returns `(T, d_ff)`, `T = ids.len()`
pub fn ff2_inputs(model: &dyn LanguageModel, layer: usize, ids: &[u32], next: u32) -> Result<Tensor> {
    let site = Site::new(Module::MlpDown, Kind::Input);
    let trace = model.trace(ids, next, &TraceOptions::only([site]).with_layers([layer]))?;
    Ok(trace.require(site.at(layer))?.clone())
}

/// The template-contrast key's statistics: the request's template filled with each of
/// `subjects`, the FF2 input at the last token.
///
/// One whitener costs a forward pass per subject; it is cached per (layer, template) and reused
/// while the model's weights up to that layer are the same tensors (candle tensor ids: an
/// [`EditGuard`](crate::EditGuard) that restores the original weights makes the cache valid
/// again, an edited or another model misses it).
#[derive(Debug)]
pub struct TemplateContrast {
    subjects: Vec<String>,
    shrinkage: f64,
    cache: Mutex<WhitenerCache>,
}

impl TemplateContrast {
    /// With the shipped [`INVENTED_SUBJECTS`] and shrinkage λ ∈ (0, 1] (see
    /// [`SecondMoment::whitener`]).
    pub fn new(shrinkage: f64) -> TemplateContrast {
        TemplateContrast::with_subjects(INVENTED_SUBJECTS.iter().map(|s| s.to_string()).collect(), shrinkage)
    }

    /// With other subjects.
    pub fn with_subjects(subjects: Vec<String>, shrinkage: f64) -> TemplateContrast {
        TemplateContrast { subjects, shrinkage, cache: Mutex::new(HashMap::new()) }
    }

    /// The subjects put into the template.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// λ.
    pub fn shrinkage(&self) -> f64 {
        self.shrinkage
    }

    /// `C_λ⁻¹` of the last-token FF2 inputs at `layer` of `template` filled with every subject
    /// (one forward pass each, or the cache).
    pub fn whitener(&self, model: &dyn LanguageModel, layer: usize, template: &str) -> Result<Whitener> {
        if template.matches("{}").count() != 1 {
            return Err(EditError::Request(format!(
                "the template {template:?} must contain exactly one `{{}}` where the subject goes"
            )));
        }
        crate::apply::check_layer(model, layer)?;
        let weights = weight_ids(model, layer);
        let key = (layer, template.to_string());
        if let Some((ids, w)) = self.cache.lock().expect("cache lock").get(&key) {
            if *ids == weights {
                return Ok(w.clone());
            }
        }
        let d_ff = model.weight(layer, Module::MlpDown)?.dims2()?.1;
        let mut moment = SecondMoment::new(d_ff)?;
        for subject in &self.subjects {
            let ids = model.tokenizer().encode(&template.replacen("{}", subject, 1))?;
            if ids.is_empty() {
                continue;
            }
            let xs = ff2_inputs(model, layer, &ids, 0)?; // (T, d_ff)
            moment.add(&xs.narrow(0, ids.len() - 1, 1)?)?; // the last token only
        }
        let whitener = moment.whitener(self.shrinkage)?;
        self.cache.lock().expect("cache lock").insert(key, (weights, whitener.clone()));
        Ok(whitener)
    }
}

/// The template-contrast whiteners by (layer, template), with the weight ids they were computed
/// from.
type WhitenerCache = HashMap<(usize, String), (Vec<TensorId>, Whitener)>;

/// The ids of every linear weight of layers `0..=layer`: what the FF2 input at `layer` depends
/// on besides the embedding and the norms, which edits do not touch.
fn weight_ids(model: &dyn LanguageModel, layer: usize) -> Vec<TensorId> {
    (0..=layer)
        .flat_map(|l| Module::ALL.into_iter().filter_map(move |m| model.weight(l, m).ok().map(|w| w.id())))
        .collect()
}

/// Forty invented subjects (people, places, organisations; none is in the project's dataset)
/// for [`TemplateContrast`].
pub const INVENTED_SUBJECTS: [&str; 40] = [
    "Anna Berglund",
    "Tomas Okafor",
    "Lina Maretti",
    "Pieter Vossberg",
    "Hana Kulik",
    "Marco Delacroix",
    "Ines Favre",
    "Oskar Lindqvist",
    "Rafael Quintero",
    "Mei Tanaka",
    "Jonas Albrecht",
    "Clara Novak",
    "Dmitri Sokolenko",
    "Amara Nwosu",
    "Felix Harrow",
    "Sofia Lenz",
    "Kestrel Bay",
    "Oakridge Labs",
    "Norvale",
    "the Halden Group",
    "Brightwater Studios",
    "Mount Tessaly",
    "Velmora",
    "Corvin Motors",
    "Isla Brennan",
    "Yusuf Demir",
    "Greta Holm",
    "Lucas Ferreira",
    "Nadia Petrova",
    "Emil Castellan",
    "Ruth Achterberg",
    "Kofi Mensah",
    "Aldermoor",
    "the Tarrow Institute",
    "Silverpine Records",
    "Port Elsin",
    "Quillon Software",
    "Marrowfield",
    "Lake Ondra",
    "Bellhaven",
];
