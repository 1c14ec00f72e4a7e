//! Figures 4, 11–15, 24–25 and Tables 3 and 5: logit-lens tables of the spanning sets (FF1's
//! inputs x_i read by their top token, FF2's VJPs δ_i by their bottom token) for the paper's
//! example edits, and the normalized logit lens beside the plain one.

use backlens_model::Site;
use candle_core::D;
use serde_json::json;

use backlens::{Backlens, CellText, Error, LensOptions, Report, ReportCell};

use crate::{FigureGroup, Needs, Reproduction};

/// One of the paper's example edits.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The prompt.
    pub prompt: &'static str,
    /// The edit target: one token, usually with a leading space.
    pub target: &'static str,
    /// Where the paper shows it, and on which model.
    pub paper: &'static str,
}

/// The paper's example edits, in figure order.
pub const PAPER_EXAMPLES: [Example; 6] = [
    Example { prompt: "Obama grew up in", target: " Paris", paper: "Figure 4a (GPT2-small)" },
    Example { prompt: "Jack Dorsey founded", target: " IBM", paper: "Figure 4b (GPT2-small)" },
    Example {
        prompt: "Lionel Messi plays for",
        target: " Paris",
        paper: "Figures 11, 24 and Tables 3, 5 (GPT2-medium); Figure 15 (Llama2-7B)",
    },
    // The paper's target " BMW" is two SmolLM2 tokens (" BM", "W"); the lens needs one, so we
    // use another car maker.
    Example {
        prompt: "Ipod Nano, developed by",
        target: " Toyota",
        paper: "Figure 12 (GPT2-xl; the paper's target is \" BMW\", two SmolLM2 tokens)",
    },
    Example { prompt: "Pikachu is a type of", target: " music", paper: "Figures 13, 25 (GPT2-xl)" },
    Example { prompt: "Eddy Cue is employed by", target: " BBC", paper: "Figure 14 (Llama2-7B)" },
];

/// Figures 4, 11–15, 24–25 and Tables 3, 5: logit-lens tables of the spanning sets.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "tables",
    covers: "Figures 4, 11-15, 24, 25; Tables 3, 5",
    figures: &[4, 11, 12, 13, 14, 15, 24, 25],
    tables: &[3, 5],
    appendices: &[],
    needs: Needs::Model,
    run: |inputs| tables(inputs.backlens),
};

const PAPER: &str = "Figure 4: \"Across most layers, LL reveals that the gradients represent the embedding of \
'Paris'\"; in the top layers \"the only meaningful updates are for the token 'Paris'\"; (b) \"most gradients \
correspond to the embedding of 'IBM'\". Figures 13-15: the top tokens of the last token's δ_n show the model's \
original answer (\"Pokémon\", \"Apple\", \"Barcelona\"), which the update subtracts, while the target is at the \
bottom (for Llama2-7B second or third, after the empty token). FF1's x_i tables look like the forward logit lens. \
Appendix H: the normalized logit lens shows more target-related tokens on GPT-2 (LayerNorm with a bias).";

/// What one example shows, from its plain-lens report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExampleSummary {
    /// The example's prompt.
    pub prompt: String,
    /// The example's edit target.
    pub target: String,
    /// The model's answer before the edit.
    pub answer: String,
    /// Layers where the target is the least likely token of LL(δ_n).
    pub target_bottom_layers: Vec<usize>,
    /// Layers where the answer is the most likely token of LL(δ_n).
    pub answer_top_layers: Vec<usize>,
    /// The plain and the normalized logit lens of the same trace, compared cell by cell.
    pub normalized: LensAgreement,
}

/// How two reports of one trace (plain and normalized lens) agree, cell by cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LensAgreement {
    /// Cells compared (every layer, token and site).
    pub cells: usize,
    /// Cells with identical top-k and bottom-k tokens.
    pub same_top_bottom: usize,
    /// Cells with the identical target rank.
    pub same_target_rank: usize,
    /// The largest difference of a target rank. Mathematically 0 under a bias-free RMSNorm;
    /// in f32, a target whose logit ties another token's within rounding can move by one.
    pub max_rank_difference: usize,
}

/// Compares two reports of the same trace cell by cell.
pub fn lens_agreement(a: &Report, b: &Report) -> LensAgreement {
    let mut agreement = LensAgreement { cells: 0, same_top_bottom: 0, same_target_rank: 0, max_rank_difference: 0 };
    for (site, grid) in &a.sites {
        for (row_a, row_b) in grid.iter().zip(&b.sites[site]) {
            for (ca, cb) in row_a.iter().zip(row_b) {
                agreement.cells += 1;
                agreement.same_top_bottom += (ca.top == cb.top && ca.bottom == cb.bottom) as usize;
                agreement.same_target_rank += (ca.target_rank == cb.target_rank) as usize;
                let difference = match (ca.target_rank, cb.target_rank) {
                    (Some(x), Some(y)) => x.abs_diff(y),
                    (None, None) => 0,
                    _ => usize::MAX,
                };
                agreement.max_rank_difference = agreement.max_rank_difference.max(difference);
            }
        }
    }
    agreement
}

/// The plain and the normalized lens reports of one example, from one trace, and its
/// summary.
pub fn example_reports(bl: &Backlens, example: &Example) -> Result<(Report, Report, ExampleSummary), Error> {
    let options = LensOptions::default();
    let trace = bl.trace(example.prompt, example.target, &options)?;
    let plain = bl.report(example.prompt, example.target, &trace, &options)?;
    let normalized = bl.report(example.prompt, example.target, &trace, &LensOptions { normalize: true, ..options })?;
    let answer_id = trace.logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
    let last = plain.tokens.len() - 1;
    let vjps = plain.site(&Site::MLP_DOWN_VJP.to_string())?;
    let layers_where = |pick: &dyn Fn(&ReportCell) -> bool| -> Vec<usize> {
        (0..vjps.len()).filter(|&l| pick(&vjps[l][last])).collect()
    };
    let summary = ExampleSummary {
        prompt: example.prompt.into(),
        target: example.target.into(),
        answer: bl.token_text(answer_id),
        target_bottom_layers: layers_where(&|c| c.bottom.first() == Some(&plain.target_id)),
        answer_top_layers: layers_where(&|c| c.top.first() == Some(&answer_id)),
        normalized: lens_agreement(&plain, &normalized),
    };
    Ok((plain, normalized, summary))
}

/// Figures 4, 11-15, 24-25 and Tables 3, 5: the lens tables of [`PAPER_EXAMPLES`].
pub fn tables(bl: &Backlens) -> Result<Reproduction, Error> {
    let mut pictures = Vec::new();
    let mut summaries = Vec::new();
    for (i, example) in PAPER_EXAMPLES.iter().enumerate() {
        let (plain, _, summary) = example_reports(bl, example)?;
        let stem = format!("example{}", i + 1);
        pictures.push((format!("{stem}-ff1-top"), bl.figure(&plain, Site::MLP_UP_INPUT, CellText::Top)?.into()));
        pictures.push((format!("{stem}-ff2-bottom"), bl.figure(&plain, Site::MLP_DOWN_VJP, CellText::Bottom)?.into()));
        pictures.push((
            format!("{stem}-ff2-top-bottom"),
            bl.figure(&plain, Site::MLP_DOWN_VJP, CellText::TopBottom)?.into(),
        ));
        summaries.push(summary);
    }
    let n_layers = bl.model().n_layers();
    let lines: Vec<String> = summaries
        .iter()
        .map(|s| {
            format!(
                "{:?} → {:?} (model answers {:?}): target at the bottom of δ_n at {}/{n_layers} layers, answer at the top of δ_n at {}/{n_layers} layers",
                s.prompt,
                s.target,
                s.answer,
                s.target_bottom_layers.len(),
                s.answer_top_layers.len()
            )
        })
        .collect();
    let total = summaries.iter().fold(
        LensAgreement { cells: 0, same_top_bottom: 0, same_target_rank: 0, max_rank_difference: 0 },
        |t, s| LensAgreement {
            cells: t.cells + s.normalized.cells,
            same_top_bottom: t.same_top_bottom + s.normalized.same_top_bottom,
            same_target_rank: t.same_target_rank + s.normalized.same_target_rank,
            max_rank_difference: t.max_rank_difference.max(s.normalized.max_rank_difference),
        },
    );
    let ours = format!(
        "{}: {}. Normalized logit lens (Figures 24-25): of {} cells (plain vs normalized, same trace), {} have \
identical top-5 and bottom-5 tokens and {} the identical target rank; the largest target-rank difference is {} \
(a bias-free RMSNorm makes the rankings identical in exact arithmetic; in f32 a target tied with another \
token's logit within rounding can move by one).",
        bl.model().name(),
        lines.join("; "),
        total.cells,
        total.same_top_bottom,
        total.same_target_rank,
        total.max_rank_difference,
    );
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures,
        numbers: json!({ "model": bl.model().name(), "examples": summaries }),
    })
}
