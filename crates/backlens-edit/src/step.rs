//! Edit methods whose update of one FF2 (`mlp.down`) matrix is *linear in a step size* `s`:
//! `W' = W + s U`, with a direction `U` that does not depend on `s`
//! ([`StepSizeMethod::direction`]). The [`sweep`](crate::sweep) asks these methods for `U` once
//! per (record, layer) and then probes step sizes with one forward pass each.
//!
//! | method | `U` | step size |
//! |---|---|---|
//! | [`ForwardPassShift`], [`Eta::Raw`](crate::Eta::Raw) (the paper's) | `e kᵀ` | η |
//! | [`ForwardPassShift`], [`Eta::ScaleFree`](crate::Eta::ScaleFree) | `e kᵀ / (\|x_n\|²\|e\|²)` | η |
//! | [`OneStepSgd`] | `-G` | lr |
//! | [`OneStepAdam`] | `-G / (\|G\| + ε)` (elementwise) | lr |
//!
//! (`G` the gradient of the mean teacher-forced NLL, `e` the target's unembedding row, `x_n` the
//! FF2 input at the last prompt token, `k` forward pass shift's key, `x_n` for the paper's.)

use crate::apply::check_layer;
use crate::error::Result;
use crate::eta::EtaKind;
use crate::keys::Key;
use crate::methods::{adam_first_step, loss_gradient, EditMethod, ForwardPassShift, OneStepAdam, OneStepSgd};
use crate::request::EditRequest;
use backlens_model::{LanguageModel, Module};
use candle_core::Tensor;

/// An [`EditMethod`] on one `mlp.down` whose edit at step size `s` is `W + s U` (see the module
/// docs). Implemented by [`ForwardPassShift`] (raw and scale-free η), [`OneStepSgd`] and
/// [`OneStepAdam`]; the equality with [`EditMethod::compute`] is tested in `tests/sweep.rs`.
pub trait StepSizeMethod: EditMethod + std::fmt::Debug {
    /// A label for tables, legends and the sweep's JSON, the same at every layer and step size,
    /// e.g. `one-step SGD`.
    fn label(&self) -> String;

    /// A first step size to bracket from, of the right order for SmolLM2-135M (the sweep finds
    /// the scale either way, in more probes).
    fn default_start(&self) -> f64;

    /// The same method at `layer` with step size `step`: its edit is `W + step · U`.
    fn with_step(&self, layer: usize, step: f64) -> Box<dyn StepSizeMethod>;

    /// The update direction `U` of `layer`'s `mlp.down` for `request` on the unedited model (the
    /// method's own layer and step size are not used): the edit at step `s` is `W + s U`. `None`
    /// when the method would skip the request (forward pass shift: the target already is the
    /// argmax).
    ///
    /// # Shapes
    /// - returns `(d_model, d_ff)`, the layout of `mlp.down`
    fn direction(&self, model: &dyn LanguageModel, request: &EditRequest, layer: usize) -> Result<Option<Tensor>>;
}

impl StepSizeMethod for ForwardPassShift {
    fn label(&self) -> String {
        let kind = match self.eta.kind() {
            EtaKind::Raw => "raw η",
            EtaKind::ScaleFree => "scale-free η",
        };
        match self.key {
            Key::Input => format!("forward pass shift ({kind})"),
            Key::Whitened(_) => format!("forward pass shift ({kind}, whitened key)"),
            Key::TemplateContrast(_) => format!("forward pass shift ({kind}, template-contrast key)"),
        }
    }

    fn default_start(&self) -> f64 {
        match self.eta.kind() {
            EtaKind::Raw => 0.1,
            EtaKind::ScaleFree => 500.0,
        }
    }

    fn with_step(&self, layer: usize, step: f64) -> Box<dyn StepSizeMethod> {
        Box::new(ForwardPassShift { layer, eta: self.eta.kind().eta(step), ..self.clone() })
    }

    fn direction(&self, model: &dyn LanguageModel, request: &EditRequest, layer: usize) -> Result<Option<Tensor>> {
        check_layer(model, layer)?;
        let unit = ForwardPassShift { layer, eta: self.eta.kind().eta(1.0), ..self.clone() };
        let (x_n, e, predicted) = unit.ingredients(model, request)?;
        if predicted && unit.skip_if_argmax {
            return Ok(None);
        }
        let c = unit.eta.coefficient(&x_n, &e)?;
        let k = unit.key.key(model, layer, request, &x_n)?; // (d_ff)
        Ok(Some((e.unsqueeze(1)?.matmul(&k.unsqueeze(0)?)? * c)?))
    }
}

impl StepSizeMethod for OneStepSgd {
    fn label(&self) -> String {
        "one-step SGD".into()
    }

    fn default_start(&self) -> f64 {
        1.0
    }

    fn with_step(&self, layer: usize, step: f64) -> Box<dyn StepSizeMethod> {
        Box::new(OneStepSgd { layer, lr: step })
    }

    fn direction(&self, model: &dyn LanguageModel, request: &EditRequest, layer: usize) -> Result<Option<Tensor>> {
        check_layer(model, layer)?;
        Ok(Some(loss_gradient(model, std::slice::from_ref(request), layer, Module::MlpDown)?.1.dense()?.neg()?))
    }
}

impl StepSizeMethod for OneStepAdam {
    fn label(&self) -> String {
        "one-step Adam".into()
    }

    fn default_start(&self) -> f64 {
        1e-3
    }

    fn with_step(&self, layer: usize, step: f64) -> Box<dyn StepSizeMethod> {
        Box::new(OneStepAdam { layer, lr: step, eps: self.eps })
    }

    fn direction(&self, model: &dyn LanguageModel, request: &EditRequest, layer: usize) -> Result<Option<Tensor>> {
        check_layer(model, layer)?;
        let g = loss_gradient(model, std::slice::from_ref(request), layer, Module::MlpDown)?.1.dense()?;
        // adam_first_step(0, g, 1, ε) = -g / (|g| + ε), the formula in one place.
        Ok(Some(adam_first_step(&g.zeros_like()?, &g, 1.0, self.eps)?))
    }
}
