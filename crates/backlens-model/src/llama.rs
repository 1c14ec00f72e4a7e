//! Llama-architecture decoder (SmolLM2, Llama 2/3) from a GGUF file or a Hugging Face folder, written with
//! differentiable candle ops only so that a single backward pass reaches every hook.
//!
//! Block l:  h ← h + o(attn(rope(q(n₁(h))), rope(k(n₁(h))), v(n₁(h))))
//!           h ← h + down(silu(gate(n₂(h))) ⊙ up(n₂(h)))
//! Output:   logits = E · n_f(h_T)  (tied unembedding when the file has no `output.weight`).
//!
//! GGUF stores Q and K permuted for interleaved RoPE (pairs (2i, 2i+1) rotate together);
//! Hugging Face checkpoints use the half-split layout (i rotates with i + hd/2). The config
//! records which ([`RopeLayout`]).

use crate::config::{ConfigField, ConfigSource, LlamaConfig, RopeLayout};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::hf_folder::HfFolder;
use crate::hooks::{Kind, Module};
use crate::layers;
use crate::tokenizer::TextTokenizer;
use crate::trace::Recorder;
use backlens_ops::Norm;
use candle_core::{DType, Device, Tensor};
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

/// How a checkpoint names a Llama's tensors.
struct TensorNames {
    embed: &'static str,
    final_norm: &'static str,
    unembed: &'static str,
    /// Prefix of block l's tensors.
    block: fn(usize) -> String,
    /// Per block, in the order attn_norm, q, k, v, o, mlp_norm, gate, up, down.
    in_block: [&'static str; 9],
}

const GGUF_NAMES: TensorNames = TensorNames {
    embed: "token_embd.weight",
    final_norm: "output_norm.weight",
    unembed: "output.weight",
    block: |l| format!("blk.{l}."),
    in_block: ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"],
};

const HF_NAMES: TensorNames = TensorNames {
    embed: "model.embed_tokens.weight",
    final_norm: "model.norm.weight",
    unembed: "lm_head.weight",
    block: |l| format!("model.layers.{l}."),
    in_block: [
        "input_layernorm",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "post_attention_layernorm",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ],
};

/// Checks the sizes read from the header against the tensors present, before anything sized by
/// them is allocated: the block count must be one more than the highest block index among the
/// tensor names, the vocabulary and `d_model` the embedding's shape, `d_ff` the rows of block 0's up
/// projection, and the KV heads the rows of block 0's K projection over the head size.
fn check_against_tensors<'a>(
    c: &LlamaConfig,
    source: &ConfigSource,
    names: &TensorNames,
    shape_of: impl Fn(&str) -> Option<&'a [usize]>,
    all: impl Iterator<Item = &'a str>,
) -> Result<()> {
    use ConfigField as F;
    let prefix = (names.block)(0);
    let prefix = prefix.trim_end_matches("0.");
    let blocks = all
        .filter_map(|n| n.strip_prefix(prefix)?.split('.').next()?.parse::<u64>().ok())
        .max()
        .map_or(0, |l| l.saturating_add(1));
    if c.n_layers as u64 != blocks {
        return Err(source.error(
            F::Layers,
            format!(
                "is {} but the weights hold {blocks} blocks (`{prefix}N.*` tensors): set it to {blocks}",
                c.n_layers
            ),
        ));
    }
    let shape = |name: String| shape_of(&name).ok_or(ModelError::MissingTensor(name));
    let embed = shape(names.embed.to_string())?;
    let disagree = |field: ConfigField, value: usize, tensor: &str, found: &[usize], implied: usize| {
        source.error(
            field,
            format!(
                "is {value} but tensor `{tensor}` has shape {found:?}, which implies {implied}: the configuration and the weights disagree; fix the configuration or use matching weights"
            ),
        )
    };
    let [vocab, d] = embed else {
        return Err(ModelError::ShapeMismatch {
            name: names.embed.to_string(),
            expected: vec![c.vocab_size, c.d_model],
            found: embed.to_vec(),
        });
    };
    if *vocab != c.vocab_size {
        return Err(disagree(F::Vocab, c.vocab_size, names.embed, embed, *vocab));
    }
    if *d != c.d_model {
        return Err(disagree(F::DModel, c.d_model, names.embed, embed, *d));
    }
    let up = format!("{}{}.weight", (names.block)(0), names.in_block[7]);
    let up_shape = shape(up.clone())?;
    if up_shape.first() != Some(&c.d_ff) {
        return Err(disagree(F::DFf, c.d_ff, &up, up_shape, up_shape.first().copied().unwrap_or(0)));
    }
    let k = format!("{}{}.weight", (names.block)(0), names.in_block[2]);
    let k_shape = shape(k.clone())?;
    let kv_rows = k_shape.first().copied().unwrap_or(0);
    if kv_rows != c.n_kv_heads * c.head_dim() {
        return Err(disagree(F::KvHeads, c.n_kv_heads, &k, k_shape, kv_rows / c.head_dim()));
    }
    Ok(())
}

/// Every tensor to load with its canonical shape: embedding, final norm, (unembedding), then
/// the nine tensors of each block.
fn tensor_specs(c: &LlamaConfig, names: &TensorNames, tied: bool) -> Vec<(String, Vec<usize>)> {
    let (d, hd) = (c.d_model, c.head_dim());
    let mut specs = vec![(names.embed.to_string(), vec![c.vocab_size, d]), (names.final_norm.to_string(), vec![d])];
    if !tied {
        specs.push((names.unembed.to_string(), vec![c.vocab_size, d]));
    }
    let block_shapes = [
        vec![d],
        vec![c.n_heads * hd, d],
        vec![c.n_kv_heads * hd, d],
        vec![c.n_kv_heads * hd, d],
        vec![d, c.n_heads * hd],
        vec![d],
        vec![c.d_ff, d],
        vec![c.d_ff, d],
        vec![d, c.d_ff],
    ];
    for l in 0..c.n_layers {
        let prefix = (names.block)(l);
        for (suffix, shape) in names.in_block.iter().zip(&block_shapes) {
            specs.push((format!("{prefix}{suffix}.weight"), shape.clone()));
        }
    }
    specs
}

impl Llama {
    /// Loads a GGUF file, dequantizing every tensor to f32 and checking every shape.
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Llama> {
        let gguf = GgufFile::open(path)?;
        let config = LlamaConfig::from_gguf(&gguf)?;
        check_against_tensors(
            &config,
            &ConfigSource::Gguf,
            &GGUF_NAMES,
            |n| gguf.tensor_shape(n),
            gguf.tensor_names(),
        )?;
        let tied = !gguf.has_tensor(GGUF_NAMES.unembed);
        let specs = tensor_specs(&config, &GGUF_NAMES, tied);
        // The tokenizer builds while the tensors load.
        let (tokenizer, tensors) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| TextTokenizer::from_gguf(&gguf));
            let tensors = gguf.tensors(&specs, device);
            (tokenizer.join().expect("tokenizer thread panicked"), tensors)
        });
        // The file name identifies a checkpoint and its quantization better than `general.name`.
        let name = path.file_stem().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Llama::assemble(name, config, tokenizer?, tied, tensors?))
    }

    /// Loads a Hugging Face `LlamaForCausalLM` folder (config.json, safetensors, tokenizer.json).
    /// Its Q and K use the half-split RoPE layout.
    pub fn from_hf_folder(dir: &Path, device: &Device) -> Result<Llama> {
        let folder = HfFolder::open(dir)?;
        let config = LlamaConfig::from_hf_folder(&folder)?;
        let source = ConfigSource::HfConfig(dir.join("config.json"));
        check_against_tensors(&config, &source, &HF_NAMES, |n| folder.tensor_shape(n), folder.tensor_names())?;
        let tied = folder.bool_or("tie_word_embeddings", false)? || !folder.has_tensor(HF_NAMES.unembed);
        let tensors = folder.tensors(&tensor_specs(&config, &HF_NAMES, tied), device)?;
        let name = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Llama::assemble(name, config, folder.tokenizer()?, tied, tensors))
    }

    /// Builds a model in memory from the tensors `make` returns for each (role, canonical shape),
    /// in the order and with the shapes the Hugging Face loader reads them (test models).
    #[cfg(feature = "testing")]
    pub(crate) fn from_fn(
        name: String,
        config: LlamaConfig,
        tokenizer: TextTokenizer,
        tied: bool,
        mut make: impl FnMut(&str, crate::weight_role::Role, &[usize]) -> Tensor,
    ) -> Llama {
        use crate::weight_role::Role;
        let tensors = tensor_specs(&config, &HF_NAMES, tied)
            .iter()
            .map(|(name, shape)| {
                let role = match name.as_str() {
                    n if n == HF_NAMES.embed => Role::Embedding,
                    n if n == HF_NAMES.unembed => Role::Unembedding,
                    _ if shape.len() == 1 => Role::NormGain,
                    _ => Role::Weight,
                };
                make(name, role, shape)
            })
            .collect();
        Llama::assemble(name, config, tokenizer, tied, tensors)
    }

    /// Builds the model from tensors in [`tensor_specs`] order.
    fn assemble(
        name: String,
        config: LlamaConfig,
        tokenizer: TextTokenizer,
        tied: bool,
        tensors: Vec<Tensor>,
    ) -> Llama {
        let mut tensors = tensors.into_iter();
        let mut next = || tensors.next().expect("one tensor per spec");
        let rms = |weight: Tensor| Norm::Rms { weight, eps: config.rms_eps };
        let embed = next();
        let final_norm = rms(next());
        let unembed = if tied { embed.clone() } else { next() };
        let blocks = (0..config.n_layers)
            .map(|_| {
                let attn_norm = rms(next());
                let (q, k, v, o) = (next(), next(), next(), next());
                let mlp_norm = rms(next());
                let (gate, up, down) = (next(), next(), next());
                Block { attn_norm, mlp_norm, linear: [q, k, v, o, gate, up, down] }
            })
            .collect();
        Llama { name, config, tokenizer, embed, unembed, blocks, final_norm }
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
        layers::replace_weight(&mut self.blocks[l].linear[i], layer, module, weight)
    }

    fn locate(&self, layer: usize, module: Module) -> Result<(usize, usize)> {
        let missing = "a block has no single weight matrix; name a linear module";
        Ok((layer, layers::weight_slot(layer, self.blocks.len(), module, linear_index(module), missing)?))
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
    fn attention(
        &self,
        rec: &mut Recorder,
        l: usize,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
    ) -> Result<Tensor> {
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
        let rotate = match c.rope {
            RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i_slow,
            RopeLayout::HalfSplit => candle_nn::rotary_emb::rope_slow,
        };
        let q = rotate(&q, &rope.0, &rope.1)?.squeeze(0)?; // (H, T, hd)
        let k = rotate(&k, &rope.0, &rope.1)?.squeeze(0)?; // (KV, T, hd)
        let v = v.squeeze(0)?; // (KV, T, hd)
                               // Grouped-query attention: query head h reads KV head h / (H / KV).
        let repeat = |kv: Tensor| -> Result<Tensor> {
            let rep = c.n_heads / c.n_kv_heads;
            Ok(kv.unsqueeze(1)?.broadcast_as((c.n_kv_heads, rep, t, hd))?.reshape((c.n_heads, t, hd))?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?); // (H, T, hd)
        let mixed = layers::causal_attention(&q, &k, &v, 1.0 / (hd as f64).sqrt(), mask)?; // (T, H·hd)
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
        layers::last_token_logits(&self.hidden(rec, token_ids)?, &self.final_norm, &self.unembed)
        // (V)
    }

    /// The residual stream after the last block, recording hooks into `rec`.
    ///
    /// # Shapes
    /// - returns (T, d)
    fn hidden(&self, rec: &mut Recorder, token_ids: &[u32]) -> Result<Tensor> {
        let device = self.embed.device();
        let t = token_ids.len();
        let ids = Tensor::new(token_ids, device)?;
        let mut h = self.embed.index_select(&ids, 0)?; // (T, d)
        let rope = self.rope_tables(t, device)?;
        let mask = layers::causal_mask(t, device)?; // (T, T)
        for l in 0..self.blocks.len() {
            let b = &self.blocks[l];
            h = rec.hook(l, Module::Block, Kind::Input, h)?;
            let attn = self.attention(rec, l, &b.attn_norm.forward(&h)?, &rope, &mask)?;
            h = (h + attn)?;
            let mlp = self.mlp(rec, l, &b.mlp_norm.forward(&h)?)?;
            h = rec.hook(l, Module::Block, Kind::Output, (h + mlp)?)?;
        }
        Ok(h)
    }
}

impl_language_model!(Llama);
