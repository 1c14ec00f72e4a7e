//! Readable pictures of the backward pass: token tables, heatmaps and line charts rendered to
//! SVG and PNG.
//!
//! `backlens-plot` draws the figures of the Backward Lens paper (Katz et al., EMNLP 2024) from
//! plain data; it depends on no model or tensor crate. There are three figure kinds:
//!
//! - [`TokenTable`], the paper's "Figure 4": one row per layer (top layer on top), one column
//!   per prompt token, each cell showing a short token text on a fill whose colour encodes a
//!   non-negative value such as the norm of a VJP, from white (0) to dark red (the maximum).
//! - [`Heatmap`]: a grid of values with labelled axes and a colour bar, on a white-to-red
//!   ([`ColorScale::Sequential`]) or blue-white-red ([`ColorScale::Diverging`]) scale; from
//!   small annotated maps to 6 x 1536 ones.
//! - [`LineChart`]: [`Series`] of points with a legend, numeric axes and dashed
//!   [`ReferenceLine`]s such as a chance level.
//!
//! [`Picture`] holds any of them. Every kind has the same methods: `validate`, `pixel_size`,
//! `to_svg`, `to_png`, `to_png_with_scale`, `write_svg`, `write_png`, `write` (format from the
//! extension), and with the `evcxr` feature `evcxr_display`, which shows the figure inline in the
//! evcxr Jupyter kernel. Text is drawn with a bundled DejaVu Sans, so PNG output works on
//! machines without fonts. [`readable_token`] turns raw byte-level BPE vocabulary pieces into
//! cell text.
//!
//! A token table:
//!
//! ```
//! use backlens_plot::{Cell, TokenTable};
//!
//! let table = TokenTable {
//!     title: "Top token of each FF2 VJP".into(),
//!     row_labels: vec!["1".into(), "0".into()],
//!     row_caption: "layer".into(),
//!     col_labels: vec!["The".into(), " capital".into()],
//!     cells: vec![
//!         vec![Cell::new(" Paris", 2.0), Cell::new(" city", 0.5)],
//!         vec![Cell::new(" the", 0.1), Cell::new(" of", 0.0)],
//!     ],
//!     value_label: "|δ_i| (FF2 VJP norm)".into(),
//! };
//! let svg = table.to_svg()?;
//! assert!(svg.contains("Paris"));
//! let png = table.to_png()?;
//! assert!(png.starts_with(b"\x89PNG"));
//! # Ok::<(), backlens_plot::PlotError>(())
//! ```
//!
//! A heatmap of cosines between layers (NaN: no value):
//!
//! ```
//! use backlens_plot::{ColorScale, Heatmap};
//!
//! let map = Heatmap {
//!     title: "cos(δ_i, δ_j)".into(),
//!     row_labels: vec!["0".into(), "1".into()],
//!     col_labels: vec!["0".into(), "1".into()],
//!     values: vec![vec![1.0, -0.3], vec![-0.3, f32::NAN]],
//!     x_label: "layer j".into(),
//!     y_label: "layer i".into(),
//!     value_label: "cosine".into(),
//!     scale: ColorScale::Diverging,
//!     range: Some((-1.0, 1.0)),
//!     annotate: true,
//! };
//! assert!(map.to_svg()?.contains("-0.3"));
//! # Ok::<(), backlens_plot::PlotError>(())
//! ```
//!
//! A line chart with a chance level, written through [`Picture`]:
//!
//! ```
//! use backlens_plot::{LineChart, Picture, ReferenceLine, Series};
//!
//! let chart = LineChart {
//!     title: "Rank of the target token".into(),
//!     x_label: "layer".into(),
//!     y_label: "normalized rank".into(),
//!     series: vec![Series {
//!         name: "mean".into(),
//!         points: vec![(0.0, 0.5), (1.0, 0.7), (2.0, f64::NAN), (3.0, 0.9)],
//!     }],
//!     x_range: None,
//!     y_range: Some((0.0, 1.0)),
//!     reference_lines: vec![ReferenceLine { y: 0.5, label: "chance".into() }],
//! };
//! let picture = Picture::from(chart);
//! assert_eq!(picture.title(), "Rank of the target token");
//! assert!(picture.to_png()?.starts_with(b"\x89PNG"));
//! # Ok::<(), backlens_plot::PlotError>(())
//! ```

#![warn(missing_docs)]
// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod color;
mod error;
mod heatmap;
mod line_chart;
mod picture;
mod render;
mod table;
mod table_draw;
mod text;
mod token_text;

pub use error::PlotError;
pub use heatmap::{ColorScale, Heatmap};
pub use line_chart::{LineChart, ReferenceLine, Series};
pub use picture::Picture;
pub use render::PNG_SCALE;
pub use table::{Cell, TokenTable};
pub use token_text::{byte_level_byte, byte_level_char, readable_token};
