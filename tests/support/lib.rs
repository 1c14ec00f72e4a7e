//! Shared support for the workspace-level integration tests: the default model, loaded once
//! per test binary, readable max-diff comparisons, and the closed form of Lemma 5.1.

use backlens::Backlens;
use backlens_model::LanguageModel;
use candle_core::{Tensor, Var, D};
use std::sync::OnceLock;

/// The default model (fetched into `$BACKLENS_HOME` on first use), loaded once per test binary.
pub fn default_backlens() -> &'static Backlens {
    static MODEL: OnceLock<Backlens> = OnceLock::new();
    MODEL.get_or_init(|| Backlens::load_default().expect("loading the default model"))
}

/// Maximum absolute difference and the largest magnitude of `reference`.
pub fn max_diff(got: &Tensor, reference: &Tensor) -> (f32, f32) {
    assert_eq!(got.dims(), reference.dims(), "shapes differ");
    let diff = (got - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    (diff, scale)
}

/// Asserts `|got - reference| <= atol + rtol * max|reference|` elementwise-max, printing a
/// readable report line either way.
pub fn assert_close(what: &str, got: &Tensor, reference: &Tensor, atol: f32, rtol: f32) {
    let (diff, scale) = max_diff(got, reference);
    let bound = atol + rtol * scale;
    let verdict = if diff <= bound { "ok" } else { "FAIL" };
    eprintln!("{what:<40} max|diff| {diff:.3e}  max|ref| {scale:.3e}  bound {bound:.3e}  {verdict}");
    assert!(diff <= bound, "{what}: max |diff| {diff:e} exceeds {bound:e} (max |ref| {scale:e})");
}

/// Softmax over the last dimension, written out here, independent of the model's code.
pub fn softmax(logits: &Tensor) -> Tensor {
    let max = logits.max_keepdim(D::Minus1).unwrap();
    let e = logits.broadcast_sub(&max).unwrap().exp().unwrap();
    e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
}

/// The top of the backward pass in closed form (the paper's Eq. 11-12 and Lemma 5.1), computed
/// independently of the trace.
pub struct TopVjp {
    /// dL/d(logits) = softmax(logits) - onehot(target). # Shapes (V)
    pub delta_logits: Tensor,
    /// The VJP entering the final norm's output at the last position: `δ D = Σ_k δ[k] D[k]`, a
    /// weighted sum of unembedding rows, the target's weighted by p_t - 1 < 0. # Shapes (1, d)
    pub at_norm_output: Tensor,
    /// That VJP carried back through the final norm alone: dL/d(last residual h_n), what the
    /// trace records as `block.vjp` of the last layer at the last position. # Shapes (1, d)
    pub at_residual: Tensor,
}

/// Lemma 5.1's closed form for `model` at the last residual `h_last` (1, d), given the model's
/// logits (V) there and the target.
pub fn lemma_5_1_top_vjp(model: &dyn LanguageModel, logits: &Tensor, target: u32, h_last: &Tensor) -> TopVjp {
    let probs = softmax(logits); // (V)
    let mut onehot = vec![0f32; probs.dim(0).unwrap()];
    onehot[target as usize] = 1.0;
    let onehot = Tensor::new(onehot, probs.device()).unwrap();
    let delta_logits = (probs - onehot).unwrap(); // (V)
    let at_norm_output = delta_logits.unsqueeze(0).unwrap().matmul(model.unembedding()).unwrap(); // (1, d)
                                                                                                  // Backward through the final norm alone: d/dh <norm(h), at_norm_output>.
    let h_var = Var::from_tensor(h_last).unwrap();
    let y = model.final_norm().forward(h_var.as_tensor()).unwrap();
    let grads = (y * &at_norm_output).unwrap().sum_all().unwrap().backward().unwrap();
    let at_residual = grads.get(h_var.as_tensor()).expect("the final norm passes its gradient").clone();
    TopVjp { delta_logits, at_norm_output, at_residual }
}
