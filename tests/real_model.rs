//! Integration tests on the real default model (SmolLM2-135M-Instruct, Q4_1 GGUF dequantized
//! to f32): tokenizer, forward pass, trace against autograd, ranks, lens parity, the paper's
//! main observation, and bad input.

use backlens::model::{Kind, ModelError, Module, Site, TraceOptions};
use backlens::LensOptions;
use backlens_algebra::{LowRankGradient, RankTolerance};
use backlens_tests::{assert_close, default_backlens, lemma_5_1_top_vjp};
use candle_core::Tensor;

const MESSI: &str = "Lionel Messi plays for";
const PARIS: u32 = 7042;

fn messi_ids() -> Vec<u32> {
    default_backlens().model().tokenizer().encode(MESSI).unwrap()
}

#[test]
fn tokenizer_reproduces_known_ids() {
    let tok = default_backlens().model().tokenizer();
    assert_eq!(tok.encode(" Paris").unwrap(), vec![7042]);
    assert_eq!(tok.encode("The capital of France is").unwrap(), vec![504, 3575, 282, 4649, 314]);
    assert_eq!(tok.encode(MESSI).unwrap(), vec![60, 285, 299, 11960, 89, 4566, 327]);
    // Digits are split one by one (llama.cpp's `smollm` pre-tokenizer).
    let digits = tok.encode("2024").unwrap();
    assert_eq!(digits.len(), 4, "{digits:?}");
    assert_eq!(tok.decode(&tok.encode(" Hello, world! 42").unwrap()).unwrap(), " Hello, world! 42");
    // Control tokens are single special tokens.
    assert_eq!(tok.encode("<|im_start|>").unwrap().len(), 1);
}

#[test]
fn capital_of_france_predicts_paris() {
    let bl = default_backlens();
    let ids = bl.model().tokenizer().encode("The capital of France is").unwrap();
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only([])).unwrap();
    let top = trace.logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!(top, PARIS, "top-1 is {:?}", bl.token_text(top));
    let p = (-trace.loss).exp();
    assert!((0.70..0.85).contains(&p), "p(' Paris') = {p}, expected about 0.77");
}

#[test]
fn trace_reconstructs_autograd_weight_gradients() {
    let bl = default_backlens();
    let last = bl.model().n_layers() - 1;
    // FF2 at the bottom, middle and top, and every linear module of one middle layer.
    let checked: Vec<(usize, Module)> = [(2, Module::MlpDown), (15, Module::MlpDown), (last, Module::MlpDown)]
        .into_iter()
        .chain(Module::linear().map(|m| (9, m)))
        .collect();
    let mut options = TraceOptions::only([]);
    for &(layer, module) in &checked {
        options = options.with_weight_grad(layer, module);
        for kind in [Kind::Input, Kind::Vjp] {
            options.sites.get_or_insert_with(Default::default).insert(Site::new(module, kind));
        }
    }
    let trace = bl.model().trace(&messi_ids(), PARIS, &options).unwrap();
    for (layer, module) in checked {
        let (x, delta) = trace.gradient_factors(layer, module).unwrap();
        let factored = LowRankGradient::new(x, delta).unwrap().dense().unwrap(); // (d_out, d_in)
        let autograd = trace.autograd_weight_grad(layer, module).unwrap();
        assert_close(&format!("dL/dW layers.{layer}.{}", module.name()), &factored, autograd, 1e-7, 1e-4);
    }
}

#[test]
fn gradient_rank_is_the_prompt_length_except_at_the_last_layer() {
    let bl = default_backlens();
    let ids = messi_ids();
    let n = ids.len();
    let trace = bl
        .model()
        .trace(
            &ids,
            PARIS,
            &TraceOptions::only([
                Site::MLP_UP_INPUT,
                Site::new(Module::MlpUp, Kind::Vjp),
                Site::new(Module::MlpDown, Kind::Input),
                Site::MLP_DOWN_VJP,
            ]),
        )
        .unwrap();
    let last = bl.model().n_layers() - 1;
    for layer in 0..=last {
        for module in [Module::MlpUp, Module::MlpDown] {
            let (x, delta) = trace.gradient_factors(layer, module).unwrap();
            let rank = LowRankGradient::new(x, delta).unwrap().numerical_rank(RankTolerance::Default).unwrap();
            let expected = if layer == last { 1 } else { n };
            assert_eq!(rank, expected, "rank of dL/dW at layers.{layer}.{}", module.name());
        }
    }
    // Appendix A: at the last layer only the last token reaches the loss.
    let delta = trace.get(Site::MLP_DOWN_VJP.at(last)).unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in delta.iter().enumerate() {
        let zero = row.iter().all(|&v| v == 0.0);
        assert_eq!(zero, i + 1 < n, "token {i}: δ_i at the last layer must be zero exactly for i < n");
    }
}

#[test]
fn ff2_vjp_equals_the_residual_stream_vjp() {
    let bl = default_backlens();
    let trace = bl
        .model()
        .trace(&messi_ids(), PARIS, &TraceOptions::only([Site::MLP_DOWN_VJP, Site::new(Module::Block, Kind::Vjp)]))
        .unwrap();
    for layer in 0..bl.model().n_layers() {
        let ff2 = trace.get(Site::MLP_DOWN_VJP.at(layer)).unwrap();
        let resid = trace.get(Site::new(Module::Block, Kind::Vjp).at(layer)).unwrap();
        assert_close(&format!("layers.{layer} mlp.down.vjp vs block.vjp"), ff2, resid, 0.0, 0.0);
    }
}

#[test]
fn lens_of_the_last_residual_equals_the_model_logits() {
    let bl = default_backlens();
    let ids = messi_ids();
    let last = bl.model().n_layers() - 1;
    let out = Site::new(Module::Block, Kind::Output);
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only([out])).unwrap();
    let h = trace.get(out.at(last)).unwrap().narrow(0, ids.len() - 1, 1).unwrap(); // (1, d)
    let lens_logits = bl.lens().logits(&h).unwrap().squeeze(0).unwrap();
    assert_close("LL(h_n^L) vs model logits", &lens_logits, &trace.logits, 1e-5, 1e-5);
}

/// Lemma 5.1: the VJP entering the last block's output is the final norm's backward applied to
/// Eᵀ(softmax(ŷ) − onehot(t)), with the closed form computed here independently of the trace.
#[test]
fn top_vjp_is_the_closed_form_of_lemma_5_1() {
    let bl = default_backlens();
    let ids = messi_ids();
    let last = bl.model().n_layers() - 1;
    let (out, vjp) = (Site::new(Module::Block, Kind::Output), Site::new(Module::Block, Kind::Vjp));
    let trace = bl.model().trace(&ids, PARIS, &TraceOptions::only([out, vjp])).unwrap();
    let n = ids.len();
    let h = trace.get(out.at(last)).unwrap().narrow(0, n - 1, 1).unwrap(); // (1, d)

    let top = lemma_5_1_top_vjp(bl.model(), &trace.logits, PARIS, &h);
    let traced = trace.get(vjp.at(last)).unwrap().narrow(0, n - 1, 1).unwrap();
    assert_close("δ_n at the last block vs closed form", &traced, &top.at_residual, 1e-7, 1e-4);
}

/// The paper's main observation, on a real model: for "Lionel Messi plays for" → " Paris", the
/// target is the least likely token (rank V-1) of LL(δ_n) of FF2 in most upper-third layers.
#[test]
fn paris_is_at_the_very_bottom_of_ff2_vjps_in_the_upper_layers() {
    let bl = default_backlens();
    let report = bl.analyze(MESSI, " Paris", &LensOptions::default()).unwrap();
    let cells = report.site("mlp.down.vjp").unwrap();
    let (n_layers, last_token) = (cells.len(), report.tokens.len() - 1);
    let bottom = bl.lens().vocab_size() - 1;
    let upper: Vec<usize> = ((2 * n_layers).div_ceil(3)..n_layers).collect();
    let ranks: Vec<Option<usize>> = upper.iter().map(|&l| cells[l][last_token].target_rank).collect();
    let hits = ranks.iter().filter(|&&r| r == Some(bottom)).count();
    eprintln!("ranks of ' Paris' in LL(δ_n), layers {upper:?}: {ranks:?}");
    assert!(2 * hits > upper.len(), "only {hits} of {} upper-third layers rank ' Paris' at the bottom", upper.len());
    // Non-last tokens of the last layer carry no update: no rank.
    assert!(cells[n_layers - 1][..last_token].iter().all(|c| c.target_rank.is_none() && c.norm == 0.0));
    // FF1 inputs read like the forward logit lens: the last layer's top token at the last
    // position is a real token, and every cell has k of each.
    let ff1 = report.site("mlp.up.input").unwrap();
    assert!(ff1.iter().flatten().all(|c| c.top.len() == 5 && c.bottom.len() == 5 && c.target_rank.is_some()));
}

#[test]
fn tracing_twice_gives_identical_results_and_changes_nothing() {
    let bl = default_backlens();
    let ids = messi_ids();
    let before = bl.model().unembedding().sum_all().unwrap().to_scalar::<f32>().unwrap();
    let options = TraceOptions::only([Site::MLP_DOWN_VJP]).with_layers([3, 20]);
    let a = bl.model().trace(&ids, PARIS, &options).unwrap();
    let b = bl.model().trace(&ids, PARIS, &options).unwrap();
    assert_eq!(a.hook_points().collect::<Vec<_>>(), vec![Site::MLP_DOWN_VJP.at(3), Site::MLP_DOWN_VJP.at(20)]);
    for p in a.hook_points() {
        assert_close(&p.to_string(), a.get(p).unwrap(), b.get(p).unwrap(), 0.0, 0.0);
    }
    assert_eq!(a.loss, b.loss);
    let err = a.require(Site::MLP_DOWN_VJP.at(4)).unwrap_err().to_string();
    assert!(err.contains("layers.4.mlp.down.vjp") && err.contains("not recorded"), "{err}");
    assert_eq!(before, bl.model().unembedding().sum_all().unwrap().to_scalar::<f32>().unwrap());
}

#[test]
fn bad_input_gives_clear_errors() {
    let bl = default_backlens();
    let err = bl.analyze(MESSI, "Parisian-ish", &LensOptions::default()).unwrap_err().to_string();
    assert!(err.contains("exactly one target token") && err.contains("ids"), "{err}");
    let err = bl.analyze(MESSI, "Barcelona", &LensOptions::default()).unwrap_err().to_string();
    assert!(err.contains("leading space") && err.contains("30010"), "{err}");
    let err = bl.analyze("", " Paris", &LensOptions::default()).unwrap_err().to_string();
    assert!(err.contains("prompt is empty"), "{err}");
    let long = " a".repeat(bl.model().context_length() + 1);
    let err = bl.analyze(&long, " Paris", &LensOptions::default()).unwrap_err().to_string();
    assert!(err.contains("context holds 8192"), "{err}");
    let bad_site = LensOptions { sites: vec![Site::new(Module::MlpUp, Kind::Vjp)], ..LensOptions::default() };
    let err = bl.analyze(MESSI, " Paris", &bad_site).unwrap_err().to_string();
    assert!(err.contains("mlp.up.vjp") && err.contains("residual"), "{err}");
    let err = bl.model().trace(&[1, 2], 1_000_000, &TraceOptions::all()).unwrap_err();
    assert!(matches!(err, ModelError::TokenOutOfRange { id: 1_000_000, .. }), "{err}");
}

/// End-to-end finite differences on the real model: moving W along D changes the loss at the
/// rate <dL/dW, D>, with dL/dW = Δᵀ X from the trace. Catches sign and transposition errors
/// that a comparison against the same backward pass could not.
#[test]
fn trace_gradients_match_finite_differences_of_the_loss() {
    let bl = default_backlens();
    let ids = messi_ids();
    let loss_before = bl.model().trace(&ids, PARIS, &TraceOptions::only([])).unwrap().loss;
    for (layer, module) in [(20, Module::MlpDown), (5, Module::AttnV)] {
        let options =
            TraceOptions::only([Site::new(module, Kind::Input), Site::new(module, Kind::Vjp)]).with_layers([layer]);
        let trace = bl.model().trace(&ids, PARIS, &options).unwrap();
        let (x, delta) = trace.gradient_factors(layer, module).unwrap();
        let grad = LowRankGradient::new(x, delta).unwrap().dense().unwrap(); // (d_out, d_in)
        let grad_norm = grad.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
        let direction = (&grad / grad_norm as f64).unwrap(); // unit D: <dL/dW, D> = |dL/dW|

        let eps = 1e-2;
        let loss_at = |sign: f64| {
            let mut edited = bl.model().boxed_clone();
            let w = bl.model().weight(layer, module).unwrap();
            edited.set_weight(layer, module, (w + (&direction * (sign * eps)).unwrap()).unwrap()).unwrap();
            edited.trace(&ids, PARIS, &TraceOptions::only([])).unwrap().loss as f64
        };
        let fd = (loss_at(1.0) - loss_at(-1.0)) / (2.0 * eps);
        let rel = (fd - grad_norm as f64).abs() / grad_norm as f64;
        eprintln!(
            "layers.{layer}.{}: finite difference {fd:.6}, <Δᵀ X, D> {grad_norm:.6}, relative error {rel:.2e}",
            module.name()
        );
        assert!(rel < 1e-2, "finite difference {fd} vs trace {grad_norm}");
    }
    // The edits were made on clones: the shared model is untouched.
    assert_eq!(bl.model().trace(&ids, PARIS, &TraceOptions::only([])).unwrap().loss, loss_before);
}

#[test]
fn set_weight_checks_shapes_and_names() {
    let mut model = default_backlens().model().boxed_clone();
    let wrong = Tensor::zeros((3, 4), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let err = model.set_weight(3, Module::MlpDown, wrong).unwrap_err().to_string();
    assert!(err.contains("layers.3.mlp.down") && err.contains("[576, 1536]"), "{err}");
    assert!(model.weight(30, Module::MlpUp).unwrap_err().to_string().contains("30 layers"));
    assert!(model.weight(0, Module::Block).is_err());
}
