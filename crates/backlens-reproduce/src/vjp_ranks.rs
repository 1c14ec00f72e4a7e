//! Figures 6, 18 and 19: the logit-lens rank of the edit target, and of the model's original
//! answer, in FF2's VJPs δ_i. Ranks are normalized to [0, 1] by V - 1 (1 = least likely).

use backlens_plot::{LineChart, ReferenceLine, Series};
use serde_json::json;

use super::aggregate::{fmt_opt, mean_median, normalized_layer, SegmentTable};
use super::segments::Segment;
use super::sweep::{PromptStats, Sweep};
use crate::{FigureGroup, Needs, Reproduction};
use backlens::Error;

/// Figures 6, 18, 19: lens rank of the target and the original answer in FF2's VJPs.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "vjp-ranks",
    covers: "Figures 6, 18, 19",
    figures: &[6, 18, 19],
    tables: &[],
    appendices: &[],
    needs: Needs::Sweep,
    run: |inputs| vjp_ranks(inputs.sweep(&GROUP)?),
};

const PAPER: &str = "Figure 6 (GPT2-xl): \"Most gradients tend to rank the target token as one of the least \
probable tokens, with the last token consistently ranking it as such\"; the first and last layers degrade \
(near-zero VJPs; the logit lens is weak early). Figure 18: δ_n ranks the target among the most improbable tokens \
along most layers of GPT2-medium, GPT2-xl and Llama2-7B. Figure 19: the original answer's rank in δ_n is \
relatively low (toward the top) in the last layers, \"although not at the lowest possible level\", and changes \
more smoothly than the target's.";

/// `rank / (V - 1)`.
pub fn normalized_rank(rank: Option<usize>, vocab_size: usize) -> Option<f64> {
    rank.map(|r| r as f64 / (vocab_size.max(2) - 1) as f64)
}

/// Mean and median over prompts of a per-layer value of the last token, as two lines.
#[allow(clippy::type_complexity)]
pub(super) fn last_token_lines(
    sweep: &Sweep,
    name: &str,
    value: impl Fn(&PromptStats, usize) -> Option<f64>,
) -> (Vec<Series>, Vec<(Option<f64>, Option<f64>)>) {
    let stats: Vec<_> = (0..sweep.n_layers).map(|l| mean_median(sweep.prompts.iter().map(|p| value(p, l)))).collect();
    let line = |label: &str, pick: fn(&(Option<f64>, Option<f64>)) -> Option<f64>| Series {
        name: format!("{name} ({label})"),
        points: stats
            .iter()
            .enumerate()
            .map(|(l, s)| (normalized_layer(l, sweep.n_layers), pick(s).unwrap_or(f64::NAN)))
            .collect(),
    };
    (vec![line("mean", |s| s.0), line("median", |s| s.1)], stats)
}

pub(super) fn rank_chart(title: String, series: Vec<Series>) -> LineChart {
    LineChart {
        title,
        x_label: "normalized layer".into(),
        y_label: "normalized rank (1 = least likely)".into(),
        series,
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
        reference_lines: vec![ReferenceLine { y: 0.5, label: "chance".into() }],
    }
}

/// Figures 6, 18, 19 from a sweep: lens ranks of the target and the answer in FF2's VJPs.
pub fn vjp_ranks(sweep: &Sweep) -> Result<Reproduction, Error> {
    let v = sweep.vocab_size;
    let last = |p: &PromptStats| p.tokens.len() - 1;
    let by_segment =
        SegmentTable::average(sweep, |p, l| p.vjp_target_rank[l].iter().map(|&r| normalized_rank(r, v)).collect());
    let (target_lines, target_stats) =
        last_token_lines(sweep, "target", |p, l| normalized_rank(p.vjp_target_rank[l][last(p)], v));
    let (answer_lines, answer_stats) =
        last_token_lines(sweep, "original answer", |p, l| normalized_rank(p.vjp_answer_rank[l][last(p)], v));
    let (n_prompts, n_layers) = (sweep.prompts.len(), sweep.n_layers);

    // How often is the target exactly the least likely token of δ_n?
    let bottom_cells = sweep
        .prompts
        .iter()
        .flat_map(|p| p.vjp_target_rank.iter().map(move |row| row[last(p)]))
        .filter(|&r| r == Some(v - 1))
        .count();
    let upper = (2 * n_layers / 3)..n_layers;
    let bottom_upper = sweep
        .prompts
        .iter()
        .flat_map(|p| upper.clone().map(move |l| p.vjp_target_rank[l][last(p)]))
        .filter(|&r| r == Some(v - 1))
        .count();
    let near_bottom_layers = target_stats.iter().filter(|s| s.0.is_some_and(|m| m > 0.99)).count();
    let answer_late = mean_median(
        sweep
            .prompts
            .iter()
            .flat_map(|p| upper.clone().map(move |l| normalized_rank(p.vjp_answer_rank[l][last(p)], v))),
    )
    .0;
    let target_late = mean_median(
        sweep
            .prompts
            .iter()
            .flat_map(|p| upper.clone().map(move |l| normalized_rank(p.vjp_target_rank[l][last(p)], v))),
    )
    .0;
    let segment_means: Vec<String> = by_segment
        .present()
        .map(|s| {
            let (mean, _) = mean_median(by_segment.values[s.index()].iter().copied());
            format!("{} {}", s.label(), fmt_opt(mean, 3))
        })
        .collect();
    let ours = format!(
        "{} on {n_prompts} prompts: the target is exactly the least likely token of LL(δ_n) in {bottom_cells} of {} \
(prompt, layer) cells, {bottom_upper} of {} in the upper third of the layers; the mean normalized rank of the \
target in δ_n exceeds 0.99 at {near_bottom_layers} of {n_layers} layers (first layer {}, last layer {}). Mean \
normalized target rank over layers, by segment: {}. In the upper third, the original answer's mean normalized \
rank in δ_n is {} against the target's {}: the answer sits toward the top (subtracted by gradient descent) but \
less extremely than the target sits at the bottom. Ties: zero VJPs (last layer, tokens before the last) have no \
ranking under RMSNorm and are left out of the averages.",
        sweep.model,
        n_prompts * n_layers,
        n_prompts * upper.len(),
        fmt_opt(target_stats[0].0, 3),
        fmt_opt(target_stats[n_layers - 1].0, 3),
        segment_means.join(", "),
        fmt_opt(answer_late, 3),
        fmt_opt(target_late, 3),
    );
    let title = |what: &str| format!("{what} ({}, {n_prompts} prompts)", sweep.model);
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures: vec![
            (
                "fig6-target-rank-by-segment".into(),
                rank_chart(title("LL rank of the target in FF2's δ_i, by segment"), by_segment.series()).into(),
            ),
            (
                "fig18-target-rank-last-token".into(),
                rank_chart(title("LL rank of the target in δ_n"), target_lines).into(),
            ),
            (
                "fig19-answer-rank-last-token".into(),
                rank_chart(title("LL rank of the original answer in δ_n"), answer_lines).into(),
            ),
        ],
        numbers: json!({
            "model": sweep.model,
            "prompts": n_prompts,
            "vocab_size": v,
            "segments": Segment::ALL.map(|s| s.label()),
            "target_rank_by_segment": by_segment,
            "target_rank_last_token_mean_median": target_stats,
            "answer_rank_last_token_mean_median": answer_stats,
            "cells_with_target_at_bottom": bottom_cells,
        }),
    })
}
