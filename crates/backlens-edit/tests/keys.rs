//! Forward pass shift with a whitened key, on tiny random Llama and GPT-2 models: the second
//! moment is the mean outer product of the traced FF2 inputs, the update is `W + c e kᵀ` with
//! the key computed independently here, the shift at the edited prompt equals the plain key's,
//! λ = 1 reduces to the paper's edit, and a key from another layer is refused.

use backlens_algebra::SecondMoment;
use backlens_edit::keys::{ff2_input_moment, Key, LayerWhitener, TemplateContrast, INVENTED_SUBJECTS};
use backlens_edit::{EditMethod, EditRequest, Eta, ForwardPassShift};
use backlens_model::testing::{random_gpt2, random_llama, TinyGpt2, TinyLlama};
use backlens_model::{Gpt2Activation, Kind, LanguageModel, Module, Site, TraceOptions};
use candle_core::{DType, IndexOp, Tensor};
use std::sync::Arc;

const LLAMA: TinyLlama = TinyLlama { vocab: 13, ..TinyLlama::SMALL };
const GPT2: TinyGpt2 = TinyGpt2 {
    n_layers: 2,
    d_model: 8,
    n_heads: 2,
    d_ff: 12,
    vocab: 11,
    context: 16,
    activation: Gpt2Activation::GeluTanh,
    tied: false,
};

fn models() -> Vec<Box<dyn LanguageModel>> {
    vec![Box::new(random_llama(LLAMA, 21)), Box::new(random_gpt2(GPT2, 22))]
}

/// Generic text for the tiny models: a few token sequences.
fn corpus() -> Vec<Vec<u32>> {
    vec![vec![1, 2, 3, 4, 5, 6, 7, 8, 9], vec![9, 8, 7, 6, 5, 4, 3, 2], vec![3, 3, 1, 0, 2, 5, 8, 1, 4, 7], vec![4]]
}

fn m64(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn v64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// The FF2 inputs at `layer` for every position of `ids`, from a trace.
fn ff2_inputs(model: &dyn LanguageModel, ids: &[u32], layer: usize) -> Vec<Vec<f64>> {
    let site = Site::new(Module::MlpDown, Kind::Input);
    let trace = model.trace(ids, 0, &TraceOptions::only([site])).unwrap();
    m64(trace.require(site.at(layer)).unwrap())
}

/// Solves `A z = b` by Gauss-Jordan elimination with partial pivoting (f64), the reference.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap();
        a.swap(col, p);
        b.swap(col, p);
        for r in 0..n {
            if r != col {
                let f = a[r][col] / a[col][col];
                let pivot = a[col].clone();
                for (x, p) in a[r][col..n].iter_mut().zip(&pivot[col..n]) {
                    *x -= f * p;
                }
                b[r] -= f * b[col];
            }
        }
    }
    (0..n).map(|i| b[i] / a[i][i]).collect()
}

#[test]
fn ff2_input_moment_is_the_mean_outer_product_of_every_position() {
    for model in models() {
        for layer in 0..model.n_layers() {
            let m = ff2_input_moment(model.as_ref(), layer, &corpus()).unwrap();
            // Each sequence of length L gives its first L - 1 positions (the last is the target);
            // the one-token sequence is skipped.
            let rows: Vec<Vec<f64>> = corpus()
                .iter()
                .filter(|s| s.len() >= 2)
                .flat_map(|s| ff2_inputs(model.as_ref(), &s[..s.len() - 1], layer))
                .collect();
            assert_eq!(m.count(), rows.len());
            let c = m.matrix().unwrap().to_vec2::<f64>().unwrap();
            let d = rows[0].len();
            for i in 0..d {
                for j in 0..d {
                    let want = rows.iter().map(|r| r[i] * r[j]).sum::<f64>() / rows.len() as f64;
                    assert!(
                        (c[i][j] - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "{} layer {layer} C[{i}][{j}] {} want {want}",
                        model.name(),
                        c[i][j]
                    );
                }
            }
        }
    }
}

#[test]
fn whitened_forward_pass_shift_adds_c_e_k_with_k_the_shrunk_whitened_input() {
    for model in models() {
        let prompt = vec![5, 1, 4, 2];
        let target = 3u32;
        for layer in 0..model.n_layers() {
            let lambda = 0.2;
            let whitener = LayerWhitener::estimate(model.as_ref(), layer, &corpus(), lambda).unwrap();
            // The reference key: z = C_λ⁻¹ x by elimination, k = z |x|² / (xᵀz).
            let c = whitener_input_moment(model.as_ref(), layer);
            let d = c.len();
            let mean_var = (0..d).map(|i| c[i][i]).sum::<f64>() / d as f64;
            let shrunk: Vec<Vec<f64>> = (0..d)
                .map(|i| {
                    (0..d).map(|j| (1.0 - lambda) * c[i][j] + if i == j { lambda * mean_var } else { 0.0 }).collect()
                })
                .collect();
            let x = ff2_inputs(model.as_ref(), &prompt, layer).pop().unwrap();
            let z = solve(shrunk, x.clone());
            let (xx, xz) = (x.iter().map(|v| v * v).sum::<f64>(), x.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>());
            let k: Vec<f64> = z.iter().map(|v| v * xx / xz).collect();
            let e = v64(&model.unembedding().i(target as usize).unwrap());
            let ee = e.iter().map(|v| v * v).sum::<f64>();
            let w = m64(model.weight(layer, Module::MlpDown).unwrap());
            let fps = ForwardPassShift::new(layer, Eta::ScaleFree(3.0)).with_key(Key::Whitened(Arc::new(whitener)));
            let req = EditRequest::new(prompt.clone(), vec![target]).unwrap();
            let edit = fps.compute(model.as_ref(), &[req]).unwrap();
            let got = m64(&edit.updates[0].weight);
            let coef = 3.0 / (xx * ee);
            let mut diff = 0f64;
            for (i, row) in w.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    diff = diff.max((got[i][j] - (v + coef * e[i] * k[j])).abs());
                }
            }
            assert!(diff < 1e-5, "{} layer {layer}: max |W' - (W + c e kᵀ)| = {diff:e}", model.name());
            // At x_n the output moves by c |x_n|² e, as with the plain key.
            let change: Vec<f64> = (0..e.len()).map(|i| (0..d).map(|j| (got[i][j] - w[i][j]) * x[j]).sum()).collect();
            for i in 0..e.len() {
                assert!(
                    (change[i] - coef * xx * e[i]).abs() < 1e-4,
                    "{} layer {layer}: ΔW x_n [{i}] = {} want {}",
                    model.name(),
                    change[i],
                    coef * xx * e[i]
                );
            }
        }
    }
}

fn whitener_input_moment(model: &dyn LanguageModel, layer: usize) -> Vec<Vec<f64>> {
    ff2_input_moment(model, layer, &corpus()).unwrap().matrix().unwrap().to_vec2::<f64>().unwrap()
}

#[test]
fn without_shrinkage_towards_c_the_whitened_key_is_the_papers_edit() {
    for model in models() {
        let layer = 1;
        let req = EditRequest::new(vec![2, 6, 1], vec![4]).unwrap();
        let plain = ForwardPassShift::new(layer, Eta::Raw(0.5));
        let identity = LayerWhitener::estimate(model.as_ref(), layer, &corpus(), 1.0).unwrap();
        let whitened = plain.clone().with_key(Key::Whitened(Arc::new(identity)));
        let (a, b) = (
            plain.compute(model.as_ref(), std::slice::from_ref(&req)).unwrap(),
            whitened.compute(model.as_ref(), &[req]).unwrap(),
        );
        let diff = (&a.updates[0].weight - &b.updates[0].weight)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{}: λ = 1 differs from the paper's edit by {diff:e}", model.name());
        assert!(whitened.name().contains("whitened key, shrinkage 1"), "{}", whitened.name());
    }
}

#[test]
fn a_key_estimated_at_another_layer_is_refused() {
    let model = random_llama(LLAMA, 21);
    let w = LayerWhitener::estimate(&model, 0, &corpus(), 0.5).unwrap();
    let fps = ForwardPassShift::new(1, Eta::Raw(0.5)).with_key(Key::Whitened(Arc::new(w)));
    let err = fps.compute(&model, &[EditRequest::new(vec![2, 6, 1], vec![4]).unwrap()]).unwrap_err().to_string();
    assert!(err.contains("estimated at layer 0") && err.contains("layer 1"), "{err}");
    let err = ff2_input_moment(&model, 0, &[vec![3]]).unwrap_err().to_string();
    assert!(err.contains("no sequence of two or more tokens"), "{err}");
    assert!(LayerWhitener::estimate(&model, 7, &corpus(), 0.5).is_err());
}

/// The template-contrast key on the tiny models (their tokenizer knows the words `t0 .. t{V-1}`).
fn contrast() -> TemplateContrast {
    TemplateContrast::with_subjects(["t1", "t2 t3", "t5", "t7 t7", "t8", "t9 t0 t1"].map(String::from).to_vec(), 0.3)
}

#[test]
fn template_contrast_whitens_with_the_last_token_of_the_template_filled_with_other_subjects() {
    for model in models() {
        let template = "{} t4 t6";
        for layer in 0..model.n_layers() {
            // The reference: the same second moment from traces of the filled templates.
            let mut want = SecondMoment::new(12).unwrap();
            for subject in contrast().subjects() {
                let ids = model.tokenizer().encode(&template.replacen("{}", subject, 1)).unwrap();
                let last = ff2_inputs(model.as_ref(), &ids, layer).pop().unwrap();
                want.add(&Tensor::new(vec![last], &candle_core::Device::Cpu).unwrap()).unwrap();
            }
            let want = want.whitener(0.3).unwrap();
            let got = contrast().whitener(model.as_ref(), layer, template).unwrap();
            let diff =
                (got.inverse() - want.inverse()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            let scale = want.inverse().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(diff <= 1e-6 * scale, "{} layer {layer}: C_λ⁻¹ differs by {diff:e} (max {scale:e})", model.name());
            // The edit uses exactly that key.
            let req = EditRequest::new(model.tokenizer().encode("t11 t4 t6").unwrap(), vec![3])
                .unwrap()
                .with_template(template);
            let x =
                Tensor::new(ff2_inputs(model.as_ref(), &req.prompt, layer).pop().unwrap(), &candle_core::Device::Cpu)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap();
            let k = want.key(&x).unwrap();
            let fps = ForwardPassShift::new(layer, Eta::Raw(0.7));
            let with_key =
                fps.clone().with_key(Key::Whitened(Arc::new(LayerWhitener { layer, tokens: 6, whitener: want })));
            let plain_whitened = with_key.compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
            let contrasted =
                fps.with_key(Key::TemplateContrast(Arc::new(contrast()))).compute(model.as_ref(), &[req]).unwrap();
            let diff = (&plain_whitened.updates[0].weight - &contrasted.updates[0].weight)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 1e-5,
                "{} layer {layer}: template-contrast edit differs from W + c e kᵀ by {diff:e}",
                model.name()
            );
            assert!(k.dims() == [12]);
        }
    }
}

#[test]
fn template_contrast_needs_a_template_with_one_placeholder() {
    let model = random_llama(LLAMA, 21);
    let fps = ForwardPassShift::new(1, Eta::Raw(0.5)).with_key(Key::TemplateContrast(Arc::new(contrast())));
    let err = fps.compute(&model, &[EditRequest::new(vec![2, 6, 1], vec![4]).unwrap()]).unwrap_err().to_string();
    assert!(err.contains("needs the prompt's template") && err.contains("with_template"), "{err}");
    let err = fps
        .compute(&model, &[EditRequest::new(vec![2, 6, 1], vec![4]).unwrap().with_template("t2 t6 t1")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one `{}`"), "{err}");
    assert!(fps.name().contains("template-contrast key, shrinkage 0.3, 6 subjects"), "{}", fps.name());
    assert_eq!(TemplateContrast::new(0.1).subjects().len(), INVENTED_SUBJECTS.len());
}

#[test]
fn template_contrast_cache_follows_the_weights() {
    let mut model = random_llama(LLAMA, 21);
    let contrast = contrast();
    let first = contrast.whitener(&model, 1, "{} t4 t6").unwrap();
    let again = contrast.whitener(&model, 1, "{} t4 t6").unwrap();
    assert_eq!(first.inverse().id(), again.inverse().id(), "the same weights hit the cache");
    // An edit of layer 0's FF2 changes the FF2 input of layer 1: the statistics are recomputed,
    // and equal a fresh object's.
    let w0 = model.weight(0, Module::MlpDown).unwrap().clone();
    model.set_weight(0, Module::MlpDown, (&w0 * 2.0).unwrap()).unwrap();
    let edited = contrast.whitener(&model, 1, "{} t4 t6").unwrap();
    let fresh =
        TemplateContrast::with_subjects(contrast.subjects().to_vec(), 0.3).whitener(&model, 1, "{} t4 t6").unwrap();
    assert_ne!(edited.inverse().id(), first.inverse().id());
    let diff =
        (edited.inverse() - fresh.inverse()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(diff == 0.0, "recomputed statistics differ from a fresh computation by {diff:e}");
    // With the original tensor back, the statistics equal the first ones again (recomputed: the
    // cache keeps one entry per layer and template).
    model.set_weight(0, Module::MlpDown, w0).unwrap();
    let restored = contrast.whitener(&model, 1, "{} t4 t6").unwrap();
    let diff =
        (restored.inverse() - first.inverse()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(diff == 0.0, "{diff:e}");
}
