//! Writes synthetic heatmaps and a line chart to /tmp/backlens-plot-*.png (and .svg).
//!
//! Run with `cargo run -p backlens-plot --example demo_figures`. The data are made up; the
//! point is to see the layouts at the sizes the paper's figures need: a 5 x 30 map with token
//! columns, an annotated 30 x 30 cosine matrix, a 6 x 1536 map (one column per neuron), a tall
//! 1536 x 6 one, and a chart with several series, a gap and reference lines.

use backlens_plot::{ColorScale, Heatmap, LineChart, Picture, PlotError, ReferenceLine, Series};

fn wave(a: usize, b: usize) -> f32 {
    ((a as f32 * 0.37).sin() * (b as f32 * 0.23).cos()).abs() * (1.0 + a as f32 / 10.0)
}

fn main() -> Result<(), PlotError> {
    let tokens = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " has", " the"];
    let small = Heatmap {
        title: "|δ| per layer and token (synthetic)".into(),
        row_labels: ["subject first", "subject last", "further", "last", "all"].map(String::from).to_vec(),
        col_labels: (0..30).map(|c| tokens[c % tokens.len()].to_owned()).collect(),
        values: (0..5)
            .map(|r| (0..30).map(|c| if r == 2 && c % 7 == 3 { f32::NAN } else { wave(r, c) }).collect())
            .collect(),
        x_label: "prompt token".into(),
        y_label: "segment".into(),
        value_label: "|δ_i| (FF2 VJP norm)".into(),
        scale: ColorScale::Sequential,
        range: None,
        annotate: false,
    };
    let n = 30;
    let cosine = Heatmap {
        title: "cos(δ^i, δ^j) of FF2 (synthetic)".into(),
        row_labels: (0..n).map(|l| l.to_string()).collect(),
        col_labels: (0..n).map(|l| l.to_string()).collect(),
        values: (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let d = (i as f32 - j as f32).abs();
                        (-d / 6.0).exp() - 0.25 * ((i + j) as f32 * 0.3).sin() * (d > 0.0) as u8 as f32
                    })
                    .collect()
            })
            .collect(),
        x_label: "layer j".into(),
        y_label: "layer i".into(),
        value_label: "cosine".into(),
        scale: ColorScale::Diverging,
        range: Some((-1.0, 1.0)),
        annotate: false,
    };
    let annotated = Heatmap {
        title: "annotated 6 x 8".into(),
        row_labels: (0..6).map(|l| l.to_string()).collect(),
        col_labels: (0..8).map(|l| l.to_string()).collect(),
        values: (0..6)
            .map(|i| (0..8).map(|j| if i == j { f32::NAN } else { (i as f32 - j as f32) * 0.123 }).collect())
            .collect(),
        x_label: "x".into(),
        y_label: "y".into(),
        value_label: "difference".into(),
        scale: ColorScale::Diverging,
        range: None,
        annotate: true,
    };
    let wide = Heatmap {
        title: "FF1 activations per neuron (synthetic)".into(),
        row_labels: (0..6).rev().map(|l| format!("layer {l}")).collect(),
        col_labels: (0..1536).map(|c| c.to_string()).collect(),
        values: (0..6)
            .map(|r| (0..1536).map(|c| wave(c % 97, r) * if c % 211 == 0 { 5.0 } else { 1.0 }).collect())
            .collect(),
        x_label: "neuron".into(),
        y_label: "layer".into(),
        value_label: "activation".into(),
        scale: ColorScale::Sequential,
        range: None,
        annotate: false,
    };
    let tall = Heatmap {
        title: "tall".into(),
        row_labels: (0..1536).map(|c| c.to_string()).collect(),
        col_labels: (0..6).map(|l| format!("L{l}")).collect(),
        values: (0..1536).map(|r| (0..6).map(|c| wave(r % 89, c) - 0.8).collect()).collect(),
        x_label: "layer".into(),
        y_label: "neuron".into(),
        value_label: "signed value".into(),
        scale: ColorScale::Diverging,
        range: None,
        annotate: false,
    };
    let segments = Heatmap {
        title: "mean |δ| by prompt segment (synthetic)".into(),
        row_labels: ["subject first", "subject middle", "subject last", "further", "last", "first"]
            .iter()
            .map(|s| format!("{s} (120)"))
            .collect(),
        col_labels: (0..30).map(|l| l.to_string()).collect(),
        values: (0..6)
            .map(|r| (0..30).map(|c| if r == 1 && c < 3 { f32::NAN } else { wave(r + 2, c) }).collect())
            .collect(),
        x_label: "layer".into(),
        y_label: "prompt segment (prompts)".into(),
        value_label: "mean |δ_i|".into(),
        scale: ColorScale::Sequential,
        range: None,
        annotate: false,
    };
    let layers = 30;
    let norm = |l: usize| l as f64 / (layers - 1) as f64;
    let chart = LineChart {
        title: "Normalized rank of the target in δ (synthetic)".into(),
        x_label: "normalized layer".into(),
        y_label: "normalized rank (1 = least likely)".into(),
        series: ["target (mean)", "target (median)", "original answer (mean)", "original answer (median)", "random"]
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                name: name.to_string(),
                points: (0..layers)
                    .map(|l| {
                        let y = if k == 1 && (12..15).contains(&l) {
                            f64::NAN
                        } else {
                            0.5 + (k as f64 - 2.0) * 0.1 * norm(l) + 0.05 * ((l + k) as f64).sin()
                        };
                        (norm(l), y)
                    })
                    .collect(),
            })
            .collect(),
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
        reference_lines: vec![
            ReferenceLine { y: 0.5, label: "chance".into() },
            ReferenceLine { y: 0.985, label: "paper: 98.5%".into() },
        ],
    };
    let pictures: Vec<(&str, Picture)> = vec![
        ("heatmap-small", small.into()),
        ("heatmap-cosine", cosine.into()),
        ("heatmap-segments", segments.into()),
        ("heatmap-annotated", annotated.into()),
        ("heatmap-wide", wide.into()),
        ("heatmap-tall", tall.into()),
        ("lines", chart.into()),
    ];
    for (name, picture) in &pictures {
        for ext in ["svg", "png"] {
            let path = format!("/tmp/backlens-plot-{name}.{ext}");
            picture.write(&path)?;
            println!("wrote {path}");
        }
    }
    Ok(())
}
