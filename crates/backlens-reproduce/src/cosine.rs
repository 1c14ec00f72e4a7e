//! Figures 22 and 23 (Appendix G): cosine similarity of the residual (FF2) VJPs across layers,
//! for one edit's tokens and for the last token averaged over the dataset, against the random
//! baseline 1/√d.

use backlens_model::{Site, TraceOptions};
use backlens_plot::{ColorScale, Heatmap, LineChart, ReferenceLine, Series};
use serde_json::json;

use backlens::{Backlens, Error};

use crate::aggregate::fmt_opt;
use crate::segments::{segment_prompt, Segment};
use crate::sweep::{cross_layer_cosine, Sweep};
use crate::{FigureGroup, Needs, Reproduction};

/// An edit whose per-token cross-layer cosines Figure 22 shows.
#[derive(Debug, Clone, Copy)]
pub struct CosineExample {
    /// A template with `{}` where the subject goes.
    pub template: &'static str,
    /// The edited subject.
    pub subject: &'static str,
    /// The edit target: one token, usually with a leading space.
    pub target: &'static str,
}

/// The paper's Figure 22 edit.
pub const FERRARI_EXAMPLE: CosineExample =
    CosineExample { template: "{}, created by", subject: "Ferrari Mondial", target: " Nintendo" };

/// Figures 22, 23: cosine of the residual VJPs across layers.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "cosine",
    covers: "Figures 22, 23",
    figures: &[22, 23],
    tables: &[],
    appendices: &[],
    needs: Needs::ModelAndSweep,
    run: |inputs| cosine(inputs.backlens, inputs.sweep(&GROUP)?),
};

const PAPER: &str = "Appendix G (GPT2-xl): cosine ≈ 0.4 over a sequence of 3-5 blocks for all tokens; for the last \
token averaged over 100 edits, cosine > 0.7 across 10 blocks, and layer 0 vs layer 47 > 0.08, \"relatively high \
compared to random vectors in an embedding space of size 1600\" (Figure 22: \"Ferrari Mondial, created by\" → \
\"Nintendo\"; Figure 23: the average).";

/// Mean of `m[i][i + k]` over i: the similarity of layers k apart.
pub fn mean_at_offset(m: &[Vec<f32>], k: usize) -> Option<f64> {
    let n = m.len();
    (k < n).then(|| (0..n - k).map(|i| m[i][i + k] as f64).sum::<f64>() / (n - k) as f64)
}

fn heatmap(title: String, m: &[Vec<f32>]) -> Heatmap {
    let labels: Vec<String> = (0..m.len()).map(|l| l.to_string()).collect();
    Heatmap {
        title,
        row_labels: labels.clone(),
        col_labels: labels,
        values: m.to_vec(),
        x_label: "layer".into(),
        y_label: "layer".into(),
        value_label: "cosine".into(),
        scale: ColorScale::Diverging,
        range: Some((-1.0, 1.0)),
        annotate: false,
    }
}

/// Figure 22: the (L, L) cross-layer cosine matrices of FF2's VJPs at an example's first
/// subject token, last subject token and last token (labelled by [`Segment`]).
#[allow(clippy::type_complexity)]
pub fn cosine_example(bl: &Backlens, example: &CosineExample) -> Result<Vec<(Segment, Vec<Vec<f32>>)>, Error> {
    let tokenizer = bl.model().tokenizer();
    let (ids, segments) = segment_prompt(tokenizer, example.template, example.subject)?;
    let target = tokenizer.single_token(example.target)?;
    let trace = bl.model().trace(&ids, target, &TraceOptions::only([Site::MLP_DOWN_VJP]))?;
    let mut out = Vec::new();
    for wanted in [Segment::FirstSubject, Segment::LastSubject, Segment::Last] {
        if let Some(token) = segments.iter().position(|&s| s == wanted) {
            out.push((wanted, cross_layer_cosine(bl, &trace, token)?));
        }
    }
    Ok(out)
}

/// The element-wise mean of the prompts' last-token cosine matrices.
pub fn mean_last_token_cosine(sweep: &Sweep) -> Vec<Vec<f32>> {
    let l = sweep.n_layers;
    let mut sum = vec![vec![0.0f64; l]; l];
    for p in &sweep.prompts {
        for (row, prow) in sum.iter_mut().zip(&p.last_token_vjp_cosine) {
            for (s, &c) in row.iter_mut().zip(prow) {
                *s += c as f64;
            }
        }
    }
    let n = sweep.prompts.len().max(1) as f64;
    sum.into_iter().map(|row| row.into_iter().map(|s| (s / n) as f32).collect()).collect()
}

/// Figures 22, 23: cross-layer cosine of the residual VJPs ([`FERRARI_EXAMPLE`] and the sweep).
pub fn cosine(bl: &Backlens, sweep: &Sweep) -> Result<Reproduction, Error> {
    let example = cosine_example(bl, &FERRARI_EXAMPLE)?;
    let mean = mean_last_token_cosine(sweep);
    let l = sweep.n_layers;
    let baseline = 1.0 / (sweep.d_model as f64).sqrt();
    let offsets: Vec<Option<f64>> = (0..l).map(|k| mean_at_offset(&mean, k)).collect();
    let band = |threshold: f64| offsets.iter().skip(1).take_while(|m| m.is_some_and(|m| m > threshold)).count();
    let example_offsets: Vec<(Segment, Vec<Option<f64>>)> =
        example.iter().map(|(s, m)| (*s, (0..l).map(|k| mean_at_offset(m, k)).collect())).collect();
    let ours = format!(
        "{} (d = {}, random baseline 1/√d = {baseline:.3}), last token averaged over {} edits: mean cosine of layers \
1, 2, 3, 5 apart = {}, {}, {}, {}; it stays above 0.7 for {} and above 0.4 for {} layer offsets; layer 0 vs layer \
{} = {:.3}. \"Ferrari Mondial, created by\" → \" Nintendo\", mean cosine of adjacent layers: {}.",
        sweep.model,
        sweep.d_model,
        sweep.prompts.len(),
        fmt_opt(offsets.get(1).copied().flatten(), 2),
        fmt_opt(offsets.get(2).copied().flatten(), 2),
        fmt_opt(offsets.get(3).copied().flatten(), 2),
        fmt_opt(offsets.get(5).copied().flatten(), 2),
        band(0.7),
        band(0.4),
        l - 1,
        mean[0][l - 1],
        example_offsets
            .iter()
            .map(|(s, o)| format!("{} {}", s.label(), fmt_opt(o.get(1).copied().flatten(), 2)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut pictures: Vec<(String, backlens_plot::Picture)> = example
        .iter()
        .map(|(segment, m)| {
            (
                format!("fig22-{}", segment.label().replace(' ', "-")),
                heatmap(
                    format!(
                        "cos(δ^i, δ^j) of FF2, {} token of {:?} → {:?}",
                        segment.label(),
                        FERRARI_EXAMPLE.subject,
                        FERRARI_EXAMPLE.target
                    ),
                    m,
                )
                .into(),
            )
        })
        .collect();
    pictures.push((
        "fig23-last-token-mean".into(),
        heatmap(format!("cos(δ_n^i, δ_n^j) of FF2, mean over {} edits ({})", sweep.prompts.len(), sweep.model), &mean)
            .into(),
    ));
    let mut series = vec![Series {
        name: format!("last token, mean of {} edits", sweep.prompts.len()),
        points: offsets.iter().enumerate().map(|(k, m)| (k as f64, m.unwrap_or(f64::NAN))).collect(),
    }];
    series.extend(example_offsets.iter().map(|(s, o)| Series {
        name: format!("example, {} token", s.label()),
        points: o.iter().enumerate().map(|(k, m)| (k as f64, m.unwrap_or(f64::NAN))).collect(),
    }));
    pictures.push((
        "fig23-cosine-by-layer-distance".into(),
        LineChart {
            title: format!("mean cosine of FF2 VJPs k layers apart ({})", sweep.model),
            x_label: "layer distance k".into(),
            y_label: "mean cosine".into(),
            series,
            x_range: Some((0.0, (l - 1) as f64)),
            y_range: Some((-0.2, 1.0)),
            reference_lines: vec![
                ReferenceLine { y: baseline, label: "random 1/√d".into() },
                ReferenceLine { y: 0.7, label: "paper: 0.7 over 10 blocks".into() },
            ],
        }
        .into(),
    ));
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures,
        numbers: json!({
            "model": sweep.model,
            "prompts": sweep.prompts.len(),
            "random_baseline": baseline,
            "last_token_mean_cosine": mean,
            "last_token_mean_by_offset": offsets,
            "example": example.iter().map(|(s, m)| json!({"segment": s.label(), "cosine": m})).collect::<Vec<_>>(),
        }),
    })
}
