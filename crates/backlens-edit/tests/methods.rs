//! Every edit method's update equals its formula, on tiny random Llama and GPT-2 models, with
//! the reference computed independently (autograd's dense dL/dW, f64 outer products, a
//! hand-written Adam in f64).

use backlens_edit::eta::sq_norm;
use backlens_edit::methods::{adam_first_step, loss_gradient};
use backlens_edit::{
    AdamConfig, AdamState, EditGuard, EditMethod, EditRequest, Eta, FineTune, ForwardPassShift, OneStepAdam, OneStepSgd,
};
use backlens_model::testing::{random_gpt2, random_llama, TinyGpt2, TinyLlama};
use backlens_model::{Gpt2Activation, Kind, LanguageModel, Module, RopeLayout, Site, TraceOptions};
use candle_core::{DType, IndexOp, Tensor};

const LLAMA: TinyLlama = TinyLlama { n_layers: 3, d_ff: 20, vocab: 13, context: 12, ..TinyLlama::SMALL };
const GPT2: TinyGpt2 = TinyGpt2 {
    n_layers: 2,
    d_model: 8,
    n_heads: 2,
    d_ff: 16,
    vocab: 11,
    context: 12,
    activation: Gpt2Activation::GeluTanh,
    tied: false,
};

fn models() -> Vec<Box<dyn LanguageModel>> {
    vec![
        Box::new(random_llama(LLAMA, 7)),
        Box::new(random_llama(TinyLlama { tied: false, rope: RopeLayout::Interleaved, ..LLAMA }, 8)),
        Box::new(random_gpt2(GPT2, 9)),
    ]
}

fn m64(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn v64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// Asserts `|got - want| <= atol + rtol * max|want|` over two matrices.
fn assert_close(what: &str, got: &[Vec<f64>], want: &[Vec<f64>], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    let scale = want.iter().flatten().fold(0f64, |a, v| a.max(v.abs()));
    let diff = got.iter().flatten().zip(want.iter().flatten()).fold(0f64, |a, (g, w)| a.max((g - w).abs()));
    assert!(diff <= atol + rtol * scale, "{what}: max |diff| {diff:e} (max |want| {scale:e})");
}

/// The argmax after `prompt`, and a token that is not it.
fn predicted_and_other(model: &dyn LanguageModel, prompt: &[u32]) -> (u32, u32) {
    let logits = model.logits(prompt).unwrap();
    let top = logits.i(prompt.len() - 1).unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
    (top, (top + 3) % model.unembedding().dim(0).unwrap() as u32)
}

fn down(model: &dyn LanguageModel, layer: usize) -> Tensor {
    model.weight(layer, Module::MlpDown).unwrap().clone()
}

/// x_n, the FF2 input at the last prompt token, read from a trace.
fn x_n(model: &dyn LanguageModel, prompt: &[u32], layer: usize) -> Vec<f64> {
    let opts = TraceOptions::only([Site::new(Module::MlpDown, Kind::Input)]);
    let trace = model.trace(prompt, 0, &opts).unwrap();
    v64(&trace.require(Site::new(Module::MlpDown, Kind::Input).at(layer)).unwrap().i(prompt.len() - 1).unwrap())
}

#[test]
fn forward_pass_shift_adds_eta_times_target_embedding_times_input() {
    for model in models() {
        let prompt = vec![3, 1, 4, 1, 5];
        let (_, target) = predicted_and_other(model.as_ref(), &prompt);
        for layer in 0..model.n_layers() {
            let x = x_n(model.as_ref(), &prompt, layer);
            let e = v64(&model.unembedding().i(target as usize).unwrap());
            let w = m64(&down(model.as_ref(), layer));
            let (x2, e2) = (x.iter().map(|v| v * v).sum::<f64>(), e.iter().map(|v| v * v).sum::<f64>());
            for (eta, c) in [(Eta::Raw(0.24), 0.24), (Eta::ScaleFree(3.0), 3.0 / (x2 * e2))] {
                let req = EditRequest::new(prompt.clone(), vec![target, 2]).unwrap();
                let edit = ForwardPassShift::new(layer, eta).compute(model.as_ref(), &[req]).unwrap();
                assert_eq!(edit.updates.len(), 1);
                assert_eq!((edit.updates[0].layer, edit.updates[0].module), (layer, Module::MlpDown));
                let want: Vec<Vec<f64>> = w
                    .iter()
                    .enumerate()
                    .map(|(i, row)| row.iter().enumerate().map(|(j, v)| v + c * e[i] * x[j]).collect())
                    .collect();
                assert_close(
                    &format!("{} layer {layer} eta {eta}", model.name()),
                    &m64(&edit.updates[0].weight),
                    &want,
                    1e-6,
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn scale_free_forward_pass_shift_raises_the_target_direction_by_exactly_eta() {
    for model in models() {
        let prompt = vec![2, 7, 1, 8];
        let (_, target) = predicted_and_other(model.as_ref(), &prompt);
        let layer = model.n_layers() - 1;
        let out = Site::new(Module::MlpDown, Kind::Output).at(layer);
        let opts = TraceOptions::only([out.site]);
        let before = model.trace(&prompt, target, &opts).unwrap();
        let req = EditRequest::new(prompt.clone(), vec![target]).unwrap();
        let mut edited = model.boxed_clone();
        let edit = ForwardPassShift::new(layer, Eta::ScaleFree(2.5)).compute(model.as_ref(), &[req]).unwrap();
        let guard = EditGuard::apply(edited.as_mut(), &edit).unwrap();
        let after = guard.model().trace(&prompt, target, &opts).unwrap();
        let n = prompt.len() - 1;
        let change = (after.require(out).unwrap().i(n).unwrap() - before.require(out).unwrap().i(n).unwrap()).unwrap();
        let e = model.unembedding().i(target as usize).unwrap();
        let along: f64 = v64(&change).iter().zip(v64(&e)).map(|(a, b)| a * b).sum();
        assert!((along - 2.5).abs() < 1e-4, "{}: e·Δout = {along}, expected 2.5", model.name());
        // The change is parallel to e: the rest is rounding.
        let rest = (change
            - (e * (along / sq_norm(&model.unembedding().i(target as usize).unwrap()).unwrap())).unwrap())
        .unwrap();
        assert!(sq_norm(&rest).unwrap().sqrt() < 1e-4, "{}: the change is not along e", model.name());
        // Earlier tokens' FF2 outputs are untouched (their inputs differ from x_n).
        // The target's logit rises (a shift along its own embedding, and tied or not, e·Dᵀ[t] > 0).
        assert!(after.loss < before.loss, "{}: loss {} -> {}", model.name(), before.loss, after.loss);
    }
}

#[test]
fn forward_pass_shift_skips_a_target_that_is_already_predicted() {
    for model in models() {
        let prompt = vec![1, 2, 3];
        let (top, other) = predicted_and_other(model.as_ref(), &prompt);
        let fps = ForwardPassShift::new(0, Eta::Raw(1.0));
        let edit = fps.compute(model.as_ref(), &[EditRequest::new(prompt.clone(), vec![top]).unwrap()]).unwrap();
        assert!(edit.is_empty() && edit.skipped == vec![0], "{}", model.name());
        let no_skip = ForwardPassShift { skip_if_argmax: false, ..fps.clone() };
        assert_eq!(
            no_skip
                .compute(model.as_ref(), &[EditRequest::new(prompt.clone(), vec![top]).unwrap()])
                .unwrap()
                .updates
                .len(),
            1
        );
        // A batch with one predicted and one new target edits for the second only.
        let batch = [
            EditRequest::new(prompt.clone(), vec![top]).unwrap(),
            EditRequest::new(prompt.clone(), vec![other]).unwrap(),
        ];
        let both = fps.compute(model.as_ref(), &batch).unwrap();
        let single = fps.compute(model.as_ref(), &batch[1..]).unwrap();
        assert_eq!(both.skipped, vec![0]);
        assert_eq!(m64(&both.updates[0].weight), m64(&single.updates[0].weight));
    }
}

#[test]
fn forward_pass_shift_applies_several_edits_as_a_sum_of_rank_one_terms() {
    for model in models() {
        let layer = 1;
        let requests: Vec<EditRequest> = [vec![3, 1, 4], vec![1, 5, 9, 2], vec![6, 5]]
            .into_iter()
            .map(|p| {
                let (_, t) = predicted_and_other(model.as_ref(), &p);
                EditRequest::new(p, vec![t]).unwrap()
            })
            .collect();
        let eta = 0.7;
        let edit = ForwardPassShift::new(layer, Eta::ScaleFree(eta)).compute(model.as_ref(), &requests).unwrap();
        let mut want = m64(&down(model.as_ref(), layer));
        for r in &requests {
            let x = x_n(model.as_ref(), &r.prompt, layer);
            let e = v64(&model.unembedding().i(r.target[0] as usize).unwrap());
            let c = eta / (x.iter().map(|v| v * v).sum::<f64>() * e.iter().map(|v| v * v).sum::<f64>());
            for (i, row) in want.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v += c * e[i] * x[j];
                }
            }
        }
        assert_close(&format!("{} three edits", model.name()), &m64(&edit.updates[0].weight), &want, 1e-6, 1e-6);
    }
}

/// candle's own dense dL/dW of `mlp.down` for `-log p(target | ids)`.
fn autograd_grad(model: &dyn LanguageModel, ids: &[u32], target: u32, layer: usize) -> Vec<Vec<f64>> {
    let trace = model.trace(ids, target, &TraceOptions::only([]).with_weight_grad(layer, Module::MlpDown)).unwrap();
    m64(trace.autograd_weight_grad(layer, Module::MlpDown).unwrap())
}

/// The mean teacher-forced gradient of a request, from autograd.
fn autograd_mean_grad(model: &dyn LanguageModel, req: &EditRequest, layer: usize) -> Vec<Vec<f64>> {
    let steps: Vec<(Vec<u32>, u32)> = req.teacher_forced().collect();
    let mut sum: Option<Vec<Vec<f64>>> = None;
    for (ids, t) in &steps {
        let g = autograd_grad(model, ids, *t, layer);
        sum = Some(match sum {
            None => g,
            Some(s) => s.iter().zip(&g).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + y).collect()).collect(),
        });
    }
    sum.unwrap().iter().map(|r| r.iter().map(|v| v / steps.len() as f64).collect()).collect()
}

fn add(w: &[Vec<f64>], g: &[Vec<f64>], f: impl Fn(f64) -> f64) -> Vec<Vec<f64>> {
    w.iter().zip(g).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + f(*y)).collect()).collect()
}

#[test]
fn teacher_forced_gradient_from_factors_equals_autograd() {
    for model in models() {
        let req = EditRequest::new(vec![4, 2, 6], vec![5, 9, 1]).unwrap();
        for layer in 0..model.n_layers() {
            let (loss, g) = loss_gradient(model.as_ref(), std::slice::from_ref(&req), layer, Module::MlpDown).unwrap();
            let want = autograd_mean_grad(model.as_ref(), &req, layer);
            assert_close(
                &format!("{} layer {layer} gradient", model.name()),
                &m64(&g.dense().unwrap()),
                &want,
                1e-7,
                1e-5,
            );
            let mean_nll: f64 = req
                .teacher_forced()
                .map(|(ids, t)| model.trace(&ids, t, &TraceOptions::only([])).unwrap().loss as f64)
                .sum::<f64>()
                / 3.0;
            assert!((loss as f64 - mean_nll).abs() < 1e-5, "loss {loss} vs {mean_nll}");
        }
    }
}

#[test]
fn one_step_sgd_subtracts_lr_times_the_gradient() {
    for model in models() {
        let layer = 1;
        for target in [vec![5], vec![5, 9]] {
            let req = EditRequest::new(vec![4, 2, 6, 3], target).unwrap();
            let lr = 0.37;
            let edit = OneStepSgd { layer, lr }.compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
            let want =
                add(&m64(&down(model.as_ref(), layer)), &autograd_mean_grad(model.as_ref(), &req, layer), |g| -lr * g);
            assert_close(&format!("{} sgd", model.name()), &m64(&edit.updates[0].weight), &want, 1e-6, 1e-6);
            assert_eq!(edit.steps, 1);
        }
    }
}

/// PyTorch's Adam (no weight decay), written out in f64: the new weights after one step per
/// gradient in `grads`.
fn reference_adam(w0: &[Vec<f64>], grads: &[Vec<Vec<f64>>], c: AdamConfig) -> Vec<Vec<f64>> {
    let mut w = w0.to_vec();
    let mut m = vec![vec![0.0; w0[0].len()]; w0.len()];
    let mut v = m.clone();
    for (t, g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        for i in 0..w.len() {
            for j in 0..w[0].len() {
                m[i][j] = c.beta1 * m[i][j] + (1.0 - c.beta1) * g[i][j];
                v[i][j] = c.beta2 * v[i][j] + (1.0 - c.beta2) * g[i][j] * g[i][j];
                let m_hat = m[i][j] / (1.0 - c.beta1.powi(t));
                let v_hat = v[i][j] / (1.0 - c.beta2.powi(t));
                w[i][j] -= c.lr * m_hat / (v_hat.sqrt() + c.eps);
            }
        }
    }
    w
}

#[test]
fn adam_first_step_closed_form_equals_the_algorithm() {
    let mut rng = backlens_model::testing::Rng::new(3);
    let w = rng.normal_tensor(&[5, 7], 0.0, 1.0);
    let g = (rng.normal_tensor(&[5, 7], 0.0, 1e-3) * 1.0).unwrap();
    let c = AdamConfig::with_lr(0.01);
    let closed = adam_first_step(&w, &g, c.lr, c.eps).unwrap();
    let mut state = AdamState::new(c);
    let stepped = state.step(&w, &g).unwrap();
    let reference = reference_adam(&m64(&w), &[m64(&g)], c);
    assert_close("closed form vs reference", &m64(&closed), &reference, 1e-7, 1e-6);
    assert_close("AdamState vs reference", &m64(&stepped), &reference, 1e-7, 1e-6);
    // Two more steps with new gradients follow the reference too.
    let g2 = rng.normal_tensor(&[5, 7], 0.0, 1e-2);
    let g3 = rng.normal_tensor(&[5, 7], 0.0, 1e-4);
    let w2 = state.step(&stepped, &g2).unwrap();
    let w3 = state.step(&w2, &g3).unwrap();
    let reference3 = reference_adam(&m64(&w), &[m64(&g), m64(&g2), m64(&g3)], c);
    assert_close("three Adam steps", &m64(&w3), &reference3, 1e-6, 1e-6);
}

#[test]
fn one_step_adam_is_a_signed_step_of_the_gradient() {
    for model in models() {
        let layer = 0;
        let req = EditRequest::new(vec![7, 3, 2], vec![4]).unwrap();
        let lr = 1e-3;
        let edit = OneStepAdam::new(layer, lr).compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
        let g = autograd_mean_grad(model.as_ref(), &req, layer);
        let want = reference_adam(&m64(&down(model.as_ref(), layer)), &[g], AdamConfig::with_lr(lr));
        // Entries whose gradient is within ~ε of 0 are sensitive to rounding of the gradient:
        // the tolerance allows a 1% change of such a step.
        assert_close(&format!("{} adam", model.name()), &m64(&edit.updates[0].weight), &want, 1e-2 * lr, 1e-6);
    }
}

#[test]
fn fine_tuning_runs_adam_at_the_current_weights_each_step() {
    for model in models() {
        let layer = 1;
        let req = EditRequest::new(vec![2, 5, 8, 3], vec![6, 1]).unwrap();
        let adam = AdamConfig::with_lr(0.02);
        let ft = FineTune { layer, modules: vec![Module::MlpDown], adam, steps: 3, min_loss: None };
        let edit = ft.compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
        assert_eq!(edit.steps, 3);
        // The reference: gradients from autograd at the reference's own weights.
        let mut work = model.boxed_clone();
        let w0 = m64(&down(model.as_ref(), layer));
        let mut grads = Vec::new();
        for _ in 0..3 {
            grads.push(autograd_mean_grad(work.as_ref(), &req, layer));
            let w = reference_adam(&w0, &grads, adam);
            let flat: Vec<f32> = w.iter().flatten().map(|&v| v as f32).collect();
            work.set_weight(
                layer,
                Module::MlpDown,
                Tensor::from_vec(flat, (w.len(), w[0].len()), &candle_core::Device::Cpu).unwrap(),
            )
            .unwrap();
        }
        assert_close(
            &format!("{} fine-tuning", model.name()),
            &m64(&edit.updates[0].weight),
            &m64(&down(work.as_ref(), layer)),
            1e-2 * adam.lr,
            1e-5,
        );
        // One step of fine-tuning is one-step Adam.
        let one = FineTune { steps: 1, ..ft.clone() }.compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
        let closed = OneStepAdam::new(layer, adam.lr).compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
        assert_close(
            "one FT step vs one-step Adam",
            &m64(&one.updates[0].weight),
            &m64(&closed.updates[0].weight),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn fine_tuning_lowers_the_loss_and_stops_early() {
    let model = random_llama(LLAMA, 11);
    let req = EditRequest::new(vec![2, 5, 8], vec![6]).unwrap();
    let ft = FineTune {
        layer: 2,
        modules: vec![Module::MlpDown, Module::MlpUp, Module::MlpGate],
        adam: AdamConfig::with_lr(0.1),
        steps: 40,
        min_loss: Some(0.2),
    };
    let edit = ft.compute(&model, std::slice::from_ref(&req)).unwrap();
    assert_eq!(edit.updates.len(), 3);
    let mut edited = model.clone();
    let guard = EditGuard::apply(&mut edited, &edit).unwrap();
    let loss = guard.trace(&req.prompt, 6, &TraceOptions::only([])).unwrap().loss;
    assert!(edit.steps < 40, "no early stop after {} steps (loss {:?} -> {loss})", edit.steps, edit.loss_before);
    assert!(loss < 0.2 && loss < edit.loss_before.unwrap() / 4.0, "loss {loss} after {} steps", edit.steps);
}

#[test]
fn methods_reject_a_missing_layer() {
    let model = random_llama(LLAMA, 1);
    let req = [EditRequest::new(vec![1, 2], vec![3]).unwrap()];
    let methods: Vec<Box<dyn EditMethod>> = vec![
        Box::new(ForwardPassShift::new(3, Eta::Raw(1.0))),
        Box::new(OneStepSgd { layer: 3, lr: 1.0 }),
        Box::new(OneStepAdam::new(3, 1.0)),
        Box::new(FineTune::paper(3)),
    ];
    for m in methods {
        let err = m.compute(&model, &req).unwrap_err().to_string();
        assert!(err.contains("layer 3 does not exist"), "{}: {err}", m.name());
    }
    assert!(EditRequest::new(vec![], vec![1]).is_err());
    assert!(EditRequest::new(vec![1], vec![]).is_err());
}
