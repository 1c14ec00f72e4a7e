//! From a prompt and a target to a [`Report`]: trace, then project every site in one batch.

use crate::error::Error;
use crate::spec::ModelSpec;
use backlens_lens::{LogitLens, ProjectOptions};
use backlens_model::{default_model, HookPoint, LanguageModel, Site, Trace, TraceOptions};
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What [`Backlens::analyze`] projects and keeps.
#[derive(Debug, Clone)]
pub struct LensOptions {
    /// Number of top and bottom tokens per cell.
    pub k: usize,
    /// Sites to project, at every layer. Each must hold d_model-sized vectors of the residual
    /// basis ([`Site::in_residual_basis`]).
    pub sites: Vec<Site>,
    /// Project `v / |v|` (the paper's normalized logit lens).
    pub normalize: bool,
}

impl Default for LensOptions {
    fn default() -> Self {
        LensOptions { k: 5, sites: vec![Site::MLP_UP_INPUT, Site::MLP_DOWN_VJP], normalize: false }
    }
}

/// One projected vector: a cell of the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportCell {
    /// L2 norm of the vector.
    pub norm: f32,
    /// Rank of the target (0 = most likely, V-1 = least); `null` when all logits tie (a zero
    /// vector under RMSNorm).
    pub target_rank: Option<usize>,
    /// The k most likely token ids.
    pub top: Vec<u32>,
    /// The k least likely token ids, least likely first.
    pub bottom: Vec<u32>,
}

/// The Backward Lens of one prompt and target: the stable JSON interface of `backlens lens`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The model's name ([`LanguageModel::name`]: the GGUF file's stem or the folder's name).
    pub model: String,
    /// The prompt text as given.
    pub prompt: String,
    /// The target text as given, usually with a leading space (`" Paris"`).
    pub target: String,
    /// The target's single token id.
    pub target_id: u32,
    /// The prompt's token ids, in order; the second index of every site's cells.
    pub token_ids: Vec<u32>,
    /// Each prompt token's text.
    pub tokens: Vec<String>,
    /// `-log p(target | prompt)`.
    pub loss: f32,
    /// Site name → `[layer][token]` cells.
    pub sites: BTreeMap<String, Vec<Vec<ReportCell>>>,
    /// Decoded text of every token id the report mentions (prompt, target, each cell's top and
    /// bottom ids), so that a report renders its figures without the model
    /// ([`Report::figure`], the evcxr display). Not part of the JSON.
    #[serde(skip)]
    pub token_texts: BTreeMap<u32, String>,
}

impl Report {
    /// The cells of `site`, or an error naming the sites the report has.
    pub fn site(&self, site: &str) -> Result<&Vec<Vec<ReportCell>>, Error> {
        self.sites.get(site).ok_or_else(|| Error::Site {
            site: site.to_string(),
            reason: format!(
                "not in this report (it has {:?}); add it to LensOptions::sites",
                self.sites.keys().collect::<Vec<_>>()
            ),
        })
    }

    /// Number of layers.
    pub fn n_layers(&self) -> usize {
        self.sites.values().next().map_or(0, Vec::len)
    }
}

/// A loaded model with its logit lens.
pub struct Backlens {
    model: Box<dyn LanguageModel>,
    lens: LogitLens,
}

impl Backlens {
    /// Loads the default model (SmolLM2-135M-Instruct), fetching it once into the cache.
    pub fn load_default() -> Result<Backlens, Error> {
        Backlens::load(&default_model::ensure_default_model()?)
    }

    /// Loads a model on the CPU from a GGUF file or a Hugging Face folder (see
    /// [`backlens_model::load`]).
    pub fn load(path: &Path) -> Result<Backlens, Error> {
        Backlens::from_model(backlens_model::load(path, &Device::Cpu)?)
    }

    /// Loads what a [`ModelSpec`] names, downloading `hf:` repositories into the Hub cache.
    pub fn load_spec(spec: &ModelSpec) -> Result<Backlens, Error> {
        match spec {
            ModelSpec::Default => Backlens::load_default(),
            ModelSpec::Path(path) => Backlens::load(path),
            ModelSpec::Hub(hub) => Backlens::load(&crate::spec::fetch_hub_model(hub)?),
        }
    }

    /// Wraps an already loaded model.
    pub fn from_model(model: Box<dyn LanguageModel>) -> Result<Backlens, Error> {
        let lens = LogitLens::new(model.final_norm().clone(), model.unembedding().clone())?;
        Ok(Backlens { model, lens })
    }

    /// The model.
    pub fn model(&self) -> &dyn LanguageModel {
        self.model.as_ref()
    }

    /// The logit lens of the model.
    pub fn lens(&self) -> &LogitLens {
        &self.lens
    }

    /// Readable text of a token id (its decoded text).
    pub fn token_text(&self, id: u32) -> String {
        self.model.tokenizer().decode(&[id]).unwrap_or_else(|_| format!("<{id}>"))
    }

    /// Traces `prompt` → `target` and projects every requested site at every layer and token.
    pub fn analyze(&self, prompt: &str, target: &str, options: &LensOptions) -> Result<Report, Error> {
        let trace = self.trace(prompt, target, options)?;
        self.report(prompt, target, &trace, options)
    }

    /// One forward and backward pass keeping only the sites `options` projects.
    pub fn trace(&self, prompt: &str, target: &str, options: &LensOptions) -> Result<Trace, Error> {
        if let Some(site) = options.sites.iter().find(|s| !s.in_residual_basis()) {
            let projectable: Vec<String> =
                Site::all().filter(|s| s.in_residual_basis()).map(|s| s.to_string()).collect();
            return Err(Error::Site {
                site: site.to_string(),
                reason: format!(
                    "its vectors are not in the residual-stream basis; projectable sites: {}",
                    projectable.join(", ")
                ),
            });
        }
        let tokenizer = self.model.tokenizer();
        let token_ids = tokenizer.encode(prompt)?;
        let target_id = tokenizer.single_token(target)?;
        Ok(self.model.trace(&token_ids, target_id, &TraceOptions::only(options.sites.iter().copied()))?)
    }

    /// Projects the sites of `options` from a trace of `prompt` → `target`.
    pub fn report(&self, prompt: &str, target: &str, trace: &Trace, options: &LensOptions) -> Result<Report, Error> {
        let (n_layers, n_tokens) = (self.model.n_layers(), trace.n_tokens());
        let project = ProjectOptions { k: options.k, rank_tokens: vec![trace.target_id], normalize: options.normalize };
        let mut sites = BTreeMap::new();
        for &site in &options.sites {
            // Every layer of the site in one (L·T, d) batch: one matrix product.
            let rows = (0..n_layers)
                .map(|l| trace.require(HookPoint { layer: l, site }).cloned())
                .collect::<Result<Vec<_>, _>>()?;
            let batch = Tensor::cat(&rows, 0)?; // (L·T, d)
            let mut cells = self.lens.project(&batch, &project)?.into_iter().map(|p| ReportCell {
                norm: p.norm,
                target_rank: p.ranks[0],
                top: p.top,
                bottom: p.bottom,
            });
            let grid: Vec<Vec<ReportCell>> = (0..n_layers).map(|_| cells.by_ref().take(n_tokens).collect()).collect();
            sites.insert(site.to_string(), grid);
        }
        let mentioned = sites.values().flatten().flatten().flat_map(|c: &ReportCell| c.top.iter().chain(&c.bottom));
        let ids: std::collections::BTreeSet<u32> =
            mentioned.chain(&trace.token_ids).chain([&trace.target_id]).copied().collect();
        let token_texts = ids.into_iter().map(|id| (id, self.token_text(id))).collect();
        Ok(Report {
            model: self.model.name().to_string(),
            prompt: prompt.to_string(),
            target: target.to_string(),
            target_id: trace.target_id,
            tokens: trace.token_ids.iter().map(|&id| self.token_text(id)).collect(),
            token_ids: trace.token_ids.clone(),
            loss: trace.loss,
            sites,
            token_texts,
        })
    }
}
