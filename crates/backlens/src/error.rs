//! The error type of the high-level API: every library error it can meet, plus input errors.

use backlens_lens::LensError;
use backlens_model::ModelError;

/// Errors of the high-level API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading a model, tokenizing, or tracing failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model's final norm and unembedding do not form a logit lens, or projecting vectors
    /// with it failed.
    #[error(transparent)]
    Lens(#[from] LensError),
    /// A site cannot be used here: it is not in the residual-stream basis
    /// ([`Site::in_residual_basis`](backlens_model::Site::in_residual_basis)), the report does not
    /// have it, the layer asked for is out of range, or the report has no site at all.
    #[error("site `{site}` cannot be projected: {reason}")]
    Site {
        /// The site's name, e.g. `mlp.down.vjp` (empty when the report has no site at all).
        site: String,
        /// Why, and what would work instead.
        reason: String,
    },
    /// Rendering a figure failed.
    #[error(transparent)]
    Plot(#[from] backlens_plot::PlotError),
    /// Downloading a model from the Hugging Face Hub, or parsing an `hf:` spec, failed.
    /// Boxed: hub errors carry several paths and would make every `Result` large.
    #[error(transparent)]
    Hub(Box<backlens_hub::HubError>),
    /// A tensor operation failed (dtype, device, shape, or out of memory).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed; the message is the I/O error's.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Loading a CounterFact-format dataset failed.
    #[error(transparent)]
    Data(#[from] backlens_data::DataError),
    /// A low-rank gradient, second-moment or whitening computation failed: inconsistent
    /// shapes, empty or zero input, or a tensor operation.
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
