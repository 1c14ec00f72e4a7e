//! A mutation fuzzer for the model loaders, on stable Rust inside `cargo test`.
//!
//! Small valid models are written in the test: a tiny Llama GGUF (candle's `gguf_file::write`,
//! f32 tensors, a byte-level BPE vocabulary `t0 .. t{V-1}`) and a tiny Hugging Face Llama folder
//! (`config.json`, `model.safetensors` from `backlens_model::testing`, `tokenizer.json`). proptest
//! then mutates them: GGUF bytes (flips, truncation, large counts written at header positions),
//! config.json values (0, -1, 1e9, 2^32, 1e300, "NaN", true, null, a list) and tensor shapes.
//! Every case must give `Ok` or a clean `Err`:
//!
//! - no panic: the load runs under `catch_unwind` in its own thread;
//! - no hang: each case must finish within [`CASE_TIMEOUT`];
//! - bounded memory: the growth of the process's peak resident set (`VmHWM` in
//!   `/proc/self/status`, reset through `/proc/self/clear_refs` before each case) must stay
//!   under 64 × the file size + 64 MiB. The cases run one at a time (a mutex), so the peak is
//!   this case's. Where `/proc` is not available the memory bound is not checked.
//!
//! Budget: 48 cases per property by default (a few seconds in a debug build). The longer local
//! run: `FUZZ_CASES=5000 cargo test -p backlens-model --test fuzz_loaders`.

use backlens_model::testing::{random_llama_with_tensors, TinyLlama};
use backlens_model::Llama;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The longest one case may take.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// One case at a time, so the peak-RSS measurement is this case's.
static SERIAL: Mutex<()> = Mutex::new(());

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

const SPEC: TinyLlama = TinyLlama { vocab: 11, context: 8, tied: false, ..TinyLlama::SMALL };

fn tensors() -> BTreeMap<String, Tensor> {
    random_llama_with_tensors(SPEC, 5).1
}

fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("backlens-fuzz-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The GGUF name of a Hugging Face Llama tensor name.
fn gguf_name(hf: &str) -> String {
    let map = [
        ("input_layernorm", "attn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    match hf {
        "model.embed_tokens.weight" => "token_embd.weight".into(),
        "model.norm.weight" => "output_norm.weight".into(),
        "lm_head.weight" => "output.weight".into(),
        _ => {
            let rest = hf.strip_prefix("model.layers.").unwrap();
            let (l, module) = rest.split_once('.').unwrap();
            let module = module.strip_suffix(".weight").unwrap();
            let ours = map.iter().find(|(h, _)| *h == module).unwrap().1;
            format!("blk.{l}.{ours}.weight")
        }
    }
}

/// A valid tiny Llama GGUF, as bytes, with `block_count` as its `llama.block_count`.
fn gguf_bytes(block_count: u64) -> Vec<u8> {
    let tensors: Vec<(String, QTensor)> =
        tensors().iter().map(|(n, t)| (gguf_name(n), QTensor::quantize(t, GgmlDType::F32).unwrap())).collect();
    let tokens = Value::Array((0..SPEC.vocab).map(|i| Value::String(format!("t{i}"))).collect());
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U64(block_count)),
        ("llama.embedding_length", Value::U32(SPEC.d_model as u32)),
        ("llama.feed_forward_length", Value::U32(SPEC.d_ff as u32)),
        ("llama.attention.head_count", Value::U32(SPEC.n_heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(SPEC.n_kv_heads as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.context_length", Value::U32(SPEC.context as u32)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", tokens),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
    ];
    let mut out = std::io::Cursor::new(Vec::new());
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut out, &md, &ts).unwrap();
    out.into_inner()
}

fn hf_config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "llama", "num_hidden_layers": SPEC.n_layers, "hidden_size": SPEC.d_model,
        "intermediate_size": SPEC.d_ff, "num_attention_heads": SPEC.n_heads,
        "num_key_value_heads": SPEC.n_kv_heads, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "max_position_embeddings": SPEC.context, "vocab_size": SPEC.vocab, "tie_word_embeddings": false,
    })
}

/// Writes a Hugging Face Llama folder; returns its size in bytes.
fn write_folder(dir: &Path, config: &serde_json::Value, tensors: &BTreeMap<String, Tensor>) -> u64 {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let map: std::collections::HashMap<String, Tensor> = tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    use tokenizers::models::wordlevel::WordLevel;
    let vocab = (0..SPEC.vocab as u32).map(|i| (format!("t{i}"), i)).collect();
    let mut tok = tokenizers::Tokenizer::new(WordLevel::builder().vocab(vocab).unk_token("t0".into()).build().unwrap());
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::WhitespaceSplit));
    tok.save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Takes the lock that runs one test (or proptest case) at a time in this binary.
///
/// The first call loads the valid models and one corrupt GGUF once, unmeasured: one-time
/// initialisation would otherwise count against the first case, above all the ~180 MB of debug
/// info read to symbolise the backtrace candle attaches to its errors when `RUST_BACKTRACE` is
/// set (cached for the rest of the process).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let dir = temp_dir("warm");
        let path = dir.join("m.gguf");
        std::fs::write(&path, gguf_bytes(SPEC.n_layers as u64)).unwrap();
        Llama::from_gguf(&path, &Device::Cpu).unwrap();
        write_folder(&dir, &hf_config(), &tensors());
        Llama::from_hf_folder(&dir, &Device::Cpu).unwrap();
        let mut corrupt = gguf_bytes(SPEC.n_layers as u64);
        corrupt.truncate(40);
        std::fs::write(&path, corrupt).unwrap();
        assert!(!error_of(Llama::from_gguf(&path, &Device::Cpu)).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    });
    guard
}

/// Runs `load` in its own thread under `catch_unwind` and the time limit, and checks the peak
/// RSS growth against `file_bytes`. Returns whether it loaded.
fn guarded(file_bytes: u64, what: &str, load: impl FnOnce() -> backlens_model::Result<Llama> + Send + 'static) -> bool {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_kib("VmRSS:");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
            .map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
        let _ = tx.send(r);
    });
    let outcome = match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(outcome) => outcome,
        Err(_) => panic!("{what}: the load did not finish within {CASE_TIMEOUT:?}"),
    };
    let result = outcome.unwrap_or_else(|_| panic!("{what}: the loader panicked"));
    if let (true, Some(before), Some(peak)) = (reset, before, proc_kib("VmHWM:")) {
        let grown = peak.saturating_sub(before) * 1024;
        let limit = 64 * file_bytes + (64 << 20);
        assert!(grown <= limit, "{what}: peak RSS grew by {grown} bytes, over the bound {limit} ({result:?})");
    }
    if let Err(e) = &result {
        assert!(!e.is_empty(), "{what}: an empty error message");
    }
    result.is_ok()
}

fn load_gguf_bytes(bytes: Vec<u8>, what: &str) -> bool {
    let dir = temp_dir("gguf");
    let path = dir.join("m.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let p = path.clone();
    let ok = guarded(bytes.len() as u64, what, move || Llama::from_gguf(&p, &Device::Cpu));
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

fn load_folder(config: &serde_json::Value, tensors: &BTreeMap<String, Tensor>, what: &str) -> bool {
    let dir = temp_dir("hf");
    let size = write_folder(&dir, config, tensors);
    let d = dir.clone();
    let ok = guarded(size, what, move || Llama::from_hf_folder(&d, &Device::Cpu));
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

fn error_of(r: backlens_model::Result<Llama>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_unmutated_models_load() {
    let _serial = serial();
    assert!(load_gguf_bytes(gguf_bytes(SPEC.n_layers as u64), "valid gguf"));
    assert!(load_folder(&hf_config(), &tensors(), "valid folder"));
}

#[test]
fn a_huge_block_count_is_refused_by_key_before_allocating() {
    let _serial = serial();
    let dir = temp_dir("blocks");
    let path = dir.join("m.gguf");
    std::fs::write(&path, gguf_bytes(1_000_000_000)).unwrap();
    let err = error_of(Llama::from_gguf(&path, &Device::Cpu));
    assert!(err.contains("llama.block_count") && err.contains("1000000000") && err.contains("set it to 2"), "{err}");
    let mut config = hf_config();
    config["num_hidden_layers"] = serde_json::json!(1_000_000_000u64);
    write_folder(&dir, &config, &tensors());
    let err = error_of(Llama::from_hf_folder(&dir, &Device::Cpu));
    assert!(err.contains("num_hidden_layers") && err.contains("config.json") && err.contains("set it to 2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nonsense_config_values_are_refused_by_key() {
    let _serial = serial();
    let dir = temp_dir("values");
    for (key, value, expect) in [
        ("rms_norm_eps", serde_json::json!(-1.0), "positive finite"),
        ("rms_norm_eps", serde_json::json!(0), "positive finite"),
        ("rms_norm_eps", serde_json::json!("NaN"), "a number"),
        ("max_position_embeddings", serde_json::json!(0), "is 0"),
        ("num_attention_heads", serde_json::json!(3), "heads"),
        ("num_key_value_heads", serde_json::json!(3), "heads"),
        ("hidden_size", serde_json::json!(16), "disagree"),
        ("intermediate_size", serde_json::json!(1_000_000_000u64), "disagree"),
        ("vocab_size", serde_json::json!(12), "disagree"),
    ] {
        let mut config = hf_config();
        config[key] = value.clone();
        write_folder(&dir, &config, &tensors());
        let err = error_of(Llama::from_hf_folder(&dir, &Device::Cpu));
        assert!(err.contains(key) && err.contains(expect), "{key} = {value}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_zero_alignment_is_refused_not_a_division_by_zero() {
    let _serial = serial();
    let bytes = gguf_bytes(2);
    // Append nothing: rewrite the file with general.alignment = 0 through the writer instead.
    let mut out = std::io::Cursor::new(Vec::new());
    let zero = Value::U32(0);
    let arch = Value::String("llama".into());
    gguf_file::write(&mut out, &[("general.alignment", &zero), ("general.architecture", &arch)], &[]).unwrap();
    let dir = temp_dir("align");
    let path = dir.join("m.gguf");
    std::fs::write(&path, out.into_inner()).unwrap();
    let err = error_of(Llama::from_gguf(&path, &Device::Cpu));
    assert!(err.contains("general.alignment"), "{err}");
    assert!(!bytes.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One byte-level mutation of a file.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip {
        at: usize,
        bit: u8,
    },
    Truncate {
        keep: usize,
    },
    /// Writes a large little-endian count at `at` (header counts, lengths, dims).
    Count {
        at: usize,
        value: u64,
    },
    Insert {
        at: usize,
        byte: u8,
    },
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    let big = prop_oneof![
        Just(0u64),
        Just(1 << 30),
        Just(1_000_000_000),
        Just(u32::MAX as u64),
        Just(u64::MAX),
        any::<u64>()
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteEdit::Flip { at, bit }),
        any::<usize>().prop_map(|keep| ByteEdit::Truncate { keep }),
        // Header positions are mostly in the first few hundred bytes.
        (prop_oneof![0usize..512, any::<usize>()], big).prop_map(|(at, value)| ByteEdit::Count { at, value }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteEdit::Insert { at, byte }),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let n = bytes.len().max(1);
    match *edit {
        ByteEdit::Flip { at, bit } => {
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= 1 << bit;
            }
        }
        ByteEdit::Truncate { keep } => bytes.truncate(keep % n),
        ByteEdit::Count { at, value } => {
            let at = at % n;
            for (i, b) in value.to_le_bytes().iter().enumerate() {
                if let Some(x) = bytes.get_mut(at + i) {
                    *x = *b;
                }
            }
        }
        ByteEdit::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1e9)),
        Just(json!(1_000_000_000u64)),
        Just(json!(4_294_967_296u64)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        Just(json!("NaN")),
        Just(json!(true)),
        Just(serde_json::Value::Null),
        Just(json!([1, 2])),
        (1u64..64).prop_map(|x| json!(x)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_gguf_files_load_or_fail_cleanly(edits in proptest::collection::vec(byte_edit(), 1..4)) {
    let _serial = serial();
        let mut bytes = gguf_bytes(SPEC.n_layers as u64);
        for e in &edits {
            apply(&mut bytes, e);
        }
        load_gguf_bytes(bytes, &format!("gguf {edits:?}"));
    }

    #[test]
    fn mutated_config_values_load_or_fail_cleanly(
        key in prop::sample::select(vec![
            "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
            "num_key_value_heads", "rope_theta", "rms_norm_eps", "max_position_embeddings",
            "vocab_size", "tie_word_embeddings", "model_type", "rope_scaling",
        ]),
        value in json_value(),
    ) {
    let _serial = serial();
        let mut config = hf_config();
        config[key] = value.clone();
        load_folder(&config, &tensors(), &format!("config {key} = {value}"));
    }

    #[test]
    fn changed_tensor_shapes_load_or_fail_cleanly(pick in any::<prop::sample::Index>(), rows in 0usize..40, cols in 1usize..40) {
    let _serial = serial();
        let mut t = tensors();
        let name = pick.get(&t.keys().cloned().collect::<Vec<_>>()).clone();
        let shape: Vec<usize> = if t[&name].rank() == 1 { vec![rows] } else { vec![rows, cols] };
        t.insert(name.clone(), Tensor::zeros(shape.as_slice(), candle_core::DType::F32, &Device::Cpu).unwrap());
        load_folder(&hf_config(), &t, &format!("tensor {name} as {shape:?}"));
    }

    #[test]
    fn mutated_safetensors_and_tokenizer_bytes_fail_cleanly(
        file in prop::sample::select(vec!["model.safetensors", "tokenizer.json", "config.json"]),
        edits in proptest::collection::vec(byte_edit(), 1..4),
    ) {
    let _serial = serial();
        let dir = temp_dir("bytes");
        write_folder(&dir, &hf_config(), &tensors());
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        for e in &edits {
            apply(&mut bytes, e);
        }
        std::fs::write(&path, &bytes).unwrap();
        let size = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        let d = dir.clone();
        guarded(size, &format!("{file} {edits:?}"), move || Llama::from_hf_folder(&d, &Device::Cpu));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
