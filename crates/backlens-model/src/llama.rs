//! Llama-architecture decoder (SmolLM2, Llama 2/3) from a GGUF file, written with
//! differentiable candle ops only so that a single backward pass reaches every hook.
//!
//! Block l:  h ← h + o(attn(rope(q(n₁(h))), rope(k(n₁(h))), v(n₁(h))))
//!           h ← h + down(silu(gate(n₂(h))) ⊙ up(n₂(h)))
//! Output:   logits = E · n_f(h_T)  (tied unembedding when the file has no `output.weight`).
//!
//! GGUF stores Q and K permuted for interleaved RoPE (pairs (2i, 2i+1) rotate together), so
//! this file uses `rope_i`; Hugging Face checkpoints use the half-split layout instead.

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::hooks::{Kind, Module};
use crate::tokenizer::TextTokenizer;
use crate::trace::{self, PromptLimits, Recorder, Trace, TraceOptions};
use crate::LanguageModel;
use backlens_ops::{linear, Norm};
use candle_core::{DType, Device, Tensor, D};
use std::path::Path;

/// The weights of one block, in checkpoint layout (out, in).
#[derive(Clone)]
struct Block {
    attn_norm: Norm,
    mlp_norm: Norm,
    /// Indexed by [`linear_index`]: q (H·hd, d), k (KV·hd, d), v (KV·hd, d), o (d, H·hd),
    /// gate (d_ff, d), up (d_ff, d), down (d, d_ff).
    linear: [Tensor; 7],
}

impl Block {
    fn w(&self, module: Module) -> &Tensor {
        &self.linear[linear_index(module).expect("a linear module")]
    }
}

/// Position of a linear module in [`Block::linear`] (its position in [`Module::ALL`]).
fn linear_index(module: Module) -> Option<usize> {
    module.is_linear().then(|| Module::ALL.iter().position(|&m| m == module).expect("listed"))
}

/// A Llama-architecture model with its tokenizer. Cloning is cheap: tensors are shared.
#[derive(Clone)]
pub struct Llama {
    name: String,
    config: LlamaConfig,
    tokenizer: TextTokenizer,
    embed: Tensor,   // (V, d)
    unembed: Tensor, // (V, d), the same storage as `embed` when tied
    blocks: Vec<Block>,
    final_norm: Norm,
}

impl Llama {
    /// Loads a GGUF file, dequantizing every tensor to f32 and checking every shape.
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Llama> {
        let gguf = GgufFile::open(path)?;
        let config = LlamaConfig::from_gguf(&gguf)?;
        let c = &config;
        let (d, hd) = (c.d_model, c.head_dim());
        let tied = !gguf.has_tensor("output.weight");
        let mut specs: Vec<(String, Vec<usize>)> = vec![
            ("token_embd.weight".into(), vec![c.vocab_size, d]),
            ("output_norm.weight".into(), vec![d]),
        ];
        if !tied {
            specs.push(("output.weight".into(), vec![c.vocab_size, d]));
        }
        const BLOCK_TENSORS: usize = 9;
        for l in 0..c.n_layers {
            for (suffix, shape) in [
                ("attn_norm", vec![d]),
                ("attn_q", vec![c.n_heads * hd, d]),
                ("attn_k", vec![c.n_kv_heads * hd, d]),
                ("attn_v", vec![c.n_kv_heads * hd, d]),
                ("attn_output", vec![d, c.n_heads * hd]),
                ("ffn_norm", vec![d]),
                ("ffn_gate", vec![c.d_ff, d]),
                ("ffn_up", vec![c.d_ff, d]),
                ("ffn_down", vec![d, c.d_ff]),
            ] {
                specs.push((format!("blk.{l}.{suffix}.weight"), shape));
            }
        }
        // The tokenizer builds while the tensors load.
        let (tokenizer, tensors) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| TextTokenizer::from_gguf(&gguf));
            let tensors = gguf.tensors(&specs, device);
            (tokenizer.join().expect("tokenizer thread panicked"), tensors)
        });
        let (tokenizer, mut tensors) = (tokenizer?, tensors?.into_iter());
        let mut next = || tensors.next().expect("one tensor per spec");
        let rms = |weight: Tensor| Norm::Rms { weight, eps: c.rms_eps };
        let embed = next();
        let final_norm = rms(next());
        let unembed = if tied { embed.clone() } else { next() };
        let blocks = (0..c.n_layers)
            .map(|_| {
                let attn_norm = rms(next());
                let (q, k, v, o) = (next(), next(), next(), next());
                let mlp_norm = rms(next());
                let (gate, up, down) = (next(), next(), next());
                Block { attn_norm, mlp_norm, linear: [q, k, v, o, gate, up, down] }
            })
            .collect();
        debug_assert_eq!(specs.len(), 2 + usize::from(!tied) + BLOCK_TENSORS * c.n_layers);
        // The file name identifies a checkpoint and its quantization better than `general.name`.
        let name = path.file_stem().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Llama { name, config, tokenizer, embed, unembed, blocks, final_norm })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The weight of a linear module, in checkpoint layout.
    ///
    /// # Shapes
    /// Returns (d_out, d_in).
    pub fn weight(&self, layer: usize, module: Module) -> Result<&Tensor> {
        let (l, i) = self.locate(layer, module)?;
        Ok(&self.blocks[l].linear[i])
    }

    /// Replaces the weight of a linear module (for edits such as a gradient step); the new
    /// weight must have the old one's shape. Other clones of the model are not affected.
    ///
    /// # Shapes
    /// - `weight`: (d_out, d_in)
    pub fn set_weight(&mut self, layer: usize, module: Module, weight: Tensor) -> Result<()> {
        let (l, i) = self.locate(layer, module)?;
        let old = &self.blocks[l].linear[i];
        if old.dims() != weight.dims() {
            return Err(ModelError::ShapeMismatch {
                name: format!("layers.{layer}.{}", module.name()),
                expected: old.dims().to_vec(),
                found: weight.dims().to_vec(),
            });
        }
        self.blocks[l].linear[i] = weight.to_dtype(DType::F32)?.to_device(old.device())?;
        Ok(())
    }

    fn locate(&self, layer: usize, module: Module) -> Result<(usize, usize)> {
        let name = format!("layers.{layer}.{}", module.name());
        if layer >= self.blocks.len() {
            return Err(ModelError::HookName { name, reason: format!("the model has {} layers", self.blocks.len()) });
        }
        let i = linear_index(module).ok_or_else(|| ModelError::HookName {
            name,
            reason: "a block has no single weight matrix; name a linear module".to_string(),
        })?;
        Ok((layer, i))
    }

    /// cos and sin of the interleaved rotary embedding for positions 0..t.
    ///
    /// # Shapes
    /// Returns (cos, sin), each (t, head_dim/2).
    fn rope_tables(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let hd = self.config.head_dim();
        let inv_freq: Vec<f32> =
            (0..hd / 2).map(|i| 1.0 / self.config.rope_base.powf(2.0 * i as f64 / hd as f64) as f32).collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, hd / 2), device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F32)?.reshape((t, 1))?;
        let angles = pos.broadcast_mul(&inv_freq)?; // (t, hd/2)
        Ok((angles.cos()?, angles.sin()?))
    }

    /// Causal self-attention of one block.
    ///
    /// # Shapes
    /// - `x`: (T, d) normalised residual; returns (T, d)
    fn attention(&self, rec: &mut Recorder, l: usize, x: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (t, hd) = (x.dim(0)?, c.head_dim());
        let b = &self.blocks[l];
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            // (T, n·hd) -> (1, n, T, hd)
            Ok(y.reshape((t, n, hd))?.transpose(0, 1)?.contiguous()?.unsqueeze(0)?)
        };
        let q = heads(rec.linear(l, Module::AttnQ, x, b.w(Module::AttnQ), None)?, c.n_heads)?;
        let k = heads(rec.linear(l, Module::AttnK, x, b.w(Module::AttnK), None)?, c.n_kv_heads)?;
        let v = heads(rec.linear(l, Module::AttnV, x, b.w(Module::AttnV), None)?, c.n_kv_heads)?;
        let q = candle_nn::rotary_emb::rope_i_slow(&q, &rope.0, &rope.1)?.squeeze(0)?; // (H, T, hd)
        let k = candle_nn::rotary_emb::rope_i_slow(&k, &rope.0, &rope.1)?.squeeze(0)?; // (KV, T, hd)
        let v = v.squeeze(0)?; // (KV, T, hd)
        // Grouped-query attention: query head h reads KV head h / (H / KV).
        let repeat = |kv: Tensor| -> Result<Tensor> {
            let rep = c.n_heads / c.n_kv_heads;
            Ok(kv.unsqueeze(1)?.broadcast_as((c.n_kv_heads, rep, t, hd))?.reshape((c.n_heads, t, hd))?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?); // (H, T, hd)
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?; // (H, T, T)
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
        let mixed = probs.matmul(&v)?; // (H, T, hd)
        let mixed = mixed.transpose(0, 1)?.reshape((t, c.n_heads * hd))?; // (T, H·hd)
        rec.linear(l, Module::AttnO, &mixed, b.w(Module::AttnO), None)
    }

    /// SwiGLU MLP of one block.
    ///
    /// # Shapes
    /// - `x`: (T, d) normalised residual; returns (T, d)
    fn mlp(&self, rec: &mut Recorder, l: usize, x: &Tensor) -> Result<Tensor> {
        let b = &self.blocks[l];
        let gate = rec.linear(l, Module::MlpGate, x, b.w(Module::MlpGate), None)?; // (T, d_ff)
        let up = rec.linear(l, Module::MlpUp, x, b.w(Module::MlpUp), None)?; // (T, d_ff)
        let act = (gate.silu()? * up)?; // (T, d_ff)
        rec.linear(l, Module::MlpDown, &act, b.w(Module::MlpDown), None) // (T, d)
    }

    /// The forward pass up to the last position's logits, recording hooks into `rec`.
    ///
    /// # Shapes
    /// - returns (V): logits of the next token after the last prompt token
    fn forward(&self, rec: &mut Recorder, token_ids: &[u32]) -> Result<Tensor> {
        let device = self.embed.device();
        let t = token_ids.len();
        let ids = Tensor::new(token_ids, device)?;
        let mut h = self.embed.index_select(&ids, 0)?; // (T, d)
        let rope = self.rope_tables(t, device)?;
        let mask: Vec<f32> =
            (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (t, t), device)?; // (T, T), -inf above the diagonal
        for l in 0..self.blocks.len() {
            let b = &self.blocks[l];
            h = rec.hook(l, Module::Block, Kind::Input, h)?;
            let attn = self.attention(rec, l, &b.attn_norm.forward(&h)?, &rope, &mask)?;
            h = (h + attn)?;
            let mlp = self.mlp(rec, l, &b.mlp_norm.forward(&h)?)?;
            h = rec.hook(l, Module::Block, Kind::Output, (h + mlp)?)?;
        }
        let last = h.narrow(0, t - 1, 1)?; // (1, d): only the last position reaches the loss
        let logits = linear(&self.final_norm.forward(&last)?, &self.unembed, None)?; // (1, V)
        Ok(logits.squeeze(0)?)
    }
}

impl LanguageModel for Llama {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_layers(&self) -> usize {
        self.config.n_layers
    }
    fn d_model(&self) -> usize {
        self.config.d_model
    }
    fn context_length(&self) -> usize {
        self.config.context_length
    }
    fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
    fn final_norm(&self) -> &Norm {
        &self.final_norm
    }
    fn unembedding(&self) -> &Tensor {
        &self.unembed
    }
    fn embedding(&self) -> &Tensor {
        &self.embed
    }

    fn trace(&self, token_ids: &[u32], target_id: u32, options: &TraceOptions) -> Result<Trace> {
        let limits = PromptLimits { vocab_size: self.config.vocab_size, context_length: self.config.context_length };
        trace::run(token_ids, target_id, options, limits, |rec| self.forward(rec, token_ids))
    }
}
