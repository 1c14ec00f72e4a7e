//! The evcxr display hook exists and runs under the `evcxr` feature
//! (`cargo test -p backlens-plot --features evcxr`).
#![cfg(feature = "evcxr")]

use backlens_plot::{Cell, Heatmap, LineChart, Picture, Series, TokenTable};

#[test]
fn evcxr_display_runs() {
    let t = TokenTable {
        title: "t".into(),
        row_labels: vec!["0".into()],
        row_caption: "layer".into(),
        col_labels: vec!["x".into()],
        cells: vec![vec![Cell::new("y", 1.0)]],
        value_label: "v".into(),
    };
    t.evcxr_display();
    TokenTable::default().evcxr_display(); // invalid: prints the error, no panic
}

#[test]
fn evcxr_display_runs_for_every_kind() {
    let heatmap = Heatmap {
        row_labels: vec!["0".into()],
        col_labels: vec!["x".into()],
        values: vec![vec![f32::NAN]],
        ..Heatmap::default()
    };
    heatmap.evcxr_display();
    let chart = LineChart {
        series: vec![Series { name: "s".into(), points: vec![(0.0, 1.0), (1.0, 2.0)] }],
        ..LineChart::default()
    };
    chart.evcxr_display();
    Picture::from(chart).evcxr_display();
    Heatmap::default().evcxr_display(); // invalid: prints the error, no panic
    Picture::from(LineChart::default()).evcxr_display();
}
