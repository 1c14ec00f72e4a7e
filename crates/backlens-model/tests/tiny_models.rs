//! The in-memory test models of `backlens_model::testing` and the attention they share.
//!
//! - `random_llama` in both RoPE layouts matches an independent reference forward written here
//!   with plain loops in f64 (explicit rotation pairs, grouped-query heads), so a model that
//!   rotated the wrong dimension pairs fails;
//! - the same tensors written as Hugging Face checkpoints (Llama: as is; GPT-2: Conv1D [in, out]
//!   with a fused `c_attn`) load through the real loaders into the same model, so the test
//!   models and the loaders agree on every orientation;
//! - `layers::causal_attention` passes its gradient to q, k and v, matching f64 finite
//!   differences.

use backlens_model::testing::{
    random_gpt2_with_tensors, random_llama, random_llama_with_tensors, strategies, TinyGpt2, TinyLlama,
};
use backlens_model::{layers, Gpt2, Gpt2Activation, LanguageModel, Llama, Module, RopeLayout, TraceOptions};
use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DEV: Device = Device::Cpu;

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Rows of an (out, in) matrix as f64.
fn matrix(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn matvec(w: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    w.iter().map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn rms_norm(x: &[f64], g: &[f64], eps: f64) -> Vec<f64> {
    let r = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v / r * g).collect()
}

/// An independent Llama forward (Hugging Face semantics, any RoPE layout) from the named
/// tensors: the logits after the last token.
fn reference_llama(spec: &TinyLlama, t: &BTreeMap<String, Tensor>, ids: &[u32]) -> Vec<f64> {
    let (d, h, kv) = (spec.d_model, spec.n_heads, spec.n_kv_heads);
    let hd = d / h;
    let w = |name: &str| matrix(&t[name]);
    let g = |name: &str| vec1(&t[name]);
    let embed = w("model.embed_tokens.weight");
    let mut resid: Vec<Vec<f64>> = ids.iter().map(|&i| embed[i as usize].clone()).collect();
    // Dimension pairs that rotate together at frequency i.
    let pair = |i: usize| match spec.rope {
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        RopeLayout::HalfSplit => (i, i + hd / 2),
    };
    let rope = |v: &mut [f64], pos: usize| {
        for i in 0..hd / 2 {
            let angle = pos as f64 * 10_000f64.powf(-2.0 * i as f64 / hd as f64);
            let (a, b) = pair(i);
            let (x0, x1) = (v[a], v[b]);
            v[a] = x0 * angle.cos() - x1 * angle.sin();
            v[b] = x0 * angle.sin() + x1 * angle.cos();
        }
    };
    for l in 0..spec.n_layers {
        let p = format!("model.layers.{l}.");
        let (wq, wk, wv, wo) = (
            w(&format!("{p}self_attn.q_proj.weight")),
            w(&format!("{p}self_attn.k_proj.weight")),
            w(&format!("{p}self_attn.v_proj.weight")),
            w(&format!("{p}self_attn.o_proj.weight")),
        );
        let normed: Vec<Vec<f64>> =
            resid.iter().map(|x| rms_norm(x, &g(&format!("{p}input_layernorm.weight")), 1e-5)).collect();
        let (mut q, mut k): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
            (normed.iter().map(|x| matvec(&wq, x)).collect(), normed.iter().map(|x| matvec(&wk, x)).collect());
        let v: Vec<Vec<f64>> = normed.iter().map(|x| matvec(&wv, x)).collect();
        for (pos, (qp, kp)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            for head in 0..h {
                rope(&mut qp[head * hd..(head + 1) * hd], pos);
            }
            for head in 0..kv {
                rope(&mut kp[head * hd..(head + 1) * hd], pos);
            }
        }
        for i in 0..ids.len() {
            let mut mixed = vec![0.0; d];
            for head in 0..h {
                let kvh = head / (h / kv);
                let dot = |j: usize| {
                    (0..hd).map(|c| q[i][head * hd + c] * k[j][kvh * hd + c]).sum::<f64>() / (hd as f64).sqrt()
                };
                let scores: Vec<f64> = (0..=i).map(dot).collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for c in 0..hd {
                        mixed[head * hd + c] += ej / z * v[j][kvh * hd + c];
                    }
                }
            }
            let o = matvec(&wo, &mixed);
            resid[i].iter_mut().zip(o).for_each(|(r, o)| *r += o);
        }
        for x in resid.iter_mut() {
            let n = rms_norm(x, &g(&format!("{p}post_attention_layernorm.weight")), 1e-5);
            let gate = matvec(&w(&format!("{p}mlp.gate_proj.weight")), &n);
            let up = matvec(&w(&format!("{p}mlp.up_proj.weight")), &n);
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let down = matvec(&w(&format!("{p}mlp.down_proj.weight")), &act);
            x.iter_mut().zip(down).for_each(|(r, o)| *r += o);
        }
    }
    let last = rms_norm(resid.last().unwrap(), &g("model.norm.weight"), 1e-5);
    let unembed = if spec.tied { embed } else { w("lm_head.weight") };
    matvec(&unembed, &last)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16)))]

    /// Both RoPE layouts, grouped-query attention, tied and untied heads: the model's logits are
    /// the reference's. The two layouts give different logits (checked below), so a model that
    /// used the other layout fails here.
    #[test]
    fn random_llama_matches_an_independent_reference_forward(spec in strategies::tiny_llama(), seed in any::<u64>(), (ids, target) in strategies::prompt(20, 2..=7)) {
        let spec = TinyLlama { vocab: spec.vocab.max(20), ..spec };
        let (model, tensors) = random_llama_with_tensors(spec, seed);
        let trace = model.trace(&ids, target, &TraceOptions::only([])).unwrap();
        let reference = reference_llama(&spec, &tensors, &ids);
        let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = max_diff(&vec1(&trace.logits), &reference);
        prop_assert!(diff <= 1e-5 + 1e-4 * scale, "{}: logits differ from the reference by {:e}", model.name(), diff);
    }
}

#[test]
fn the_two_rope_layouts_give_different_models() {
    let spec = TinyLlama {
        n_layers: 1,
        d_model: 16,
        n_heads: 2,
        n_kv_heads: 1,
        d_ff: 24,
        vocab: 20,
        context: 8,
        rope: RopeLayout::Interleaved,
        tied: true,
    };
    let ids = [3, 1, 4, 15, 9];
    let a = random_llama(spec, 5).trace(&ids, 2, &TraceOptions::only([])).unwrap();
    let b = random_llama(TinyLlama { rope: RopeLayout::HalfSplit, ..spec }, 5)
        .trace(&ids, 2, &TraceOptions::only([]))
        .unwrap();
    let diff = max_diff(&vec1(&a.logits), &vec1(&b.logits));
    assert!(diff > 1e-3, "interleaved and half-split RoPE gave the same logits (max diff {diff:e})");
}

#[test]
fn random_models_are_deterministic_in_the_seed_and_canonical_in_layout() {
    let spec = TinyLlama {
        n_layers: 2,
        d_model: 12,
        n_heads: 3,
        n_kv_heads: 1,
        d_ff: 20,
        vocab: 17,
        context: 8,
        rope: RopeLayout::HalfSplit,
        tied: false,
    };
    let (a, b, c) = (random_llama(spec, 1), random_llama(spec, 1), random_llama(spec, 2));
    let w = |m: &Llama| vec1(m.weight(1, Module::MlpDown).unwrap());
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    // (out, in) for every linear module; d_ff, d_model, kv·head_dim and vocab all differ.
    let expect = [
        (Module::AttnQ, [12, 12]),
        (Module::AttnK, [4, 12]),
        (Module::AttnV, [4, 12]),
        (Module::AttnO, [12, 12]),
        (Module::MlpGate, [20, 12]),
        (Module::MlpUp, [20, 12]),
        (Module::MlpDown, [12, 20]),
    ];
    for (m, dims) in expect {
        assert_eq!(a.weight(0, m).unwrap().dims(), dims, "{}", m.name());
    }
    assert_eq!(a.unembedding().dims(), [17, 12]);
    assert_eq!(a.tokenizer().encode("t3 t16 t0").unwrap(), [3, 16, 0]);
    assert_eq!(a.tokenizer().vocab_size(), 17);
}

// ---------------------------------------------------------------------------------------------
// The test models against the loaders

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("backlens-tiny-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_checkpoint(
    dir: &Path,
    config: serde_json::Value,
    tensors: &BTreeMap<String, Tensor>,
    tokenizer_of: &dyn LanguageModel,
) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let map: std::collections::HashMap<String, Tensor> = tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    // The same WordLevel vocabulary, as tokenizer.json.
    use tokenizers::models::wordlevel::WordLevel;
    let vocab = (0..tokenizer_of.unembedding().dim(0).unwrap() as u32).map(|i| (format!("t{i}"), i)).collect();
    let mut tok = tokenizers::Tokenizer::new(WordLevel::builder().vocab(vocab).unk_token("t0".into()).build().unwrap());
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::WhitespaceSplit));
    tok.save(dir.join("tokenizer.json"), false).unwrap();
}

fn assert_same_traces(a: &dyn LanguageModel, b: &dyn LanguageModel, modules: &[Module]) {
    let ids = [4, 1, 7, 2, 9];
    let (ta, tb) = (a.trace(&ids, 3, &TraceOptions::all()).unwrap(), b.trace(&ids, 3, &TraceOptions::all()).unwrap());
    assert_eq!(vec1(&ta.logits), vec1(&tb.logits));
    for l in 0..a.n_layers() {
        for &m in modules {
            assert_eq!(vec1(a.weight(l, m).unwrap()), vec1(b.weight(l, m).unwrap()), "layers.{l}.{}", m.name());
        }
    }
    for p in ta.hook_points() {
        assert_eq!(vec1(ta.get(p).unwrap()), vec1(tb.get(p).unwrap()), "{p}");
    }
}

/// A Hugging Face Llama checkpoint holding `random_llama`'s tensors (its names are the
/// checkpoint's, (out, in) is the checkpoint's layout) loads into the same model.
#[test]
fn random_llama_is_what_the_hf_loader_reads_from_its_tensors() {
    for tied in [false, true] {
        let spec = TinyLlama {
            n_layers: 2,
            d_model: 12,
            n_heads: 3,
            n_kv_heads: 1,
            d_ff: 20,
            vocab: 17,
            context: 8,
            rope: RopeLayout::HalfSplit,
            tied,
        };
        let (model, tensors) = random_llama_with_tensors(spec, 11);
        let dir = TempDir::new("llama");
        let config = serde_json::json!({
            "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 12, "intermediate_size": 20,
            "num_attention_heads": 3, "num_key_value_heads": 1, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 8, "vocab_size": 17, "tie_word_embeddings": tied,
        });
        write_checkpoint(&dir.0, config, &tensors, &model);
        let loaded = Llama::from_hf_folder(&dir.0, &DEV).unwrap();
        assert_same_traces(&model, &loaded, &Module::linear().collect::<Vec<_>>());
    }
}

/// `random_gpt2`'s canonical tensors, converted to the Hugging Face layout (Conv1D weights
/// [in, out], q | k | v fused column-wise into `c_attn`), load into the same model.
#[test]
fn random_gpt2_is_what_the_hf_loader_reads_from_its_conv1d_layout() {
    let spec = TinyGpt2 {
        n_layers: 2,
        d_model: 12,
        n_heads: 3,
        d_ff: 20,
        vocab: 17,
        context: 8,
        activation: Gpt2Activation::GeluTanh,
        tied: false,
    };
    let (model, t) = random_gpt2_with_tensors(spec, 13);
    let conv1d = |name: &str| t[name].t().unwrap().contiguous().unwrap(); // (out, in) -> [in, out]
    let mut hf = BTreeMap::new();
    for name in ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"] {
        hf.insert(format!("transformer.{name}"), t[name].clone());
    }
    hf.insert("lm_head.weight".to_string(), t["lm_head.weight"].clone());
    for l in 0..spec.n_layers {
        let (p, h) = (format!("transformer.h.{l}."), format!("h.{l}."));
        for n in ["ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"] {
            hf.insert(format!("{p}{n}"), t[&format!("{h}{n}")].clone());
        }
        let qkv: Vec<Tensor> = ["q", "k", "v"].iter().map(|m| conv1d(&format!("{h}attn.{m}.weight"))).collect();
        hf.insert(format!("{p}attn.c_attn.weight"), Tensor::cat(&qkv, 1).unwrap()); // [d, 3d]
        let qkv_bias: Vec<Tensor> = ["q", "k", "v"].iter().map(|m| t[&format!("{h}attn.{m}.bias")].clone()).collect();
        hf.insert(format!("{p}attn.c_attn.bias"), Tensor::cat(&qkv_bias, 0).unwrap());
        for (ours, theirs) in [("attn.o", "attn.c_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")] {
            hf.insert(format!("{p}{theirs}.weight"), conv1d(&format!("{h}{ours}.weight")));
            hf.insert(format!("{p}{theirs}.bias"), t[&format!("{h}{ours}.bias")].clone());
        }
    }
    let dir = TempDir::new("gpt2");
    let config = serde_json::json!({
        "model_type": "gpt2", "activation_function": "gelu_new", "n_layer": 2, "n_embd": 12, "n_head": 3,
        "n_inner": 20, "n_positions": 8, "vocab_size": 17, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": false,
    });
    write_checkpoint(&dir.0, config, &hf, &model);
    let loaded = Gpt2::from_hf_folder(&dir.0, &DEV).unwrap();
    let modules = [Module::AttnQ, Module::AttnK, Module::AttnV, Module::AttnO, Module::MlpUp, Module::MlpDown];
    assert_same_traces(&model, &loaded, &modules);
}

// ---------------------------------------------------------------------------------------------
// The attention both architectures share

/// Deterministic f64 test data in [-1, 1).
fn data(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = backlens_model::testing::Rng::new(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect::<Vec<f64>>(), shape, &DEV).unwrap()
}

/// `layers::causal_attention` passes its gradient to each of q, k and v (no fused kernel), and
/// it matches central finite differences in f64 (h = 1e-6, relative error < 1e-5).
#[test]
fn causal_attention_gradients_match_finite_differences() {
    let (h, t, hd) = (2, 4, 3);
    let mask = layers::causal_mask(t, &DEV).unwrap().to_dtype(DType::F64).unwrap();
    let inputs: Vec<Tensor> = (0..3).map(|i| (data(&[h, t, hd], 30 + i) * 2.0).unwrap()).collect();
    let c = data(&[t, h * hd], 40);
    let loss = |xs: &[Tensor]| -> Tensor {
        let y = layers::causal_attention(&xs[0], &xs[1], &xs[2], 0.7, &mask).unwrap(); // (T, H·hd)
        (y * &c).unwrap().sum_all().unwrap()
    };
    let vars: Vec<Var> = inputs.iter().map(|x| Var::from_tensor(x).unwrap()).collect();
    let grads = loss(&vars.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>()).backward().unwrap();
    for (which, name) in ["q", "k", "v"].iter().enumerate() {
        let analytic = vec1(grads.get(vars[which].as_tensor()).unwrap_or_else(|| panic!("no gradient reached {name}")));
        let flat = vec1(&inputs[which]);
        let mut worst = 0f64;
        for i in 0..flat.len() {
            let at = |delta: f64| {
                let mut v = flat.clone();
                v[i] += delta;
                let mut xs = inputs.clone();
                xs[which] = Tensor::from_vec(v, (h, t, hd), &DEV).unwrap();
                loss(&xs).to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            worst = worst.max((fd - analytic[i]).abs() / (1e-6 + fd.abs()));
        }
        assert!(worst < 1e-5, "{name}: worst relative error {worst:e}");
    }
    // Query position 0 sees one key: its gradient is exactly zero (the rank loss of attn.q).
    let dq = grads.get(vars[0].as_tensor()).unwrap().to_vec3::<f64>().unwrap();
    assert!(dq.iter().all(|head| head[0].iter().all(|&g| g == 0.0)));
}
