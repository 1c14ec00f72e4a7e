//! The paper's figures recomputed on any model backlens loads: one function per figure group,
//! shared by the notebooks (`notebooks/`) and `backlens reproduce --figure <id>`.
//!
//! | group | paper | input |
//! |---|---|---|
//! | [`FigureGroup::GradientRank`] | Figure 3, Lemma 4.1, Appendix A | dataset sweep |
//! | [`FigureGroup::Tables`] | Figures 4, 11–15, 24–25, Tables 3 and 5 | the paper's example prompts |
//! | [`FigureGroup::Norms`] | Figures 5, 16, 17 | dataset sweep |
//! | [`FigureGroup::VjpRanks`] | Figures 6, 18, 19 | dataset sweep |
//! | [`FigureGroup::InputRanks`] | Figures 20, 21 | dataset sweep |
//! | [`FigureGroup::Cosine`] | Figures 22, 23 | one example + dataset sweep |
//! | [`FigureGroup::Neurons`] | Appendix C: Figures 7–9, Tables 2 and 4 | one example |
//!
//! Every group returns a [`Reproduction`]: pictures, the paper's observation, what this model
//! shows (computed from the numbers, not written by hand) and the numbers themselves as JSON.

mod aggregate;
mod cosine;
mod input_ranks;
mod neurons;
mod norms;
mod ranks;
pub mod segments;
mod sweep;
mod tables;
mod vjp_ranks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use backlens_data::Record;
use backlens_plot::Picture;
use serde::Serialize;

use crate::{Backlens, Error};

pub use aggregate::{normalized_layer, SegmentTable};
pub use cosine::{mean_at_offset, mean_last_token_cosine, CosineExample, FERRARI_EXAMPLE};
pub use neurons::*;
pub use segments::{segment_means, segment_prompt, Segment};
pub use sweep::{PromptStats, Sweep, RELATIVE_RANK_TOLERANCE};
pub use tables::{lens_agreement, Example, ExampleSummary, LensAgreement, PAPER_EXAMPLES};

/// A group of the paper's figures that one computation reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FigureGroup {
    /// Figure 3: % of prompts whose gradient rank equals the prompt length, per layer.
    GradientRank,
    /// Figures 4, 11–15, 24–25 and Tables 3, 5: logit-lens tables of the spanning sets.
    Tables,
    /// Figures 5, 16, 17: mean VJP and input norms per layer and prompt segment.
    Norms,
    /// Figures 6, 18, 19: lens rank of the target and the original answer in FF2's VJPs.
    VjpRanks,
    /// Figures 20, 21: lens rank of the original answer and the target in FF1's inputs x_n.
    InputRanks,
    /// Figures 22, 23: cosine of the residual VJPs across layers.
    Cosine,
    /// Appendix C: gradient neurons against spanning vectors.
    Neurons,
}

impl FigureGroup {
    /// Every group, in the paper's order.
    pub const ALL: [FigureGroup; 7] = [
        FigureGroup::GradientRank,
        FigureGroup::Tables,
        FigureGroup::Norms,
        FigureGroup::VjpRanks,
        FigureGroup::InputRanks,
        FigureGroup::Cosine,
        FigureGroup::Neurons,
    ];

    /// The group's name, as `--figure` accepts it and as output files are named.
    pub fn name(self) -> &'static str {
        match self {
            FigureGroup::GradientRank => "gradient-rank",
            FigureGroup::Tables => "tables",
            FigureGroup::Norms => "norms",
            FigureGroup::VjpRanks => "vjp-ranks",
            FigureGroup::InputRanks => "input-ranks",
            FigureGroup::Cosine => "cosine",
            FigureGroup::Neurons => "neurons",
        }
    }

    /// The paper's figures and tables the group covers.
    pub fn covers(self) -> &'static str {
        match self {
            FigureGroup::GradientRank => "Figure 3, Lemma 4.1, Appendix A",
            FigureGroup::Tables => "Figures 4, 11-15, 24, 25; Tables 3, 5",
            FigureGroup::Norms => "Figures 5, 16, 17",
            FigureGroup::VjpRanks => "Figures 6, 18, 19",
            FigureGroup::InputRanks => "Figures 20, 21",
            FigureGroup::Cosine => "Figures 22, 23",
            FigureGroup::Neurons => "Appendix C: Figures 7-9, Tables 2, 4",
        }
    }

    /// The paper's figure numbers of the group (`--figure 16` selects [`FigureGroup::Norms`]).
    fn figure_numbers(self) -> &'static [u32] {
        match self {
            FigureGroup::GradientRank => &[3],
            FigureGroup::Tables => &[4, 11, 12, 13, 14, 15, 24, 25],
            FigureGroup::Norms => &[5, 16, 17],
            FigureGroup::VjpRanks => &[6, 18, 19],
            FigureGroup::InputRanks => &[20, 21],
            FigureGroup::Cosine => &[22, 23],
            FigureGroup::Neurons => &[7, 8, 9],
        }
    }

    /// Whether the group aggregates over the dataset (and so needs a [`Sweep`]).
    pub fn needs_sweep(self) -> bool {
        !matches!(self, FigureGroup::Tables | FigureGroup::Neurons)
    }
}

impl fmt::Display for FigureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FigureGroup {
    type Err = Error;

    /// A group name (`norms`), a figure number (`5`, `fig5`, `figure-16`), a table number
    /// (`table-2`, `table3`) or `appendix-c`.
    fn from_str(s: &str) -> Result<FigureGroup, Error> {
        let key = s.trim().to_ascii_lowercase();
        if let Some(group) = FigureGroup::ALL.into_iter().find(|g| g.name() == key) {
            return Ok(group);
        }
        let number = |prefixes: &[&str]| {
            prefixes
                .iter()
                .find_map(|p| key.strip_prefix(p))
                .and_then(|n| n.trim_start_matches(['-', '_', ' ']).parse::<u32>().ok())
        };
        if let Some(n) = number(&["figure", "fig", ""]) {
            if let Some(group) = FigureGroup::ALL.into_iter().find(|g| g.figure_numbers().contains(&n)) {
                return Ok(group);
            }
        }
        match number(&["table", "tab"]) {
            Some(2 | 4) => return Ok(FigureGroup::Neurons),
            Some(3 | 5) => return Ok(FigureGroup::Tables),
            _ => {}
        }
        if matches!(key.as_str(), "appendix-c" | "appendix_c" | "c") {
            return Ok(FigureGroup::Neurons);
        }
        let known: Vec<String> = FigureGroup::ALL.iter().map(|g| format!("{} ({})", g.name(), g.covers())).collect();
        Err(Error::Input(format!(
            "unknown figure {s:?}: give a figure number (3-9, 11-25), table-2..table-5, appendix-c, `all`, or a group: {}",
            known.join("; ")
        )))
    }
}

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
    pub group: FigureGroup,
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
            self.group,
            self.group.covers(),
            self.paper,
            self.ours
        )
    }

    /// The statements and every picture inline (SVG) as one HTML fragment.
    pub fn to_html(&self) -> Result<String, Error> {
        let mut html = format!(
            "<h3>{} ({})</h3><p><b>Paper.</b> {}</p><p><b>Ours.</b> {}</p>",
            self.group,
            self.group.covers(),
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

impl Backlens {
    /// Recomputes `groups`, tracing the dataset at most once (only if a group needs it).
    /// `progress(done, total)` reports the sweep.
    pub fn reproduce(
        &self,
        groups: &[FigureGroup],
        options: &ReproduceOptions,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Reproduction>, Error> {
        let sweep = if groups.iter().any(|g| g.needs_sweep()) {
            Some(self.sweep(&options.records()?, progress)?)
        } else {
            None
        };
        let sweep = || sweep.as_ref().expect("computed above for every group that needs it");
        groups
            .iter()
            .map(|group| match group {
                FigureGroup::GradientRank => gradient_rank(sweep()),
                FigureGroup::Tables => tables(self),
                FigureGroup::Norms => norms(sweep()),
                FigureGroup::VjpRanks => vjp_ranks(sweep()),
                FigureGroup::InputRanks => input_ranks(sweep()),
                FigureGroup::Cosine => cosine(self, sweep()),
                FigureGroup::Neurons => neurons(self),
            })
            .collect()
    }
}

/// Figure 3, Lemma 4.1 and Appendix A from a sweep: % of prompts whose gradient rank is n.
pub fn gradient_rank(sweep: &Sweep) -> Result<Reproduction, Error> {
    ranks::reproduce(sweep)
}

/// Figures 4, 11-15, 24-25 and Tables 3, 5: the lens tables of [`PAPER_EXAMPLES`].
pub fn tables(bl: &Backlens) -> Result<Reproduction, Error> {
    tables::reproduce(bl)
}

/// Figures 5, 16, 17 from a sweep: mean norms by layer and prompt segment.
pub fn norms(sweep: &Sweep) -> Result<Reproduction, Error> {
    norms::reproduce(sweep)
}

/// Figures 6, 18, 19 from a sweep: lens ranks of the target and the answer in FF2's VJPs.
pub fn vjp_ranks(sweep: &Sweep) -> Result<Reproduction, Error> {
    vjp_ranks::reproduce(sweep)
}

/// Figures 20, 21 from a sweep: lens ranks of the answer and the target in FF1's x_n.
pub fn input_ranks(sweep: &Sweep) -> Result<Reproduction, Error> {
    input_ranks::reproduce(sweep)
}

/// Figures 22, 23: cross-layer cosine of the residual VJPs ([`FERRARI_EXAMPLE`] and the sweep).
pub fn cosine(bl: &Backlens, sweep: &Sweep) -> Result<Reproduction, Error> {
    cosine::reproduce(bl, sweep)
}

/// Appendix C: gradient neurons against spanning vectors.
pub fn neurons(bl: &Backlens) -> Result<Reproduction, Error> {
    neurons::reproduce(bl)
}
