//! The token table data and its public rendering entry points.

use std::path::Path;

use crate::render::{pixel_size, render_png, render_svg};
use crate::PlotError;

/// Pixels per SVG user unit used by [`TokenTable::to_png`]: twice the SVG size, so that text
/// stays crisp when the PNG is shown scaled to the SVG's size on high-density screens.
pub const PNG_SCALE: f64 = 2.0;

/// Accepted range for the `scale` of [`TokenTable::to_png_with_scale`]; outside it text is
/// either unreadable or the picture needlessly huge.
const SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.25..=8.0;

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
        Self {
            text: text.into(),
            value,
        }
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
            return Err(PlotError::RowLabelCount {
                labels: self.row_labels.len(),
                rows,
            });
        }
        for (row, cells) in self.cells.iter().enumerate() {
            if cells.len() != cols {
                return Err(PlotError::RaggedRow {
                    row,
                    len: cells.len(),
                    expected: cols,
                });
            }
            for (col, cell) in cells.iter().enumerate() {
                if !cell.value.is_finite() || cell.value < 0.0 {
                    return Err(PlotError::InvalidValue {
                        row,
                        col,
                        value: cell.value,
                    });
                }
            }
        }
        if rows == 0 || cols == 0 {
            return Err(PlotError::Empty { rows, cols });
        }
        Ok(())
    }

    /// Width and height in pixels of the picture at `scale` (1.0 for the SVG, [`PNG_SCALE`]
    /// for [`Self::to_png`]).
    pub fn pixel_size(&self, scale: f64) -> Result<(u32, u32), PlotError> {
        self.validate()?;
        check_scale(scale)?;
        pixel_size(self, scale)
    }

    /// Renders the table as a standalone SVG document.
    ///
    /// Text uses `font-family="DejaVu Sans, sans-serif"`; the layout was measured with DejaVu
    /// Sans, and leaves some slack for viewers that substitute another sans-serif font.
    /// As usual in SVG, leading and trailing spaces of cell text are not visible.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        self.validate()?;
        render_svg(self)
    }

    /// Renders the table as encoded PNG bytes at [`PNG_SCALE`] times the SVG size.
    ///
    /// Text is drawn with the bundled DejaVu Sans, so no system fonts are needed.
    pub fn to_png(&self) -> Result<Vec<u8>, PlotError> {
        self.to_png_with_scale(PNG_SCALE)
    }

    /// Renders the table as encoded PNG bytes at `scale` pixels per SVG unit (0.25 to 8).
    pub fn to_png_with_scale(&self, scale: f64) -> Result<Vec<u8>, PlotError> {
        self.validate()?;
        check_scale(scale)?;
        render_png(self, scale)
    }

    /// Writes [`Self::to_svg`] to `path`.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        write(path.as_ref(), self.to_svg()?.as_bytes())
    }

    /// Writes [`Self::to_png`] to `path`.
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        write(path.as_ref(), &self.to_png()?)
    }

    /// Shows the table in the evcxr Jupyter kernel as an SVG image.
    ///
    /// evcxr calls an inherent `evcxr_display` on a cell's value and renders what it prints
    /// between `EVCXR_BEGIN_CONTENT <mime>` and `EVCXR_END_CONTENT`. An invalid table prints
    /// its error as plain text instead of panicking inside the notebook.
    #[cfg(feature = "evcxr")]
    pub fn evcxr_display(&self) {
        println!("{}", self.evcxr_content());
    }

    /// The text [`Self::evcxr_display`] prints, kept separate so it can be tested.
    #[cfg(feature = "evcxr")]
    pub(crate) fn evcxr_content(&self) -> String {
        match self.to_svg() {
            Ok(svg) => format!(
                "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
                svg.trim_end()
            ),
            Err(e) => {
                format!("EVCXR_BEGIN_CONTENT text/plain\nbacklens-plot: {e}\nEVCXR_END_CONTENT")
            }
        }
    }
}

fn check_scale(scale: f64) -> Result<(), PlotError> {
    if SCALE_RANGE.contains(&scale) {
        Ok(())
    } else {
        Err(PlotError::InvalidScale(scale))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    std::fs::write(path, bytes).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(all(test, feature = "evcxr"))]
mod tests {
    use super::*;

    #[test]
    fn evcxr_content_wraps_the_svg() {
        let t = TokenTable {
            title: "t".into(),
            row_labels: vec!["0".into()],
            col_labels: vec!["x".into()],
            cells: vec![vec![Cell::new("y", 1.0)]],
            value_label: "v".into(),
        };
        let out = t.evcxr_content();
        assert!(
            out.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg "),
            "{out}"
        );
        assert!(out.ends_with("</svg>\nEVCXR_END_CONTENT"), "{out}");

        let err = TokenTable::default().evcxr_content();
        assert!(err.starts_with("EVCXR_BEGIN_CONTENT text/plain\n"), "{err}");
        assert!(err.ends_with("\nEVCXR_END_CONTENT"));
    }
}
