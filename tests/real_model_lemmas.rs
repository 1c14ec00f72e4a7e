//! Statements 5 and 6 of the gradient algebra on the real default model (SmolLM2-135M-Instruct):
//! Lemma 5.2 ("imprint and shift") with real FF1 (gate, up) and FF2 (down) weights and real VJPs
//! from a trace, and the Forward Pass Shift identity of Section 7 on a real down projection with
//! the real unembedding row of " Paris". The algebra itself is proven on random data in
//! `crates/backlens-algebra/tests/imprint_shift.rs`; here the question is whether it holds, to
//! f32 rounding, at the real model's sizes (d_in = 576 or 1536) and magnitudes.

use backlens::model::{Kind, Module, Site, TraceOptions};
use backlens_algebra::{forward_pass_shift, forward_pass_shift_change, predicted_change, single_token_step};
use backlens_ops::linear;
use backlens_tests::default_backlens;
use candle_core::{DType, Tensor};

const MESSI: &str = "Lionel Messi plays for";
const PARIS: u32 = 7042;

fn vec64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// The layer rerun on one token, through the same op the model uses: `x Wᵀ`. # Shapes (d_out)
fn rerun(w: &Tensor, x: &Tensor) -> Tensor {
    linear(&x.unsqueeze(0).unwrap(), w, None).unwrap().squeeze(0).unwrap()
}

/// Compares the rerun change `W' x − W x` with the exact prediction, element by element, against
/// the worst-case f32 rounding bound `(d_in + 2)·ε·((|W| + |W'|)|x|)_j + 4·ε·|pred_j|`: each
/// matrix-vector product of length d_in errs by at most d_in·ε·(|W||x|)_j, forming W' adds
/// ε·(|W'||x|)_j, and the subtraction and the prediction add ε of their magnitudes. Returns
/// the largest |diff|/bound (must be <= 1) and the largest |pred|.
fn check_rerun(what: &str, w: &Tensor, w_new: &Tensor, x: &Tensor, pred: &Tensor) -> (f64, f64) {
    let change = vec64(&(rerun(w_new, x) - rerun(w, x)).unwrap());
    let pred = vec64(pred);
    let d_in = w.dims()[1] as f64;
    let eps = f32::EPSILON as f64;
    let abs =
        (w.to_dtype(DType::F64).unwrap().abs().unwrap() + w_new.to_dtype(DType::F64).unwrap().abs().unwrap()).unwrap();
    let mag = vec64(&abs.matmul(&x.to_dtype(DType::F64).unwrap().abs().unwrap().unsqueeze(1).unwrap()).unwrap());
    let (mut worst, mut max_pred, mut max_diff) = (0f64, 0f64, 0f64);
    for j in 0..pred.len() {
        let bound = (d_in + 2.0) * eps * mag[j] + 4.0 * eps * pred[j].abs() + 1e-30;
        let diff = (change[j] - pred[j]).abs();
        assert!(
            diff <= bound,
            "{what}: unit {j}: rerun change {} vs predicted {} (bound {bound:e})",
            change[j],
            pred[j]
        );
        worst = worst.max(diff / bound);
        max_pred = max_pred.max(pred[j].abs());
        max_diff = max_diff.max(diff);
    }
    eprintln!("{what:<44} max|pred| {max_pred:.3e}  max|diff| {max_diff:.3e}  worst diff/bound {worst:.3}");
    (worst, max_pred)
}

/// Statement 5 on SmolLM2 (Lemma 5.2, exact form): for gate and up (FF1) and down (FF2) of a
/// middle and an upper layer, at a subject token and at the last token, the single-token step
/// `W ← W − lr·δ_i x_iᵀ` with the real weight and the traced `x_i`, `δ_i` changes the rerun
/// output by `−lr·|x_i|²·δ_i`: each FF1 pre-activation j by `−lr|x_i|²δ_i[j]` (gate and up with
/// their own VJPs), FF2's output by `−lr|x_i|²δ_i`. lr is chosen so the change is as large as
/// the layer's output (`lr = max|W x_i| / (|x_i|² max|δ_i|)`): the test compares O(1) changes,
/// not rounding noise.
#[test]
fn imprint_and_shift_hold_on_smollm2_gate_up_and_down() {
    let bl = default_backlens();
    let ids = bl.model().tokenizer().encode(MESSI).unwrap();
    let n = ids.len();
    let layers = [15, 24];
    let modules = [Module::MlpGate, Module::MlpUp, Module::MlpDown];
    let sites = modules.iter().flat_map(|&m| [Site::new(m, Kind::Input), Site::new(m, Kind::Vjp)]);
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only(sites).with_layers(layers)).unwrap();
    for layer in layers {
        for module in modules {
            let (x, delta) = trace.gradient_factors(layer, module).unwrap();
            let w = bl.model().weight(layer, module).unwrap();
            for i in [4, n - 1] {
                let (x_i, delta_i) = (x.get(i).unwrap(), delta.get(i).unwrap());
                let (x_sq, d_max) = (
                    vec64(&x_i).iter().map(|v| v * v).sum::<f64>(),
                    vec64(&delta_i).iter().fold(0f64, |m, v| m.max(v.abs())),
                );
                assert!(d_max > 0.0, "layers.{layer}.{} token {i}: δ_i is zero", module.name());
                let out_max = vec64(&rerun(w, &x_i)).iter().fold(0f64, |m, v| m.max(v.abs()));
                let lr = out_max / (x_sq * d_max);
                let w_new = single_token_step(w, &x_i, &delta_i, lr).unwrap();
                let pred = predicted_change(&x_i, &delta_i, lr).unwrap();
                let what = format!("layers.{layer}.{} token {i} (lr {lr:.2e})", module.name());
                let (_, max_pred) = check_rerun(&what, w, &w_new, &x_i, &pred);
                assert!(
                    (max_pred - out_max).abs() <= 1e-3 * out_max,
                    "{what}: the change must be as large as the output"
                );
            }
        }
    }
}

/// Statement 6 on SmolLM2 (Section 7): `FF2 ← FF2 + η·Dᵀ[t] x_nᵀ` with the real down
/// projection of an upper layer, its real input x_n at the last token (d_ff = 1536) and the real
/// unembedding row of " Paris" moves the layer's output at the last token by exactly
/// `η·|x_n|²·Dᵀ[t]`; the target direction grows by `η|x_n|²|Dᵀ[t]|²`. η is chosen so the shift
/// is as long as the layer's output.
#[test]
fn forward_pass_shift_on_a_smollm2_down_projection_toward_paris() {
    let bl = default_backlens();
    let ids = bl.model().tokenizer().encode(MESSI).unwrap();
    let n = ids.len();
    let layer = 20;
    let site = Site::new(Module::MlpDown, Kind::Input);
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only([site]).with_layers([layer])).unwrap();
    let x_n = trace.require(site.at(layer)).unwrap().get(n - 1).unwrap(); // (1536)
    let e_t = bl.model().unembedding().get(PARIS as usize).unwrap(); // (576)
    let w2 = bl.model().weight(layer, Module::MlpDown).unwrap(); // (576, 1536)
    assert_eq!((w2.dims(), x_n.dims(), e_t.dims()), (&[576, 1536][..], &[1536][..], &[576][..]));
    let (x_sq, e_sq) = (vec64(&x_n).iter().map(|v| v * v).sum::<f64>(), vec64(&e_t).iter().map(|v| v * v).sum::<f64>());
    let out_norm = vec64(&rerun(w2, &x_n)).iter().map(|v| v * v).sum::<f64>().sqrt();
    let eta = out_norm / (x_sq * e_sq.sqrt());
    let w_new = forward_pass_shift(w2, &x_n, &e_t, eta).unwrap();
    let pred = forward_pass_shift_change(&x_n, &e_t, eta).unwrap();
    check_rerun(&format!("layers.{layer}.mlp.down shift (eta {eta:.2e})"), w2, &w_new, &x_n, &pred);
    // Along the target direction: (W'x_n − W x_n)·Dᵀ[t] = η|x_n|²|Dᵀ[t]|² > 0.
    let change = vec64(&(rerun(&w_new, &x_n) - rerun(w2, &x_n)).unwrap());
    let along: f64 = change.iter().zip(vec64(&e_t)).map(|(c, e)| c * e).sum();
    let expected = eta * x_sq * e_sq;
    eprintln!("target direction grows by {along:.6e}, expected {expected:.6e}");
    assert!(along > 0.0 && (along - expected).abs() <= 1e-4 * expected, "{along} vs {expected}");
}

/// The sign relation of digest section 3.7 on SmolLM2: at the top layer only the last token
/// reaches the loss, and its FF2 VJP has a negative component along the target's unembedding row
/// (`δ_n·Dᵀ[t] < 0`; Lemma 5.1 gives the coefficient `p_t − 1`, here through the final RMSNorm).
/// So the descent step `W − lr·δ_n x_nᵀ` moves the output at the last token along `+Dᵀ[t]`
/// (`−lr|x_n|² δ_n·Dᵀ[t] > 0`): the sign of a Forward Pass Shift with η > 0.
#[test]
fn descent_on_the_top_ff2_moves_the_output_toward_paris() {
    let bl = default_backlens();
    let ids = bl.model().tokenizer().encode(MESSI).unwrap();
    let n = ids.len();
    let top = bl.model().n_layers() - 1;
    let sites = [Site::new(Module::MlpDown, Kind::Input), Site::MLP_DOWN_VJP];
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only(sites).with_layers([top])).unwrap();
    let (x, delta) = trace.gradient_factors(top, Module::MlpDown).unwrap();
    let (x_n, delta_n) = (x.get(n - 1).unwrap(), delta.get(n - 1).unwrap());
    let e_t = bl.model().unembedding().get(PARIS as usize).unwrap();
    let dot: f64 = vec64(&delta_n).iter().zip(vec64(&e_t)).map(|(a, b)| a * b).sum();
    let p_t = (-trace.loss as f64).exp();
    eprintln!("top layer: δ_n·Dᵀ[Paris] = {dot:.4e} (p_t = {p_t:.3e})");
    assert!(dot < 0.0, "δ_n·Dᵀ[t] = {dot} must be negative");
    let w = bl.model().weight(top, Module::MlpDown).unwrap();
    let lr = 1e-3;
    let w_new = single_token_step(w, &x_n, &delta_n, lr).unwrap();
    let change = vec64(&(rerun(&w_new, &x_n) - rerun(w, &x_n)).unwrap());
    let along: f64 = change.iter().zip(vec64(&e_t)).map(|(c, e)| c * e).sum();
    assert!(along > 0.0, "the descent step must move the output along +Dᵀ[t]; moved {along}");
}
