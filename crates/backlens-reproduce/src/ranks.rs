//! Figure 3, Lemma 4.1 and Appendix A: the rank of each linear layer's gradient equals the
//! prompt length n, except in the last layer, where only the last token's VJP is non-zero.

use std::collections::BTreeMap;

use backlens_plot::{LineChart, ReferenceLine, Series};
use serde_json::json;

use super::aggregate::normalized_layer;
use super::sweep::Sweep;
use crate::{FigureGroup, Needs, Reproduction};
use backlens::Error;

/// The paper's threshold: "all layers ... exhibit the above equality more than 98.5% of the time".
pub const PAPER_THRESHOLD: f64 = 98.5;

/// Figure 3, Lemma 4.1 and Appendix A: % of prompts whose gradient rank equals the prompt length, per layer.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "gradient-rank",
    covers: "Figure 3, Lemma 4.1, Appendix A",
    figures: &[3],
    tables: &[],
    appendices: &[],
    needs: Needs::Sweep,
    run: |inputs| gradient_rank(inputs.sweep(&GROUP)?),
};

const PAPER: &str = "Figure 3: the rank of FF1's gradient equals the prompt length n for more than 98.5% of \
the 100 CounterFact prompts at every layer except the last, of every model; at the last layer the MLP \
gradients have rank 1 (Appendix A: only the last token's VJP is non-zero there). Once in a few dozen \
examples the rank drops by one or two.";

/// Per module, the percentage of prompts whose gradient rank equals n at each layer.
fn percent_full_rank(
    sweep: &Sweep,
    ranks: impl Fn(&super::PromptStats) -> &BTreeMap<String, Vec<usize>>,
) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let total = sweep.prompts.len().max(1) as f64;
    for prompt in &sweep.prompts {
        let n = prompt.tokens.len();
        for (module, per_layer) in ranks(prompt) {
            let row = out.entry(module.clone()).or_insert_with(|| vec![0.0; per_layer.len()]);
            for (cell, &rank) in row.iter_mut().zip(per_layer) {
                *cell += (rank == n) as u8 as f64 * 100.0 / total;
            }
        }
    }
    out
}

/// Per module, the percentage of prompts whose last-layer gradient has rank exactly 1.
fn percent_rank_one_last_layer(sweep: &Sweep) -> BTreeMap<String, f64> {
    let total = sweep.prompts.len().max(1) as f64;
    let mut out = BTreeMap::new();
    for prompt in &sweep.prompts {
        for (module, per_layer) in &prompt.gradient_rank {
            *out.entry(module.clone()).or_insert(0.0) += (per_layer.last() == Some(&1)) as u8 as f64 * 100.0 / total;
        }
    }
    out
}

fn chart(sweep: &Sweep, percent: &BTreeMap<String, Vec<f64>>, tolerance: &str) -> LineChart {
    LineChart {
        title: format!("% of {} prompts with rank(dL/dW) = n ({}, {tolerance})", sweep.prompts.len(), sweep.model),
        x_label: "normalized layer".into(),
        y_label: "% prompts with rank = n".into(),
        series: percent
            .iter()
            .map(|(module, row)| Series {
                name: module.clone(),
                points: row.iter().enumerate().map(|(l, &p)| (normalized_layer(l, sweep.n_layers), p)).collect(),
            })
            .collect(),
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 100.0)),
        reference_lines: vec![ReferenceLine { y: PAPER_THRESHOLD, label: "paper: 98.5%".into() }],
    }
}

/// Figure 3, Lemma 4.1 and Appendix A from a sweep: % of prompts whose gradient rank is n.
pub fn gradient_rank(sweep: &Sweep) -> Result<Reproduction, Error> {
    let default = percent_full_rank(sweep, |p| &p.gradient_rank);
    let relative = percent_full_rank(sweep, |p| &p.gradient_rank_relative);
    let rank_one = percent_rank_one_last_layer(sweep);
    // Appendix A: the last layer's MLP VJPs are exactly zero for every token but the last.
    let last = sweep.n_layers - 1;
    let zero_vjps = sweep
        .prompts
        .iter()
        .filter(|p| {
            let norms = &p.norms["mlp.down.vjp"][last];
            norms[..norms.len() - 1].iter().all(|&n| n == 0.0) && norms[norms.len() - 1] > 0.0
        })
        .count();
    let below_last: BTreeMap<&String, f64> =
        default.iter().map(|(m, row)| (m, row[..last].iter().copied().fold(f64::INFINITY, f64::min))).collect();
    let per_module: Vec<String> = default
        .keys()
        .map(|m| {
            format!(
                "{m}: rank = n in at least {:.1}% of prompts at every layer below the last, {:.1}% at the last layer (rank 1 there: {:.1}%)",
                below_last[m],
                default[m][last],
                rank_one.get(m).copied().unwrap_or(0.0)
            )
        })
        .collect();
    // The first token's query attends only to itself: its causal softmax has one entry, so the
    // loss does not depend on that query and its VJP is exactly zero (rank ≤ n - 1).
    let first_query_zero = sweep
        .prompts
        .iter()
        .filter_map(|p| p.norms.get("attn.q.vjp"))
        .flat_map(|layers| layers.iter().map(|tokens| tokens[0] == 0.0))
        .fold((0usize, 0usize), |(zero, all), z| (zero + z as usize, all + 1));
    let query_note = if first_query_zero.1 > 0 {
        format!(
            " attn.q (beyond the paper): the first token's query VJP is exactly zero in {} of {} (prompt, layer) \
pairs, because its causal softmax has a single entry, so the query gradient has rank n - 1, not n.",
            first_query_zero.0, first_query_zero.1
        )
    } else {
        String::new()
    };
    let ours = format!(
        "{} on {} prompts (numerical rank, numpy/torch default tolerance): {}. In {}/{} prompts the last layer's \
FF2 VJPs are exactly zero at every token but the last and non-zero there (Appendix A). With a relative \
tolerance of 1e-6 the percentages below the last layer are: {}. {}{query_note}",
        sweep.model,
        sweep.prompts.len(),
        per_module.join("; "),
        zero_vjps,
        sweep.prompts.len(),
        relative
            .iter()
            .map(|(m, row)| format!("{m} ≥ {:.1}%", row[..last].iter().copied().fold(f64::INFINITY, f64::min)))
            .collect::<Vec<_>>()
            .join(", "),
        if below_last.values().all(|&p| p > PAPER_THRESHOLD) {
            "Every module clears the paper's 98.5% below the last layer, as Lemma 4.1 predicts.".to_string()
        } else {
            format!(
                "Modules below the paper's 98.5% at some layer: {}.",
                below_last
                    .iter()
                    .filter(|(_, &p)| p <= PAPER_THRESHOLD)
                    .map(|(m, _)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures: vec![
            ("fig3-gradient-rank".into(), chart(sweep, &default, "default tolerance").into()),
            ("fig3-gradient-rank-rtol1e-6".into(), chart(sweep, &relative, "tolerance 1e-6·σmax").into()),
        ],
        numbers: json!({
            "model": sweep.model,
            "prompts": sweep.prompts.len(),
            "percent_rank_equals_n": default,
            "percent_rank_equals_n_rtol_1e-6": relative,
            "percent_rank_one_at_last_layer": rank_one,
            "prompts_with_zero_last_layer_vjps_except_last_token": zero_vjps,
            "first_token_query_vjp_zero_pairs": first_query_zero,
        }),
    })
}
