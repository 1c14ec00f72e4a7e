//! The token table data and its public rendering entry points.

use crate::render::figure_methods;
use crate::PlotError;

/// One cell of a token table.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Text shown in the cell, already readable (see [`crate::readable_token`]).
    pub text: String,
    /// Non-negative magnitude that the cell's fill colour encodes, such as `|delta_i|`.
    pub value: f32,
}

impl Cell {
    /// A cell showing `text` with colour value `value`.
    pub fn new(text: impl Into<String>, value: f32) -> Self {
        Self { text: text.into(), value }
    }
}

/// A table of tokens over layers and prompt positions, as in Figure 4 of "Backward Lens"
/// (Katz et al., EMNLP 2024).
///
/// Rows are drawn top to bottom in the order given, columns left to right. Each cell shows its
/// text on a fill that runs from white (value 0) to dark red (the table's largest value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenTable {
    /// Title drawn above the table; may be empty.
    pub title: String,
    /// One label per row, top row first, e.g. `["29", "28", ..., "0"]` (the caller orders them).
    pub row_labels: Vec<String>,
    /// Caption of the row-label column, drawn in the header row's corner above the row labels,
    /// e.g. `"layer"` (the paper's token tables) or `"neuron"`; an empty string draws no caption.
    pub row_caption: String,
    /// One label per column, usually the readable prompt tokens.
    pub col_labels: Vec<String>,
    /// Cells indexed `[row][col]`.
    pub cells: Vec<Vec<Cell>>,
    /// Caption of the colour scale, e.g. `"|δ_i| (FF2 VJP norm)"`.
    pub value_label: String,
}

impl TokenTable {
    /// Checks that the table is rectangular, labelled and has finite non-negative values.
    ///
    /// Every rendering method calls this first.
    pub fn validate(&self) -> Result<(), PlotError> {
        let rows = self.cells.len();
        let cols = self.col_labels.len();
        if self.row_labels.len() != rows {
            return Err(PlotError::RowLabelCount { labels: self.row_labels.len(), rows });
        }
        for (row, cells) in self.cells.iter().enumerate() {
            if cells.len() != cols {
                return Err(PlotError::RaggedRow { row, len: cells.len(), expected: cols });
            }
            for (col, cell) in cells.iter().enumerate() {
                if !cell.value.is_finite() || cell.value < 0.0 {
                    return Err(PlotError::InvalidValue { row, col, value: cell.value });
                }
            }
        }
        if rows == 0 || cols == 0 {
            return Err(PlotError::Empty { rows, cols });
        }
        Ok(())
    }
}

figure_methods!(TokenTable, "table");

#[cfg(all(test, feature = "evcxr"))]
mod tests {
    use super::*;

    #[test]
    fn evcxr_content_wraps_the_svg() {
        let t = TokenTable {
            title: "t".into(),
            row_labels: vec!["0".into()],
            row_caption: "layer".into(),
            col_labels: vec!["x".into()],
            cells: vec![vec![Cell::new("y", 1.0)]],
            value_label: "v".into(),
        };
        let out = t.evcxr_content();
        assert!(out.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg "), "{out}");
        assert!(out.ends_with("</svg>\nEVCXR_END_CONTENT"), "{out}");

        let err = TokenTable::default().evcxr_content();
        assert!(err.starts_with("EVCXR_BEGIN_CONTENT text/plain\n"), "{err}");
        assert!(err.ends_with("\nEVCXR_END_CONTENT"));
    }
}
