//! Readable pictures of the backward pass: token tables rendered to SVG and PNG.
//!
//! `backlens-plot` draws the "Figure 4" table of the Backward Lens paper (Katz et al.,
//! EMNLP 2024): one row per layer (top layer on top), one column per prompt token, each cell
//! showing a short token text on a fill whose colour encodes a non-negative value such as the
//! norm of a VJP, from white (0) to dark red (the table's maximum).
//!
//! The crate takes plain data ([`TokenTable`], [`Cell`]) and depends on no model or tensor
//! crate. Text is drawn with a bundled DejaVu Sans, so PNG output works on machines without
//! fonts. [`readable_token`] turns raw byte-level BPE vocabulary pieces into cell text.
//!
//! ```
//! use backlens_plot::{Cell, TokenTable};
//!
//! let table = TokenTable {
//!     title: "Top token of each FF2 VJP".into(),
//!     row_labels: vec!["1".into(), "0".into()],
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
//! With the `evcxr` feature, `TokenTable::evcxr_display` shows the table inline in the evcxr
//! Jupyter kernel.

#![warn(missing_docs)]

mod color;
mod error;
mod render;
mod table;
mod text;
mod token_text;

pub use error::PlotError;
pub use table::{Cell, TokenTable, PNG_SCALE};
pub use token_text::{byte_level_byte, byte_level_char, readable_token};
