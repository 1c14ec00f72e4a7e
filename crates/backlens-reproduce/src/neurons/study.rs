//! The study of Appendix C: the update neurons of one matrix at one layer, their lens readings,
//! signed intersections and cosines with the spanning vectors, summarised by norm band; and the
//! same for the largest neurons of every layer.

use backlens::{Backlens, Error};
use backlens_algebra::neurons::{norm_groups, order_by_norm, signed_intersection_matrix};
use backlens_algebra::{cosine_similarity, LensReading, LowRankGradient, SpanningSet};
use backlens_lens::{ProjectOptions, Projection};
use backlens_model::{Kind, Module, Norm, Site, Trace, TraceOptions};
use candle_core::{DType, Tensor, D};
use serde::Serialize;

use super::{BAND_SIZE, INTERSECTION_K, NEURONS_PER_GROUP, TABLE_TOKENS};

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

/// The reading `R(v)` of a projection: its top or bottom list.
pub fn reading_of(projection: &Projection, reading: LensReading) -> &[u32] {
    match reading {
        LensReading::MostLikely => &projection.top,
        LensReading::LeastLikely => &projection.bottom,
    }
}

fn reading_name(reading: LensReading) -> &'static str {
    match reading {
        LensReading::MostLikely => "most likely (top)",
        LensReading::LeastLikely => "least likely (bottom)",
    }
}

/// How [`neuron_study`] reads the lens.
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
    /// The largest neurons by norm.
    Biggest,
    /// The neurons around the median norm.
    Medium,
    /// The smallest neurons by norm.
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
    /// The sample's norm group.
    pub group: NormGroup,
    /// The neuron index (`None` for the zero vector).
    pub neuron: Option<usize>,
    /// The neuron's L2 norm.
    pub norm: f32,
    /// The most likely token ids, most likely first (empty when all logits tie).
    pub top: Vec<u32>,
    /// The least likely token ids, least likely first (empty when all logits tie).
    pub bottom: Vec<u32>,
    /// Their decoded texts.
    pub top_text: Vec<String>,
    /// The decoded texts of [`NeuronSample::bottom`].
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
    /// Mean norm of the band's neurons.
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
    /// The model's name.
    pub model: String,
    /// The prompt, decoded from the trace's tokens.
    pub prompt: String,
    /// The edit target's text.
    pub target: String,
    /// The edit target's token id.
    pub target_id: u32,
    /// The MLP matrix whose update neurons are studied.
    pub matrix: FfMatrix,
    /// The layer studied (0 = first block).
    pub layer: usize,
    /// The model's number of layers.
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
    /// The vocabulary size `V` (ranks run from 0 to `V - 1`).
    pub vocab_size: usize,
}

/// One forward and backward pass of `prompt` → `target` recording only what Appendix C needs:
/// the inputs and VJPs of `mlp.up` and `mlp.down` at `layer`.
pub fn trace_neurons(bl: &Backlens, prompt: &str, target: &str, layer: usize) -> Result<Trace, Error> {
    let n_layers = bl.model().n_layers();
    if layer >= n_layers {
        return Err(Error::Input(format!(
            "layer {layer} is out of range: the model has {n_layers} layers (0..{n_layers})"
        )));
    }
    let tokenizer = bl.model().tokenizer();
    let token_ids = tokenizer.encode(prompt)?;
    let target_id = tokenizer.single_token(target)?;
    let sites = [FfMatrix::Ff1, FfMatrix::Ff2].into_iter().flat_map(FfMatrix::sites);
    Ok(bl.model().trace(&token_ids, target_id, &TraceOptions::only(sites).with_layers([layer]))?)
}

/// Appendix C for `matrix` at `layer` of a trace from [`trace_neurons`].
///
/// All `d_ff` update neurons and the `T` spanning vectors are projected in one batch (one
/// matrix product, `(d_ff + T + 1, d) × (d, V)`); cosines are one product of the
/// row-normalised matrices.
///
/// # Shapes
/// `trace` records the inputs and VJPs of `matrix` at `layer`: `(T, d)` and `(T, d_ff)` (FF1) or
/// `(T, d_ff)` and `(T, d)` (FF2). The study's `[token][neuron]` tables are `[T][d_ff]`.
pub fn neuron_study(
    bl: &Backlens,
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
    let projections = bl.lens().project(&batch, &project)?;
    let (neuron_p, rest) = projections.split_at(n_neurons);
    let (spanning_p, zero_p) = rest.split_at(n_tokens);

    let k = options.k;
    let take = |list: &[u32]| list[..k.min(list.len())].to_vec();
    let neuron_lists: Vec<Vec<u32>> = neuron_p.iter().map(|p| take(reading_of(p, options.reading))).collect();
    let spanning_lists: Vec<Vec<u32>> = spanning_p.iter().map(|p| take(reading_of(p, options.reading))).collect();
    let negated_lists: Vec<Vec<u32>> = if matches!(bl.model().final_norm(), Norm::Rms { .. }) {
        // RMSNorm is odd and the unembedding bias-free: LL(-v) = -LL(v), so R(-v) is the
        // opposite end of LL(v) (ties keep the lower id first at both ends).
        neuron_p.iter().map(|p| take(reading_of(p, options.reading.opposite()))).collect()
    } else {
        let negated =
            bl.lens().project(&neurons.neg()?, &ProjectOptions { k, rank_tokens: vec![], normalize: false })?;
        negated.iter().map(|p| take(reading_of(p, options.reading))).collect()
    };
    let intersection = signed_intersection_matrix(&neuron_lists, &negated_lists, &spanning_lists);
    let cosine = cosine_similarity(&spanning, &neurons)?.to_vec2::<f32>()?; // (T, d_ff)

    let norms = row_norms(&neurons)?;
    let order = order_by_norm(&norms);
    let text = |ids: &[u32]| ids.iter().take(TABLE_TOKENS).map(|&id| bl.token_text(id)).collect::<Vec<_>>();
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
    for (group, positions) in labelled_norm_groups(n_neurons, NEURONS_PER_GROUP) {
        samples.extend(positions.into_iter().map(|r| sample(group, Some(order[r]), &neuron_p[order[r]])));
    }
    samples.push(sample(NormGroup::ZeroVector, None, &zero_p[0]));

    let mut study = NeuronStudy {
        model: bl.model().name().to_string(),
        prompt: bl.model().tokenizer().decode(&trace.token_ids).unwrap_or_default(),
        target: bl.token_text(trace.target_id),
        target_id: trace.target_id,
        matrix,
        layer,
        n_layers: bl.model().n_layers(),
        tokens: trace.token_ids.iter().map(|&id| bl.token_text(id)).collect(),
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
        vocab_size: bl.lens().vocab_size(),
    };
    study.bands =
        norm_bands(n_neurons, BAND_SIZE).into_iter().map(|(name, positions)| study.band(name, &positions)).collect();
    Ok(study)
}

/// One layer of [`neuron_depth_profile`]: how the largest update neurons relate to the
/// spanning vectors at that layer (beyond the paper, which shows one layer).
#[derive(Debug, Clone, Serialize)]
pub struct DepthRow {
    /// The layer (0 = first block).
    pub layer: usize,
    /// Norm of every spanning vector (`T`).
    pub spanning_norms: Vec<f32>,
    /// Rank of the target in `LL(δ_n)` / `LL(x_n)` (0 = most likely).
    pub last_target_rank: Option<usize>,
    /// The band's neurons (the largest by norm).
    pub neurons: Vec<usize>,
    /// Mean norm of the band's neurons.
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

/// For every layer, the `band` largest update neurons of `matrix` against the spanning vectors
/// of `prompt` → `target`: cosines (one product per layer) and the lens top-1/bottom-1 of the
/// band's neurons and of the last spanning vector, all layers projected in one batch.
pub fn neuron_depth_profile(
    bl: &Backlens,
    prompt: &str,
    target: &str,
    matrix: FfMatrix,
    band: usize,
) -> Result<Vec<DepthRow>, Error> {
    let tokenizer = bl.model().tokenizer();
    let token_ids = tokenizer.encode(prompt)?;
    let target_id = tokenizer.single_token(target)?;
    let trace = bl.model().trace(&token_ids, target_id, &TraceOptions::only(matrix.sites()))?;
    let last = token_ids.len() - 1;
    let mut rows = Vec::new();
    let mut to_project = Vec::new();
    for layer in 0..bl.model().n_layers() {
        let u = update_neurons(&trace, layer, matrix)?;
        let norms = row_norms(&u.neurons)?;
        let neurons: Vec<usize> = order_by_norm(&norms).into_iter().take(band).collect();
        let idx =
            Tensor::from_vec(neurons.iter().map(|&j| j as u32).collect::<Vec<_>>(), neurons.len(), u.neurons.device())?;
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
        bl.lens().project(&batch, &ProjectOptions { k: 1, rank_tokens: vec![target_id], normalize: false })?;
    let mut it = projections.iter();
    for row in &mut rows {
        let band: Vec<&Projection> = it.by_ref().take(row.neurons.len()).collect();
        row.frac_target_top1 = fraction(band.iter().map(|p| p.top.first() == Some(&target_id)));
        row.frac_target_bottom1 = fraction(band.iter().map(|p| p.bottom.first() == Some(&target_id)));
        row.last_target_rank = it.next().and_then(|p| p.ranks[0]);
    }
    Ok(rows)
}

/// Positions (in descending-norm order) of the biggest, medium and smallest groups of `per_group`
/// neurons out of `n`, labelled: [`norm_groups`] with its [`NormGroup`]s.
pub fn labelled_norm_groups(n: usize, per_group: usize) -> Vec<(NormGroup, Vec<usize>)> {
    [NormGroup::Biggest, NormGroup::Medium, NormGroup::Smallest].into_iter().zip(norm_groups(n, per_group)).collect()
}

fn norm_bands(n: usize, size: usize) -> Vec<(String, Vec<usize>)> {
    labelled_norm_groups(n, size)
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

pub(super) fn mean(values: impl IntoIterator<Item = f32>) -> f32 {
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
}
