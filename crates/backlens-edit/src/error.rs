//! Errors of editing and evaluation.

/// Everything that can go wrong while computing, applying or evaluating an edit.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// From the model (a missing weight, a layer it lacks, a tokenizer error, …).
    #[error(transparent)]
    Model(#[from] backlens_model::ModelError),
    /// From the linear algebra (e.g. a shrinkage outside (0, 1]).
    #[error(transparent)]
    Algebra(#[from] backlens_algebra::AlgebraError),
    /// From reading the dataset.
    #[error(transparent)]
    Data(#[from] backlens_data::DataError),
    /// From a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An edit request the method cannot serve (empty target, missing template, …).
    #[error("invalid edit request: {0}")]
    Request(String),
    /// A setting out of range or inconsistent (unknown method name, wrong layer, …).
    #[error("invalid setting: {0}")]
    Setting(String),
}

/// Result with [`EditError`].
pub type Result<T> = std::result::Result<T, EditError>;
