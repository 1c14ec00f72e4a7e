//! Appendix C (Figures 7–9, Tables 2 and 4): single gradient neurons against the spanning
//! vectors that span them.
//!
//! One backward pass gives FF2 (`mlp.down`, weight `(d, d_ff)`) the gradient
//! `dL/dW = Σ_i δ_i x_iᵀ`: its column `j`, the paper's "gradient neuron" `j` (Eq. 10), is
//! `Σ_i x_i[j] δ_i`, a combination of the VJPs `δ_i` weighted by the activations `x_i[j]`. FF1
//! (`mlp.up`, weight `(d_ff, d)`) has rows `Σ_i δ_i[j] x_i`, combinations of its inputs `x_i`
//! (Eq. 9). Both are `d_model`-sized, so the logit lens projects them like the spanning vectors.
//!
//! **Sign.** Everything here is computed on the SGD *update* `-dL/dW` (learning rate 1), the
//! vectors gradient descent adds to the weight's neurons. The paper's Table 2 shows " Paris" on
//! top of the biggest FF2 neurons while `δ_n` has it at the bottom (Table 3), and its Figure 8
//! says the high-norm neurons "inject the VJP of 'for' with a flipped sign"; both fit the update
//! (the authors' code diffs edited and original weights), not the raw gradient. So FF2 update
//! neuron `j` is `Σ_i (-x_i[j]) δ_i`: a positive activation gives `cos(neuron, δ_n) < 0`.
//!
//! **Signed intersection** (Figure 7a's caption): the number of tokens shared by the top-100 most
//! probable tokens of `LL(neuron)` and of `LL(spanning vector)`, shown negative when negating one
//! of them (here: the neuron) shares more. The caption reads the *top* 100 of both vectors for
//! FF2 too, so the figures use [`LensReading::MostLikely`] for both matrices;
//! [`NeuronOptions::reading`] selects the other end (bottom-100, [`SpanningSet::reading`] for
//! FF2). Under a bias-free RMSNorm the lens is odd (`LL(-v)` reverses the ranking of `LL(v)`
//! exactly), so the reading of `-v` is the opposite end of the same projection; under a LayerNorm
//! with a bias the negated vectors are projected explicitly.

use backlens_algebra::{cosine_similarity, top_k_intersection, LensReading, LowRankGradient, SpanningSet};
use backlens_lens::{ProjectOptions, Projection};
use backlens_model::{Kind, Module, Norm, Site, Trace, TraceOptions};
use backlens_plot::{readable_token, Cell, ColorScale, Heatmap, LineChart, Series, TokenTable};
use candle_core::{DType, Tensor, D};
use serde::Serialize;
use serde_json::json;

use super::{FigureGroup, Reproduction};
use crate::figure::CELL_CHARS;
use crate::{Backlens, Error};

/// The paper's running example of Appendix C: "Lionel Messi plays for", edited to " Paris".
pub const NEURON_PROMPT: &str = "Lionel Messi plays for";
/// The edit target of [`NEURON_PROMPT`].
pub const NEURON_TARGET: &str = " Paris";
/// The layer the paper analyses in Appendix C (GPT2-medium, 0-based).
pub const PAPER_NEURON_LAYER: usize = 14;
/// GPT2-medium's number of layers.
pub const PAPER_NEURON_MODEL_LAYERS: usize = 24;
/// The paper's `k` of the lens intersection (top-100).
pub const INTERSECTION_K: usize = 100;
/// Neurons per norm group of Tables 2 and 4 (biggest, medium, smallest).
pub const NEURONS_PER_GROUP: usize = 3;
/// Tokens shown per end of the lens in Tables 2 and 4.
pub const TABLE_TOKENS: usize = 3;
/// Neurons per band of the generated statement (the 10 largest, middle and smallest by norm).
pub const BAND_SIZE: usize = 10;

/// The layer at the paper's relative depth: `round(14 / 23 · (n_layers − 1))` (layer 14 of
/// GPT2-medium's 24). SmolLM2-135M (30 layers): `round(17.65) = 18`.
pub fn paper_depth_layer(n_layers: usize) -> usize {
    let (num, den) = (PAPER_NEURON_LAYER * n_layers.saturating_sub(1), PAPER_NEURON_MODEL_LAYERS - 1);
    (2 * num + den) / (2 * den)
}

/// Which MLP matrix's gradient neurons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FfMatrix {
    /// FF1 = `mlp.up` (Llama `up_proj`, GPT-2 `c_fc`): neurons are rows of `dL/dW`, spanned by
    /// the forward inputs `x_i`.
    Ff1,
    /// FF2 = `mlp.down` (Llama `down_proj`, GPT-2 `c_proj`): neurons are columns of `dL/dW`,
    /// spanned by the VJPs `δ_i`.
    Ff2,
}

impl FfMatrix {
    /// The linear module.
    pub fn module(self) -> Module {
        match self {
            FfMatrix::Ff1 => Module::MlpUp,
            FfMatrix::Ff2 => Module::MlpDown,
        }
    }

    /// Which factor spans the neurons.
    pub fn spanning_set(self) -> SpanningSet {
        match self {
            FfMatrix::Ff1 => SpanningSet::Inputs,
            FfMatrix::Ff2 => SpanningSet::Vjps,
        }
    }

    /// `"FF1"` or `"FF2"`.
    pub fn name(self) -> &'static str {
        match self {
            FfMatrix::Ff1 => "FF1",
            FfMatrix::Ff2 => "FF2",
        }
    }

    /// The spanning vectors' symbol: `x_i` or `δ_i`.
    pub fn symbol(self) -> &'static str {
        match self {
            FfMatrix::Ff1 => "x_i",
            FfMatrix::Ff2 => "δ_i",
        }
    }

    /// The sites a trace must record for this matrix.
    pub fn sites(self) -> [Site; 2] {
        [Site::new(self.module(), Kind::Input), Site::new(self.module(), Kind::Vjp)]
    }
}

/// The update neurons of one matrix at one layer with the vectors that span them.
#[derive(Debug, Clone)]
pub struct UpdateNeurons {
    /// Neuron `j` of the update `-dL/dW` per row. # Shapes `(d_ff, d_model)`
    pub neurons: Tensor,
    /// The spanning vectors `δ_i` (FF2) or `x_i` (FF1), one per prompt token. # Shapes `(T, d_model)`
    pub spanning: Tensor,
    /// `neurons[j] = Σ_i coefficients[i][j] · spanning[i]`: `-x_i[j]` (FF2) or `-δ_i[j]` (FF1).
    /// # Shapes `(T, d_ff)`
    pub coefficients: Tensor,
}

/// The gradient neurons of `matrix` at `layer` as the SGD update `-dL/dW`, from the trace's
/// factors, in two matrix products (no dense weight).
///
/// # Shapes
/// With `(X, Δ) = trace.gradient_factors(layer, module)`:
/// * FF2: `X` `(T, d_ff)`, `Δ` `(T, d)`; neurons `-Xᵀ Δ` `(d_ff, d)` (columns of `dL/dW`),
///   spanning `Δ` `(T, d)`, coefficients `-X` `(T, d_ff)`.
/// * FF1: `X` `(T, d)`, `Δ` `(T, d_ff)`; neurons `-Δᵀ X` `(d_ff, d)` (rows of `dL/dW`),
///   spanning `X` `(T, d)`, coefficients `-Δ` `(T, d_ff)`.
pub fn update_neurons(trace: &Trace, layer: usize, matrix: FfMatrix) -> Result<UpdateNeurons, Error> {
    let (x, delta) = trace.gradient_factors(layer, matrix.module())?;
    let gradient = LowRankGradient::new(x, delta)?;
    let (neurons, spanning, coefficients) = match matrix {
        FfMatrix::Ff2 => {
            let units: Vec<usize> = (0..gradient.d_in()).collect();
            (gradient.input_neurons(&units)?, gradient.vjps().clone(), gradient.inputs().clone())
        }
        FfMatrix::Ff1 => {
            let units: Vec<usize> = (0..gradient.d_out()).collect();
            (gradient.output_neurons(&units)?, gradient.inputs().clone(), gradient.vjps().clone())
        }
    };
    Ok(UpdateNeurons { neurons: neurons.neg()?, spanning, coefficients: coefficients.neg()? })
}

/// The L2 norm of every row.
///
/// # Shapes
/// `vectors`: `(N, d)`; returns `N` norms.
pub fn row_norms(vectors: &Tensor) -> Result<Vec<f32>, Error> {
    Ok(vectors.to_dtype(DType::F32)?.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1::<f32>()?)
}

/// Indices sorted by descending norm (ties: lower index first; NaN last).
pub fn order_by_norm(norms: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| if norms[i].is_nan() { f32::NEG_INFINITY } else { norms[i] };
        key(b).total_cmp(&key(a)).then(a.cmp(&b))
    });
    order
}

/// The paper's signed lens intersection of one neuron with one spanning vector (Figure 7a):
/// `same = |R(neuron) ∩ R(spanning)|`, `flipped = |R(-neuron) ∩ R(spanning)|` for a reading `R`
/// (the top-100 in the paper); the score is `-flipped` when `flipped > same`, else `same`.
///
/// `neuron`, `negated_neuron` and `spanning` are the token-id lists `R(neuron)`, `R(-neuron)` and
/// `R(spanning)`. A vector without a ranking (all logits tie) has an empty list and scores 0.
pub fn signed_intersection(neuron: &[u32], negated_neuron: &[u32], spanning: &[u32]) -> i32 {
    let same = top_k_intersection(neuron, spanning);
    let flipped = top_k_intersection(negated_neuron, spanning);
    if flipped > same {
        -(flipped as i32)
    } else {
        same as i32
    }
}

/// [`signed_intersection`] of every spanning vector with every neuron.
///
/// # Shapes
/// `neurons` and `negated` hold one list per neuron (`N`), `spanning` one per spanning vector
/// (`T`); returns `[T][N]`.
pub fn signed_intersection_matrix(neurons: &[Vec<u32>], negated: &[Vec<u32>], spanning: &[Vec<u32>]) -> Vec<Vec<i32>> {
    spanning.iter().map(|s| neurons.iter().zip(negated).map(|(n, m)| signed_intersection(n, m, s)).collect()).collect()
}

/// The reading `R(v)` of a projection: its top or bottom list.
pub fn reading_of(projection: &Projection, reading: LensReading) -> &[u32] {
    match reading {
        LensReading::MostLikely => &projection.top,
        LensReading::LeastLikely => &projection.bottom,
    }
}

fn opposite(reading: LensReading) -> LensReading {
    match reading {
        LensReading::MostLikely => LensReading::LeastLikely,
        LensReading::LeastLikely => LensReading::MostLikely,
    }
}

fn reading_name(reading: LensReading) -> &'static str {
    match reading {
        LensReading::MostLikely => "most likely (top)",
        LensReading::LeastLikely => "least likely (bottom)",
    }
}

/// How [`Backlens::neuron_study`] reads the lens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeuronOptions {
    /// Tokens per lens reading of the intersection (the paper: 100).
    pub k: usize,
    /// Which end of the ranking the intersection compares (the paper's caption: the top).
    pub reading: LensReading,
}

impl Default for NeuronOptions {
    fn default() -> Self {
        NeuronOptions { k: INTERSECTION_K, reading: LensReading::MostLikely }
    }
}

/// The norm group of a row of Tables 2 and 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NormGroup {
    Biggest,
    Medium,
    Smallest,
    /// The zero vector, projected for reference.
    ZeroVector,
}

impl NormGroup {
    /// The paper's row label.
    pub fn label(self) -> &'static str {
        match self {
            NormGroup::Biggest => "biggest by norm",
            NormGroup::Medium => "medium by norm",
            NormGroup::Smallest => "smallest by norm",
            NormGroup::ZeroVector => "zero vector",
        }
    }
}

/// One row of Tables 2 and 4: a neuron's norm and its lens top and bottom tokens.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronSample {
    pub group: NormGroup,
    /// The neuron index (`None` for the zero vector).
    pub neuron: Option<usize>,
    pub norm: f32,
    /// The most likely token ids, most likely first (empty when all logits tie).
    pub top: Vec<u32>,
    /// The least likely token ids, least likely first (empty when all logits tie).
    pub bottom: Vec<u32>,
    /// Their decoded texts.
    pub top_text: Vec<String>,
    pub bottom_text: Vec<String>,
}

/// Statistics of a band of neurons (e.g. the 10 largest by norm) against the spanning vectors.
///
/// "Coefficient" is the weight of a spanning vector in the update neuron: `-x_i[j]` for FF2
/// (`x_i[j]` the activation), `-δ_i[j]` for FF1. The paper's "flipped sign" of a neuron with a
/// positive activation is a negative cosine with its spanning vector.
#[derive(Debug, Clone, Serialize)]
pub struct NormBand {
    /// E.g. `"10 largest by norm"`.
    pub band: String,
    /// The band's neurons, in norm order.
    pub neurons: Vec<usize>,
    pub mean_norm: f32,
    /// Mean `|cos|` with the last token's spanning vector (`δ_n` / `x_n`).
    pub mean_abs_cos_last: f32,
    /// Fraction of the band with `cos(neuron, last) < 0`.
    pub frac_negative_cos_last: f32,
    /// Mean `|signed intersection|` with the last token's spanning vector.
    pub mean_abs_intersection_last: f32,
    /// Fraction with a negative signed intersection with the last token's spanning vector.
    pub frac_negative_intersection_last: f32,
    /// Fraction whose `cos` with the last token's vector has the sign of its coefficient there.
    pub frac_cos_sign_follows_coefficient: f32,
    /// Mean over the band of `max_i |cos(neuron, spanning_i)|`: how close each neuron is to its
    /// best-matching spanning vector.
    pub mean_best_abs_cos: f32,
    /// Per prompt token, how many of the band's neurons have it as their best `|cos|` match.
    pub best_token_counts: Vec<usize>,
    /// Mean number of spanning vectors with `|cos| >= 0.5` per neuron (the paper: each neuron
    /// correlates with only 1-2 spanning vectors).
    pub mean_tokens_above_half: f32,
    /// Fraction whose cosine with the best-matching spanning vector is negative (flipped sign).
    pub frac_negative_best_cos: f32,
    /// Fraction whose best cosine has the sign of the coefficient of that spanning vector.
    pub frac_best_sign_follows_coefficient: f32,
    /// Fraction whose coefficient at the best-matching token is negative: a positive activation
    /// `x_i[j] > 0` (FF2) or a positive `δ_i[j]` (FF1).
    pub frac_positive_best_factor: f32,
}

/// Appendix C for one matrix at one layer: norms, lens samples, signed intersections and cosines
/// of every update neuron with every spanning vector.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronStudy {
    pub model: String,
    pub prompt: String,
    pub target: String,
    pub target_id: u32,
    pub matrix: FfMatrix,
    pub layer: usize,
    pub n_layers: usize,
    /// Decoded prompt tokens.
    pub tokens: Vec<String>,
    /// `k` of the intersection.
    pub k: usize,
    /// Which end of the ranking the intersection compares.
    pub reading: &'static str,
    /// Norm of every update neuron (`d_ff`).
    pub norms: Vec<f32>,
    /// Neuron indices by descending norm.
    pub order: Vec<usize>,
    /// Norm of every spanning vector (`T`).
    pub spanning_norms: Vec<f32>,
    /// `[token][token]`: cosines between the spanning vectors themselves (how distinguishable
    /// they are).
    pub spanning_cosine: Vec<Vec<f32>>,
    /// `[token][neuron]`: the coefficient of spanning vector `i` in update neuron `j`.
    pub coefficients: Vec<Vec<f32>>,
    /// `[token][neuron]`: `cos(neuron_j, spanning_i)`.
    pub cosine: Vec<Vec<f32>>,
    /// `[token][neuron]`: the signed top-k lens intersection.
    pub intersection: Vec<Vec<i32>>,
    /// Rows of Tables 2 / 4: biggest, medium and smallest neurons by norm, then the zero vector.
    pub samples: Vec<NeuronSample>,
    /// The 10 largest, middle and smallest neurons by norm.
    pub bands: Vec<NormBand>,
    /// Rank of the target in `LL(neuron)` for each neuron (0 = most likely, `vocab_size - 1` =
    /// least likely); `None` without a ranking.
    pub target_rank: Vec<Option<usize>>,
    /// Rank of the target in `LL(spanning_i)` for each prompt token.
    pub spanning_target_rank: Vec<Option<usize>>,
    pub vocab_size: usize,
}

impl Backlens {
    /// One forward and backward pass of `prompt` → `target` recording only what Appendix C needs:
    /// the inputs and VJPs of `mlp.up` and `mlp.down` at `layer`.
    pub fn trace_neurons(&self, prompt: &str, target: &str, layer: usize) -> Result<Trace, Error> {
        let n_layers = self.model().n_layers();
        if layer >= n_layers {
            return Err(Error::Input(format!(
                "layer {layer} is out of range: the model has {n_layers} layers (0..{n_layers})"
            )));
        }
        let tokenizer = self.model().tokenizer();
        let token_ids = tokenizer.encode(prompt)?;
        let target_id = tokenizer.single_token(target)?;
        let sites = [FfMatrix::Ff1, FfMatrix::Ff2].into_iter().flat_map(FfMatrix::sites);
        Ok(self.model().trace(&token_ids, target_id, &TraceOptions::only(sites).with_layers([layer]))?)
    }

    /// Appendix C for `matrix` at `layer` of a trace from [`Backlens::trace_neurons`].
    ///
    /// All `d_ff` update neurons and the `T` spanning vectors are projected in one batch (one
    /// matrix product, `(d_ff + T + 1, d) × (d, V)`); cosines are one product of the
    /// row-normalised matrices.
    pub fn neuron_study(
        &self,
        trace: &Trace,
        layer: usize,
        matrix: FfMatrix,
        options: &NeuronOptions,
    ) -> Result<NeuronStudy, Error> {
        let UpdateNeurons { neurons, spanning, coefficients } = update_neurons(trace, layer, matrix)?;
        let (n_neurons, d) = neurons.dims2()?;
        let n_tokens = spanning.dim(0)?;

        // One batch: neurons, spanning vectors and the zero vector.
        let zero = Tensor::zeros((1, d), neurons.dtype(), neurons.device())?;
        let batch = Tensor::cat(&[&neurons, &spanning, &zero], 0)?;
        let project =
            ProjectOptions { k: options.k.max(TABLE_TOKENS), rank_tokens: vec![trace.target_id], normalize: false };
        let projections = self.lens().project(&batch, &project)?;
        let (neuron_p, rest) = projections.split_at(n_neurons);
        let (spanning_p, zero_p) = rest.split_at(n_tokens);

        let k = options.k;
        let take = |list: &[u32]| list[..k.min(list.len())].to_vec();
        let neuron_lists: Vec<Vec<u32>> = neuron_p.iter().map(|p| take(reading_of(p, options.reading))).collect();
        let spanning_lists: Vec<Vec<u32>> = spanning_p.iter().map(|p| take(reading_of(p, options.reading))).collect();
        let negated_lists: Vec<Vec<u32>> = if matches!(self.model().final_norm(), Norm::Rms { .. }) {
            // RMSNorm is odd and the unembedding bias-free: LL(-v) = -LL(v), so R(-v) is the
            // opposite end of LL(v) (ties keep the lower id first at both ends).
            neuron_p.iter().map(|p| take(reading_of(p, opposite(options.reading)))).collect()
        } else {
            let negated =
                self.lens().project(&neurons.neg()?, &ProjectOptions { k, rank_tokens: vec![], normalize: false })?;
            negated.iter().map(|p| take(reading_of(p, options.reading))).collect()
        };
        let intersection = signed_intersection_matrix(&neuron_lists, &negated_lists, &spanning_lists);
        let cosine = cosine_similarity(&spanning, &neurons)?.to_vec2::<f32>()?; // (T, d_ff)

        let norms = row_norms(&neurons)?;
        let order = order_by_norm(&norms);
        let text = |ids: &[u32]| ids.iter().take(TABLE_TOKENS).map(|&id| self.token_text(id)).collect::<Vec<_>>();
        let sample = |group: NormGroup, neuron: Option<usize>, p: &Projection| NeuronSample {
            group,
            neuron,
            norm: p.norm,
            top: p.top.iter().take(TABLE_TOKENS).copied().collect(),
            bottom: p.bottom.iter().take(TABLE_TOKENS).copied().collect(),
            top_text: text(&p.top),
            bottom_text: text(&p.bottom),
        };
        let mut samples = Vec::new();
        for (group, positions) in norm_groups(n_neurons, NEURONS_PER_GROUP) {
            samples.extend(positions.into_iter().map(|r| sample(group, Some(order[r]), &neuron_p[order[r]])));
        }
        samples.push(sample(NormGroup::ZeroVector, None, &zero_p[0]));

        let mut study = NeuronStudy {
            model: self.model().name().to_string(),
            prompt: self.model().tokenizer().decode(&trace.token_ids).unwrap_or_default(),
            target: self.token_text(trace.target_id),
            target_id: trace.target_id,
            matrix,
            layer,
            n_layers: self.model().n_layers(),
            tokens: trace.token_ids.iter().map(|&id| self.token_text(id)).collect(),
            k,
            reading: reading_name(options.reading),
            norms,
            order,
            spanning_norms: row_norms(&spanning)?,
            spanning_cosine: cosine_similarity(&spanning, &spanning)?.to_vec2::<f32>()?,
            coefficients: coefficients.to_dtype(DType::F32)?.to_vec2::<f32>()?,
            cosine,
            intersection,
            samples,
            bands: Vec::new(),
            target_rank: neuron_p.iter().map(|p| p.ranks[0]).collect(),
            spanning_target_rank: spanning_p.iter().map(|p| p.ranks[0]).collect(),
            vocab_size: self.lens().vocab_size(),
        };
        study.bands = norm_bands(n_neurons, BAND_SIZE)
            .into_iter()
            .map(|(name, positions)| study.band(name, &positions))
            .collect();
        Ok(study)
    }
}

/// One layer of [`Backlens::neuron_depth_profile`]: how the largest update neurons relate to the
/// spanning vectors at that layer (beyond the paper, which shows one layer).
#[derive(Debug, Clone, Serialize)]
pub struct DepthRow {
    pub layer: usize,
    /// Norm of every spanning vector (`T`).
    pub spanning_norms: Vec<f32>,
    /// Rank of the target in `LL(δ_n)` / `LL(x_n)` (0 = most likely).
    pub last_target_rank: Option<usize>,
    /// The band's neurons (the largest by norm).
    pub neurons: Vec<usize>,
    pub mean_norm: f32,
    /// Mean `max_i |cos(neuron, spanning_i)|`.
    pub mean_best_abs_cos: f32,
    /// Fraction whose best-matching spanning vector is the last token's.
    pub frac_best_is_last: f32,
    /// Mean `|cos|` with the last token's spanning vector.
    pub mean_abs_cos_last: f32,
    /// Fraction whose best cosine is negative (flipped sign).
    pub frac_negative_best_cos: f32,
    /// Fraction whose best cosine has the sign of its coefficient (`-x_i[j]` / `-δ_i[j]`).
    pub frac_best_sign_follows_coefficient: f32,
    /// Fraction with the target as the LL top-1 token.
    pub frac_target_top1: f32,
    /// Fraction with the target as the LL bottom-1 token.
    pub frac_target_bottom1: f32,
}

impl Backlens {
    /// For every layer, the `band` largest update neurons of `matrix` against the spanning vectors
    /// of `prompt` → `target`: cosines (one product per layer) and the lens top-1/bottom-1 of the
    /// band's neurons and of the last spanning vector, all layers projected in one batch.
    pub fn neuron_depth_profile(
        &self,
        prompt: &str,
        target: &str,
        matrix: FfMatrix,
        band: usize,
    ) -> Result<Vec<DepthRow>, Error> {
        let tokenizer = self.model().tokenizer();
        let token_ids = tokenizer.encode(prompt)?;
        let target_id = tokenizer.single_token(target)?;
        let trace = self.model().trace(&token_ids, target_id, &TraceOptions::only(matrix.sites()))?;
        let last = token_ids.len() - 1;
        let mut rows = Vec::new();
        let mut to_project = Vec::new();
        for layer in 0..self.model().n_layers() {
            let u = update_neurons(&trace, layer, matrix)?;
            let norms = row_norms(&u.neurons)?;
            let neurons: Vec<usize> = order_by_norm(&norms).into_iter().take(band).collect();
            let idx = Tensor::from_vec(
                neurons.iter().map(|&j| j as u32).collect::<Vec<_>>(),
                neurons.len(),
                u.neurons.device(),
            )?;
            let picked = u.neurons.index_select(&idx, 0)?; // (b, d)
            let cos = cosine_similarity(&u.spanning, &picked)?.to_vec2::<f32>()?; // (T, b)
            let coef = u.coefficients.index_select(&idx, 1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?; // (T, b)
            let best: Vec<usize> = (0..neurons.len())
                .map(|c| {
                    (0..=last).max_by(|&a, &b| cos[a][c].abs().total_cmp(&cos[b][c].abs()).then(b.cmp(&a))).unwrap_or(0)
                })
                .collect();
            rows.push(DepthRow {
                layer,
                spanning_norms: row_norms(&u.spanning)?,
                last_target_rank: None,
                mean_norm: mean(neurons.iter().map(|&j| norms[j])),
                mean_best_abs_cos: mean(best.iter().enumerate().map(|(c, &i)| cos[i][c].abs())),
                frac_best_is_last: fraction(best.iter().map(|&i| i == last)),
                mean_abs_cos_last: mean((0..neurons.len()).map(|c| cos[last][c].abs())),
                frac_negative_best_cos: fraction(best.iter().enumerate().map(|(c, &i)| cos[i][c] < 0.0)),
                frac_best_sign_follows_coefficient: fraction(
                    best.iter().enumerate().map(|(c, &i)| (cos[i][c] < 0.0) == (coef[i][c] < 0.0)),
                ),
                frac_target_top1: 0.0,
                frac_target_bottom1: 0.0,
                neurons,
            });
            to_project.push(picked);
            to_project.push(u.spanning.narrow(0, last, 1)?);
        }
        let batch = Tensor::cat(&to_project, 0)?;
        let projections =
            self.lens().project(&batch, &ProjectOptions { k: 1, rank_tokens: vec![target_id], normalize: false })?;
        let mut it = projections.iter();
        for row in &mut rows {
            let band: Vec<&Projection> = it.by_ref().take(row.neurons.len()).collect();
            row.frac_target_top1 = fraction(band.iter().map(|p| p.top.first() == Some(&target_id)));
            row.frac_target_bottom1 = fraction(band.iter().map(|p| p.bottom.first() == Some(&target_id)));
            row.last_target_rank = it.next().and_then(|p| p.ranks[0]);
        }
        Ok(rows)
    }
}

/// The depth profile as a line chart: one point per layer.
pub fn depth_chart(rows: &[DepthRow], matrix: FfMatrix, target: &str, marked_layer: usize) -> LineChart {
    let series = |name: &str, f: &dyn Fn(&DepthRow) -> f32| Series {
        name: name.to_string(),
        points: rows.iter().map(|r| (r.layer as f64, f(r) as f64)).collect(),
    };
    let band = rows.first().map_or(0, |r| r.neurons.len());
    let last = match matrix {
        FfMatrix::Ff1 => "x_n",
        FfMatrix::Ff2 => "δ_n",
    };
    LineChart {
        title: format!(
            "{}: the {band} largest update neurons per layer vs {} (layer {marked_layer} = the paper's depth)",
            matrix.name(),
            matrix.symbol()
        ),
        x_label: "layer".into(),
        y_label: "mean or fraction".into(),
        series: vec![
            series(&format!("mean max_i |cos(neuron, {})|", matrix.symbol()), &|r| r.mean_best_abs_cos),
            series(&format!("mean |cos(neuron, {last})|"), &|r| r.mean_abs_cos_last),
            series(&format!("fraction best-matching {last}"), &|r| r.frac_best_is_last),
            series("fraction with a flipped sign (best cos < 0)", &|r| r.frac_negative_best_cos),
            series(&format!("fraction with {target:?} as LL top-1 or bottom-1"), &|r| {
                r.frac_target_top1 + r.frac_target_bottom1
            }),
        ],
        x_range: None,
        y_range: Some((0.0, 1.0)),
        reference_lines: Vec::new(),
    }
}

/// Positions (in descending-norm order) of the biggest, medium and smallest groups of `per_group`
/// neurons out of `n`: the first, the middle and the last `per_group`.
pub fn norm_groups(n: usize, per_group: usize) -> Vec<(NormGroup, Vec<usize>)> {
    let m = per_group.min(n);
    let mid = (n / 2).saturating_sub(m / 2).min(n - m);
    vec![
        (NormGroup::Biggest, (0..m).collect()),
        (NormGroup::Medium, (mid..mid + m).collect()),
        (NormGroup::Smallest, (n - m..n).collect()),
    ]
}

fn norm_bands(n: usize, size: usize) -> Vec<(String, Vec<usize>)> {
    norm_groups(n, size)
        .into_iter()
        .map(|(g, p)| {
            let name = match g {
                NormGroup::Biggest => format!("{} largest by norm", p.len()),
                NormGroup::Medium => format!("{} around the median norm", p.len()),
                _ => format!("{} smallest by norm", p.len()),
            };
            (name, p)
        })
        .collect()
}

fn mean(values: impl IntoIterator<Item = f32>) -> f32 {
    let (sum, n) = values.into_iter().fold((0.0f64, 0usize), |(s, n), v| (s + v as f64, n + 1));
    if n == 0 {
        f32::NAN
    } else {
        (sum / n as f64) as f32
    }
}

fn fraction(flags: impl IntoIterator<Item = bool>) -> f32 {
    mean(flags.into_iter().map(|f| if f { 1.0 } else { 0.0 }))
}

impl NeuronStudy {
    /// Number of neurons (`d_ff`).
    pub fn n_neurons(&self) -> usize {
        self.norms.len()
    }

    /// Index of the last prompt token.
    pub fn last(&self) -> usize {
        self.tokens.len() - 1
    }

    /// The prompt token whose spanning vector has the largest `|cos|` with neuron `j`.
    pub fn best_token(&self, j: usize) -> usize {
        (0..self.tokens.len())
            .max_by(|&a, &b| self.cosine[a][j].abs().total_cmp(&self.cosine[b][j].abs()).then(b.cmp(&a)))
            .unwrap_or(0)
    }

    /// Statistics of the neurons at `positions` of the norm order (0 = largest norm).
    pub fn band(&self, name: String, positions: &[usize]) -> NormBand {
        let last = self.last();
        let neurons: Vec<usize> = positions.iter().map(|&r| self.order[r]).collect();
        let best: Vec<(usize, usize)> = neurons.iter().map(|&j| (j, self.best_token(j))).collect();
        let mut best_token_counts = vec![0; self.tokens.len()];
        for &(_, i) in &best {
            best_token_counts[i] += 1;
        }
        let neg = |i: usize, j: usize| self.cosine[i][j] < 0.0;
        let neg_coef = |i: usize, j: usize| self.coefficients[i][j] < 0.0;
        NormBand {
            band: name,
            mean_norm: mean(neurons.iter().map(|&j| self.norms[j])),
            mean_abs_cos_last: mean(neurons.iter().map(|&j| self.cosine[last][j].abs())),
            frac_negative_cos_last: fraction(neurons.iter().map(|&j| neg(last, j))),
            mean_abs_intersection_last: mean(neurons.iter().map(|&j| self.intersection[last][j].unsigned_abs() as f32)),
            frac_negative_intersection_last: fraction(neurons.iter().map(|&j| self.intersection[last][j] < 0)),
            frac_cos_sign_follows_coefficient: fraction(neurons.iter().map(|&j| neg(last, j) == neg_coef(last, j))),
            mean_best_abs_cos: mean(best.iter().map(|&(j, i)| self.cosine[i][j].abs())),
            best_token_counts,
            mean_tokens_above_half: mean(
                neurons.iter().map(|&j| self.cosine.iter().filter(|row| row[j].abs() >= 0.5).count() as f32),
            ),
            frac_negative_best_cos: fraction(best.iter().map(|&(j, i)| neg(i, j))),
            frac_best_sign_follows_coefficient: fraction(best.iter().map(|&(j, i)| neg(i, j) == neg_coef(i, j))),
            frac_positive_best_factor: fraction(best.iter().map(|&(j, i)| neg_coef(i, j))),
            neurons,
        }
    }

    /// Mean `|cos|` between distinct spanning vectors with a non-zero norm among `tokens`.
    pub fn mean_spanning_abs_cos(&self, tokens: &[usize]) -> f32 {
        let live: Vec<usize> = tokens.iter().copied().filter(|&i| self.spanning_norms[i] > 0.0).collect();
        mean(
            live.iter()
                .flat_map(|&a| live.iter().filter(move |&&b| b > a).map(move |&b| self.spanning_cosine[a][b].abs())),
        )
    }

    /// Prompt tokens by descending spanning-vector norm.
    pub fn tokens_by_spanning_norm(&self) -> Vec<usize> {
        order_by_norm(&self.spanning_norms)
    }

    /// `values` (`[token][neuron]`) with the neurons in descending-norm order.
    pub fn sorted_by_norm<T: Copy>(&self, values: &[Vec<T>]) -> Vec<Vec<T>> {
        values.iter().map(|row| self.order.iter().map(|&j| row[j]).collect()).collect()
    }

    fn row_labels(&self) -> Vec<String> {
        self.tokens.iter().enumerate().map(|(i, t)| format!("{i}: {}", readable_token(t, CELL_CHARS))).collect()
    }

    fn heatmap(&self, what: &str, values: Vec<Vec<f32>>, sorted: bool, range: f32, value_label: &str) -> Heatmap {
        let (values, col_labels, order) = if sorted {
            (
                self.sorted_by_norm(&values),
                (1..=self.n_neurons()).map(|r| r.to_string()).collect(),
                "sorted by norm, rank 1 = largest",
            )
        } else {
            (values, (0..self.n_neurons()).map(|j| j.to_string()).collect(), "by index")
        };
        Heatmap {
            title: format!(
                "{} layer {} {what}: {} vs single update neurons ({order}) | {:?} → {:?}",
                self.matrix.name(),
                self.layer,
                self.matrix.symbol(),
                self.prompt,
                self.target
            ),
            row_labels: self.row_labels(),
            col_labels,
            values,
            x_label: format!("{} update neurons of {} ({order})", self.n_neurons(), self.matrix.module().name()),
            y_label: format!("prompt token ({})", self.matrix.symbol()),
            value_label: value_label.to_string(),
            scale: ColorScale::Diverging,
            range: Some((-range, range)),
            annotate: false,
        }
    }

    /// Figure 7b / 8b / 9b: cosine of every spanning vector (rows) with every update neuron
    /// (columns), by index or sorted by norm.
    pub fn cosine_heatmap(&self, sorted: bool) -> Heatmap {
        self.heatmap("cosine", self.cosine.clone(), sorted, 1.0, "cosine")
    }

    /// Figure 7a / 8a / 9a: the signed top-k lens intersection of every spanning vector (rows)
    /// with every update neuron (columns).
    pub fn intersection_heatmap(&self, sorted: bool) -> Heatmap {
        let values = self.intersection.iter().map(|row| row.iter().map(|&v| v as f32).collect()).collect();
        let label = format!("signed top-{} intersection", self.k);
        self.heatmap("lens intersection", values, sorted, self.k as f32, &label)
    }

    /// Table 2 (FF2) / Table 4 (FF1) as a token table: one row per sampled neuron, the lens top-3
    /// and bottom-3 tokens, coloured by the neuron's norm.
    pub fn sample_table(&self) -> TokenTable {
        let cell_text = |texts: &[String], i: usize| match texts.get(i) {
            Some(t) => readable_token(t, CELL_CHARS),
            None if i == 0 => "(all tie)".to_string(),
            None => String::new(),
        };
        let cols: Vec<String> = (1..=TABLE_TOKENS)
            .map(|i| format!("top {i}"))
            .chain((1..=TABLE_TOKENS).map(|i| format!("bottom {i}")))
            .collect();
        TokenTable {
            title: format!(
                "{} layer {}: LL of single update neurons (-dL/dW) by norm | {:?} → {:?}",
                self.matrix.name(),
                self.layer,
                self.prompt,
                self.target
            ),
            row_labels: self.samples.iter().map(sample_label).collect(),
            row_caption: "neuron".into(),
            col_labels: cols,
            cells: self
                .samples
                .iter()
                .map(|s| {
                    let value = if s.norm.is_finite() { s.norm } else { 0.0 };
                    (0..TABLE_TOKENS)
                        .map(|i| Cell::new(cell_text(&s.top_text, i), value))
                        .chain((0..TABLE_TOKENS).map(|i| Cell::new(cell_text(&s.bottom_text, i), value)))
                        .collect()
                })
                .collect(),
            value_label: "neuron norm".into(),
        }
    }

    /// Table 2 / Table 4 as Markdown (group, neuron, norm, LL top, LL bottom).
    pub fn sample_markdown(&self) -> String {
        let quote = |texts: &[String]| {
            if texts.is_empty() {
                "(all logits tie: no ranking)".to_string()
            } else {
                texts.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
            }
        };
        let mut md = String::from("| group | neuron | norm | LL top | LL bottom |\n|---|---|---|---|---|\n");
        for s in &self.samples {
            let neuron = s.neuron.map_or("-".to_string(), |j| j.to_string());
            md.push_str(&format!(
                "| {} | {neuron} | {:.4} | {} | {} |\n",
                s.group.label(),
                s.norm,
                quote(&s.top_text),
                quote(&s.bottom_text)
            ));
        }
        md
    }
}

fn sample_label(s: &NeuronSample) -> String {
    match s.neuron {
        Some(j) => format!("{} #{j} |v|={:.3}", s.group.label(), s.norm),
        None => "zero vector".to_string(),
    }
}

const PAPER: &str = "Appendix C (GPT2-medium, layer 14 of 24, \"Lionel Messi plays for\" edited to \"Paris\"; \
Figures 7-9, Tables 2 and 4): the highest-norm FF2 gradient neurons \"are almost identical to the last VJP (δ_n), \
with alignment extending up to the sign\": high-norm neurons, \"corresponding to those activated with positive \
activations during the forward pass, inject the VJP of 'for' with a flipped sign\"; medium-norm neurons still \
correlate with δ_n (with the opposite sign, where the GELU activation is negative), and \"smallest by-norm neurons \
show minimal correlation; we refer to their proximity to the zero vector\" (Table 2: they project the same tokens \
as the zero vector). FF1's high-norm gradient neurons align with ±x_i of dominant prompt tokens (Figure 9, Table \
4), and every projected gradient neuron correlates with only 1-2 spanning vectors. Table 2 shows \"Paris\" on top \
of the biggest FF2 neurons, i.e. the update -dL/dW.";

fn fmt_counts(study: &NeuronStudy, counts: &[usize]) -> String {
    let mut pairs: Vec<(usize, &String)> = counts.iter().copied().zip(&study.tokens).filter(|(c, _)| *c > 0).collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
    pairs.iter().map(|(c, t)| format!("{t:?} {c}")).collect::<Vec<_>>().join(", ")
}

fn pct(f: f32) -> String {
    format!("{:.0}%", 100.0 * f)
}

fn activation_text(positive: f32) -> String {
    if positive == 1.0 {
        "All of them have a positive activation there, as with GELU.".to_string()
    } else {
        format!(
            "{} of them have a positive activation there and the others a negative one: SwiGLU's act(gate)·up is not \
             sign-bounded like GELU (≥ -0.17), so a large norm does not imply a positive activation.",
            pct(positive)
        )
    }
}

fn rank_text(rank: Option<usize>, vocab: usize) -> String {
    match rank {
        Some(r) => format!("rank {r} of {} (0 = most likely)", vocab - 1),
        None => "no rank (all logits tie)".to_string(),
    }
}

/// The statement "ours", generated from the two studies.
fn statement(ff2: &NeuronStudy, ff1: &NeuronStudy, norm: &Norm) -> String {
    let last = ff2.last();
    let (top, mid, low) = (&ff2.bands[0], &ff2.bands[1], &ff2.bands[2]);
    let by_norm = ff2.tokens_by_spanning_norm();
    let norm_of = |i: usize| ff2.spanning_norms[i];
    let mut s = format!(
        "{} layer {} of {} (round(14/23·{}), the paper's relative depth), {} prompt tokens, {} update neurons \
         (-dL/dW) per matrix. FF2 (mlp.down): the largest VJPs are δ of {:?} (|δ| {:.3}) and {:?} ({:.3}); the others \
         are at most {:.3}. The {} are each close to one δ_i (mean best |cos| {:.3}; best match: {}), {} of them with a \
         flipped sign (cos < 0), and the sign is that of -x_i[j] in {}: as in the paper, a positive activation flips \
         the sign. {} Against δ_n ({:?}) alone, the paper's comparison, they have mean \
         |cos| {:.3} and a signed top-{} intersection of |{:.1}| on average, negative for {}. The {} (mean norm \
         {:.1e}, vs {:.1e}) still match one δ_i with mean best |cos| {:.3}; the {} ({:.1e}) {:.3}. ",
        ff2.model,
        ff2.layer,
        ff2.n_layers,
        ff2.n_layers - 1,
        ff2.tokens.len(),
        ff2.n_neurons(),
        ff2.tokens[by_norm[0]],
        norm_of(by_norm[0]),
        ff2.tokens[by_norm[1.min(by_norm.len() - 1)]],
        norm_of(by_norm[1.min(by_norm.len() - 1)]),
        by_norm.get(2).map_or(0.0, |&i| norm_of(i)),
        top.band,
        top.mean_best_abs_cos,
        fmt_counts(ff2, &top.best_token_counts),
        pct(top.frac_negative_best_cos),
        pct(top.frac_best_sign_follows_coefficient),
        activation_text(top.frac_positive_best_factor),
        ff2.tokens[last],
        top.mean_abs_cos_last,
        ff2.k,
        top.mean_abs_intersection_last,
        pct(top.frac_negative_intersection_last),
        mid.band,
        mid.mean_norm,
        top.mean_norm,
        mid.mean_best_abs_cos,
        low.band,
        low.mean_norm,
        low.mean_best_abs_cos,
    );
    let biggest: Vec<&NeuronSample> = ff2.samples.iter().filter(|s| s.group == NormGroup::Biggest).collect();
    let on_top = biggest.iter().filter(|s| s.top.contains(&ff2.target_id)).count();
    let on_bottom = biggest.iter().filter(|s| s.bottom.contains(&ff2.target_id)).count();
    s.push_str(&format!(
        "At this layer LL(δ_n) gives {:?} {}, and {:?} is among the LL top-{TABLE_TOKENS} of {on_top} and the \
         bottom-{TABLE_TOKENS} of {on_bottom} of the {} biggest FF2 neurons (the paper's Table 2: on top of all three). ",
        ff2.target,
        rank_text(ff2.spanning_target_rank[last], ff2.vocab_size),
        ff2.target,
        biggest.len()
    ));
    if norm.is_scale_invariant() {
        s.push_str(
            "Under a bias-free RMSNorm the zero vector has no lens ranking (all logits tie) and the lens is \
             scale-invariant, so low-norm neurons cannot project like the zero vector as in the paper's GPT-2 \
             Table 2: they read as whatever direction they point in, and their smallness shows only in the norm. ",
        );
    }
    let (f_top, f_low) = (&ff1.bands[0], &ff1.bands[2]);
    let all: Vec<usize> = (0..ff1.tokens.len()).collect();
    s.push_str(&format!(
        "FF1 (mlp.up): the {} match one x_i with mean best |cos| {:.3} (best match: {}), {} with a flipped sign; the \
         {} {:.3}. Each of the 10 largest neurons has |cos| >= 0.5 with {:.1} of the {} x_i on average (FF2: {:.1} of \
         the δ_i; the paper: 1-2); the x_i themselves have mean pairwise |cos| {:.2}, the δ_i {:.2}.",
        f_top.band,
        f_top.mean_best_abs_cos,
        fmt_counts(ff1, &f_top.best_token_counts),
        pct(f_top.frac_negative_best_cos),
        f_low.band,
        f_low.mean_best_abs_cos,
        f_top.mean_tokens_above_half,
        ff1.tokens.len(),
        top.mean_tokens_above_half,
        ff1.mean_spanning_abs_cos(&all),
        ff2.mean_spanning_abs_cos(&all),
    ));
    s
}

/// `[3, 4, 5, 9]` → `"3-5, 9"`.
fn fmt_layers(layers: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let mut j = i;
        while j + 1 < layers.len() && layers[j + 1] == layers[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { layers[i].to_string() } else { format!("{}-{}", layers[i], layers[j]) });
        i = j + 1;
    }
    parts.join(", ")
}

/// The depth profile's sentence of "ours".
fn depth_statement(depth: &[DepthRow], layer: usize) -> String {
    let close: Vec<&DepthRow> = depth.iter().filter(|r| r.mean_abs_cos_last >= 0.95).collect();
    let at = depth.iter().find(|r| r.layer == layer);
    let mut s = format!(
        " Beyond the paper's single layer (extra-ff2-depth, the {} largest FF2 neurons at every layer): ",
        depth.first().map_or(0, |r| r.neurons.len())
    );
    if close.is_empty() {
        s.push_str("at no layer are they within mean |cos| 0.95 of ±δ_n.");
        return s;
    }
    let layers: Vec<usize> = close.iter().map(|r| r.layer).collect();
    s.push_str(&format!(
        "they are ±δ_n (mean |cos| ≥ 0.95) at layers {}, where the target is the LL top-1 of {} and the bottom-1 of {} \
         of them on average and the sign follows -x_n[j] for {}: the paper's picture, with the target on top or at the \
         bottom as the activation's sign says.",
        fmt_layers(&layers),
        pct(mean(close.iter().map(|r| r.frac_target_top1))),
        pct(mean(close.iter().map(|r| r.frac_target_bottom1))),
        pct(mean(close.iter().map(|r| r.frac_best_sign_follows_coefficient))),
    ));
    if let Some(r) = at.filter(|r| r.mean_abs_cos_last < 0.95) {
        s.push_str(&format!(
            " At layer {layer} the mean |cos| with δ_n is {:.3}: the VJPs of other tokens are still comparable to δ_n.",
            r.mean_abs_cos_last
        ));
    }
    s
}

/// Appendix C on the loaded model: [`NEURON_PROMPT`] → [`NEURON_TARGET`] at
/// [`paper_depth_layer`], FF2 and FF1, with Figures 7–9 as heatmaps and Tables 2 and 4
/// (the same as `bl.reproduce(&[FigureGroup::Neurons], ..)`, which needs no dataset).
pub fn reproduce(bl: &Backlens) -> Result<Reproduction, Error> {
    let layer = paper_depth_layer(bl.model().n_layers());
    let trace = bl.trace_neurons(NEURON_PROMPT, NEURON_TARGET, layer)?;
    let options = NeuronOptions::default();
    let ff2 = bl.neuron_study(&trace, layer, FfMatrix::Ff2, &options)?;
    let ff1 = bl.neuron_study(&trace, layer, FfMatrix::Ff1, &options)?;
    // The other reading of the intersection for FF2 (bottom-100, SpanningSet::reading), as a check
    // that the figures' signs do not hinge on the caption's choice.
    let alt = NeuronOptions { reading: FfMatrix::Ff2.spanning_set().reading(), ..options };
    let ff2_alt = bl.neuron_study(&trace, layer, FfMatrix::Ff2, &alt)?;
    let (mut agree, mut nonzero) = (0usize, 0usize);
    for (a, b) in ff2.intersection.iter().flatten().zip(ff2_alt.intersection.iter().flatten()) {
        if *a != 0 && *b != 0 {
            nonzero += 1;
            agree += usize::from((*a < 0) == (*b < 0));
        }
    }
    let sign_agreement = if nonzero == 0 { f32::NAN } else { agree as f32 / nonzero as f32 };

    let depth = bl.neuron_depth_profile(NEURON_PROMPT, NEURON_TARGET, FfMatrix::Ff2, BAND_SIZE)?;
    let pictures = vec![
        ("fig7a-ff2-intersection".to_string(), ff2.intersection_heatmap(false).into()),
        ("fig7b-ff2-cosine".to_string(), ff2.cosine_heatmap(false).into()),
        ("fig8a-ff2-intersection-sorted".to_string(), ff2.intersection_heatmap(true).into()),
        ("fig8b-ff2-cosine-sorted".to_string(), ff2.cosine_heatmap(true).into()),
        ("fig9a-ff1-intersection-sorted".to_string(), ff1.intersection_heatmap(true).into()),
        ("fig9b-ff1-cosine-sorted".to_string(), ff1.cosine_heatmap(true).into()),
        ("table2-ff2-neurons".to_string(), ff2.sample_table().into()),
        ("table4-ff1-neurons".to_string(), ff1.sample_table().into()),
        ("extra-ff2-depth".to_string(), depth_chart(&depth, FfMatrix::Ff2, NEURON_TARGET, layer).into()),
    ];
    let mut ours = statement(&ff2, &ff1, bl.model().final_norm());
    ours.push_str(&format!(
        " Reading the bottom-{} instead of the top-{} (FF2's reading for the spanning-set tables) gives the same \
         intersection sign for {:.1}% of the non-zero cells.",
        options.k,
        options.k,
        100.0 * sign_agreement
    ));
    ours.push_str(&depth_statement(&depth, layer));
    let numbers = json!({
        "prompt": NEURON_PROMPT,
        "target": NEURON_TARGET,
        "layer": layer,
        "layer_rule": format!("round({PAPER_NEURON_LAYER}/{} * (L-1)) with L = {}", PAPER_NEURON_MODEL_LAYERS - 1, bl.model().n_layers()),
        "sign": "update = -dL/dW (learning rate 1)",
        "table2_markdown": ff2.sample_markdown(),
        "table4_markdown": ff1.sample_markdown(),
        "ff2_bottom_reading_sign_agreement": sign_agreement,
        "ff2_bottom_reading_bands": ff2_alt.bands,
        "ff2_depth": depth,
        "ff2": ff2,
        "ff1": ff1,
    });
    Ok(Reproduction { group: FigureGroup::Neurons, paper: PAPER.to_string(), ours, pictures, numbers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_depth_layer_maps_14_of_24() {
        assert_eq!(paper_depth_layer(24), 14);
        assert_eq!(paper_depth_layer(30), 18); // 14/23 · 29 = 17.65
        assert_eq!(paper_depth_layer(12), 7); // 6.70
        assert_eq!(paper_depth_layer(48), 29); // 28.61
        assert_eq!(paper_depth_layer(1), 0);
        assert_eq!(paper_depth_layer(0), 0);
    }

    #[test]
    fn order_by_norm_is_descending_with_ties_by_index() {
        let norms = [0.5, 2.0, f32::NAN, 0.5, 3.0, 0.0];
        assert_eq!(order_by_norm(&norms), vec![4, 1, 0, 3, 5, 2]);
        assert!(order_by_norm(&[]).is_empty());
    }

    #[test]
    fn signed_intersection_takes_the_larger_overlap_with_its_sign() {
        let spanning = [1, 2, 3, 4];
        // v shares 3 tokens, -v shares 1: +3.
        assert_eq!(signed_intersection(&[1, 2, 3, 9], &[4, 7, 8, 6], &spanning), 3);
        // -v shares more: negative.
        assert_eq!(signed_intersection(&[9, 8, 7, 1], &[1, 2, 3, 6], &spanning), -3);
        // A tie counts as positive; an empty (tied-logit) reading scores 0.
        assert_eq!(signed_intersection(&[1, 2], &[3, 4], &spanning), 2);
        assert_eq!(signed_intersection(&[], &[], &spanning), 0);
        let m = signed_intersection_matrix(
            &[vec![1, 2], vec![5]],
            &[vec![3], vec![1, 2, 3]],
            &[spanning.to_vec(), vec![5]],
        );
        assert_eq!(m, vec![vec![2, -3], vec![0, 1]]);
    }

    #[test]
    fn norm_groups_are_first_middle_last() {
        let g = norm_groups(10, 3);
        assert_eq!(g[0], (NormGroup::Biggest, vec![0, 1, 2]));
        assert_eq!(g[1], (NormGroup::Medium, vec![4, 5, 6]));
        assert_eq!(g[2], (NormGroup::Smallest, vec![7, 8, 9]));
        let g = norm_groups(2, 3);
        assert!(g.iter().all(|(_, p)| p.len() == 2 && p.iter().all(|&r| r < 2)));
    }

    #[test]
    fn fmt_layers_compresses_runs() {
        assert_eq!(fmt_layers(&[3, 4, 5, 9, 11, 12]), "3-5, 9, 11-12");
        assert_eq!(fmt_layers(&[]), "");
    }
}
