//! The evcxr display hook exists and runs under the `evcxr` feature
//! (`cargo test -p backlens-plot --features evcxr`).
#![cfg(feature = "evcxr")]

use backlens_plot::{Cell, TokenTable};

#[test]
fn evcxr_display_runs() {
    let t = TokenTable {
        title: "t".into(),
        row_labels: vec!["0".into()],
        col_labels: vec!["x".into()],
        cells: vec![vec![Cell::new("y", 1.0)]],
        value_label: "v".into(),
    };
    t.evcxr_display();
    TokenTable::default().evcxr_display(); // invalid: prints the error, no panic
}
