//! GPT-2 through a tiny random checkpoint written in the real Hugging Face layout (Conv1D
//! weights [in, out], fused `c_attn`), loaded with `Gpt2::from_hf_folder`. No network.
//!
//! Sizes are non-square everywhere it matters (d = 24, d_ff = 96, c_attn 24 x 72, vocab 50), so a
//! forgotten transpose or a wrong q/k/v split cannot pass silently.

use backlens_model::{Gpt2, HfFolder, HookPoint, Kind, LanguageModel, ModelError, Module, Site, TraceOptions};
use candle_core::{DType, Device, IndexOp, Tensor, Var, D};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const N_LAYER: usize = 2;
const D_MODEL: usize = 24;
const N_HEAD: usize = 3;
const D_FF: usize = 4 * D_MODEL;
const VOCAB: usize = 50;
const N_POS: usize = 16;
const EPS: f64 = 1e-5;
const PROMPT: [u32; 6] = [3, 17, 42, 8, 25, 11];
const TARGET: u32 = 29;
/// The GPT-2 linear modules (no `mlp.gate`).
const LINEAR: [Module; 6] =
    [Module::AttnQ, Module::AttnK, Module::AttnV, Module::AttnO, Module::MlpUp, Module::MlpDown];

// ---------------------------------------------------------------------------------------------
// A tiny checkpoint in the Hugging Face layout

/// Deterministic uniform(-1, 1) numbers (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor(&mut self, shape: &[usize], offset: f32, scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| offset + scale * self.next()).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }
}

/// The checkpoint tensors by name, Conv1D weights [in, out], with the `transformer.` prefix.
fn tiny_tensors(seed: u64) -> HashMap<String, Tensor> {
    let mut rng = Rng(seed);
    let (d, ff) = (D_MODEL, D_FF);
    let mut t = HashMap::new();
    let mut put = |name: String, shape: &[usize], offset: f32, scale: f32| {
        t.insert(name, rng.tensor(shape, offset, scale));
    };
    put("transformer.wte.weight".into(), &[VOCAB, d], 0.0, 1.0);
    put("transformer.wpe.weight".into(), &[N_POS, d], 0.0, 0.5);
    put("transformer.ln_f.weight".into(), &[d], 1.0, 0.2);
    put("transformer.ln_f.bias".into(), &[d], 0.0, 0.2);
    for l in 0..N_LAYER {
        let p = format!("transformer.h.{l}.");
        put(format!("{p}ln_1.weight"), &[d], 1.0, 0.2);
        put(format!("{p}ln_1.bias"), &[d], 0.0, 0.2);
        put(format!("{p}attn.c_attn.weight"), &[d, 3 * d], 0.0, 0.5);
        put(format!("{p}attn.c_attn.bias"), &[3 * d], 0.0, 0.2);
        put(format!("{p}attn.c_proj.weight"), &[d, d], 0.0, 0.3);
        put(format!("{p}attn.c_proj.bias"), &[d], 0.0, 0.2);
        put(format!("{p}ln_2.weight"), &[d], 1.0, 0.2);
        put(format!("{p}ln_2.bias"), &[d], 0.0, 0.2);
        put(format!("{p}mlp.c_fc.weight"), &[d, ff], 0.0, 0.4);
        put(format!("{p}mlp.c_fc.bias"), &[ff], 0.0, 0.2);
        put(format!("{p}mlp.c_proj.weight"), &[ff, d], 0.0, 0.2);
        put(format!("{p}mlp.c_proj.bias"), &[d], 0.0, 0.2);
    }
    t
}

fn tiny_config() -> serde_json::Value {
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_layer": N_LAYER, "n_embd": D_MODEL, "n_head": N_HEAD, "n_inner": null,
        "n_positions": N_POS, "n_ctx": N_POS, "vocab_size": VOCAB,
        "layer_norm_epsilon": EPS,
        "scale_attn_weights": true,
    })
}

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("backlens-gpt2-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A WordLevel tokenizer over `w0 .. w49`, split on whitespace, saved with `Tokenizer::save`.
fn write_tokenizer(dir: &Path) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    let vocab = (0..VOCAB as u32).map(|i| (format!("w{i}"), i)).collect();
    let model = WordLevel::builder().vocab(vocab).unk_token("w0".to_string()).build().unwrap();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(WhitespaceSplit));
    tok.save(dir.join("tokenizer.json"), false).unwrap();
}

/// Writes config.json, model.safetensors and tokenizer.json.
fn write_folder(tag: &str, tensors: &HashMap<String, Tensor>, config: &serde_json::Value) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    candle_core::safetensors::save(tensors, dir.path().join("model.safetensors")).unwrap();
    write_tokenizer(dir.path());
    dir
}

fn tiny_folder(tag: &str) -> (TempDir, HashMap<String, Tensor>) {
    let tensors = tiny_tensors(0x9E37_79B9_7F4A_7C15);
    (write_folder(tag, &tensors, &tiny_config()), tensors)
}

fn load(dir: &TempDir) -> Gpt2 {
    Gpt2::from_hf_folder(dir.path(), &Device::Cpu).unwrap()
}

// ---------------------------------------------------------------------------------------------
// An independent reference forward, written from the Hugging Face semantics: `x @ W + b` with
// the stored [in, out] weights, the fused c_attn split by columns, one loop per head.

fn ln(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mu = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mu).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    xc.broadcast_div(&(var + EPS).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}

fn conv1d(x: &Tensor, t: &HashMap<String, Tensor>, name: &str) -> Tensor {
    x.matmul(&t[&format!("{name}.weight")]).unwrap().broadcast_add(&t[&format!("{name}.bias")]).unwrap()
}

struct Reference {
    loss: f32,
    logits: Tensor,
    /// dL/d(fused c_attn output) per layer, (T, 3d).
    c_attn_vjp: Vec<Tensor>,
}

fn reference(t: &HashMap<String, Tensor>, ids: &[u32], target: u32) -> Reference {
    let dev = Device::Cpu;
    let (n, d, hd) = (ids.len(), D_MODEL, D_MODEL / N_HEAD);
    let ids_t = Tensor::new(ids, &dev).unwrap();
    let mut h = (t["transformer.wte.weight"].index_select(&ids_t, 0).unwrap()
        + t["transformer.wpe.weight"].narrow(0, 0, n).unwrap())
    .unwrap();
    let mask: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { f32::NEG_INFINITY } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (n, n), &dev).unwrap();
    let mut probes = Vec::new();
    for l in 0..N_LAYER {
        let p = format!("transformer.h.{l}.");
        let x = ln(&h, &t[&format!("{p}ln_1.weight")], &t[&format!("{p}ln_1.bias")]);
        let probe = Var::zeros((n, 3 * d), DType::F32, &dev).unwrap();
        let qkv = (conv1d(&x, t, &format!("{p}attn.c_attn")) + probe.as_tensor()).unwrap(); // (T, 3d)
        probes.push(probe);
        let mut heads = Vec::new();
        for j in 0..N_HEAD {
            let q = qkv.narrow(1, j * hd, hd).unwrap();
            let k = qkv.narrow(1, d + j * hd, hd).unwrap();
            let v = qkv.narrow(1, 2 * d + j * hd, hd).unwrap();
            let scores =
                (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap().broadcast_add(&mask).unwrap();
            heads.push(candle_nn::ops::softmax(&scores, D::Minus1).unwrap().matmul(&v).unwrap());
        }
        let merged = Tensor::cat(&heads, 1).unwrap(); // (T, d)
        h = (h + conv1d(&merged, t, &format!("{p}attn.c_proj"))).unwrap();
        let x = ln(&h, &t[&format!("{p}ln_2.weight")], &t[&format!("{p}ln_2.bias")]);
        let act = conv1d(&x, t, &format!("{p}mlp.c_fc")).gelu().unwrap();
        h = (h + conv1d(&act, t, &format!("{p}mlp.c_proj"))).unwrap();
    }
    let last = h.narrow(0, n - 1, 1).unwrap();
    let unembed = t.get("lm_head.weight").unwrap_or(&t["transformer.wte.weight"]);
    let logits = ln(&last, &t["transformer.ln_f.weight"], &t["transformer.ln_f.bias"])
        .matmul(&unembed.t().unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let loss = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap().i(target as usize).unwrap().neg().unwrap();
    let grads = loss.backward().unwrap();
    let c_attn_vjp = probes.iter().map(|p| grads.get(p.as_tensor()).unwrap().clone()).collect();
    Reference { loss: loss.to_scalar().unwrap(), logits: logits.detach(), c_attn_vjp }
}

// ---------------------------------------------------------------------------------------------
// Comparison helpers

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor, atol: f32, rtol: f32) {
    let diff = max_abs_diff(a, b);
    let scale = max_abs(b);
    assert!(diff <= atol + rtol * scale, "{what}: max |a-b| = {diff:e}, scale {scale:e}");
}

fn sum_product(a: &Tensor, b: &Tensor) -> f32 {
    (a * b).unwrap().sum_all().unwrap().to_scalar().unwrap()
}

/// dL/dW of a module from the trace's factors: Δᵀ X, (d_out, d_in).
fn factored_grad(trace: &backlens_model::Trace, layer: usize, module: Module) -> Tensor {
    let (x, delta) = trace.gradient_factors(layer, module).unwrap();
    delta.t().unwrap().matmul(&x).unwrap()
}

fn err_string<T>(r: Result<T, ModelError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The forward pass and the layout

#[test]
fn forward_matches_an_independent_reference_with_fused_c_attn() {
    let (dir, tensors) = tiny_folder("reference");
    let model = load(&dir);
    let reference = reference(&tensors, &PROMPT, TARGET);
    let trace = model.trace(&PROMPT, TARGET, &TraceOptions::all()).unwrap();
    assert_close("logits", &trace.logits, &reference.logits, 1e-4, 1e-4);
    assert!((trace.loss - reference.loss).abs() < 1e-4, "loss {} vs reference {}", trace.loss, reference.loss);
    // The logits are not degenerate (so the comparison means something).
    assert!(max_abs(&trace.logits) > 0.5);
    // (d) the split of c_attn: the VJPs of q | k | v are the VJP of the fused output.
    for l in 0..N_LAYER {
        let parts: Vec<Tensor> = [Module::AttnQ, Module::AttnK, Module::AttnV]
            .iter()
            .map(|&m| trace.require(Site::new(m, Kind::Vjp).at(l)).unwrap().clone())
            .collect();
        let fused = Tensor::cat(&parts, 1).unwrap(); // (T, 3d)
        assert!(max_abs(&reference.c_attn_vjp[l]) > 1e-3, "layer {l}: c_attn VJP is degenerate");
        assert_close(&format!("layers.{l} c_attn VJP"), &fused, &reference.c_attn_vjp[l], 1e-6, 1e-4);
        // Every part is non-zero, so a swap of two parts would show.
        for (m, part) in ["q", "k", "v"].iter().zip(&parts) {
            assert!(max_abs(part) > 1e-4, "layers.{l}.attn.{m}.vjp is zero");
        }
    }
}

#[test]
fn weights_are_in_canonical_out_in_layout() {
    let (dir, tensors) = tiny_folder("layout");
    let model = load(&dir);
    let d = D_MODEL;
    for l in 0..N_LAYER {
        let p = format!("transformer.h.{l}.");
        let c_attn = &tensors[&format!("{p}attn.c_attn.weight")]; // [in = d, out = 3d]
        let c_attn_b = &tensors[&format!("{p}attn.c_attn.bias")];
        for (i, m) in [Module::AttnQ, Module::AttnK, Module::AttnV].into_iter().enumerate() {
            let expected = c_attn.narrow(1, i * d, d).unwrap().t().unwrap();
            assert_eq!(max_abs_diff(model.weight(l, m).unwrap(), &expected), 0.0, "layers.{l}.{}", m.name());
            assert_eq!(max_abs_diff(model.bias(l, m).unwrap(), &c_attn_b.narrow(0, i * d, d).unwrap()), 0.0);
        }
        for (m, name, shape) in [
            (Module::AttnO, "attn.c_proj", [d, d]),
            (Module::MlpUp, "mlp.c_fc", [D_FF, d]),
            (Module::MlpDown, "mlp.c_proj", [d, D_FF]),
        ] {
            let w = model.weight(l, m).unwrap();
            assert_eq!(w.dims(), shape, "layers.{l}.{}", m.name());
            let expected = tensors[&format!("{p}{name}.weight")].t().unwrap();
            assert_eq!(max_abs_diff(w, &expected), 0.0, "layers.{l}.{}", m.name());
        }
        let err = err_string(model.weight(l, Module::MlpGate));
        assert!(err.contains("mlp.gate") && err.contains("GPT-2"), "{err}");
        assert!(model.weight(l, Module::Block).is_err());
    }
    assert!(model.weight(N_LAYER, Module::MlpUp).is_err());
    assert_eq!(model.unembedding().dims(), [VOCAB, d]);
    assert_eq!(max_abs_diff(model.unembedding(), &tensors["transformer.wte.weight"]), 0.0, "tied unembedding");
    assert!(matches!(model.final_norm(), backlens_model::Norm::Layer { .. }));
    assert_eq!((model.n_layers(), model.d_model(), model.context_length()), (N_LAYER, D_MODEL, N_POS));
    assert_eq!(model.name(), dir.path().file_name().unwrap().to_str().unwrap());
}

#[test]
fn trace_has_the_llama_hook_names() {
    let (dir, _) = tiny_folder("hooks");
    let model = load(&dir);
    let trace = model.trace(&PROMPT, TARGET, &TraceOptions::all()).unwrap();
    let got: BTreeSet<String> = trace.hook_points().map(|p| p.to_string()).collect();
    let mut expected = BTreeSet::new();
    for l in 0..N_LAYER {
        for m in LINEAR.into_iter().chain([Module::Block]) {
            for k in [Kind::Input, Kind::Output, Kind::Vjp] {
                expected.insert(HookPoint { layer: l, site: Site::new(m, k) }.to_string());
            }
        }
    }
    assert_eq!(got, expected);
    let n = PROMPT.len();
    for l in 0..N_LAYER {
        // q, k and v read the same ln_1 output.
        let q_in = trace.require(Site::new(Module::AttnQ, Kind::Input).at(l)).unwrap();
        for m in [Module::AttnK, Module::AttnV] {
            assert_eq!(max_abs_diff(q_in, trace.require(Site::new(m, Kind::Input).at(l)).unwrap()), 0.0);
        }
        assert_eq!(trace.require(Site::MLP_UP_INPUT.at(l)).unwrap().dims(), [n, D_MODEL]);
        assert_eq!(trace.require(Site::new(Module::MlpDown, Kind::Input).at(l)).unwrap().dims(), [n, D_FF]);
        // The MLP output is added straight to the residual: FF2's VJP is the block's.
        let down = trace.require(Site::MLP_DOWN_VJP.at(l)).unwrap();
        let block = trace.require(Site::new(Module::Block, Kind::Vjp).at(l)).unwrap();
        assert_eq!(max_abs_diff(down, block), 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Gradients

#[test]
fn trace_factors_reconstruct_autograd_weight_gradients_at_every_linear_module() {
    let (dir, _) = tiny_folder("autograd");
    let model = load(&dir);
    let mut options = TraceOptions::all();
    for l in 0..N_LAYER {
        for m in LINEAR {
            options = options.with_weight_grad(l, m);
        }
    }
    let trace = model.trace(&PROMPT, TARGET, &options).unwrap();
    for l in 0..N_LAYER {
        for m in LINEAR {
            let autograd = trace.autograd_weight_grad(l, m).unwrap();
            assert_eq!(autograd.dims(), model.weight(l, m).unwrap().dims());
            assert!(max_abs(autograd) > 1e-5, "layers.{l}.{}: autograd gradient is zero", m.name());
            assert_close(&format!("dL/dW layers.{l}.{}", m.name()), &factored_grad(&trace, l, m), autograd, 1e-6, 1e-4);
        }
    }
}

#[test]
fn finite_differences_match_the_trace_gradient() {
    let (dir, _) = tiny_folder("fd");
    let model = load(&dir);
    let trace = model.trace(&PROMPT, TARGET, &TraceOptions::all()).unwrap();
    let loss_at = |layer: usize, module: Module, w: Tensor| -> f32 {
        let mut edited = model.clone();
        edited.set_weight(layer, module, w).unwrap();
        edited.trace(&PROMPT, TARGET, &TraceOptions::only([])).unwrap().loss
    };
    let eps = 1e-2;
    let mut rng = Rng(7);
    for layer in 0..N_LAYER {
        for module in [Module::MlpUp, Module::AttnQ] {
            let w = model.weight(layer, module).unwrap().clone();
            let grad = factored_grad(&trace, layer, module);
            let norm = grad.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 1e-2, "layers.{layer}.{}: gradient too small to test ({norm})", module.name());
            let random = rng.tensor(w.dims(), 0.0, 1.0);
            let random = (&random
                / random.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap() as f64)
                .unwrap();
            let steepest = (&grad / norm as f64).unwrap();
            for (what, dir) in [("gradient direction", steepest), ("random direction", random)] {
                let plus = loss_at(layer, module, (&w + (&dir * eps).unwrap()).unwrap());
                let minus = loss_at(layer, module, (&w - (&dir * eps).unwrap()).unwrap());
                let fd = (plus - minus) / (2.0 * eps as f32);
                let analytic = sum_product(&grad, &dir);
                assert!(
                    (fd - analytic).abs() <= 2e-4 + 1e-2 * analytic.abs(),
                    "layers.{layer}.{} {what}: finite difference {fd} vs <Δᵀ X, D> {analytic}",
                    module.name()
                );
            }
        }
    }
    // set_weight edits a clone only.
    assert_eq!(model.weight(0, Module::MlpUp).unwrap().dims(), [D_FF, D_MODEL]);
    let mut edited = model.clone();
    edited.set_weight(0, Module::MlpUp, model.weight(0, Module::MlpUp).unwrap().zeros_like().unwrap()).unwrap();
    assert!(max_abs(model.weight(0, Module::MlpUp).unwrap()) > 0.0);
    let err = err_string(edited.set_weight(
        0,
        Module::MlpUp,
        Tensor::zeros((D_MODEL, D_FF), DType::F32, &Device::Cpu).unwrap(),
    ));
    assert!(err.contains("layers.0.mlp.up") && err.contains("[96, 24]"), "{err}");
}

#[test]
fn last_layer_ff2_vjps_vanish_for_every_token_but_the_last() {
    let (dir, _) = tiny_folder("rank");
    let model = load(&dir);
    let trace = model.trace(&PROMPT, TARGET, &TraceOptions::only([Site::MLP_DOWN_VJP])).unwrap();
    let n = PROMPT.len();
    let last = N_LAYER - 1;
    let delta = trace.require(Site::MLP_DOWN_VJP.at(last)).unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in delta.iter().enumerate() {
        let zero = row.iter().all(|&v| v == 0.0);
        assert_eq!(zero, i + 1 < n, "token {i}: δ_i at the last layer must be zero exactly for i < n");
    }
    // Below the last layer every token reaches the loss.
    let delta = trace.require(Site::MLP_DOWN_VJP.at(0)).unwrap().to_vec2::<f32>().unwrap();
    assert!(delta.iter().all(|row| row.iter().any(|&v| v != 0.0)));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint variants

#[test]
fn loads_unprefixed_names_untied_lm_head_half_precision_and_shards() {
    let (dir, tensors) = tiny_folder("variants-base");
    let base = load(&dir);
    let logits = base.trace(&PROMPT, TARGET, &TraceOptions::only([])).unwrap().logits;

    // GPT2Model names (no `transformer.` prefix), as in the original `gpt2` repository.
    let unprefixed: HashMap<String, Tensor> =
        tensors.iter().map(|(k, v)| (k.strip_prefix("transformer.").unwrap().to_string(), v.clone())).collect();
    let d2 = write_folder("variants-unprefixed", &unprefixed, &tiny_config());
    let got = load(&d2).trace(&PROMPT, TARGET, &TraceOptions::only([])).unwrap().logits;
    assert_eq!(max_abs_diff(&got, &logits), 0.0, "unprefixed names");

    // An untied lm_head is used instead of wte.
    let mut untied = tensors.clone();
    untied.insert("lm_head.weight".into(), Rng(99).tensor(&[VOCAB, D_MODEL], 0.0, 1.0));
    let d3 = write_folder("variants-untied", &untied, &tiny_config());
    let model = load(&d3);
    assert_eq!(max_abs_diff(model.unembedding(), &untied["lm_head.weight"]), 0.0);
    let got = model.trace(&PROMPT, TARGET, &TraceOptions::only([])).unwrap().logits;
    assert_close("untied logits", &got, &reference(&untied, &PROMPT, TARGET).logits, 1e-4, 1e-4);
    assert!(max_abs_diff(&got, &logits) > 0.1);

    // f16 and bf16 checkpoints load as f32 values of the stored numbers.
    for dtype in [DType::F16, DType::BF16] {
        let half: HashMap<String, Tensor> =
            tensors.iter().map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap())).collect();
        let d4 = write_folder("variants-half", &half, &tiny_config());
        let model = load(&d4);
        let expected = half["transformer.h.1.mlp.c_fc.weight"].to_dtype(DType::F32).unwrap().t().unwrap();
        let w = model.weight(1, Module::MlpUp).unwrap();
        assert_eq!(w.dtype(), DType::F32);
        assert_eq!(max_abs_diff(w, &expected), 0.0, "{dtype:?}");
        assert!(
            max_abs_diff(w, &tensors["transformer.h.1.mlp.c_fc.weight"].t().unwrap()) > 0.0,
            "{dtype:?} rounding expected"
        );
    }

    // Sharded weights with model.safetensors.index.json.
    let d5 = TempDir::new("variants-sharded");
    std::fs::copy(dir.path().join("config.json"), d5.path().join("config.json")).unwrap();
    std::fs::copy(dir.path().join("tokenizer.json"), d5.path().join("tokenizer.json")).unwrap();
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (k, v) in &tensors {
        let i = usize::from(k.contains(".h.1.") || k.contains("ln_f"));
        shards[i].insert(k.clone(), v.clone());
        weight_map.insert(k.clone(), json!(format!("model-0000{}-of-00002.safetensors", i + 1)));
    }
    for (i, shard) in shards.iter().enumerate() {
        candle_core::safetensors::save(shard, d5.path().join(format!("model-0000{}-of-00002.safetensors", i + 1)))
            .unwrap();
    }
    std::fs::write(
        d5.path().join("model.safetensors.index.json"),
        json!({ "metadata": {}, "weight_map": weight_map }).to_string(),
    )
    .unwrap();
    let got = load(&d5).trace(&PROMPT, TARGET, &TraceOptions::only([])).unwrap().logits;
    assert_eq!(max_abs_diff(&got, &logits), 0.0, "sharded");
    // A missing shard is named.
    std::fs::remove_file(d5.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = err_string(Gpt2::from_hf_folder(d5.path(), &Device::Cpu));
    assert!(err.contains("model-00002-of-00002.safetensors") && err.contains("missing"), "{err}");
}

#[test]
fn tokenizer_json_gives_ids_and_pieces() {
    let (dir, _) = tiny_folder("tokenizer");
    let model = load(&dir);
    let tok = model.tokenizer();
    assert_eq!(tok.vocab_size(), VOCAB);
    assert_eq!(tok.encode("w3 w17 w42").unwrap(), [3, 17, 42]);
    assert_eq!(tok.piece(42), Some("w42"));
    assert_eq!(tok.piece(VOCAB as u32), None);
    assert_eq!(tok.single_token("w29").unwrap(), TARGET);
    assert!(tok.single_token("w1 w2").is_err());
    // Missing and corrupt tokenizer.json are errors naming the file.
    let tok_path = dir.path().join("tokenizer.json");
    std::fs::write(&tok_path, "{ not json").unwrap();
    let err = err_string(Gpt2::from_hf_folder(dir.path(), &Device::Cpu));
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::remove_file(&tok_path).unwrap();
    let err = err_string(Gpt2::from_hf_folder(dir.path(), &Device::Cpu));
    assert!(err.contains("tokenizer.json") && err.contains("missing"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// HfFolder and errors

#[test]
fn hf_folder_config_accessors_name_the_file_and_key() {
    let (dir, _) = tiny_folder("accessors");
    let folder = HfFolder::open(dir.path()).unwrap();
    assert_eq!(folder.dir(), dir.path());
    assert_eq!(folder.usize("n_embd").unwrap(), D_MODEL);
    assert_eq!(folder.f64("layer_norm_epsilon").unwrap(), EPS);
    assert_eq!(folder.f64("n_head").unwrap(), N_HEAD as f64);
    assert_eq!(folder.string("model_type").unwrap(), "gpt2");
    assert_eq!(folder.opt_usize("n_inner"), None);
    assert_eq!(folder.opt_usize("n_layer"), Some(N_LAYER));
    assert_eq!(folder.opt_f64("missing"), None);
    assert_eq!(folder.opt_bool("scale_attn_weights"), Some(true));
    assert_eq!(folder.config()["architectures"][0], "GPT2LMHeadModel");
    let err = err_string(folder.usize("n_kv_heads"));
    assert!(err.contains("config.json") && err.contains("n_kv_heads") && err.contains("missing"), "{err}");
    let err = err_string(folder.usize("model_type"));
    assert!(err.contains("config.json") && err.contains("model_type") && err.contains("\"gpt2\""), "{err}");
    let err = err_string(folder.usize("layer_norm_epsilon"));
    assert!(err.contains("non-negative integer"), "{err}");
    assert!(folder.has_tensor("transformer.h.1.mlp.c_fc.weight"));
    assert!(!folder.has_tensor("transformer.h.2.mlp.c_fc.weight"));
    let specs = vec![("transformer.ln_f.bias".to_string(), vec![D_MODEL])];
    assert_eq!(folder.tensors(&specs, &Device::Cpu).unwrap()[0].dims(), [D_MODEL]);
    let err = err_string(folder.tensors(&[("nope".to_string(), vec![1])], &Device::Cpu));
    assert!(err.contains("nope") && err.contains("missing"), "{err}");
    assert_eq!(folder.tokenizer().unwrap().vocab_size(), VOCAB);
}

#[test]
fn loading_errors_are_clear_and_never_panic() {
    let (dir, tensors) = tiny_folder("errors");
    let open = |p: &Path| err_string(Gpt2::from_hf_folder(p, &Device::Cpu));

    // A folder that does not exist.
    let nowhere = dir.path().join("nowhere");
    let err = open(&nowhere);
    assert!(err.contains("nowhere") && err.contains("not a folder"), "{err}");

    // Missing config.json.
    let d = write_folder("errors-noconfig", &tensors, &tiny_config());
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let err = open(d.path());
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(d.path().join("config.json"), "not json").unwrap();
    let err = open(d.path());
    assert!(err.contains("config.json") && err.contains("JSON"), "{err}");

    // Missing weights.
    let d = write_folder("errors-noweights", &tensors, &tiny_config());
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let err = open(d.path());
    assert!(err.contains("model.safetensors"), "{err}");

    // A missing config key.
    let mut config = tiny_config();
    config.as_object_mut().unwrap().remove("n_head");
    let err = open(write_folder("errors-nokey", &tensors, &config).path());
    assert!(err.contains("config.json") && err.contains("n_head"), "{err}");

    // model_type mismatch.
    let mut config = tiny_config();
    config["model_type"] = json!("llama");
    let err = open(write_folder("errors-modeltype", &tensors, &config).path());
    assert!(err.contains("model_type") && err.contains("llama") && err.contains("gpt2"), "{err}");
    // No model_type at all is accepted.
    let mut config = tiny_config();
    config.as_object_mut().unwrap().remove("model_type");
    assert!(Gpt2::from_hf_folder(write_folder("errors-nomodeltype", &tensors, &config).path(), &Device::Cpu).is_ok());
    // An architecture backlens does not have, through the loader that dispatches on model_type:
    // the message names it and what is supported, and does not talk about GGUF files.
    let mut config = tiny_config();
    config["model_type"] = json!("mistral");
    let d = write_folder("errors-unsupported", &tensors, &config);
    let err = match backlens_model::load(d.path(), &Device::Cpu) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a mistral config.json loaded"),
    };
    assert!(err.contains("mistral") && err.contains("config.json model_type") && err.contains("llama, gpt2"), "{err}");
    assert!(!err.contains("GGUF"), "{err}");
    // A GPT-2 folder given to the Llama loader: named as a config.json mismatch, not a GGUF one.
    let err = err_string(backlens_model::Llama::from_hf_folder(dir.path(), &Device::Cpu));
    assert!(err.contains("`gpt2` (config.json model_type)") && !err.contains("GGUF"), "{err}");

    // A truncated c_fc (one output column short).
    let mut bad = tensors.clone();
    let name = "transformer.h.1.mlp.c_fc.weight";
    bad.insert(name.into(), tensors[name].narrow(1, 0, D_FF - 1).unwrap().contiguous().unwrap());
    let r = Gpt2::from_hf_folder(write_folder("errors-shape", &bad, &tiny_config()).path(), &Device::Cpu);
    match r {
        Err(e @ ModelError::ShapeMismatch { .. }) if !e.to_string().contains("is expected") => {
            panic!("the message should say which shape is expected: {e}")
        }
        Err(ModelError::ShapeMismatch { name: n, expected, found }) => {
            assert_eq!((n.as_str(), expected, found), (name, vec![D_MODEL, D_FF], vec![D_MODEL, D_FF - 1]));
        }
        Err(e) => panic!("expected ShapeMismatch, got {e}"),
        Ok(_) => panic!("expected ShapeMismatch"),
    }

    // A missing tensor.
    let mut bad = tensors.clone();
    bad.remove("transformer.h.0.attn.c_proj.bias");
    let err = open(write_folder("errors-missing", &bad, &tiny_config()).path());
    assert!(err.contains("transformer.h.0.attn.c_proj.bias") && err.contains("missing"), "{err}");

    // A NaN weight.
    let mut bad = tensors.clone();
    let mut values = tensors["transformer.h.0.ln_2.bias"].to_vec1::<f32>().unwrap();
    values[3] = f32::NAN;
    bad.insert("transformer.h.0.ln_2.bias".into(), Tensor::new(values, &Device::Cpu).unwrap());
    let r = Gpt2::from_hf_folder(write_folder("errors-nan", &bad, &tiny_config()).path(), &Device::Cpu);
    assert!(matches!(r, Err(ModelError::NonFinite { ref name }) if name == "transformer.h.0.ln_2.bias"));

    // Corrupt safetensors: truncated, garbage, empty.
    let d = write_folder("errors-corrupt", &tensors, &tiny_config());
    let path = d.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for (what, content) in [
        ("truncated", &bytes[..bytes.len() / 2]),
        ("header only", &bytes[..40]),
        ("garbage", &b"this is not a safetensors file at all"[..]),
        ("empty", &[][..]),
    ] {
        std::fs::write(&path, content).unwrap();
        let err = open(d.path());
        assert!(err.contains("model.safetensors") && err.contains("corrupt"), "{what}: {err}");
    }
    // A file one byte short of its data.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = open(d.path());
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn prompts_are_checked_against_the_context_and_vocabulary() {
    let (dir, _) = tiny_folder("prompts");
    let model = load(&dir);
    let long: Vec<u32> = (0..N_POS as u32 + 1).collect();
    assert!(matches!(model.trace(&long, TARGET, &TraceOptions::all()), Err(ModelError::PromptTooLong { .. })));
    let full: Vec<u32> = (0..N_POS as u32).collect();
    assert!(model.trace(&full, TARGET, &TraceOptions::only([])).is_ok());
    assert!(matches!(
        model.trace(&[1, VOCAB as u32], TARGET, &TraceOptions::all()),
        Err(ModelError::TokenOutOfRange { .. })
    ));
    assert!(matches!(model.trace(&[], TARGET, &TraceOptions::all()), Err(ModelError::EmptyPrompt)));
}
