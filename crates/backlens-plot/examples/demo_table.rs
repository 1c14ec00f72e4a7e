//! Writes a synthetic 30-layer x 8-token table to /tmp/backlens-plot-demo.svg and .png.
//!
//! Run with `cargo run -p backlens-plot --example demo_table`. The values are made up (they
//! grow toward the last token and the top layers, as VJP norms typically do); the point is to
//! see the layout at the size of a real SmolLM2-135M table.

use backlens_plot::{readable_token, Cell, PlotError, TokenTable};

fn main() -> Result<(), PlotError> {
    let prompt = ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "Ċ", "âĢĻs", "Ġ<&>"];
    let lens_pieces = [
        "ĠParis",
        "Ġthe",
        "Ġcity",
        "ĠLyon",
        "Ġcapital",
        "ĠFrench",
        "Ġa",
        "Ċ",
        "Ġinternationalization",
        "Ã©",
        "ĠMarseille",
        "Ġ\"",
        "Ġ<",
        "Ġ&",
    ];
    let layers = 30;
    let cols = prompt.len();
    let cells = (0..layers)
        .rev()
        .map(|layer| {
            (0..cols)
                .map(|col| {
                    let piece = lens_pieces[(layer * 7 + col * 3) % lens_pieces.len()];
                    let depth = layer as f32 / (layers - 1) as f32;
                    let pos = (col + 1) as f32 / cols as f32;
                    let wobble = ((layer * 13 + col * 5) % 7) as f32 / 7.0;
                    let value = if layer == layers - 1 && col + 1 < cols {
                        0.0 // only the last token's path reaches the loss after the last attention
                    } else {
                        (pos * pos * (0.3 + depth) + 0.2 * wobble) * 12.5
                    };
                    Cell::new(readable_token(piece, 10), value)
                })
                .collect()
        })
        .collect();
    let table = TokenTable {
        title: "Backward Lens: top token of each FF2 VJP (synthetic data)".into(),
        row_labels: (0..layers).rev().map(|l| l.to_string()).collect(),
        row_caption: "layer".into(),
        col_labels: prompt.iter().map(|p| readable_token(p, 10)).collect(),
        cells,
        value_label: "|δ_i| (FF2 VJP norm)".into(),
    };
    table.write_svg("/tmp/backlens-plot-demo.svg")?;
    table.write_png("/tmp/backlens-plot-demo.png")?;
    let small = TokenTable {
        title: String::new(),
        row_labels: vec!["0".into()],
        row_caption: "layer".into(),
        col_labels: vec!["x".into()],
        cells: vec![vec![Cell::new("y", 1.0)]],
        value_label: "norm".into(),
    };
    small.write_png("/tmp/backlens-plot-demo-1x1.png")?;
    println!("wrote /tmp/backlens-plot-demo.svg, /tmp/backlens-plot-demo.png and /tmp/backlens-plot-demo-1x1.png");
    Ok(())
}
