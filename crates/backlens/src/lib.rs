//! The Backward Lens (Katz, Belinkov, Geva, Wolf, EMNLP 2024) on real language models.
//!
//! One backward pass of `L = -log p(target | prompt)` gives every linear layer a gradient
//! `dL/dW = Σ_i δ_i x_iᵀ` of rank ≤ n. This crate projects the d_model-sized vectors of those
//! spans, FF1's inputs x_i and FF2's VJPs δ_i, to the vocabulary with the logit lens, and renders
//! the paper's Figure 4 tables.
//!
//! ```no_run
//! use backlens::{Backlens, LensOptions};
//! let bl = Backlens::load_default()?;                       // SmolLM2-135M-Instruct, fetched once
//! let report = bl.analyze("Lionel Messi plays for", " Paris", &LensOptions::default())?;
//! let cell = &report.sites["mlp.down.vjp"][20][report.tokens.len() - 1];
//! println!("rank of ' Paris' in LL(δ_n) at layer 20: {:?}", cell.target_rank);
//! # Ok::<(), backlens::Error>(())
//! ```
//!
//! The crates underneath can be used on their own: [`model`] (hooks and traces), [`algebra`]
//! (low-rank gradients), [`lens`] (vocabulary projection), [`plot`] (token tables).

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod analysis;
mod display;
pub mod editing;
mod error;
mod figure;
mod spec;
mod terminal;

pub use analysis::{Backlens, LensOptions, Report, ReportCell};
pub use backlens_algebra as algebra;
pub use backlens_data as data;
pub use backlens_edit as edit;
pub use backlens_hub as hub;
pub use backlens_lens as lens;
pub use backlens_model as model;
pub use backlens_plot as plot;
pub use display::{LayerTable, LayerTableRow};
pub use error::Error;
pub use figure::{CellText, CELL_CHARS};
pub use spec::ModelSpec;

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
