//! GPT-2 (Hugging Face `GPT2LMHeadModel` checkpoints) from a local model folder, written with
//! differentiable candle ops only so that a single backward pass reaches every hook.
//!
//! Block l:  h ← h + o(attn(q(n₁(h)), k(n₁(h)), v(n₁(h))))
//!           h ← h + down(gelu(up(n₂(h))))
//! Input:    h₀ = wte[ids] + wpe[0..T]  (learned absolute positions)
//! Output:   logits = E · n_f(h_T)  (tied unembedding E = wte unless the file has `lm_head.weight`).
//!
//! Every norm is a LayerNorm with bias and every linear map has a bias. Checkpoints store the
//! `Conv1D` weights as [in, out]; they are transposed once at load to the canonical (out, in)
//! layout, and the fused `c_attn` (out = 3d, columns q | k | v) is split into three (d, d)
//! weights, so the hook names are those of Llama:
//!
//! | checkpoint         | module     |
//! |--------------------|------------|
//! | `attn.c_attn` q/k/v| `attn.q`, `attn.k`, `attn.v` |
//! | `attn.c_proj`      | `attn.o`   |
//! | `mlp.c_fc` (FF1)   | `mlp.up`   |
//! | `mlp.c_proj` (FF2) | `mlp.down` |
//!
//! GPT-2 has no `mlp.gate`.

use crate::error::{ModelError, Result};
use crate::hf_folder::HfFolder;
use crate::hooks::{Kind, Module};
use crate::layers;
use crate::tokenizer::TextTokenizer;
use crate::trace::Recorder;
use backlens_ops::Norm;
use candle_core::{Device, Tensor};
use std::path::Path;

/// The activation of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gpt2Activation {
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation (GPT-2's own).
    GeluTanh,
    /// `gelu`: the exact erf form.
    GeluErf,
}

/// The hyper-parameters the forward pass needs, read from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Config {
    /// `n_layer`.
    pub n_layers: usize,
    /// `n_embd`.
    pub d_model: usize,
    /// `n_inner`, or 4·`n_embd` when it is null or missing.
    pub d_ff: usize,
    /// `n_head`.
    pub n_heads: usize,
    /// `n_positions`: the number of learned positions.
    pub context_length: usize,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `layer_norm_epsilon`.
    pub layer_norm_eps: f64,
    /// `activation_function`.
    pub activation: Gpt2Activation,
    /// `scale_attn_weights` (default true): divide scores by sqrt(head_dim).
    pub scale_attn_weights: bool,
    /// `scale_attn_by_inverse_layer_idx` (default false): also divide scores of layer l by l + 1.
    pub scale_attn_by_inverse_layer_idx: bool,
}

impl Gpt2Config {
    /// Reads a GPT-2 `config.json`, rejecting another `model_type`.
    pub fn from_hf_folder(folder: &HfFolder) -> Result<Gpt2Config> {
        let path = folder.dir().join("config.json");
        let bad = |key: &str, problem: String| ModelError::Config { path: path.clone(), key: key.to_string(), problem };
        if folder.config().get("model_type").is_some() {
            let model_type = folder.string("model_type")?;
            if model_type != "gpt2" {
                return Err(bad(
                    "model_type",
                    format!("this is a `{model_type}` model, but Gpt2 loads `gpt2` checkpoints"),
                ));
            }
        }
        let activation = match folder.config().get("activation_function").and_then(|v| v.as_str()) {
            None | Some("gelu_new") | Some("gelu_pytorch_tanh") => Gpt2Activation::GeluTanh,
            Some("gelu") => Gpt2Activation::GeluErf,
            Some(other) => {
                return Err(bad(
                    "activation_function",
                    format!("`{other}` is not supported (gelu_new, gelu_pytorch_tanh, gelu)"),
                ))
            }
        };
        let d_model = folder.usize("n_embd")?;
        let cfg = Gpt2Config {
            n_layers: folder.usize("n_layer")?,
            d_model,
            d_ff: folder.usize_or("n_inner", d_model.saturating_mul(4))?,
            n_heads: folder.usize("n_head")?,
            context_length: folder.usize("n_positions")?,
            vocab_size: folder.usize("vocab_size")?,
            layer_norm_eps: folder.f64_or("layer_norm_epsilon", 1e-5)?,
            activation,
            scale_attn_weights: folder.bool_or("scale_attn_weights", true)?,
            scale_attn_by_inverse_layer_idx: folder.bool_or("scale_attn_by_inverse_layer_idx", false)?,
        };
        for (key, value) in [
            ("n_layer", cfg.n_layers),
            ("n_embd", cfg.d_model),
            ("n_head", cfg.n_heads),
            ("n_inner", cfg.d_ff),
            ("n_positions", cfg.context_length),
            ("vocab_size", cfg.vocab_size),
        ] {
            if value == 0 {
                return Err(bad(key, "is 0; it must be positive: fix config.json".to_string()));
            }
        }
        if !(cfg.layer_norm_eps.is_finite() && cfg.layer_norm_eps > 0.0) {
            return Err(bad(
                "layer_norm_epsilon",
                format!("is {}; it must be a positive finite number (GPT-2 uses 1e-5)", cfg.layer_norm_eps),
            ));
        }
        if !cfg.d_model.is_multiple_of(cfg.n_heads) {
            return Err(bad(
                "n_head",
                format!("{} heads do not split n_embd {}: set a divisor of n_embd", cfg.n_heads, cfg.d_model),
            ));
        }
        Ok(cfg)
    }

    /// Per-head size.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
}

/// Checks the sizes of `config.json` against the tensors present, before anything sized by them
/// is allocated: `n_layer` must be the highest `h.N.` index + 1, `vocab_size` and `n_embd` the
/// shape of `wte`, `n_positions` the rows of `wpe`, `n_inner` the columns of block 0's `c_fc`.
fn check_against_tensors(folder: &HfFolder, c: &Gpt2Config, prefix: &str) -> Result<()> {
    let path = folder.dir().join("config.json");
    let disagree = |key: &str, value: usize, tensor: &str, found: &[usize], implied: usize| ModelError::Config {
        path: path.clone(),
        key: key.to_string(),
        problem: format!(
            "is {value} but tensor `{tensor}` has shape {found:?}, which implies {implied}: \
             the configuration and the weights disagree; fix config.json or use matching weights"
        ),
    };
    let blocks_prefix = format!("{prefix}h.");
    let blocks = folder
        .tensor_names()
        .filter_map(|n| n.strip_prefix(&blocks_prefix)?.split('.').next()?.parse::<u64>().ok())
        .max()
        .map_or(0, |l| l.saturating_add(1));
    if c.n_layers as u64 != blocks {
        return Err(ModelError::Config {
            path: path.clone(),
            key: "n_layer".to_string(),
            problem: format!(
                "is {} but the weights hold {blocks} blocks (`{blocks_prefix}N.*` tensors): set it to {blocks}",
                c.n_layers
            ),
        });
    }
    let shape = |name: String| folder.tensor_shape(&name).ok_or(ModelError::MissingTensor(name));
    let two = |name: String, expected: [usize; 2]| -> Result<(String, [usize; 2])> {
        match *shape(name.clone())? {
            [a, b] => Ok((name, [a, b])),
            ref other => Err(ModelError::ShapeMismatch { name, expected: expected.to_vec(), found: other.to_vec() }),
        }
    };
    let (wte, [vocab, d]) = two(format!("{prefix}wte.weight"), [c.vocab_size, c.d_model])?;
    if vocab != c.vocab_size {
        return Err(disagree("vocab_size", c.vocab_size, &wte, &[vocab, d], vocab));
    }
    if d != c.d_model {
        return Err(disagree("n_embd", c.d_model, &wte, &[vocab, d], d));
    }
    let (wpe, [positions, pd]) = two(format!("{prefix}wpe.weight"), [c.context_length, c.d_model])?;
    if positions != c.context_length {
        return Err(disagree("n_positions", c.context_length, &wpe, &[positions, pd], positions));
    }
    let (c_fc, [fd, ff]) = two(format!("{prefix}h.0.mlp.c_fc.weight"), [c.d_model, c.d_ff])?;
    if ff != c.d_ff {
        return Err(disagree("n_inner", c.d_ff, &c_fc, &[fd, ff], ff));
    }
    Ok(())
}

/// The weights of one block, in canonical layout (out, in).
#[derive(Clone)]
struct Block {
    ln_1: Norm,
    ln_2: Norm,
    /// Indexed by [`linear_index`]: q (d, d), k (d, d), v (d, d), o (d, d), up (d_ff, d),
    /// down (d, d_ff).
    linear: [Tensor; 6],
    /// The biases, indexed like `linear`: (d), (d), (d), (d), (d_ff), (d).
    bias: [Tensor; 6],
}

impl Block {
    fn w(&self, module: Module) -> &Tensor {
        &self.linear[linear_index(module).expect("a GPT-2 linear module")]
    }
    fn b(&self, module: Module) -> &Tensor {
        &self.bias[linear_index(module).expect("a GPT-2 linear module")]
    }
}

/// Position of a linear module in [`Block::linear`]; `None` for the block and for `mlp.gate`,
/// which GPT-2 does not have.
fn linear_index(module: Module) -> Option<usize> {
    match module {
        Module::AttnQ => Some(0),
        Module::AttnK => Some(1),
        Module::AttnV => Some(2),
        Module::AttnO => Some(3),
        Module::MlpUp => Some(4),
        Module::MlpDown => Some(5),
        Module::MlpGate | Module::Block => None,
    }
}

/// A GPT-2 model with its tokenizer. Cloning is cheap: tensors are shared.
#[derive(Clone)]
pub struct Gpt2 {
    name: String,
    config: Gpt2Config,
    tokenizer: TextTokenizer,
    embed: Tensor,     // (V, d) wte
    positions: Tensor, // (n_positions, d) wpe
    unembed: Tensor,   // (V, d), the same storage as `embed` when tied
    blocks: Vec<Block>,
    final_norm: Norm,
}

impl Gpt2 {
    /// Loads a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json),
    /// converting every tensor to f32 and checking every shape. The name is the folder's name.
    pub fn from_hf_folder(dir: &Path, device: &Device) -> Result<Gpt2> {
        let folder = HfFolder::open(dir)?;
        let config = Gpt2Config::from_hf_folder(&folder)?;
        let c = &config;
        let (d, ff) = (c.d_model, c.d_ff);
        // `transformer.` when saved from GPT2LMHeadModel, none when saved from GPT2Model (the
        // original `gpt2` repository).
        let prefix = if folder.has_tensor("transformer.wte.weight") {
            "transformer."
        } else if folder.has_tensor("wte.weight") {
            ""
        } else {
            return Err(ModelError::MissingTensor("transformer.wte.weight` (or `wte.weight`".to_string()));
        };
        check_against_tensors(&folder, c, prefix)?;
        let tied = !folder.has_tensor("lm_head.weight");
        let mut specs: Vec<(String, Vec<usize>)> = vec![
            (format!("{prefix}wte.weight"), vec![c.vocab_size, d]),
            (format!("{prefix}wpe.weight"), vec![c.context_length, d]),
            (format!("{prefix}ln_f.weight"), vec![d]),
            (format!("{prefix}ln_f.bias"), vec![d]),
        ];
        if !tied {
            specs.push(("lm_head.weight".into(), vec![c.vocab_size, d]));
        }
        const BLOCK_TENSORS: usize = 12;
        for l in 0..c.n_layers {
            // Conv1D weights are stored [in, out].
            for (suffix, shape) in [
                ("ln_1.weight", vec![d]),
                ("ln_1.bias", vec![d]),
                ("attn.c_attn.weight", vec![d, 3 * d]),
                ("attn.c_attn.bias", vec![3 * d]),
                ("attn.c_proj.weight", vec![d, d]),
                ("attn.c_proj.bias", vec![d]),
                ("ln_2.weight", vec![d]),
                ("ln_2.bias", vec![d]),
                ("mlp.c_fc.weight", vec![d, ff]),
                ("mlp.c_fc.bias", vec![ff]),
                ("mlp.c_proj.weight", vec![ff, d]),
                ("mlp.c_proj.bias", vec![d]),
            ] {
                specs.push((format!("{prefix}h.{l}.{suffix}"), shape));
            }
        }
        debug_assert_eq!(specs.len(), 4 + usize::from(!tied) + BLOCK_TENSORS * c.n_layers);
        let tokenizer = folder.tokenizer()?;
        let mut tensors = folder.tensors(&specs, device)?.into_iter();
        let mut next = || tensors.next().expect("one tensor per spec");
        let eps = c.layer_norm_eps;
        let (embed, positions) = (next(), next());
        let final_norm = Norm::Layer { weight: next(), bias: next(), eps };
        let unembed = if tied { embed.clone() } else { next() };
        // [in, out] -> (out, in), contiguous so every matmul sees the canonical layout.
        let canonical = |w: Tensor| -> Result<Tensor> { Ok(w.t()?.contiguous()?) };
        let mut blocks = Vec::with_capacity(c.n_layers);
        for _ in 0..c.n_layers {
            let ln_1 = Norm::Layer { weight: next(), bias: next(), eps };
            let qkv = canonical(next())?; // (3d, d): rows q | k | v
            let qkv_bias = next(); // (3d)
            let split = |t: &Tensor, i: usize| -> Result<Tensor> { Ok(t.narrow(0, i * d, d)?.contiguous()?) };
            let (q, k, v) = (split(&qkv, 0)?, split(&qkv, 1)?, split(&qkv, 2)?);
            let (bq, bk, bv) = (split(&qkv_bias, 0)?, split(&qkv_bias, 1)?, split(&qkv_bias, 2)?);
            let (o, bo) = (canonical(next())?, next()); // (d, d), (d)
            let ln_2 = Norm::Layer { weight: next(), bias: next(), eps };
            let (up, b_up) = (canonical(next())?, next()); // (d_ff, d), (d_ff)
            let (down, b_down) = (canonical(next())?, next()); // (d, d_ff), (d)
            blocks.push(Block { ln_1, ln_2, linear: [q, k, v, o, up, down], bias: [bq, bk, bv, bo, b_up, b_down] });
        }
        let name = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Gpt2 { name, config, tokenizer, embed, positions, unembed, blocks, final_norm })
    }

    /// Builds a model in memory from the tensors `make` returns for each (name, role, canonical
    /// shape): weights already in the canonical (out, in) layout, q/k/v already split. Names are
    /// those of the checkpoint with the split `attn.q/k/v` (test models).
    #[cfg(feature = "testing")]
    pub(crate) fn from_fn(
        name: String,
        config: Gpt2Config,
        tokenizer: TextTokenizer,
        tied: bool,
        mut make: impl FnMut(&str, crate::weight_role::Role, &[usize]) -> Tensor,
    ) -> Gpt2 {
        use crate::weight_role::Role;
        let c = &config;
        let (d, ff, eps) = (c.d_model, c.d_ff, c.layer_norm_eps);
        let embed = make("wte.weight", Role::Embedding, &[c.vocab_size, d]);
        let positions = make("wpe.weight", Role::Positions, &[c.context_length, d]);
        let final_norm = Norm::Layer {
            weight: make("ln_f.weight", Role::NormGain, &[d]),
            bias: make("ln_f.bias", Role::NormBias, &[d]),
            eps,
        };
        let unembed = if tied { embed.clone() } else { make("lm_head.weight", Role::Unembedding, &[c.vocab_size, d]) };
        let blocks = (0..c.n_layers)
            .map(|l| {
                let mut norm = |n: &str| Norm::Layer {
                    weight: make(&format!("h.{l}.{n}.weight"), Role::NormGain, &[d]),
                    bias: make(&format!("h.{l}.{n}.bias"), Role::NormBias, &[d]),
                    eps,
                };
                let ln_1 = norm("ln_1");
                let ln_2 = norm("ln_2");
                // (module, d_out, d_in) in linear_index order: q, k, v, o, up, down.
                let shapes = [
                    ("attn.q", d, d),
                    ("attn.k", d, d),
                    ("attn.v", d, d),
                    ("attn.o", d, d),
                    ("mlp.up", ff, d),
                    ("mlp.down", d, ff),
                ];
                let linear = shapes.map(|(m, o, i)| make(&format!("h.{l}.{m}.weight"), Role::Weight, &[o, i]));
                let bias = shapes.map(|(m, o, _)| make(&format!("h.{l}.{m}.bias"), Role::Bias, &[o]));
                Block { ln_1, ln_2, linear, bias }
            })
            .collect();
        Gpt2 { name, config, tokenizer, embed, positions, unembed, blocks, final_norm }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The learned position embeddings.
    ///
    /// # Shapes
    /// Returns (n_positions, d_model).
    pub fn position_embedding(&self) -> &Tensor {
        &self.positions
    }

    /// The weight of a linear module, in canonical layout (the transpose of the checkpoint's
    /// `Conv1D` weight; for q/k/v, one third of `c_attn`).
    ///
    /// # Shapes
    /// Returns (d_out, d_in).
    pub fn weight(&self, layer: usize, module: Module) -> Result<&Tensor> {
        let (l, i) = self.locate(layer, module)?;
        Ok(&self.blocks[l].linear[i])
    }

    /// The bias of a linear module.
    ///
    /// # Shapes
    /// Returns (d_out).
    pub fn bias(&self, layer: usize, module: Module) -> Result<&Tensor> {
        let (l, i) = self.locate(layer, module)?;
        Ok(&self.blocks[l].bias[i])
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
        let missing = match module {
            Module::MlpGate => "GPT-2 has no gated MLP (no mlp.gate); its FF1 is mlp.up",
            _ => "a block has no single weight matrix; name a linear module",
        };
        Ok((layer, layers::weight_slot(layer, self.blocks.len(), module, linear_index(module), missing)?))
    }

    /// Causal self-attention of one block.
    ///
    /// # Shapes
    /// - `x`: (T, d) normalised residual, `mask`: (T, T); returns (T, d)
    fn attention(&self, rec: &mut Recorder, l: usize, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (t, hd) = (x.dim(0)?, c.head_dim());
        let b = &self.blocks[l];
        let heads = |y: Tensor| -> Result<Tensor> {
            // (T, H·hd) -> (H, T, hd)
            Ok(y.reshape((t, c.n_heads, hd))?.transpose(0, 1)?.contiguous()?)
        };
        let mut proj = |m: Module| rec.linear(l, m, x, b.w(m), Some(b.b(m)));
        let q = heads(proj(Module::AttnQ)?)?; // (H, T, hd)
        let k = heads(proj(Module::AttnK)?)?; // (H, T, hd)
        let v = heads(proj(Module::AttnV)?)?; // (H, T, hd)
        let mut scale = 1.0;
        if c.scale_attn_weights {
            scale /= (hd as f64).sqrt();
        }
        if c.scale_attn_by_inverse_layer_idx {
            scale /= (l + 1) as f64;
        }
        let mixed = layers::causal_attention(&q, &k, &v, scale, mask)?; // (T, d)
        rec.linear(l, Module::AttnO, &mixed, b.w(Module::AttnO), Some(b.b(Module::AttnO)))
    }

    /// The GELU MLP of one block.
    ///
    /// # Shapes
    /// - `x`: (T, d) normalised residual; returns (T, d)
    fn mlp(&self, rec: &mut Recorder, l: usize, x: &Tensor) -> Result<Tensor> {
        let b = &self.blocks[l];
        let up = rec.linear(l, Module::MlpUp, x, b.w(Module::MlpUp), Some(b.b(Module::MlpUp)))?; // (T, d_ff)
        let act = match self.config.activation {
            Gpt2Activation::GeluTanh => up.gelu()?,
            Gpt2Activation::GeluErf => up.gelu_erf()?,
        }; // (T, d_ff)
        rec.linear(l, Module::MlpDown, &act, b.w(Module::MlpDown), Some(b.b(Module::MlpDown)))
        // (T, d)
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
        let tok = self.embed.index_select(&ids, 0)?; // (T, d)
        let pos = self.positions.narrow(0, 0, t)?; // (T, d)
        let mut h = (tok + pos)?; // (T, d)
        let mask = layers::causal_mask(t, device)?; // (T, T)
        for l in 0..self.blocks.len() {
            let b = &self.blocks[l];
            h = rec.hook(l, Module::Block, Kind::Input, h)?;
            let attn = self.attention(rec, l, &b.ln_1.forward(&h)?, &mask)?;
            h = (h + attn)?;
            let mlp = self.mlp(rec, l, &b.ln_2.forward(&h)?)?;
            h = rec.hook(l, Module::Block, Kind::Output, (h + mlp)?)?;
        }
        Ok(h)
    }
}

impl_language_model!(Gpt2);
