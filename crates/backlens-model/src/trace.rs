//! One forward and one backward pass of `L = -log p(target | prompt)`, recording the forward
//! inputs x_i, outputs, and VJPs δ_i = dL/d(output) of every hooked module at every token.
//!
//! candle discards the gradients of intermediate tensors, so a VJP is read from a zero "probe":
//! the module output `y` is replaced by `y + p` with `p = Var::zeros(y.shape())`, and
//! `dL/dp = dL/dy` exactly.

use crate::error::{ModelError, Result};
use crate::hooks::{HookPoint, Kind, Module, Site};
use backlens_ops::{linear, linear_with_weight_grad};
use candle_core::backprop::GradStore;
use candle_core::{IndexOp, Tensor, Var, D};
use std::collections::{BTreeMap, BTreeSet};

/// What a trace keeps. Memory grows with the number of kept (layer, site) pairs.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Sites to record; `None` records every site.
    pub sites: Option<BTreeSet<Site>>,
    /// Layers to record; `None` records every layer.
    pub layers: Option<BTreeSet<usize>>,
    /// Linear modules whose weight gradient candle's autograd should also compute, for
    /// verification against [`Trace::gradient_factors`]. Costs a copy of each weight.
    pub weight_grads: BTreeSet<(usize, Module)>,
}

impl TraceOptions {
    /// Records every site at every layer.
    pub fn all() -> TraceOptions {
        TraceOptions::default()
    }

    /// Records only `sites` (at every layer).
    pub fn only(sites: impl IntoIterator<Item = Site>) -> TraceOptions {
        TraceOptions { sites: Some(sites.into_iter().collect()), ..TraceOptions::default() }
    }

    /// Restricts recording to `layers`.
    pub fn with_layers(mut self, layers: impl IntoIterator<Item = usize>) -> TraceOptions {
        self.layers = Some(layers.into_iter().collect());
        self
    }

    /// Also asks autograd for dL/dW of `module` at `layer`.
    pub fn with_weight_grad(mut self, layer: usize, module: Module) -> TraceOptions {
        self.weight_grads.insert((layer, module));
        self
    }

    /// Whether `point` is recorded.
    pub fn keeps(&self, point: HookPoint) -> bool {
        self.sites.as_ref().is_none_or(|s| s.contains(&point.site))
            && self.layers.as_ref().is_none_or(|l| l.contains(&point.layer))
    }
}

/// The result of one traced forward and backward pass.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The prompt's token ids.
    pub token_ids: Vec<u32>,
    /// The target token id.
    pub target_id: u32,
    /// `L = -log p(target | prompt)`.
    pub loss: f32,
    /// The model's logits at the last position. # Shapes (V)
    pub logits: Tensor,
    vectors: BTreeMap<HookPoint, Tensor>,
    weight_grads: BTreeMap<(usize, Module), Tensor>,
}

impl Trace {
    /// The recorded vectors at `point`, one row per token.
    ///
    /// # Shapes
    /// Returns (T, dim), dim being the module's input or output size.
    pub fn get(&self, point: HookPoint) -> Option<&Tensor> {
        self.vectors.get(&point)
    }

    /// Like [`Trace::get`] but an error names the missing hook point.
    pub fn require(&self, point: HookPoint) -> Result<&Tensor> {
        self.get(point).ok_or_else(|| ModelError::NotRecorded(point.to_string()))
    }

    /// Every recorded hook point, in (layer, module, kind) order.
    pub fn hook_points(&self) -> impl Iterator<Item = HookPoint> + '_ {
        self.vectors.keys().copied()
    }

    /// The factors of dL/dW of a linear module: its inputs X and VJPs Δ, so that dL/dW = Δᵀ X.
    ///
    /// # Shapes
    /// Returns (X: (T, d_in), Δ: (T, d_out)).
    pub fn gradient_factors(&self, layer: usize, module: Module) -> Result<(Tensor, Tensor)> {
        let x = self.require(HookPoint { layer, site: Site::new(module, Kind::Input) })?;
        let delta = self.require(HookPoint { layer, site: Site::new(module, Kind::Vjp) })?;
        Ok((x.clone(), delta.clone()))
    }

    /// candle's own dL/dW, if requested with [`TraceOptions::with_weight_grad`].
    ///
    /// # Shapes
    /// Returns (d_out, d_in), the checkpoint layout.
    pub fn autograd_weight_grad(&self, layer: usize, module: Module) -> Option<&Tensor> {
        self.weight_grads.get(&(layer, module))
    }

    /// Number of prompt tokens.
    pub fn n_tokens(&self) -> usize {
        self.token_ids.len()
    }
}

/// Collects hooked tensors during a forward pass; turned into a [`Trace`] after the backward pass.
///
/// Architecture files call [`Recorder::linear`] for every weight matrix and [`Recorder::hook`] for
/// every other recorded activation, so all architectures share one recording mechanism.
pub struct Recorder<'a> {
    options: &'a TraceOptions,
    vectors: BTreeMap<HookPoint, Tensor>,
    probes: Vec<(HookPoint, Var)>,
    weight_vars: Vec<((usize, Module), Var)>,
}

impl<'a> Recorder<'a> {
    /// A recorder that keeps what `options` asks for.
    pub fn new(options: &'a TraceOptions) -> Recorder<'a> {
        Recorder { options, vectors: BTreeMap::new(), probes: Vec::new(), weight_vars: Vec::new() }
    }

    /// `y = x Wᵀ + b` of `module` at `layer`, recording its input, output and (through a probe)
    /// its VJP.
    ///
    /// # Shapes
    /// - `x`: (T, d_in), `weight`: (d_out, d_in), `bias`: (d_out), returns (T, d_out)
    pub fn linear(
        &mut self,
        layer: usize,
        module: Module,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.record(HookPoint { layer, site: Site::new(module, Kind::Input) }, x);
        let y = if self.options.weight_grads.contains(&(layer, module)) {
            let w = Var::from_tensor(weight)?;
            let y = linear_with_weight_grad(x, w.as_tensor(), bias)?;
            self.weight_vars.push(((layer, module), w));
            y
        } else {
            linear(x, weight, bias)?
        };
        self.hook(layer, module, Kind::Output, y)
    }

    /// Records the forward value of `module` (input or output) and, for an output, attaches the
    /// VJP probe. Returns the tensor to continue the forward pass with.
    ///
    /// # Shapes
    /// - `value`: (T, dim), returned unchanged in value
    pub fn hook(&mut self, layer: usize, module: Module, kind: Kind, value: Tensor) -> Result<Tensor> {
        self.record(HookPoint { layer, site: Site::new(module, kind) }, &value);
        let vjp_point = HookPoint { layer, site: Site::new(module, Kind::Vjp) };
        if kind == Kind::Output && self.options.keeps(vjp_point) {
            let probe = Var::zeros(value.shape(), value.dtype(), value.device())?;
            let probed = (value + probe.as_tensor())?;
            self.probes.push((vjp_point, probe));
            return Ok(probed);
        }
        Ok(value)
    }

    fn record(&mut self, point: HookPoint, value: &Tensor) {
        if self.options.keeps(point) {
            self.vectors.insert(point, value.detach());
        }
    }

    /// Reads every probe's gradient and builds the trace.
    pub fn finish(
        mut self,
        grads: &GradStore,
        token_ids: Vec<u32>,
        target_id: u32,
        loss: f32,
        logits: Tensor,
    ) -> Result<Trace> {
        for (point, probe) in &self.probes {
            let vjp = match grads.get(probe.as_tensor()) {
                Some(g) => g.clone(),
                // No path from this probe to the loss: the VJP is exactly zero.
                None => probe.as_tensor().zeros_like()?,
            };
            self.vectors.insert(*point, vjp);
        }
        let mut weight_grads = BTreeMap::new();
        for (key, w) in &self.weight_vars {
            let g = match grads.get(w.as_tensor()) {
                Some(g) => g.clone(),
                None => w.as_tensor().zeros_like()?,
            };
            weight_grads.insert(*key, g);
        }
        Ok(Trace { token_ids, target_id, loss, logits, vectors: self.vectors, weight_grads })
    }
}

/// What a model accepts as a prompt.
#[derive(Debug, Clone, Copy)]
pub struct PromptLimits {
    /// The model's vocabulary size: every prompt and target id must be below it.
    pub vocab_size: usize,
    /// The model's context length: the most tokens a prompt may have.
    pub context_length: usize,
}

/// Rejects empty or over-long prompts and out-of-vocabulary ids.
pub fn check_prompt(token_ids: &[u32], target_id: u32, limits: PromptLimits) -> Result<()> {
    check_tokens(token_ids, Some(target_id), limits)
}

/// Rejects empty or over-long sequences and out-of-vocabulary ids (of the sequence and the
/// target, if any).
fn check_tokens(token_ids: &[u32], target_id: Option<u32>, limits: PromptLimits) -> Result<()> {
    if token_ids.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    if token_ids.len() > limits.context_length {
        return Err(ModelError::PromptTooLong { tokens: token_ids.len(), context: limits.context_length });
    }
    match token_ids.iter().chain(target_id.as_ref()).find(|&&id| id as usize >= limits.vocab_size) {
        Some(&id) => Err(ModelError::TokenOutOfRange { id, vocab: limits.vocab_size }),
        None => Ok(()),
    }
}

/// The architecture-independent part of [`LanguageModel::logits`](crate::LanguageModel::logits):
/// check the sequence, run `hidden` (which returns the final residual stream, shape (T, d)) with
/// a recorder that keeps nothing and attaches no probe, and unembed every position. No weight is
/// a `Var`, so candle records no graph: this is a plain forward pass.
///
/// # Shapes
/// - returns (T, V)
pub fn all_logits(
    token_ids: &[u32],
    limits: PromptLimits,
    final_norm: &backlens_ops::Norm,
    unembed: &Tensor,
    hidden: impl FnOnce(&mut Recorder) -> Result<Tensor>,
) -> Result<Tensor> {
    check_tokens(token_ids, None, limits)?;
    let nothing = TraceOptions::only([]).with_layers([]);
    let mut rec = Recorder::new(&nothing);
    let h = hidden(&mut rec)?; // (T, d)
    crate::layers::all_token_logits(&h, final_norm, unembed)
}

/// The architecture-independent part of every trace: check the prompt, run `forward` (which
/// returns the last position's logits, shape (V)) with a recorder, take
/// `L = -log softmax(logits)[target]`, run one backward pass and collect the hooks.
pub fn run(
    token_ids: &[u32],
    target_id: u32,
    options: &TraceOptions,
    limits: PromptLimits,
    forward: impl FnOnce(&mut Recorder) -> Result<Tensor>,
) -> Result<Trace> {
    check_prompt(token_ids, target_id, limits)?;
    let mut rec = Recorder::new(options);
    let logits = forward(&mut rec)?; // (V)
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let loss = log_probs.i(target_id as usize)?.neg()?;
    let grads = loss.backward()?;
    let loss_value = loss.to_scalar::<f32>()?;
    rec.finish(&grads, token_ids.to_vec(), target_id, loss_value, logits.detach())
}
