//! The error type of the high-level API: every library error it can meet, plus input errors.

use backlens_lens::LensError;
use backlens_model::ModelError;

/// Errors of the high-level API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Lens(#[from] LensError),
    #[error("site `{site}` cannot be projected: {reason}")]
    Site { site: String, reason: String },
    #[error(transparent)]
    Plot(#[from] backlens_plot::PlotError),
    /// Boxed: hub errors carry several paths and would make every `Result` large.
    #[error(transparent)]
    Hub(Box<backlens_hub::HubError>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Data(#[from] backlens_data::DataError),
    #[error(transparent)]
    Algebra(#[from] backlens_algebra::AlgebraError),
    /// Input the caller can fix: the message says what was wrong and how.
    #[error("{0}")]
    Input(String),
}

impl From<backlens_hub::HubError> for Error {
    fn from(e: backlens_hub::HubError) -> Error {
        Error::Hub(Box::new(e))
    }
}
