//! Stable names of hook points, e.g. `layers.12.mlp.down.vjp`.
//!
//! A hook point is a layer, a module and a kind of vector. Names round-trip through
//! [`std::fmt::Display`] and [`std::str::FromStr`]; the layer-free part (`mlp.down.vjp`) is a
//! [`Site`], the key of the JSON report.
//!
//! | module      | what it is (Llama names)                      | `input` size | `vjp` size |
//! |-------------|-----------------------------------------------|--------------|------------|
//! | `attn.q`    | `q_proj`                                      | d_model      | n_heads·head_dim |
//! | `attn.k`    | `k_proj`                                      | d_model      | n_kv·head_dim |
//! | `attn.v`    | `v_proj`                                      | d_model      | n_kv·head_dim |
//! | `attn.o`    | `o_proj`                                      | n_heads·head_dim | d_model |
//! | `mlp.gate`  | `gate_proj`                                   | d_model      | d_ff       |
//! | `mlp.up`    | `up_proj` (FF1)                               | d_model      | d_ff       |
//! | `mlp.down`  | `down_proj` (FF2)                             | d_ff         | d_model    |
//! | `block`     | the whole block (`input` = residual before it, `output` = after it, `vjp` = dL/d output) | d_model | d_model |
//!
//! Kinds: `input` is the module's forward input x_i, `output` its forward output, `vjp` the
//! vector-Jacobian product δ_i = dL/d(output) at token i.

use crate::error::{ModelError, Result};
use std::fmt;
use std::str::FromStr;

/// A module of a transformer block whose inputs, outputs and VJPs can be recorded.
///
/// Shapes are per prompt of `T` tokens; `head_dim = d_model / n_heads`. A module's `vjp` has its
/// `output`'s shape and is the gradient TransformerLens (TL) would see at the hook of that
/// output. TL names assume an unprocessed model (`from_pretrained_no_processing`: no folded
/// norm weights, no centering), `L` is the layer, and TL's separate head axis is flattened here
/// (heads side by side). The normed-residual inputs are the norm's output with its gain (and
/// GPT-2's bias) applied: TL's `ln1`/`ln2.hook_normalized` for LayerNorm; TL's RMSNorm places
/// that hook before the gain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    /// The query projection (Llama `q_proj`; GPT-2: the first third of `attn.c_attn`).
    /// `input`: the attention-normed residual, `(T, d_model)` (TL `blocks.L.ln1.hook_normalized`);
    /// `output`: the queries before the rotary embedding, bias included, `(T, n_heads·head_dim)`
    /// (TL `blocks.L.attn.hook_q`).
    AttnQ,
    /// The key projection (Llama `k_proj`; GPT-2: the middle third of `attn.c_attn`).
    /// `input`: as [`Module::AttnQ`]'s, `(T, d_model)`; `output`: the keys before the rotary
    /// embedding, `(T, n_kv_heads·head_dim)` (TL `blocks.L.attn.hook_k`).
    AttnK,
    /// The value projection (Llama `v_proj`; GPT-2: the last third of `attn.c_attn`).
    /// `input`: as [`Module::AttnQ`]'s, `(T, d_model)`; `output`: the values,
    /// `(T, n_kv_heads·head_dim)` (TL `blocks.L.attn.hook_v`).
    AttnV,
    /// The attention output projection (Llama `o_proj`, GPT-2 `attn.c_proj`). `input`: every
    /// head's attention-weighted values side by side, `(T, n_heads·head_dim)` (TL
    /// `blocks.L.attn.hook_z`); `output`: the attention's contribution to the residual,
    /// `(T, d_model)` (TL `blocks.L.hook_attn_out`); its `vjp` is also dL/d of the residual after
    /// the attention (TL `blocks.L.hook_resid_mid`), since the output is added straight to it.
    AttnO,
    /// The gate projection of a gated (SwiGLU) MLP (Llama `gate_proj`; GPT-2 has none).
    /// `input`: the MLP-normed residual, `(T, d_model)` (TL `blocks.L.ln2.hook_normalized`);
    /// `output`: the gate before SiLU, `(T, d_ff)` (TL `blocks.L.mlp.hook_pre`).
    MlpGate,
    /// FF1, the MLP's first linear map (Llama `up_proj`, GPT-2 `mlp.c_fc`). `input`: the
    /// MLP-normed residual, `(T, d_model)` (TL `blocks.L.ln2.hook_normalized`), the x_i that span
    /// FF1's gradient; `output`: `(T, d_ff)`, for Llama the linear half multiplied by the
    /// gate (TL `blocks.L.mlp.hook_pre_linear`), for GPT-2 the pre-activation before GELU
    /// (TL `blocks.L.mlp.hook_pre`).
    MlpUp,
    /// FF2, the MLP's last linear map (Llama `down_proj`, GPT-2 `mlp.c_proj`). `input`: the
    /// activations, `(T, d_ff)` (TL `blocks.L.mlp.hook_post`); `output`: the MLP's contribution
    /// to the residual, `(T, d_model)` (TL `blocks.L.hook_mlp_out`); its `vjp`, the δ_i that
    /// span FF2's gradient, equals the block's `vjp` (the output is added straight to the
    /// residual that leaves the block).
    MlpDown,
    /// The whole block: residual stream in and out, `(T, d_model)` each. `input`: the residual
    /// before the block (TL `blocks.L.hook_resid_pre`); `output`: after it (TL
    /// `blocks.L.hook_resid_post`, which is `blocks.{L+1}.hook_resid_pre`); `vjp`: dL/d of the
    /// residual after the block. The block has no weight.
    Block,
}

impl Module {
    /// Every module, in forward order.
    pub const ALL: [Module; 8] = [
        Module::AttnQ,
        Module::AttnK,
        Module::AttnV,
        Module::AttnO,
        Module::MlpGate,
        Module::MlpUp,
        Module::MlpDown,
        Module::Block,
    ];
    /// The linear (weight-carrying) modules: every module but [`Module::Block`].
    pub fn linear() -> impl Iterator<Item = Module> {
        Module::ALL.into_iter().filter(|m| m.is_linear())
    }

    /// The stable name, e.g. `mlp.down`.
    pub fn name(self) -> &'static str {
        match self {
            Module::AttnQ => "attn.q",
            Module::AttnK => "attn.k",
            Module::AttnV => "attn.v",
            Module::AttnO => "attn.o",
            Module::MlpGate => "mlp.gate",
            Module::MlpUp => "mlp.up",
            Module::MlpDown => "mlp.down",
            Module::Block => "block",
        }
    }

    /// Whether the module is a linear map `y = x Wᵀ` (and so has a weight gradient).
    pub fn is_linear(self) -> bool {
        self != Module::Block
    }
}

/// Which vector of a module is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The forward input x_i.
    Input,
    /// The forward output.
    Output,
    /// δ_i = dL/d(output): the vector-Jacobian product of the output.
    Vjp,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Input, Kind::Output, Kind::Vjp];

    /// The stable name: `input`, `output` or `vjp`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Input => "input",
            Kind::Output => "output",
            Kind::Vjp => "vjp",
        }
    }
}

/// A module and a kind, without a layer: `mlp.down.vjp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    /// The module whose vector is recorded (the `mlp.down` of `mlp.down.vjp`).
    pub module: Module,
    /// Which of its vectors: forward input, forward output or VJP (the `vjp`).
    pub kind: Kind,
}

impl Site {
    /// FF1's spanning set: the inputs x_i of the up projection.
    pub const MLP_UP_INPUT: Site = Site { module: Module::MlpUp, kind: Kind::Input };
    /// FF2's spanning set: the VJPs δ_i of the down projection.
    pub const MLP_DOWN_VJP: Site = Site { module: Module::MlpDown, kind: Kind::Vjp };

    /// Creates a site.
    pub const fn new(module: Module, kind: Kind) -> Site {
        Site { module, kind }
    }

    /// This site at a layer.
    pub fn at(self, layer: usize) -> HookPoint {
        HookPoint { layer, site: self }
    }

    /// Whether the site holds d_model vectors in the residual stream's basis, the vectors the
    /// logit lens can project: the inputs of q, k, v, gate and up (the normed residual), the VJPs
    /// of o and down (added straight to the residual), and the block's input, output and VJP.
    pub fn in_residual_basis(self) -> bool {
        use {Kind::*, Module::*};
        matches!(
            (self.module, self.kind),
            (AttnQ | AttnK | AttnV | MlpGate | MlpUp, Input) | (AttnO | MlpDown, Vjp) | (Block, _)
        )
    }

    /// Every site.
    pub fn all() -> impl Iterator<Item = Site> {
        Module::ALL.into_iter().flat_map(|m| Kind::ALL.into_iter().map(move |k| Site::new(m, k)))
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module.name(), self.kind.name())
    }
}

impl FromStr for Site {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Site> {
        Site::all().find(|site| site.to_string() == s).ok_or_else(|| ModelError::HookName {
            name: s.to_string(),
            reason: format!(
                "expected `<module>.<kind>` with module one of {} and kind one of input, output, vjp",
                Module::ALL.map(Module::name).join(", ")
            ),
        })
    }
}

/// A site at a layer: `layers.12.mlp.down.vjp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    /// 0-based index of the transformer block (the `12` of `layers.12.mlp.down.vjp`), below the
    /// model's `n_layers`.
    pub layer: usize,
    /// The module and kind within that block.
    pub site: Site,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layers.{}.{}", self.layer, self.site)
    }
}

impl FromStr for HookPoint {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<HookPoint> {
        let bad = |reason: &str| ModelError::HookName { name: s.to_string(), reason: reason.to_string() };
        let rest = s.strip_prefix("layers.").ok_or_else(|| bad("expected `layers.<N>.<module>.<kind>`"))?;
        let (layer, site) = rest.split_once('.').ok_or_else(|| bad("expected `layers.<N>.<module>.<kind>`"))?;
        let layer = layer.parse().map_err(|_| bad("the layer must be a non-negative integer"))?;
        Ok(HookPoint { layer, site: site.parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_round_trip() {
        for site in Site::all() {
            assert_eq!(site.to_string().parse::<Site>().unwrap(), site);
            for layer in [0, 7, 29] {
                let p = site.at(layer);
                assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), p);
            }
        }
        assert_eq!("layers.12.mlp.down.vjp".parse::<HookPoint>().unwrap(), Site::MLP_DOWN_VJP.at(12));
        assert_eq!(Site::MLP_UP_INPUT.to_string(), "mlp.up.input");
        assert_eq!(Module::linear().count(), 7);
        let projectable: Vec<String> = Site::all().filter(|s| s.in_residual_basis()).map(|s| s.to_string()).collect();
        assert_eq!(
            projectable,
            [
                "attn.q.input",
                "attn.k.input",
                "attn.v.input",
                "attn.o.vjp",
                "mlp.gate.input",
                "mlp.up.input",
                "mlp.down.vjp",
                "block.input",
                "block.output",
                "block.vjp"
            ]
        );
    }

    #[test]
    fn bad_names_say_what_is_expected() {
        let err = "layers.1.mlp.sideways.vjp".parse::<HookPoint>().unwrap_err().to_string();
        assert!(err.contains("mlp.down") && err.contains("vjp"), "{err}");
        let err = "layers.x.mlp.down.vjp".parse::<HookPoint>().unwrap_err().to_string();
        assert!(err.contains("non-negative integer"), "{err}");
        let err = "mlp.down.vjp".parse::<HookPoint>().unwrap_err().to_string();
        assert!(err.contains("layers.<N>"), "{err}");
    }
}
