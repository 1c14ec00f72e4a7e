//! Forward pass shift's step size η and how it is read (raw, the paper's, or scale-free).

use crate::error::Result;
use candle_core::{DType, Tensor};
use serde::Serialize;

/// Forward pass shift's step size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Eta {
    /// The paper's `lr`: `W' = W + η e x_nᵀ` (GPT2-xl: 0.24 at layer 35).
    Raw(f64),
    /// `W' = W + η/(|x_n|²|e|²) e x_nᵀ`: the FF2 output's dot product with the target embedding
    /// grows by exactly η, so one setting transfers across layers and models.
    ScaleFree(f64),
}

impl Eta {
    /// The coefficient `c` of `c e x_nᵀ` for an input `x_n` and target embedding `e`.
    ///
    /// # Shapes
    /// - `x_n`: `(d_ff)`; `e`: `(d_model)`
    pub fn coefficient(self, x_n: &Tensor, e: &Tensor) -> Result<f64> {
        Ok(match self {
            Eta::Raw(eta) => eta,
            Eta::ScaleFree(eta) => eta / (sq_norm(x_n)? * sq_norm(e)?),
        })
    }

    /// The value of η.
    pub fn value(self) -> f64 {
        match self {
            Eta::Raw(e) | Eta::ScaleFree(e) => e,
        }
    }

    /// How η is read.
    pub fn kind(self) -> EtaKind {
        match self {
            Eta::Raw(_) => EtaKind::Raw,
            Eta::ScaleFree(_) => EtaKind::ScaleFree,
        }
    }
}

/// How forward pass shift's η is read: an [`Eta`] without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EtaKind {
    /// [`Eta::Raw`]: the paper's lr.
    Raw,
    /// [`Eta::ScaleFree`]: η/(|x_n|²|e|²).
    ScaleFree,
}

impl EtaKind {
    /// The [`Eta`] of this kind with `value`.
    pub fn eta(self, value: f64) -> Eta {
        match self {
            EtaKind::Raw => Eta::Raw(value),
            EtaKind::ScaleFree => Eta::ScaleFree(value),
        }
    }
}

impl std::fmt::Display for EtaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EtaKind::Raw => "raw",
            EtaKind::ScaleFree => "scale-free",
        })
    }
}

impl std::fmt::Display for Eta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eta::Raw(e) => write!(f, "{e} raw"),
            Eta::ScaleFree(e) => write!(f, "{e} scale-free"),
        }
    }
}

/// `|v|²`, accumulated in f64.
///
/// # Shapes
/// - `v`: any shape; returns a scalar
pub fn sq_norm(v: &Tensor) -> Result<f64> {
    Ok(v.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?)
}
