//! The crate's error type.

use std::path::PathBuf;

/// Why a figure could not be validated, rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// A table or heatmap has no rows or no columns; there is nothing to draw.
    #[error("the figure is empty ({rows} rows, {cols} columns); it needs at least one of each")]
    Empty {
        /// Number of rows of cells.
        rows: usize,
        /// Number of column labels.
        cols: usize,
    },
    /// The number of row labels differs from the number of rows of cells.
    #[error("the figure has {labels} row labels but {rows} rows of cells")]
    RowLabelCount {
        /// Number of row labels.
        labels: usize,
        /// Number of rows of cells.
        rows: usize,
    },
    /// A row has a different number of cells than there are column labels.
    #[error("row {row} has {len} cells but there are {expected} column labels")]
    RaggedRow {
        /// Index of the offending row (0 = top row).
        row: usize,
        /// Number of cells in that row.
        len: usize,
        /// Number of column labels.
        expected: usize,
    },
    /// A token-table cell value is NaN, infinite or negative; the table's colour scale needs
    /// finite values >= 0.
    #[error("cell ({row}, {col}) of the token table has value {value}; values must be finite and >= 0")]
    InvalidValue {
        /// Row of the cell (0 = top row).
        row: usize,
        /// Column of the cell.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A heatmap value is infinite; heatmap values must be finite, or NaN for "no value".
    #[error("cell ({row}, {col}) of the heatmap is {value}; values must be finite, or NaN for no value")]
    InfiniteValue {
        /// Row of the cell (0 = top row).
        row: usize,
        /// Column of the cell.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A colour or axis range is not finite with `min < max`, or a diverging colour range does
    /// not contain 0 strictly inside.
    #[error("invalid {what} ({min}, {max}): {requirement}")]
    InvalidRange {
        /// Which range: "colour range", "x range" or "y range".
        what: &'static str,
        /// Lower end as given.
        min: f64,
        /// Upper end as given.
        max: f64,
        /// What the range must satisfy.
        requirement: &'static str,
    },
    /// A line-chart point has a non-finite x or an infinite y (a NaN y is a gap and allowed).
    #[error("point {index} of series {series} is ({x}, {y}); x must be finite and y finite or NaN (a gap)")]
    InvalidPoint {
        /// Index of the series in `LineChart::series`.
        series: usize,
        /// Index of the point in the series.
        index: usize,
        /// The point's x.
        x: f64,
        /// The point's y.
        y: f64,
    },
    /// A reference line's `y` is not finite.
    #[error("reference line {index} is at y = {y}; it must be finite")]
    InvalidReferenceLine {
        /// Index in `LineChart::reference_lines`.
        index: usize,
        /// The offending y.
        y: f64,
    },
    /// A line chart has no point with a finite y in any series; there is nothing to draw.
    #[error("the line chart has no point with a finite y; there is nothing to draw")]
    NoData,
    /// The picture would be too large to render (usually extremely long labels or huge tables).
    #[error("the picture would be {width}x{height} pixels, over the limit of {limit} pixels")]
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
    /// `write` was given a path whose extension is neither `.svg` nor `.png`.
    #[error("cannot tell the format of {}: the file name must end in .svg or .png", path.display())]
    UnknownFormat {
        /// The path as given.
        path: PathBuf,
    },
    /// The bundled font could not be loaded or measured.
    #[error("bundled font: {0}")]
    Font(String),
    /// plotters failed while drawing.
    #[error("drawing the picture failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("encoding the picture as PNG failed: {0}")]
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
