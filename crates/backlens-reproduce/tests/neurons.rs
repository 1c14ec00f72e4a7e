//! Appendix C (Figures 7–9, Tables 2 and 4) on the default model: the update neurons are the
//! autograd gradient's columns/rows, a last-layer FF2 neuron is exactly ±δ_n, the signed
//! intersection of v with −v is −k, and the whole group reproduces.

use std::sync::OnceLock;

use backlens::algebra::neurons::signed_intersection;
use backlens::algebra::{cosine_similarity, LensReading};
use backlens::lens::ProjectOptions;
use backlens::model::{Module, TraceOptions};
use backlens::Backlens;
use backlens_reproduce::{
    neuron_study, paper_depth_layer, reading_of, trace_neurons, update_neurons, FfMatrix, NeuronOptions, NormGroup,
    INTERSECTION_K, NEURON_PROMPT, NEURON_TARGET,
};
use candle_core::Tensor;

fn bl() -> &'static Backlens {
    static MODEL: OnceLock<Backlens> = OnceLock::new();
    MODEL.get_or_init(|| Backlens::load_default().expect("loading the default model"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    (diff, scale)
}

/// The update neurons are minus candle's own dL/dW: FF2's are the columns of `down`'s gradient
/// `(d, d_ff)`, FF1's the rows of `up`'s gradient `(d_ff, d)`.
#[test]
fn update_neurons_are_minus_the_autograd_gradient() {
    let bl = bl();
    let layer = paper_depth_layer(bl.model().n_layers());
    assert_eq!(layer, 18, "SmolLM2-135M has 30 layers: round(14/23 · 29) = 18");
    let tokenizer = bl.model().tokenizer();
    let ids = tokenizer.encode(NEURON_PROMPT).unwrap();
    let target = tokenizer.single_token(NEURON_TARGET).unwrap();
    let sites = [FfMatrix::Ff1, FfMatrix::Ff2].into_iter().flat_map(FfMatrix::sites);
    let options = TraceOptions::only(sites)
        .with_layers([layer])
        .with_weight_grad(layer, Module::MlpDown)
        .with_weight_grad(layer, Module::MlpUp);
    let trace = bl.model().trace(&ids, target, &options).unwrap();

    let ff2 = update_neurons(&trace, layer, FfMatrix::Ff2).unwrap();
    let grad = trace.autograd_weight_grad(layer, Module::MlpDown).unwrap(); // (d, d_ff)
    let expected = grad.t().unwrap().neg().unwrap();
    assert_eq!(ff2.neurons.dims(), &[1536, 576]);
    let (diff, scale) = max_abs_diff(&ff2.neurons, &expected);
    assert!(diff <= 1e-4 * scale, "FF2: max |diff| {diff:e}, max |grad| {scale:e}");

    let ff1 = update_neurons(&trace, layer, FfMatrix::Ff1).unwrap();
    let grad = trace.autograd_weight_grad(layer, Module::MlpUp).unwrap(); // (d_ff, d)
    assert_eq!(ff1.neurons.dims(), &[1536, 576]);
    let (diff, scale) = max_abs_diff(&ff1.neurons, &grad.neg().unwrap());
    assert!(diff <= 1e-4 * scale, "FF1: max |diff| {diff:e}, max |grad| {scale:e}");

    // neurons = coefficientsᵀ · spanning.
    for u in [&ff1, &ff2] {
        let rebuilt = u.coefficients.t().unwrap().matmul(&u.spanning).unwrap();
        let (diff, scale) = max_abs_diff(&rebuilt, &u.neurons);
        assert!(diff <= 1e-5 * scale, "coefficients: {diff:e} vs {scale:e}");
    }
}

/// At the last layer only the last token reaches the loss (Appendix A), so every FF2 update
/// neuron is `-x_n[j] δ_n`: cosine ±1 with δ_n, with the sign of `-x_n[j]`, cosine 0 with the
/// other (zero) VJPs, and a signed top-100 intersection of ±100 (up to near-ties at the 100th
/// token, as the neuron is `c·δ_n` rounded).
#[test]
fn last_layer_ff2_neurons_are_plus_or_minus_delta_n() {
    let bl = bl();
    let layer = bl.model().n_layers() - 1;
    let trace = trace_neurons(bl, NEURON_PROMPT, NEURON_TARGET, layer).unwrap();
    let study = neuron_study(bl, &trace, layer, FfMatrix::Ff2, &NeuronOptions::default()).unwrap();
    let last = study.last();
    assert!(study.spanning_norms[..last].iter().all(|&n| n == 0.0), "{:?}", study.spanning_norms);
    assert!(study.spanning_norms[last] > 0.0);
    let mut checked = 0;
    for j in 0..study.n_neurons() {
        if study.norms[j] == 0.0 {
            continue;
        }
        let cos = study.cosine[last][j];
        let coefficient = study.coefficients[last][j];
        assert!((cos.abs() - 1.0).abs() < 1e-4, "neuron {j}: cos {cos}");
        assert_eq!(cos < 0.0, coefficient < 0.0, "neuron {j}: cos {cos} vs coefficient -x_n[j] = {coefficient}");
        let score = study.intersection[last][j];
        assert!(score.unsigned_abs() as usize >= INTERSECTION_K - 5, "neuron {j}: intersection {score}");
        assert_eq!(score < 0, cos < 0.0, "neuron {j}: intersection {score} vs cos {cos}");
        for i in 0..last {
            assert_eq!(study.cosine[i][j], 0.0);
            assert_eq!(study.intersection[i][j], 0, "a zero VJP has no ranking");
        }
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} non-zero neurons");
    let bands = &study.bands;
    assert!(
        bands.iter().all(|b| (b.mean_abs_cos_last - 1.0).abs() < 1e-4 && b.frac_cos_sign_follows_coefficient == 1.0),
        "{bands:?}"
    );
}

/// The signed intersection of v with −v is −k, with 3v it is +k; and the lens is odd under
/// RMSNorm: the top-k of −v is exactly the bottom-k of v (what `neuron_study` relies on).
#[test]
fn signed_intersection_of_v_with_minus_v_is_minus_k() {
    let bl = bl();
    let layer = paper_depth_layer(bl.model().n_layers());
    let trace = trace_neurons(bl, NEURON_PROMPT, NEURON_TARGET, layer).unwrap();
    let (_, delta) = trace.gradient_factors(layer, Module::MlpDown).unwrap();
    let v = delta.narrow(0, delta.dim(0).unwrap() - 1, 1).unwrap(); // δ_n (1, d)
    let batch = Tensor::cat(&[&v, &v.neg().unwrap(), &(&v * 3.0).unwrap()], 0).unwrap();
    let k = INTERSECTION_K;
    let p = bl.lens().project(&batch, &ProjectOptions { k, rank_tokens: vec![], normalize: false }).unwrap();
    assert_eq!(p[1].top, p[0].bottom, "top-k of -v = bottom-k of v");
    assert_eq!(p[1].bottom, p[0].top, "bottom-k of -v = top-k of v");
    for reading in [LensReading::MostLikely, LensReading::LeastLikely] {
        let r = |i: usize| reading_of(&p[i], reading);
        // neuron = v (negated: −v), spanning = −v.
        assert_eq!(signed_intersection(r(0), r(1), r(1)), -(k as i32), "{reading:?}");
        // neuron = −v (negated: v), spanning = v.
        assert_eq!(signed_intersection(r(1), r(0), r(0)), -(k as i32), "{reading:?}");
        // neuron = v, spanning = 3v: same direction.
        assert!(signed_intersection(r(0), r(1), r(2)) >= k as i32 - 2, "{reading:?}");
    }
    let cos = cosine_similarity(&v, &v.neg().unwrap()).unwrap().to_vec2::<f32>().unwrap()[0][0];
    assert!((cos + 1.0).abs() < 1e-6);
}

/// The whole group: eight pictures, numbers at layer 18, neurons sorted by descending norm, the
/// sampled groups in norm order and the statement generated from the numbers.
#[test]
fn reproduce_neurons_on_the_default_model() {
    let bl = bl();
    let rep = backlens_reproduce::neurons(bl).unwrap();
    assert_eq!(rep.group.name, "neurons");
    let stems: Vec<&str> = rep.pictures.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        stems,
        [
            "fig7a-ff2-intersection",
            "fig7b-ff2-cosine",
            "fig8a-ff2-intersection-sorted",
            "fig8b-ff2-cosine-sorted",
            "fig9a-ff1-intersection-sorted",
            "fig9b-ff1-cosine-sorted",
            "table2-ff2-neurons",
            "table4-ff1-neurons",
            "extra-ff2-depth"
        ]
    );
    assert_eq!(rep.numbers["layer"], 18);
    assert!(rep.ours.contains("layer 18 of 30"), "{}", rep.ours);
    for matrix in ["ff2", "ff1"] {
        let m = &rep.numbers[matrix];
        let norms: Vec<f64> = m["norms"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let order: Vec<usize> = m["order"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(norms.len(), 1536);
        let mut seen = order.clone();
        seen.sort();
        assert_eq!(seen, (0..1536).collect::<Vec<_>>(), "{matrix}: order is a permutation");
        assert!(order.windows(2).all(|w| norms[w[0]] >= norms[w[1]]), "{matrix}: descending norm");
        assert_eq!(m["cosine"].as_array().unwrap().len(), 7);
        assert_eq!(m["intersection"][0].as_array().unwrap().len(), 1536);
        let samples = m["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 10);
        let sample_norms: Vec<f64> = samples[..9].iter().map(|s| s["norm"].as_f64().unwrap()).collect();
        assert!(sample_norms.windows(2).all(|w| w[0] >= w[1]), "{matrix}: {sample_norms:?}");
        assert_eq!(samples[9]["group"], serde_json::json!(NormGroup::ZeroVector));
        assert_eq!(samples[9]["top"], serde_json::json!([]), "RMSNorm: the zero vector has no ranking");
    }
    let depth = rep.numbers["ff2_depth"].as_array().unwrap();
    assert_eq!(depth.len(), 30);
    assert_eq!(depth[18]["neurons"], rep.numbers["ff2"]["bands"][0]["neurons"], "the same 10 largest neurons");
    let heat = rep.pictures.iter().find(|(s, _)| s == "fig8b-ff2-cosine-sorted").unwrap();
    let svg = heat.1.to_svg().unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..80.min(svg.len())]);
}
