//! The paper's figures recomputed on any model backlens loads: one function per figure group,
//! shared by the notebooks (`notebooks/`) and `backlens reproduce --figure <id>`.
//!
//! Every figure group is one [`FigureGroup`] value (its name, the figures and tables it covers,
//! what it needs and the function that runs it), all listed in [`GROUPS`], in the paper's order.
//! Parsing of `--figure` ids ([`FigureGroup::parse`], [`select`]), the help text's figure
//! numbers ([`figure_numbers`], [`id_help`]) and the unknown-id error are generated from that
//! list. Adding a group: one new file with its `pub(crate) static GROUP: FigureGroup` and run
//! function, its `mod` line and one entry in [`GROUPS`].
//!
//! ```no_run
//! use backlens::Backlens;
//! use backlens_reproduce::{FigureGroup, ReproduceOptions};
//! let bl = Backlens::load_default()?;
//! let groups = backlens_reproduce::select(&["norms", "figure-7"])?; // norms and neurons
//! let options = ReproduceOptions { limit: 20, ..Default::default() };
//! for r in backlens_reproduce::reproduce(&bl, &groups, &options, |_, _| {})? {
//!     println!("{} ({}): {}", r.group, r.group.covers, r.ours);
//! }
//! assert_eq!(FigureGroup::parse("table-3")?.name, "tables");
//! # Ok::<(), backlens::Error>(())
//! ```
//!
//! Every group returns a [`Reproduction`]: pictures, the paper's observation, what this model
//! shows (computed from the numbers, not written by hand) and the numbers themselves as JSON.

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod aggregate;
mod cosine;
mod groups;
mod input_ranks;
mod neurons;
mod norms;
mod ranks;
mod segments;
mod sweep;
mod tables;
mod vjp_ranks;

use std::path::{Path, PathBuf};

use backlens::{Backlens, Error};
use backlens_data::Record;
use backlens_plot::Picture;

pub use aggregate::{normalized_layer, SegmentTable};
pub use cosine::{cosine, cosine_example, mean_at_offset, mean_last_token_cosine, CosineExample, FERRARI_EXAMPLE};
pub use groups::{compress_ranges, figure_numbers, id_help, select, FigureGroup, Inputs, Needs};
pub use input_ranks::input_ranks;
pub use neurons::{
    depth_chart, labelled_norm_groups, neuron_depth_profile, neuron_study, neurons, paper_depth_layer, reading_of,
    row_norms, trace_neurons, update_neurons, DepthRow, FfMatrix, NeuronOptions, NeuronSample, NeuronStudy, NormBand,
    NormGroup, UpdateNeurons, BAND_SIZE, INTERSECTION_K, NEURONS_PER_GROUP, NEURON_PROMPT, NEURON_TARGET,
    PAPER_NEURON_LAYER, PAPER_NEURON_MODEL_LAYERS, TABLE_TOKENS,
};
pub use norms::norms;
pub use ranks::gradient_rank;
pub use segments::{segment_means, segment_prompt, Segment};
pub use sweep::{cross_layer_cosine, prompt_stats, sweep, PromptStats, Sweep, RELATIVE_RANK_TOLERANCE};
pub use tables::{example_reports, lens_agreement, tables, Example, ExampleSummary, LensAgreement, PAPER_EXAMPLES};
pub use vjp_ranks::vjp_ranks;

/// Every figure group, in the paper's order: the one list `--figure` ids, the help text and
/// `--figure all` are generated from.
pub static GROUPS: &[&FigureGroup] = &[
    &ranks::GROUP,
    &tables::GROUP,
    &norms::GROUP,
    &vjp_ranks::GROUP,
    &input_ranks::GROUP,
    &cosine::GROUP,
    &neurons::GROUP,
];

/// Which records the dataset-wide groups use.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// A CounterFact-format file; `None` = the project's dataset
    /// ([`backlens_data::default_dataset_path`]).
    pub dataset: Option<PathBuf>,
    /// Number of records, drawn with [`backlens_data::sample`] (the paper: 100).
    pub limit: usize,
    /// Seed of the draw.
    pub seed: u64,
}

impl Default for ReproduceOptions {
    fn default() -> Self {
        ReproduceOptions { dataset: None, limit: 100, seed: 0 }
    }
}

impl ReproduceOptions {
    /// The records these options select.
    pub fn records(&self) -> Result<Vec<Record>, Error> {
        let path = self.dataset.clone().unwrap_or_else(backlens_data::default_dataset_path);
        let records = backlens_data::load(&path)?;
        if self.limit == 0 {
            return Err(Error::Input("--limit must be at least 1".into()));
        }
        Ok(backlens_data::sample(&records, self.limit, self.seed))
    }
}

/// One figure group recomputed: pictures, the paper's observation next to ours, and numbers.
#[derive(Debug, Clone)]
pub struct Reproduction {
    /// The group recomputed.
    pub group: &'static FigureGroup,
    /// The paper's observation, in its words where possible.
    pub paper: String,
    /// What this model shows, generated from [`Reproduction::numbers`].
    pub ours: String,
    /// Pictures with their file stems (`fig5-mlp.down.vjp`).
    pub pictures: Vec<(String, Picture)>,
    /// The numbers behind the pictures and the statement.
    pub numbers: serde_json::Value,
}

impl Reproduction {
    /// Writes every picture as `<stem>.svg` and `<stem>.png`, the numbers as `<group>.json`
    /// and the two statements as `<group>.md` into `dir` (created if missing); returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for (stem, picture) in &self.pictures {
            for ext in ["svg", "png"] {
                let path = dir.join(format!("{stem}.{ext}"));
                picture.write(&path)?;
                written.push(path);
            }
        }
        let json = dir.join(format!("{}.json", self.group));
        std::fs::write(&json, serde_json::to_string_pretty(&self.numbers).map_err(|e| Error::Input(e.to_string()))?)?;
        let md = dir.join(format!("{}.md", self.group));
        std::fs::write(&md, self.to_markdown())?;
        written.extend([json, md]);
        Ok(written)
    }

    /// The two statements and the picture list as Markdown.
    pub fn to_markdown(&self) -> String {
        let pictures: String = self.pictures.iter().map(|(stem, _)| format!("![{stem}]({stem}.svg)\n")).collect();
        format!(
            "# {} ({})\n\n**Paper.** {}\n\n**Ours.** {}\n\n{pictures}",
            self.group, self.group.covers, self.paper, self.ours
        )
    }

    /// The statements and every picture inline (SVG) as one HTML fragment.
    pub fn to_html(&self) -> Result<String, Error> {
        let mut html = format!(
            "<h3>{} ({})</h3><p><b>Paper.</b> {}</p><p><b>Ours.</b> {}</p>",
            self.group,
            self.group.covers,
            escape(&self.paper),
            escape(&self.ours)
        );
        for (_, picture) in &self.pictures {
            html.push_str(&format!("<div>{}</div>", picture.to_svg()?));
        }
        Ok(html)
    }

    /// Shows the reproduction in the evcxr Jupyter kernel (statements and pictures).
    #[cfg(feature = "evcxr")]
    // evcxr renders what `evcxr_display` prints to stdout: printing is the protocol.
    #[allow(clippy::print_stdout)]
    pub fn evcxr_display(&self) {
        match self.to_html() {
            Ok(html) => println!("EVCXR_BEGIN_CONTENT text/html\n{html}\nEVCXR_END_CONTENT"),
            Err(e) => println!("EVCXR_BEGIN_CONTENT text/plain\n{e}\nEVCXR_END_CONTENT"),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Recomputes `groups` on `bl`, tracing the dataset at most once (only if a group needs it).
/// `progress(done, total)` reports the sweep.
pub fn reproduce(
    bl: &Backlens,
    groups: &[&FigureGroup],
    options: &ReproduceOptions,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<Reproduction>, Error> {
    let sweep =
        if groups.iter().any(|g| g.needs_sweep()) { Some(sweep(bl, &options.records()?, progress)?) } else { None };
    let inputs = Inputs { backlens: bl, sweep: sweep.as_ref() };
    groups.iter().map(|group| (group.run)(&inputs)).collect()
}
