//! Figures 5, 16 and 17: where the update happens. Mean |δ_i| per layer and prompt segment for
//! every VJP site, and the mean |x_i| of the inputs beside it.

use backlens_model::{Kind, Site};
use serde_json::json;

use super::aggregate::{fmt_opt, SegmentTable};
use super::segments::Segment;
use super::sweep::Sweep;
use crate::{FigureGroup, Needs, Reproduction};
use backlens::Error;

/// Figures 5, 16, 17: mean VJP and input norms per layer and prompt segment.
pub(crate) static GROUP: FigureGroup = FigureGroup {
    name: "norms",
    covers: "Figures 5, 16, 17",
    figures: &[5, 16, 17],
    tables: &[],
    appendices: &[],
    needs: Needs::Sweep,
    run: |inputs| norms(inputs.sweep(&GROUP)?),
};

const PAPER: &str = "Figure 5 (GPT2-xl, FF2 VJPs): \"predominant updates occur in two main areas: (1) by the \
subject's tokens in the initial layers, and (2) by the last prompt's token around the second quarter of the \
layers. The majority of other tokens exhibit a norm close to zero throughout the layers.\" Figure 16: the same \
pattern for every sub-module (first quarter by the last subject token, middle of the layers by the last token). \
Figure 17: the x_i norms show no correlation with Figure 16.";

/// The mean norm table of `site`.
pub fn norm_table(sweep: &Sweep, site: &str) -> SegmentTable {
    SegmentTable::average(sweep, |p, layer| p.norms[site][layer].iter().map(|&n| Some(n as f64)).collect())
}

/// Pearson correlation of two equally shaped tables over the cells both have.
fn correlation(a: &SegmentTable, b: &SegmentTable) -> Option<f64> {
    let pairs: Vec<(f64, f64)> =
        a.values.iter().flatten().zip(b.values.iter().flatten()).filter_map(|(x, y)| Some(((*x)?, (*y)?))).collect();
    let n = pairs.len() as f64;
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let (vx, vy): (f64, f64) =
        (pairs.iter().map(|p| (p.0 - mx).powi(2)).sum(), pairs.iter().map(|p| (p.1 - my).powi(2)).sum());
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

/// The layer where `segment`'s mean norm peaks, and the peak.
fn peak(table: &SegmentTable, segment: Segment) -> Option<(usize, f64)> {
    table.values[segment.index()]
        .iter()
        .enumerate()
        .filter_map(|(l, v)| Some((l, (*v)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Figures 5, 16, 17 from a sweep: mean norms by layer and prompt segment.
pub fn norms(sweep: &Sweep) -> Result<Reproduction, Error> {
    let first = sweep.prompts.first().ok_or_else(|| Error::Input("the sweep has no prompts".into()))?;
    let vjp_sites: Vec<String> = Site::all()
        .filter(|s| s.kind == Kind::Vjp && first.norms.contains_key(&s.to_string()))
        .map(|s| s.to_string())
        .collect();
    let input_sites = ["mlp.up.input", "mlp.down.input"].into_iter().filter(|s| first.norms.contains_key(*s));
    let ff2 = norm_table(sweep, "mlp.down.vjp");
    let ff1_inputs = norm_table(sweep, "mlp.up.input");
    let title = |site: &str, what: &str| {
        format!("mean |{what}| of {site} by layer and segment ({}, {} prompts)", sweep.model, sweep.prompts.len())
    };

    let mut pictures =
        vec![("fig5-mlp.down.vjp".to_string(), ff2.heatmap(title("mlp.down.vjp", "δ_i"), "mean |δ_i|".into()).into())];
    let mut tables = serde_json::Map::new();
    for site in &vjp_sites {
        let table = norm_table(sweep, site);
        if site != "mlp.down.vjp" {
            pictures.push((format!("fig16-{site}"), table.heatmap(title(site, "δ_i"), "mean |δ_i|".into()).into()));
        }
        tables.insert(site.clone(), json!(table));
    }
    for site in input_sites {
        let table = norm_table(sweep, site);
        pictures.push((format!("fig17-{site}"), table.heatmap(title(site, "x_i"), "mean |x_i|".into()).into()));
        tables.insert(site.to_string(), json!(table));
    }

    let quarter = |l: usize| 1 + 4 * l / sweep.n_layers;
    let describe = |segment: Segment| match peak(&ff2, segment) {
        Some((l, v)) => format!("{} peaks at layer {l} (quarter {}) with {v:.3}", segment.label(), quarter(l)),
        None => format!("{}: no prompt has this segment", segment.label()),
    };
    let peaks: Vec<String> = ff2.present().map(describe).collect();
    let (max_segment, max_layer, max_value) = ff2
        .present()
        .flat_map(|s| ff2.values[s.index()].iter().enumerate().filter_map(move |(l, v)| Some((s, l, (*v)?))))
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .ok_or_else(|| Error::Input("no norms in the sweep".into()))?;
    let corr = correlation(&ff2, &ff1_inputs);
    // Which segment carries the largest mean |δ_i| at each layer, as runs of layers.
    let dominant: Vec<Segment> = (0..sweep.n_layers)
        .map(|l| {
            ff2.present()
                .filter_map(|s| Some((s, ff2.get(s, l)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(Segment::Last, |(s, _)| s)
        })
        .collect();
    let mut runs: Vec<(Segment, usize, usize)> = Vec::new();
    for (l, &s) in dominant.iter().enumerate() {
        match runs.last_mut() {
            Some((last, _, end)) if *last == s => *end = l,
            _ => runs.push((s, l, l)),
        }
    }
    let runs_text: Vec<String> = runs
        .iter()
        .map(
            |(s, a, b)| {
                if a == b {
                    format!("layer {a}: {}", s.label())
                } else {
                    format!("layers {a}-{b}: {}", s.label())
                }
            },
        )
        .collect();
    // Each layer's column divided by its largest segment: where the update goes within a layer,
    // independent of how the gradient's scale changes with depth.
    let mut relative = ff2.clone();
    for l in 0..sweep.n_layers {
        let max = ff2.present().filter_map(|s| ff2.get(s, l)).fold(0.0f64, f64::max);
        for row in relative.values.iter_mut() {
            if let Some(v) = row[l].as_mut() {
                *v = if max > 0.0 { *v / max } else { 0.0 };
            }
        }
    }
    pictures.insert(
        1,
        (
            "fig5-mlp.down.vjp-per-layer".to_string(),
            relative
                .heatmap(
                    title("mlp.down.vjp", "δ_i") + ", each layer scaled to its largest segment",
                    "mean |δ_i| / layer max".into(),
                )
                .into(),
        ),
    );
    let ours = format!(
        "{} on {} prompts, FF2 (mlp.down) VJP norms: the largest mean norm is at the {} segment, layer {max_layer} \
(quarter {}, {max_value:.3}). Per segment: {}. The correlation between the x_i norm map (mlp.up.input) and the \
δ_i norm map over (segment, layer) cells is {} (the paper reports none). The segment with the largest mean |δ_i| \
per layer: {}.",
        sweep.model,
        sweep.prompts.len(),
        max_segment.label(),
        quarter(max_layer),
        peaks.join("; "),
        fmt_opt(corr, 2),
        runs_text.join("; "),
    );
    Ok(Reproduction {
        group: &GROUP,
        paper: PAPER.into(),
        ours,
        pictures,
        numbers: json!({
            "model": sweep.model,
            "prompts": sweep.prompts.len(),
            "segments": super::segments::Segment::ALL.map(|s| s.label()),
            "mean_norm_by_site": tables,
            "correlation_input_norms_vs_ff2_vjp_norms": corr,
            "dominant_segment_by_layer": dominant.iter().map(|s| s.label()).collect::<Vec<_>>(),
        }),
    })
}
