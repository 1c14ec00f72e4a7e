//! Golden tests in the style of llm.c's test_gpt2.c: tiny random GPT-2 and Llama checkpoints
//! built with Hugging Face transformers, and reference dumps of their logits, loss, every hooked
//! input, output and VJP, and every weight gradient (torch autograd), all in `tests/golden/`
//! (regenerate with `tests/golden/generate.py`, see its README). The checkpoints load through
//! the same code users use; every tensor is compared with a readable max-difference report.
//!
//! Tolerance: `max|ours - ref| <= 1e-6 + 2e-5 · max|ref|` per tensor. The reference is float64
//! cast to float32; a float32 torch run differs from it by < 2e-6 relative, and our f32 pass
//! reorders sums (observed: < 5e-7 relative), so 2e-5 leaves room for rounding, not for a bug.

use backlens::lens::LogitLens;
use backlens::model::{self, HookPoint, Kind, LanguageModel, Module, Site, TraceOptions};
use backlens_tests::assert_close;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

const ATOL: f32 = 1e-6;
const RTOL: f32 = 2e-5;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

struct Golden {
    model: Box<dyn LanguageModel>,
    dump: HashMap<String, Tensor>,
    cases: Vec<(String, Vec<u32>, u32)>,
}

fn golden(name: &str) -> Golden {
    let dir = golden_dir();
    let model = model::load(&dir.join(name), &Device::Cpu).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    let dump = candle_core::safetensors::load(dir.join(format!("{name}.dump.safetensors")), &Device::Cpu).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.dump.json"))).unwrap()).unwrap();
    let cases = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            (c["name"].as_str().unwrap().to_string(), ids, c["target_id"].as_u64().unwrap() as u32)
        })
        .collect();
    Golden { model, dump, cases }
}

/// Every linear module the architecture has (GPT-2 has no gate).
fn modules_of(g: &Golden) -> Vec<Module> {
    Module::linear().filter(|m| g.dump.contains_key(&format!("case0.layers.0.{}.input", m.name()))).collect()
}

fn check_model(name: &str) {
    let g = golden(name);
    let modules = modules_of(&g);
    let layers = g.model.n_layers();
    let mut options = TraceOptions::all();
    for l in 0..layers {
        for &m in &modules {
            options = options.with_weight_grad(l, m);
        }
    }
    let lens = LogitLens::new(g.model.final_norm().clone(), g.model.unembedding().clone()).unwrap();
    let mut compared = 0;
    for (case, ids, target) in &g.cases {
        let trace = g.model.trace(ids, *target, &options).unwrap();
        let reference =
            |key: &str| g.dump.get(&format!("{case}.{key}")).unwrap_or_else(|| panic!("dump lacks {case}.{key}"));
        assert_close(&format!("{name} {case} logits"), &trace.logits, reference("logits"), ATOL, RTOL);
        let ref_loss = reference("loss").to_scalar::<f32>().unwrap();
        assert!(
            (trace.loss - ref_loss).abs() <= 1e-5 * ref_loss.abs().max(1.0),
            "{name} {case} loss {} vs {ref_loss}",
            trace.loss
        );
        for l in 0..layers {
            let sites = modules
                .iter()
                .flat_map(|&m| Kind::ALL.map(|k| Site::new(m, k)))
                .chain(Kind::ALL.map(|k| Site::new(Module::Block, k)));
            for site in sites {
                let point = HookPoint { layer: l, site };
                let key = point.to_string();
                let ours = trace.require(point).unwrap();
                assert_close(&format!("{name} {case} {key}"), ours, reference(&key), ATOL, RTOL);
                compared += 1;
            }
            for &m in &modules {
                let key = format!("layers.{l}.{}.weight_grad", m.name());
                let autograd = trace.autograd_weight_grad(l, m).unwrap();
                let (x, delta) = trace.gradient_factors(l, m).unwrap();
                let factored = delta.t().unwrap().matmul(&x).unwrap(); // Δᵀ X, (d_out, d_in)
                assert_close(&format!("{name} {case} {key} (autograd)"), autograd, reference(&key), ATOL, RTOL);
                assert_close(&format!("{name} {case} {key} (Δᵀ X)"), &factored, reference(&key), ATOL, RTOL);
                compared += 2;
            }
        }
        // The lens of each block output at the last token, against the model's own final norm
        // and head in transformers (for GPT-2: LayerNorm with bias).
        let out = Site::new(Module::Block, Kind::Output);
        let last_rows: Vec<Tensor> =
            (0..layers).map(|l| trace.require(out.at(l)).unwrap().narrow(0, ids.len() - 1, 1).unwrap()).collect();
        let lens_logits = lens.logits(&Tensor::cat(&last_rows, 0).unwrap()).unwrap();
        assert_close(
            &format!("{name} {case} lens.block_output_last"),
            &lens_logits,
            reference("lens.block_output_last"),
            ATOL,
            RTOL,
        );
    }
    assert!(compared > 100, "{name}: only {compared} tensors compared");
}

#[test]
fn gpt2_tiny_matches_transformers() {
    check_model("gpt2-tiny");
}

#[test]
fn llama_tiny_matches_transformers() {
    check_model("llama-tiny");
}

#[test]
fn llama_tiny_with_tied_embeddings_matches_transformers() {
    check_model("llama-tiny-tied");
}

#[test]
fn golden_tokenizers_match_the_python_ids() {
    for name in ["gpt2-tiny", "llama-tiny"] {
        let g = golden(name);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(golden_dir().join(format!("{name}.dump.json"))).unwrap()).unwrap();
        for case in json["cases"].as_array().unwrap() {
            let ids = g.model.tokenizer().encode(case["prompt"].as_str().unwrap()).unwrap();
            let expected: Vec<u32> =
                case["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(ids, expected, "{name}: {}", case["prompt"]);
            assert_eq!(
                g.model.tokenizer().single_token(case["target"].as_str().unwrap()).unwrap() as u64,
                case["target_id"].as_u64().unwrap()
            );
        }
    }
}
