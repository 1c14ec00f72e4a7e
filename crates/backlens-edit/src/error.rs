//! Errors of editing and evaluation.

/// Everything that can go wrong while computing, applying or evaluating an edit.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Model(#[from] backlens_model::ModelError),
    #[error(transparent)]
    Algebra(#[from] backlens_algebra::AlgebraError),
    #[error(transparent)]
    Data(#[from] backlens_data::DataError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("invalid edit request: {0}")]
    Request(String),
    #[error("invalid setting: {0}")]
    Setting(String),
}

/// Result with [`EditError`].
pub type Result<T> = std::result::Result<T, EditError>;
