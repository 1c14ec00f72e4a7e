//! The crate's error type.

use std::path::PathBuf;

/// Why a table could not be validated, rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The table has no rows or no columns; there is nothing to draw.
    #[error("token table is empty ({rows} rows, {cols} columns); it needs at least one of each")]
    Empty {
        /// Number of rows of cells.
        rows: usize,
        /// Number of column labels.
        cols: usize,
    },
    /// The number of row labels differs from the number of rows of cells.
    #[error("token table has {labels} row labels but {rows} rows of cells")]
    RowLabelCount {
        /// Number of row labels.
        labels: usize,
        /// Number of rows of cells.
        rows: usize,
    },
    /// A row has a different number of cells than there are column labels.
    #[error("row {row} of the token table has {len} cells but there are {expected} column labels")]
    RaggedRow {
        /// Index of the offending row (0 = top row).
        row: usize,
        /// Number of cells in that row.
        len: usize,
        /// Number of column labels.
        expected: usize,
    },
    /// A cell value is NaN, infinite or negative; the colour scale needs finite values >= 0.
    #[error(
        "cell ({row}, {col}) of the token table has value {value}; values must be finite and >= 0"
    )]
    InvalidValue {
        /// Row of the cell (0 = top row).
        row: usize,
        /// Column of the cell.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// The picture would be too large to render (usually extremely long labels or huge tables).
    #[error(
        "token table picture would be {width}x{height} pixels, over the limit of {limit} pixels"
    )]
    TooLarge {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// Largest allowed width x height.
        limit: u64,
    },
    /// A PNG scale outside 0.25..=8 (or not a number).
    #[error("PNG scale {0} is outside the supported range 0.25 to 8")]
    InvalidScale(f64),
    /// The bundled font could not be loaded or measured.
    #[error("bundled font: {0}")]
    Font(String),
    /// plotters failed while drawing.
    #[error("drawing the token table failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("encoding the token table as PNG failed: {0}")]
    Png(String),
    /// Writing the output file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}
