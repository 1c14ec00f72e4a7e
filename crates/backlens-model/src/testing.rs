//! Tiny random models in memory, for property tests (cargo feature `testing`).
//!
//! [`random_llama`] and [`random_gpt2`] build a [`Llama`] or a [`Gpt2`] of any small shape from a
//! seed, with no file: the tensors go through the same assembly code as the loaders (for Llama,
//! the Hugging Face tensor list with its names, order and shape checks). Weights are drawn
//! N(0, 1/fan_in) (std 0.14 to 0.35 for the shapes of [`strategies`]), so activations and VJPs
//! stay of order one through every layer; norm gains are 1 + N(0, 0.1²), biases N(0, 0.1²).
//! Everything is deterministic in the seed.
//!
//! The tokenizer is a WordLevel tokenizer over `t0 .. t{V-1}` split on whitespace
//! ([`word_level_tokenizer`]); tests feed token ids directly.
//!
//! [`strategies`] draws shapes dimensions first (proptest): `d_model = n_heads · head_dim` with an
//! even head_dim for RoPE, `n_kv_heads` dividing `n_heads`, `d_ff ≠ d_model` and `vocab ≠ d_model`
//! so that every transposition changes a shape.

use crate::config::{LlamaConfig, RopeLayout};
use crate::gpt2::{Gpt2, Gpt2Activation, Gpt2Config};
use crate::llama::Llama;
use crate::tokenizer::TextTokenizer;
use crate::weight_role::Role;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;

/// The shape of a tiny Llama-architecture model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyLlama {
    /// Number of transformer blocks ([`LlamaConfig::n_layers`]).
    pub n_layers: usize,
    /// Residual-stream width; `n_heads` must split it into an even head size.
    pub d_model: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads; must divide `n_heads`.
    pub n_kv_heads: usize,
    /// Width of the MLP's inner layer (gate/up output, down input).
    pub d_ff: usize,
    /// Vocabulary size `V`, also the tokenizer's (pieces `t0 .. t{V-1}`).
    pub vocab: usize,
    /// The longest prompt accepted, in tokens ([`LlamaConfig::context_length`]).
    pub context: usize,
    /// How Q and K dimensions pair up for the rotary embedding (random weights work with
    /// either; a Hugging Face folder loads as [`RopeLayout::HalfSplit`]).
    pub rope: RopeLayout,
    /// Whether the unembedding is the embedding matrix.
    pub tied: bool,
}

impl TinyLlama {
    /// The small model most tests start from (struct-update the fields a test needs changed):
    /// 2 layers, d_model 8, 2 query heads sharing 1 KV head, d_ff 12, 19 tokens, context 16,
    /// half-split RoPE, tied unembedding.
    pub const SMALL: TinyLlama = TinyLlama {
        n_layers: 2,
        d_model: 8,
        n_heads: 2,
        n_kv_heads: 1,
        d_ff: 12,
        vocab: 19,
        context: 16,
        rope: RopeLayout::HalfSplit,
        tied: true,
    };

    /// The model's configuration (RoPE base 10 000, RMSNorm eps 1e-5).
    pub fn config(&self) -> LlamaConfig {
        LlamaConfig {
            n_layers: self.n_layers,
            d_model: self.d_model,
            d_ff: self.d_ff,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            context_length: self.context,
            vocab_size: self.vocab,
            rope: self.rope,
        }
    }
}

/// The shape of a tiny GPT-2 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyGpt2 {
    /// Number of transformer blocks ([`Gpt2Config::n_layers`]).
    pub n_layers: usize,
    /// Residual-stream width; `n_heads` must divide it.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Width of the MLP's inner layer (`mlp.up` output, `mlp.down` input).
    pub d_ff: usize,
    /// Vocabulary size `V`, also the tokenizer's (pieces `t0 .. t{V-1}`).
    pub vocab: usize,
    /// Number of learned positions: the longest prompt accepted, in tokens.
    pub context: usize,
    /// The MLP's GELU variant.
    pub activation: Gpt2Activation,
    /// Whether the unembedding is the embedding matrix (GPT-2's own checkpoints are tied).
    pub tied: bool,
}

impl TinyGpt2 {
    /// The model's configuration (LayerNorm eps 1e-5, scores scaled by 1/sqrt(head_dim)).
    pub fn config(&self) -> Gpt2Config {
        Gpt2Config {
            n_layers: self.n_layers,
            d_model: self.d_model,
            d_ff: self.d_ff,
            n_heads: self.n_heads,
            context_length: self.context,
            vocab_size: self.vocab,
            layer_norm_eps: 1e-5,
            activation: self.activation,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
        }
    }
}

/// A deterministic random number generator (SplitMix64) with uniform and normal draws.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 uniformly distributed bits (one SplitMix64 step).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An f32 tensor of N(mean, std²) entries on the CPU.
    pub fn normal_tensor(&mut self, shape: &[usize], mean: f64, std: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| (mean + std * self.normal()) as f32).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).expect("shape and length agree")
    }
}

fn draw(rng: &mut Rng, role: Role, shape: &[usize], tied: bool) -> Tensor {
    let d = *shape.last().expect("tensors have a shape") as f64;
    match role {
        Role::Embedding if tied => rng.normal_tensor(shape, 0.0, 1.5 / d.sqrt()),
        Role::Embedding => rng.normal_tensor(shape, 0.0, 1.0),
        Role::Positions => rng.normal_tensor(shape, 0.0, 0.5),
        Role::Unembedding => rng.normal_tensor(shape, 0.0, 1.5 / d.sqrt()),
        Role::NormGain => rng.normal_tensor(shape, 1.0, 0.1),
        Role::NormBias | Role::Bias => rng.normal_tensor(shape, 0.0, 0.1),
        Role::Weight => rng.normal_tensor(shape, 0.0, 1.0 / d.sqrt()),
    }
}

/// The bit patterns of a tensor's values as f32, row-major: two tensors are bit-identical (NaNs
/// and signed zeros included) exactly when these are equal. For restore and state-safety tests.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// A WordLevel tokenizer over the pieces `t0 .. t{vocab-1}`, split on whitespace (`t3 t7` is
/// `[3, 7]`; an unknown word is `t0`).
pub fn word_level_tokenizer(vocab: usize) -> TextTokenizer {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    let pieces = (0..vocab as u32).map(|i| (format!("t{i}"), i)).collect();
    let model =
        WordLevel::builder().vocab(pieces).unk_token("t0".to_string()).build().expect("a valid WordLevel vocabulary");
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(WhitespaceSplit));
    TextTokenizer::from_tokenizer(inner)
}

/// A Llama-architecture model of shape `spec` with random weights drawn from `seed`, and every
/// tensor by its Hugging Face name (`model.layers.0.self_attn.q_proj.weight`, ...; (out, in),
/// which is also the canonical layout), for tests that recompute the forward pass independently
/// or write the model as a checkpoint.
pub fn random_llama_with_tensors(spec: TinyLlama, seed: u64) -> (Llama, BTreeMap<String, Tensor>) {
    let mut rng = Rng::new(seed);
    let mut tensors = BTreeMap::new();
    let name = format!(
        "random-llama-{}l-d{}-h{}kv{}-ff{}-v{}-{:?}{}",
        spec.n_layers,
        spec.d_model,
        spec.n_heads,
        spec.n_kv_heads,
        spec.d_ff,
        spec.vocab,
        spec.rope,
        if spec.tied { "-tied" } else { "" }
    );
    let model =
        Llama::from_fn(name, spec.config(), word_level_tokenizer(spec.vocab), spec.tied, |name, role, shape| {
            let t = draw(&mut rng, role, shape, spec.tied);
            tensors.insert(name.to_string(), t.clone());
            t
        });
    (model, tensors)
}

/// A Llama-architecture model of shape `spec` with random weights drawn from `seed`.
pub fn random_llama(spec: TinyLlama, seed: u64) -> Llama {
    random_llama_with_tensors(spec, seed).0
}

/// A GPT-2 model of shape `spec` with random weights (and LayerNorm gains and biases, linear
/// biases, learned positions) drawn from `seed`, and every tensor by name (`wte.weight`,
/// `h.0.attn.q.weight` (out, in), `h.0.ln_1.bias`, ...).
pub fn random_gpt2_with_tensors(spec: TinyGpt2, seed: u64) -> (Gpt2, BTreeMap<String, Tensor>) {
    let mut rng = Rng::new(seed);
    let mut tensors = BTreeMap::new();
    let name = format!(
        "random-gpt2-{}l-d{}-h{}-ff{}-v{}{}",
        spec.n_layers,
        spec.d_model,
        spec.n_heads,
        spec.d_ff,
        spec.vocab,
        if spec.tied { "-tied" } else { "" }
    );
    let model = Gpt2::from_fn(name, spec.config(), word_level_tokenizer(spec.vocab), spec.tied, |name, role, shape| {
        let t = draw(&mut rng, role, shape, spec.tied);
        tensors.insert(name.to_string(), t.clone());
        t
    });
    (model, tensors)
}

/// A GPT-2 model of shape `spec` with random weights drawn from `seed`.
pub fn random_gpt2(spec: TinyGpt2, seed: u64) -> Gpt2 {
    random_gpt2_with_tensors(spec, seed).0
}

/// proptest strategies for tiny shapes and prompts, dimensions first.
pub mod strategies {
    use super::{TinyGpt2, TinyLlama};
    use crate::config::RopeLayout;
    use crate::gpt2::Gpt2Activation;
    use proptest::prelude::*;

    /// The longest prompt the strategies draw; every shape has `d_model ≥ 8 ≥ MAX_PROMPT` and
    /// `vocab > MAX_PROMPT`, so prompts of distinct tokens fit and gradients of rank n are
    /// possible for every module.
    pub const MAX_PROMPT: usize = 7;

    /// 1 to 3 layers; head_dim ∈ {2, 4, 6, 8}, 1 or 2 KV heads shared by 1 to 3 query heads
    /// each, d_model = n_heads · head_dim ≥ 8; d_ff = d_model + 4·k (k ≥ 1); vocab = d_model + k'
    /// (k' ≥ 1); both RoPE layouts; tied or untied.
    pub fn tiny_llama() -> impl Strategy<Value = TinyLlama> {
        (1usize..=3, 1usize..=4, 1usize..=2, 1usize..=3, 1usize..=6, 1usize..=12, any::<bool>(), any::<bool>())
            .prop_filter("d_model >= 8", |&(_, half_hd, kv, group, ..)| 2 * half_hd * kv * group >= 8)
            .prop_map(|(n_layers, half_hd, n_kv_heads, group, ff_extra, vocab_extra, interleaved, tied)| {
                let n_heads = n_kv_heads * group;
                let d_model = n_heads * 2 * half_hd;
                TinyLlama {
                    n_layers,
                    d_model,
                    n_heads,
                    n_kv_heads,
                    d_ff: d_model + 4 * ff_extra,
                    vocab: d_model + vocab_extra,
                    context: MAX_PROMPT + 3,
                    rope: if interleaved { RopeLayout::Interleaved } else { RopeLayout::HalfSplit },
                    tied,
                }
            })
    }

    /// 1 to 3 layers; 1 to 4 heads of size 2 to 8 with d_model ≥ 8; d_ff = d_model + 4·k
    /// (k ≥ 1); vocab = d_model + k' (k' ≥ 1); gelu (tanh) or gelu (erf); tied or untied.
    pub fn tiny_gpt2() -> impl Strategy<Value = TinyGpt2> {
        (1usize..=3, 1usize..=4, 2usize..=8, 1usize..=6, 1usize..=12, any::<bool>(), any::<bool>())
            .prop_filter("d_model >= 8", |&(_, heads, hd, ..)| heads * hd >= 8)
            .prop_map(|(n_layers, n_heads, head_dim, ff_extra, vocab_extra, tanh, tied)| {
                let d_model = n_heads * head_dim;
                TinyGpt2 {
                    n_layers,
                    d_model,
                    n_heads,
                    d_ff: d_model + 4 * ff_extra,
                    vocab: d_model + vocab_extra,
                    context: MAX_PROMPT + 3,
                    activation: if tanh { Gpt2Activation::GeluTanh } else { Gpt2Activation::GeluErf },
                    tied,
                }
            })
    }

    /// A prompt of `len` distinct token ids below `vocab` (in random order) and a target.
    ///
    /// Distinct, because a repeated token can make two positions' residual streams identical
    /// (always for a Llama prompt that starts with the same token twice: position 1 attends to
    /// two identical values), which lowers the rank of every gradient legitimately.
    pub fn prompt(vocab: usize, len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = (Vec<u32>, u32)> {
        let ids: Vec<u32> = (0..vocab as u32).collect();
        len.prop_flat_map(move |n| (proptest::sample::subsequence(ids.clone(), n).prop_shuffle(), 0..vocab as u32))
    }
}
