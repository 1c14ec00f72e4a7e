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
    /// An edit's new weight holds NaN or infinite entries (a non-finite or far too large step
    /// size). Reported by [`EditGuard::apply`](crate::EditGuard::apply) before any weight is
    /// replaced, so a broken matrix is never applied, evaluated or saved.
    #[error("the edited weight layers.{layer}.{module}.weight has {count} NaN or infinite entries: the edit's step size is not finite or far too large; lower the method's step setting (--eta, --sgd-lr, --adam-lr or --ft-lr, whichever it uses)")]
    NonFiniteWeight {
        /// The layer of the matrix.
        layer: usize,
        /// The module's stable name (e.g. `mlp.down`).
        module: &'static str,
        /// How many entries are NaN or infinite.
        count: usize,
    },
    /// A setting out of range or inconsistent (unknown method name, wrong layer, …).
    #[error("invalid setting: {0}")]
    Setting(String),
}

/// Result with [`EditError`].
pub type Result<T> = std::result::Result<T, EditError>;
