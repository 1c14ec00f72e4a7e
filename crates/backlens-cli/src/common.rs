//! Arguments and helpers shared by several subcommands: the model to load, the lens query, and
//! the progress bar.

use anyhow::Result;
use backlens::model::Site;
use backlens::{Backlens, LensOptions, ModelSpec};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Parses a count that must be at least 1 (`--top-k`; its upper bound, the vocabulary size, is
/// checked by the lens once the model is loaded).
pub fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a whole number ({e})")),
    }
}

/// `--model`.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face folder, or hf:org/name[@revision]
    /// (default: SmolLM2-135M-Instruct, fetched once into $BACKLENS_HOME).
    #[arg(long)]
    pub model: Option<String>,
}

impl ModelArgs {
    /// Loads the model `--model` names (the default model when absent).
    pub fn load(&self) -> Result<Backlens> {
        let spec = match &self.model {
            Some(text) => text.parse()?,
            None => ModelSpec::Default,
        };
        Ok(Backlens::load_spec(&spec)?)
    }
}

/// The prompt, the target and what to project: shared by `lens` and `bench`.
#[derive(Args, Clone)]
pub struct QueryArgs {
    /// The prompt to edit.
    #[arg(long, default_value = "Lionel Messi plays for")]
    pub prompt: String,
    /// The new target: exactly one token, usually with a leading space.
    #[arg(long, default_value = " Paris")]
    pub target: String,
    /// Number of top and bottom tokens kept per cell: 1 to the vocabulary size.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub top_k: usize,
    /// Sites to project, comma-separated (mlp.up.input and mlp.down.vjp are always included).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Project v/|v| (the normalized logit lens).
    #[arg(long)]
    pub normalize: bool,
}

impl QueryArgs {
    /// The [`LensOptions`] these arguments ask for.
    pub fn options(&self) -> Result<LensOptions> {
        let mut sites = LensOptions::default().sites;
        for s in &self.sites {
            let site: Site = s.trim().parse()?;
            if !sites.contains(&site) {
                sites.push(site);
            }
        }
        Ok(LensOptions { k: self.top_k, sites, normalize: self.normalize })
    }
}

/// A progress bar on stderr for `total` steps of `label`, with elapsed time and an estimate of
/// the time left. indicatif draws nothing when stderr is not a terminal (CI, pipes, tests).
pub fn progress_bar(label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix}: {pos}/{len} [{bar:30}] {elapsed} (eta {eta})")
        .expect("a valid progress template")
        .progress_chars("=> ");
    ProgressBar::new(0).with_style(style).with_prefix(label.to_string())
}

/// A `progress(done, total)` callback for the libraries, drawing on `bar`.
pub fn report_to(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
