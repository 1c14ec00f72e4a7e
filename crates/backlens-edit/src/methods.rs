//! Edit methods: forward pass shift (the paper's Section 7), one-step SGD and one-step Adam on
//! one FF2 matrix, and fine-tuning one MLP layer with Adam (the paper's FT rows).
//!
//! Every method reads the model and returns an [`Edit`] (new weights); nothing is modified
//! until the edit is applied with [`EditGuard`](crate::EditGuard).
//!
//! # Formulas (canonical layout: `W` is `(d_out, d_in)`, the layer computes `y = W x`)
//!
//! * **Forward pass shift** at layer `l`, request `(prompt, t)`: one forward pass gives `x_n`,
//!   the input of `mlp.down` at the last prompt token; with `e = Dᵀ[t]` the unembedding row of the
//!   target's first sub-token, `W' = W + c e x_nᵀ` where `c = η` ([`Eta::Raw`], the paper's lr) or
//!   `c = η / (|x_n|² |e|²)` ([`Eta::ScaleFree`]). The FF2 output at the last token then moves by
//!   `c |x_n|² e`, so its dot product with `e` grows by exactly `η` under the scale-free
//!   parametrisation, whatever the layer's or model's scale. Requests whose target already is the
//!   argmax are skipped, as in the authors' code. Several requests are applied together as the sum
//!   of their rank-one terms, each computed on the unedited model. With a whitened [`Key`]
//!   (beyond the paper) `x_nᵀ` is replaced by `kᵀ`, `k ∝ C_λ⁻¹x_n` with `kᵀx_n = |x_n|²`, which
//!   leaves the shift at the edited prompt unchanged and reduces it on other inputs.
//! * **Gradients.** The edit loss is the mean teacher-forced NLL over the target sub-tokens (and
//!   requests), `L = (1/K) Σ_k -log p(t_k | prompt, t_<k)`. Its gradient at one linear module is
//!   `G = Δᵀ X` from the traces' low-rank factors (one trace per sub-token; rows concatenated, Δ
//!   scaled by 1/K): no dense autograd weight gradient is ever computed.
//! * **One-step SGD**: `W' = W - lr G`.
//! * **One-step Adam** (β₁, β₂, ε as PyTorch's defaults): the first Adam step from zero moments is
//!   `m̂ = G`, `v̂ = G²`, so `W' = W - lr G / (|G| + ε)` (elementwise), a signed step of size
//!   ≈ lr on every entry with a non-zero gradient.
//! * **Fine-tuning**: Adam with bias correction (PyTorch's algorithm, no weight decay) on the
//!   chosen matrices of one MLP layer for a fixed number of steps, recomputing the gradient at
//!   the current weights each step; like ROME's FT baseline it stops early once the loss is below
//!   `min_loss`.

use crate::apply::{check_layer, Edit, WeightUpdate};
use crate::defaults::{DEFAULT_FT_LR, DEFAULT_FT_STEPS};
use crate::error::{EditError, Result};
use crate::eta::Eta;
use crate::keys::Key;
use crate::request::EditRequest;
use backlens_algebra::{forward_pass_shift, LowRankGradient};
use backlens_model::{Kind, LanguageModel, Module, Site, TraceOptions};
use candle_core::{IndexOp, Tensor};

/// An editing method.
pub trait EditMethod: Send + Sync {
    /// A short name for tables, e.g. `fps(l=20, eta=8 scale-free)`.
    fn name(&self) -> String;
    /// Computes the edit that makes `model` continue each request's prompt with its target.
    /// The model is not modified.
    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> Result<Edit>;
}

/// The paper's Forward Pass Shift (Section 7, App. I): `mlp.down ← mlp.down + c Dᵀ[t] kᵀ` at
/// one layer, from one forward pass, with the key `k = x_n` (the paper) or a whitened key
/// ([`Key`], beyond the paper).
#[derive(Debug, Clone)]
pub struct ForwardPassShift {
    /// The layer whose `mlp.down` is edited.
    pub layer: usize,
    /// The step size.
    pub eta: Eta,
    /// Skip a request whose first target sub-token already is the argmax (the authors' code
    /// does; default true).
    pub skip_if_argmax: bool,
    /// The key of the rank-one term (default: `x_n`).
    pub key: Key,
}

impl ForwardPassShift {
    /// Forward pass shift at `layer` with `eta` and the paper's key `x_n`, skipping targets that
    /// are already predicted.
    pub fn new(layer: usize, eta: Eta) -> ForwardPassShift {
        ForwardPassShift { layer, eta, skip_if_argmax: true, key: Key::Input }
    }

    /// The same edit with another key.
    pub fn with_key(self, key: Key) -> ForwardPassShift {
        ForwardPassShift { key, ..self }
    }

    /// The ingredients of one request's rank-one term on the unedited model: `x_n` (d_ff), the
    /// target embedding `e` (d_model), and whether the target already is the argmax.
    ///
    /// # Shapes
    /// - returns `x_n`: `(d_ff)`, `e`: `(d_model)`
    pub fn ingredients(&self, model: &dyn LanguageModel, request: &EditRequest) -> Result<(Tensor, Tensor, bool)> {
        check_layer(model, self.layer)?;
        let t = request.first_target();
        // No VJP site is recorded, so no probe exists and the backward pass has nothing to do.
        let options = TraceOptions::only([Site::new(Module::MlpDown, Kind::Input)]).with_layers([self.layer]);
        let trace = model.trace(&request.prompt, t, &options)?;
        let inputs = trace.require(Site::new(Module::MlpDown, Kind::Input).at(self.layer))?;
        let x_n = inputs.i(request.prompt.len() - 1)?; // (d_ff)
        let e = model.unembedding().i(t as usize)?; // (d_model)
        let predicted = trace.logits.argmax(0)?.to_scalar::<u32>()? == t;
        Ok((x_n, e, predicted))
    }
}

impl EditMethod for ForwardPassShift {
    fn name(&self) -> String {
        match self.key {
            Key::Input => format!("forward pass shift (layer {}, eta {})", self.layer, self.eta),
            Key::Whitened(_) | Key::TemplateContrast(_) => {
                format!("forward pass shift (layer {}, eta {}, {})", self.layer, self.eta, self.key)
            }
        }
    }

    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> Result<Edit> {
        check_layer(model, self.layer)?;
        let mut w = model.weight(self.layer, Module::MlpDown)?.clone();
        let mut edit = Edit::default();
        let mut changed = false;
        for (i, request) in requests.iter().enumerate() {
            let (x_n, e, predicted) = self.ingredients(model, request)?;
            if predicted && self.skip_if_argmax {
                edit.skipped.push(i);
                continue;
            }
            let c = self.eta.coefficient(&x_n, &e)?;
            let k = self.key.key(model, self.layer, request, &x_n)?; // (d_ff), kᵀx_n = |x_n|²
            w = forward_pass_shift(&w, &k, &e, c)?;
            changed = true;
        }
        if changed {
            edit.updates.push(WeightUpdate { layer: self.layer, module: Module::MlpDown, weight: w });
        }
        Ok(edit)
    }
}

/// The edit loss and its gradient at `(layer, module)` as low-rank factors: one trace per
/// target sub-token of every request, rows concatenated, Δ scaled by 1/K (K = number of
/// sub-tokens over all requests) so that `Δᵀ X` is the gradient of the mean NLL.
pub fn loss_gradient(
    model: &dyn LanguageModel,
    requests: &[EditRequest],
    layer: usize,
    module: Module,
) -> Result<(f32, LowRankGradient)> {
    let (loss, mut grads) = loss_gradients(model, requests, layer, &[module])?;
    Ok((loss, grads.pop().expect("one module")))
}

/// [`loss_gradient`] for several modules of one layer from the same traces.
pub fn loss_gradients(
    model: &dyn LanguageModel,
    requests: &[EditRequest],
    layer: usize,
    modules: &[Module],
) -> Result<(f32, Vec<LowRankGradient>)> {
    check_layer(model, layer)?;
    if requests.is_empty() {
        return Err(EditError::Request("no edit request".into()));
    }
    let sites = modules.iter().flat_map(|&m| [Site::new(m, Kind::Input), Site::new(m, Kind::Vjp)]);
    let options = TraceOptions::only(sites).with_layers([layer]);
    let mut xs: Vec<Vec<Tensor>> = vec![Vec::new(); modules.len()];
    let mut deltas: Vec<Vec<Tensor>> = vec![Vec::new(); modules.len()];
    let mut loss = 0f64;
    let mut k = 0usize;
    for request in requests {
        for (ids, target) in request.teacher_forced() {
            let trace = model.trace(&ids, target, &options)?;
            loss += trace.loss as f64;
            k += 1;
            for (j, &m) in modules.iter().enumerate() {
                let (x, delta) = trace.gradient_factors(layer, m)?;
                xs[j].push(x);
                deltas[j].push(delta);
            }
        }
    }
    let scale = 1.0 / k as f64;
    let grads = xs
        .into_iter()
        .zip(deltas)
        .map(|(x, d)| -> Result<LowRankGradient> {
            let x = Tensor::cat(&x, 0)?; // (N, d_in)
            let d = (Tensor::cat(&d, 0)? * scale)?; // (N, d_out)
            Ok(LowRankGradient::new(x, d)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(((loss * scale) as f32, grads))
}

/// One SGD step on `mlp.down` of one layer: `W' = W - lr Δᵀ X`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneStepSgd {
    /// The layer whose `mlp.down` is edited.
    pub layer: usize,
    /// The learning rate.
    pub lr: f64,
}

impl EditMethod for OneStepSgd {
    fn name(&self) -> String {
        format!("one-step SGD (layer {}, lr {})", self.layer, self.lr)
    }

    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> Result<Edit> {
        let (loss, g) = loss_gradient(model, requests, self.layer, Module::MlpDown)?;
        let w = model.weight(self.layer, Module::MlpDown)?;
        let weight = (w - (g.dense()? * self.lr)?)?;
        Ok(Edit {
            updates: vec![WeightUpdate { layer: self.layer, module: Module::MlpDown, weight }],
            loss_before: Some(loss),
            steps: 1,
            ..Edit::default()
        })
    }
}

/// Adam's hyper-parameters (PyTorch's defaults but the learning rate; no weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// The learning rate.
    pub lr: f64,
    /// β₁, the first moment's decay (PyTorch: 0.9).
    pub beta1: f64,
    /// β₂, the second moment's decay (PyTorch: 0.999).
    pub beta2: f64,
    /// ε of the denominator (PyTorch: 1e-8).
    pub eps: f64,
}

impl AdamConfig {
    /// Adam with learning rate `lr`, β = (0.9, 0.999), ε = 1e-8.
    pub fn with_lr(lr: f64) -> AdamConfig {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Adam's state for one matrix, PyTorch's algorithm:
/// `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `W ← W - lr (m/(1-β₁ᵗ)) / (sqrt(v/(1-β₂ᵗ)) + ε)`
/// (PyTorch computes the denominator as `sqrt(v)/sqrt(1-β₂ᵗ) + ε`, the same number).
#[derive(Debug, Clone)]
pub struct AdamState {
    /// The hyper-parameters.
    pub config: AdamConfig,
    m: Option<Tensor>,
    v: Option<Tensor>,
    t: i32,
}

impl AdamState {
    /// Zero moments.
    pub fn new(config: AdamConfig) -> AdamState {
        AdamState { config, m: None, v: None, t: 0 }
    }

    /// One step: the new weight for the current weight `w` and gradient `g`.
    ///
    /// # Shapes
    /// - `w`, `g`: the same shape; returns that shape
    pub fn step(&mut self, w: &Tensor, g: &Tensor) -> Result<Tensor> {
        let c = self.config;
        self.t += 1;
        let m = match &self.m {
            Some(m) => ((m * c.beta1)? + (g * (1.0 - c.beta1))?)?,
            None => (g * (1.0 - c.beta1))?,
        };
        let g2 = g.sqr()?;
        let v = match &self.v {
            Some(v) => ((v * c.beta2)? + (g2 * (1.0 - c.beta2))?)?,
            None => (g2 * (1.0 - c.beta2))?,
        };
        let bc1 = 1.0 - c.beta1.powi(self.t);
        let bc2 = 1.0 - c.beta2.powi(self.t);
        let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
        let step = ((&m / denom)? * (c.lr / bc1))?;
        self.m = Some(m);
        self.v = Some(v);
        Ok((w - step)?)
    }
}

/// Adam's first step from zero moments in closed form: `W - lr g / (|g| + ε)`.
///
/// # Shapes
/// - `w`, `g`: the same shape; returns that shape
pub fn adam_first_step(w: &Tensor, g: &Tensor, lr: f64, eps: f64) -> Result<Tensor> {
    let step = ((g / (g.abs()? + eps)?)? * lr)?;
    Ok((w - step)?)
}

/// One Adam step (from zero moments, closed form) on `mlp.down` of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneStepAdam {
    /// The layer whose `mlp.down` is edited.
    pub layer: usize,
    /// The learning rate.
    pub lr: f64,
    /// Adam's ε (PyTorch default 1e-8).
    pub eps: f64,
}

impl OneStepAdam {
    /// One Adam step with ε = 1e-8.
    pub fn new(layer: usize, lr: f64) -> OneStepAdam {
        OneStepAdam { layer, lr, eps: 1e-8 }
    }
}

impl EditMethod for OneStepAdam {
    fn name(&self) -> String {
        format!("one-step Adam (layer {}, lr {})", self.layer, self.lr)
    }

    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> Result<Edit> {
        let (loss, g) = loss_gradient(model, requests, self.layer, Module::MlpDown)?;
        let w = model.weight(self.layer, Module::MlpDown)?;
        let weight = adam_first_step(w, &g.dense()?, self.lr, self.eps)?;
        Ok(Edit {
            updates: vec![WeightUpdate { layer: self.layer, module: Module::MlpDown, weight }],
            loss_before: Some(loss),
            steps: 1,
            ..Edit::default()
        })
    }
}

/// Fine-tuning baseline: Adam on the given matrices of one MLP layer for a fixed number of
/// steps (the paper's FT rows: lr 5e-4, 25 steps, one MLP layer; ROME's FT edits the MLP output
/// projection, our `mlp.down`).
#[derive(Debug, Clone, PartialEq)]
pub struct FineTune {
    /// The layer whose MLP is trained.
    pub layer: usize,
    /// The matrices trained (default `[mlp.down]`).
    pub modules: Vec<Module>,
    /// Adam's hyper-parameters.
    pub adam: AdamConfig,
    /// The number of Adam steps (fewer when the loss falls below `min_loss`).
    pub steps: usize,
    /// Stop before a step once the loss is below this (ROME's FT: 1e-2); `None` never stops early.
    pub min_loss: Option<f32>,
}

impl FineTune {
    /// The paper's FT setting at `layer`: Adam lr 5e-4 ([`DEFAULT_FT_LR`]), 25 steps
    /// ([`DEFAULT_FT_STEPS`]) on `mlp.down`, early stop at loss 1e-2.
    pub fn paper(layer: usize) -> FineTune {
        FineTune {
            layer,
            modules: vec![Module::MlpDown],
            adam: AdamConfig::with_lr(DEFAULT_FT_LR),
            steps: DEFAULT_FT_STEPS,
            min_loss: Some(1e-2),
        }
    }
}

impl EditMethod for FineTune {
    fn name(&self) -> String {
        let modules: Vec<&str> = self.modules.iter().map(|m| m.name()).collect();
        format!(
            "fine-tuning (layer {}, {}, Adam lr {}, {} steps)",
            self.layer,
            modules.join("+"),
            self.adam.lr,
            self.steps
        )
    }

    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> Result<Edit> {
        check_layer(model, self.layer)?;
        if self.modules.is_empty() || self.modules.iter().any(|m| !m.is_linear()) {
            return Err(EditError::Setting(format!("fine-tuning needs linear modules, got {:?}", self.modules)));
        }
        let mut work = model.boxed_clone(); // tensors shared until replaced: `model` is untouched
        let mut states: Vec<AdamState> = self.modules.iter().map(|_| AdamState::new(self.adam)).collect();
        let mut edit = Edit::default();
        for step in 0..self.steps {
            let (loss, grads) = loss_gradients(work.as_ref(), requests, self.layer, &self.modules)?;
            if step == 0 {
                edit.loss_before = Some(loss);
            }
            if self.min_loss.is_some_and(|min| loss < min) {
                break;
            }
            for ((&m, state), g) in self.modules.iter().zip(&mut states).zip(grads) {
                let w = state.step(work.weight(self.layer, m)?, &g.dense()?)?;
                work.set_weight(self.layer, m, w)?;
            }
            edit.steps += 1;
        }
        if edit.steps > 0 {
            for &m in &self.modules {
                edit.updates.push(WeightUpdate {
                    layer: self.layer,
                    module: m,
                    weight: work.weight(self.layer, m)?.clone(),
                });
            }
        }
        Ok(edit)
    }
}
