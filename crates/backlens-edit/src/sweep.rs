//! The layer × learning-rate sweep of the paper's Figure 26 (App. I.1): for each edited layer
//! and each method, the **minimum step size that makes an edit successful** (the target becomes
//! the argmax, teacher-forced over its sub-tokens), per record, and the model's perplexity on a
//! fixed corpus after the edit at that step size.
//!
//! The three compared methods edit one FF2 (`mlp.down`) matrix, and all three updates are
//! *linear in their step size* `s`: `W' = W + s U`, with a direction `U` that does not depend on
//! `s` ([`StepMethod::direction`]):
//!
//! | method | `U` | the same edit as |
//! |---|---|---|
//! | forward pass shift, raw η (the paper's) | `e x_nᵀ` | [`ForwardPassShift`] with [`Eta::Raw`]`(s)` |
//! | forward pass shift, scale-free η | `e x_nᵀ / (\|x_n\|²\|e\|²)` | [`ForwardPassShift`] with [`Eta::ScaleFree`]`(s)` |
//! | one-step SGD | `-G` | [`OneStepSgd`] with lr `s` |
//! | one-step Adam | `-G / (\|G\| + ε)` (elementwise) | [`OneStepAdam`] with lr `s` |
//!
//! (`G` the gradient of the mean teacher-forced NLL, `e` the target's unembedding row, `x_n` the
//! FF2 input at the last prompt token.) So `U` is computed once per (record, layer, method), and
//! the search for the smallest successful `s` costs one forward pass per probe: bracket by
//! doubling or halving from a start (the previous record's result at the same layer, else the
//! method's [`StepMethod::default_start`]), then bisect in log space until `hi/lo <= resolution`.
//! The search assumes that success is monotone in `s` above the minimum, as a grid search over a
//! sorted lr range would report it.
//!
//! Not specified by the paper (digest §11, UNCONFIRMED): its definition of a successful edit,
//! its lr grid, and how the per-layer value of Figure 26 aggregates the 50 samples. Here:
//! success = [`predicts`]; the per-layer value is the **median** over records of the minimum
//! step (reported with the spread of `log10` of the minimum step across records, the quantity
//! behind the paper's "less variation"), and the perplexity is the mean over records of the
//! perplexity after each record's minimum-step edit.

use crate::apply::{check_layer, Edit, EditGuard, WeightUpdate};
use crate::error::{EditError, Result};
use crate::eval::{perplexity, predicts};
use crate::methods::{adam_first_step, loss_gradient, EditMethod, Eta, ForwardPassShift, OneStepAdam, OneStepSgd};
use crate::metrics::MeanStd;
use crate::request::EditRequest;
use backlens_data::Record;
use backlens_model::{LanguageModel, Module};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// A one-matrix edit method whose update is `s · U` for a step size `s` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepMethod {
    /// Forward pass shift with the paper's raw η.
    FpsRaw,
    /// Forward pass shift with the scale-free η.
    FpsScaleFree,
    /// One SGD step.
    Sgd,
    /// One Adam step from zero moments (ε = 1e-8).
    Adam,
}

/// Adam's ε in the sweep (PyTorch's default, as [`OneStepAdam::new`]).
const ADAM_EPS: f64 = 1e-8;

impl StepMethod {
    /// All four.
    pub const ALL: [StepMethod; 4] = [StepMethod::FpsRaw, StepMethod::FpsScaleFree, StepMethod::Sgd, StepMethod::Adam];

    /// A short label for tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            StepMethod::FpsRaw => "forward pass shift (raw η)",
            StepMethod::FpsScaleFree => "forward pass shift (scale-free η)",
            StepMethod::Sgd => "one-step SGD",
            StepMethod::Adam => "one-step Adam",
        }
    }

    /// A first step size to bracket from, of the right order for SmolLM2-135M (the search
    /// finds the scale either way, in more probes).
    pub fn default_start(self) -> f64 {
        match self {
            StepMethod::FpsRaw => 0.1,
            StepMethod::FpsScaleFree => 500.0,
            StepMethod::Sgd => 1.0,
            StepMethod::Adam => 1e-3,
        }
    }

    /// The [`EditMethod`] that makes the same edit at step size `step` on `layer`.
    pub fn method(self, layer: usize, step: f64) -> Box<dyn EditMethod> {
        match self {
            StepMethod::FpsRaw => Box::new(ForwardPassShift::new(layer, Eta::Raw(step))),
            StepMethod::FpsScaleFree => Box::new(ForwardPassShift::new(layer, Eta::ScaleFree(step))),
            StepMethod::Sgd => Box::new(OneStepSgd { layer, lr: step }),
            StepMethod::Adam => Box::new(OneStepAdam { layer, lr: step, eps: ADAM_EPS }),
        }
    }

    /// The update direction `U` of `layer`'s `mlp.down` for `request` on the unedited model:
    /// the method's edit at step `s` is `W + s U`. `None` for forward pass shift when the target
    /// already is the argmax (the method skips the request).
    ///
    /// # Shapes
    /// - returns `(d_model, d_ff)`, the layout of `mlp.down`
    pub fn direction(self, model: &dyn LanguageModel, request: &EditRequest, layer: usize) -> Result<Option<Tensor>> {
        check_layer(model, layer)?;
        Ok(Some(match self {
            StepMethod::FpsRaw | StepMethod::FpsScaleFree => {
                let fps = ForwardPassShift::new(
                    layer,
                    if self == StepMethod::FpsRaw { Eta::Raw(1.0) } else { Eta::ScaleFree(1.0) },
                );
                let (x_n, e, predicted) = fps.ingredients(model, request)?;
                if predicted {
                    return Ok(None);
                }
                let c = fps.eta.coefficient(&x_n, &e)?;
                (e.unsqueeze(1)?.matmul(&x_n.unsqueeze(0)?)? * c)?
            }
            StepMethod::Sgd => {
                loss_gradient(model, std::slice::from_ref(request), layer, Module::MlpDown)?.1.dense()?.neg()?
            }
            StepMethod::Adam => {
                let g = loss_gradient(model, std::slice::from_ref(request), layer, Module::MlpDown)?.1.dense()?;
                // adam_first_step(0, g, 1, ε) = -g / (|g| + ε), the formula in one place.
                adam_first_step(&g.zeros_like()?, &g, 1.0, ADAM_EPS)?
            }
        }))
    }
}

impl std::fmt::Display for StepMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for StepMethod {
    type Err = EditError;
    fn from_str(s: &str) -> Result<StepMethod> {
        Ok(match s {
            "fps" | "fps-raw" => StepMethod::FpsRaw,
            "fps-scale-free" => StepMethod::FpsScaleFree,
            "sgd" => StepMethod::Sgd,
            "adam" => StepMethod::Adam,
            _ => {
                return Err(EditError::Setting(format!(
                    "unknown sweep method {s:?}: expected fps (= fps-raw), fps-scale-free, sgd or adam"
                )))
            }
        })
    }
}

/// The edit `W + s U` of `layer`'s `mlp.down`.
pub fn step_edit(model: &dyn LanguageModel, layer: usize, direction: &Tensor, step: f64) -> Result<Edit> {
    let w = model.weight(layer, Module::MlpDown)?;
    let weight = (w + (direction * step)?)?;
    Ok(Edit { updates: vec![WeightUpdate { layer, module: Module::MlpDown, weight }], ..Edit::default() })
}

/// The search's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSearch {
    /// First step tried (the bracket doubles or halves from here).
    pub start: f64,
    /// Stop bisecting when `hi / lo <= resolution` (e.g. 1.1: the minimum is known within 10%).
    pub resolution: f64,
    /// Give up (no successful step) after this many doublings; also the most halvings.
    pub max_doublings: usize,
}

/// The target's margin after `prompt`, teacher-forced: the smallest, over the target's
/// sub-tokens, of `logit(target_k) - max_{j != target_k} logit(j)`. Positive exactly when every
/// sub-token is the unique argmax; [`predicts`] also accepts a tie won by the lowest id.
pub fn target_margin(model: &dyn LanguageModel, request: &EditRequest) -> Result<f64> {
    let (prompt, target) = (&request.prompt, &request.target);
    let mut ids = prompt.clone();
    ids.extend_from_slice(&target[..target.len() - 1]);
    let rows = model
        .logits(&ids)?
        .narrow(0, prompt.len() - 1, target.len())?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    let mut margin = f64::INFINITY;
    for (row, &t) in rows.iter().zip(target) {
        let other =
            row.iter().enumerate().filter(|&(j, _)| j != t as usize).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
        margin = margin.min(f64::from(row[t as usize]) - f64::from(other));
    }
    Ok(margin)
}

/// The smallest step `s` for which `W + s U` makes `request` successful ([`predicts`]), and the
/// number of probes (forward passes) it took; `None` when none was found.
///
/// From `search.start` the bracket halves while the edit succeeds (at most `max_doublings`
/// times; then that smallest step is returned) or doubles while it fails. The doubling gives up
/// after `max_doublings`, or as soon as the target's [`target_margin`] fell on two doublings in a
/// row: a step that large breaks the model rather than moving it toward the target (early layers,
/// where a large enough step never succeeds). Then bisection in log space until
/// `hi / lo <= resolution`.
pub fn min_step(
    model: &mut dyn LanguageModel,
    layer: usize,
    direction: &Tensor,
    request: &EditRequest,
    search: &StepSearch,
) -> Result<(Option<f64>, usize)> {
    if !(search.start > 0.0 && search.start.is_finite() && search.resolution > 1.0) {
        return Err(EditError::Setting(format!("step search needs start > 0 and resolution > 1, got {search:?}")));
    }
    let mut probes = 0usize;
    // Success and the margin at step s (one forward pass).
    let mut probe = |model: &mut dyn LanguageModel, s: f64| -> Result<(bool, f64)> {
        probes += 1;
        let edit = step_edit(&*model, layer, direction, s)?;
        let guard = EditGuard::apply(model, &edit)?;
        let ok = predicts(guard.model(), &request.prompt, &request.target)?;
        let margin = if ok { 0.0 } else { target_margin(guard.model(), request)? };
        Ok((ok, margin))
    };
    let (mut lo, mut hi);
    let (first, mut margin) = probe(model, search.start)?;
    if first {
        hi = search.start;
        lo = hi / 2.0;
        let mut n = 0;
        while probe(model, lo)?.0 {
            hi = lo;
            lo /= 2.0;
            n += 1;
            if n >= search.max_doublings {
                return Ok((Some(hi), probes));
            }
        }
    } else {
        lo = search.start;
        hi = lo * 2.0;
        let mut n = 1;
        let mut falls = 0;
        loop {
            let (ok, m) = probe(model, hi)?;
            if ok {
                break;
            }
            falls = if m < margin { falls + 1 } else { 0 };
            margin = m;
            if n >= search.max_doublings || falls >= 2 {
                return Ok((None, probes));
            }
            lo = hi;
            hi *= 2.0;
            n += 1;
        }
    }
    while hi / lo > search.resolution {
        let mid = (lo * hi).sqrt();
        if probe(model, mid)?.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((Some(hi), probes))
}

/// Settings of [`sweep`].
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub layers: Vec<usize>,
    pub methods: Vec<StepMethod>,
    /// Resolution and bracket limit of each search (the start is chosen per method and record).
    pub resolution: f64,
    pub max_doublings: usize,
    /// Token sequences for the perplexity after each minimum-step edit; `None` skips it.
    pub perplexity_corpus: Option<Vec<Vec<u32>>>,
    /// Measure the perplexity only for the first N records of each (layer, method) (it costs
    /// a pass over the whole corpus per edit); `None`: for every record.
    pub perplexity_records: Option<usize>,
}

impl Default for SweepOptions {
    fn default() -> SweepOptions {
        SweepOptions {
            layers: Vec::new(),
            methods: vec![StepMethod::FpsRaw, StepMethod::Sgd, StepMethod::Adam],
            resolution: 1.1,
            max_doublings: 20,
            perplexity_corpus: None,
            perplexity_records: None,
        }
    }
}

/// One (record, layer, method) result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub case_id: u64,
    pub layer: usize,
    pub method: StepMethod,
    /// The unedited model already predicts the target (no step needed; left out of the summaries).
    pub already: bool,
    /// The smallest successful step; `None` if none was found.
    pub min_step: Option<f64>,
    /// Perplexity after the edit at `min_step`.
    pub perplexity: Option<f64>,
    /// Forward passes the search took.
    pub probes: usize,
}

/// One (layer, method) cell of Figure 26, over the records that needed an edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepCell {
    pub layer: usize,
    pub method: StepMethod,
    /// Records that needed an edit.
    pub records: usize,
    /// Records for which a successful step was found.
    pub successes: usize,
    /// Median minimum step over the successful records (Figure 26a).
    pub median_step: Option<f64>,
    /// Mean and population std of `log10(min step)` over the successful records.
    pub log10_step: Option<MeanStd>,
    /// The smallest step at which at least 95% of the records that needed an edit succeed,
    /// assuming each stays successful above its minimum: the step to use for ≥ 95% efficacy.
    pub step_for_95: Option<f64>,
    /// Mean ± std of the perplexity after each successful record's minimum-step edit (Figure 26b).
    pub perplexity: Option<MeanStd>,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    pub model: String,
    pub records: usize,
    /// The unedited model's perplexity on the corpus.
    pub base_perplexity: Option<f64>,
    pub cells: Vec<SweepCell>,
    pub points: Vec<SweepPoint>,
    pub seconds: f64,
}

impl SweepReport {
    /// The cell of `(layer, method)`.
    pub fn cell(&self, layer: usize, method: StepMethod) -> Option<&SweepCell> {
        self.cells.iter().find(|c| c.layer == layer && c.method == method)
    }

    /// A Markdown table: one row per layer, for each method the median minimum step, the std of
    /// its log10 over records, the step for 95% efficacy and the perplexity.
    pub fn markdown(&self) -> String {
        let methods: Vec<StepMethod> =
            StepMethod::ALL.into_iter().filter(|m| self.cells.iter().any(|c| c.method == *m)).collect();
        let mut layers: Vec<usize> = self.cells.iter().map(|c| c.layer).collect();
        layers.dedup();
        let mut s = String::from("| layer |");
        let mut rule = String::from("|---:|");
        for m in &methods {
            s.push_str(&format!(" {m}: median min lr | std log10 | lr for 95% | ppl |"));
            rule.push_str("---:|---:|---:|---|");
        }
        s.push('\n');
        s.push_str(&rule);
        s.push('\n');
        let num = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3e}"));
        for l in layers {
            s.push_str(&format!("| {l} |"));
            for &m in &methods {
                match self.cell(l, m) {
                    Some(c) => s.push_str(&format!(
                        " {}{} | {} | {} | {} |",
                        num(c.median_step),
                        if c.successes < c.records {
                            format!(" ({}/{})", c.successes, c.records)
                        } else {
                            String::new()
                        },
                        c.log10_step.map_or_else(|| "–".into(), |m| format!("{:.2}", m.std)),
                        num(c.step_for_95),
                        c.perplexity.map_or_else(|| "–".into(), |p| format!("{:.2} ± {:.2}", p.mean, p.std)),
                    )),
                    None => s.push_str(" | | | |"),
                }
            }
            s.push('\n');
        }
        if let Some(p) = self.base_perplexity {
            s.push_str(&format!("\nUnedited perplexity: {p:.2}.\n"));
        }
        s
    }
}

/// The median of non-empty `v` (mean of the two middle values for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// The smallest step at which at least `fraction` of the records succeed, given each record's
/// minimum step (`None`: never succeeds) and assuming success stays above the minimum: the
/// `ceil(fraction · n)`-th smallest minimum. `None` when too few records ever succeed.
pub fn step_for_fraction(min_steps: &[Option<f64>], fraction: f64) -> Option<f64> {
    let n = min_steps.len();
    let need = ((fraction * n as f64) - 1e-9).ceil().max(1.0) as usize;
    let mut found: Vec<f64> = min_steps.iter().flatten().copied().collect();
    if n == 0 || found.len() < need {
        return None;
    }
    found.sort_by(f64::total_cmp);
    Some(found[need - 1])
}

/// Summarises the points of one (layer, method).
pub fn summarize_cell(layer: usize, method: StepMethod, points: &[SweepPoint]) -> SweepCell {
    let mine: Vec<&SweepPoint> =
        points.iter().filter(|p| p.layer == layer && p.method == method && !p.already).collect();
    let steps: Vec<f64> = mine.iter().filter_map(|p| p.min_step).collect();
    let logs: Vec<f64> = steps.iter().map(|s| s.log10()).collect();
    let ppl: Vec<f64> = mine.iter().filter(|p| p.min_step.is_some()).filter_map(|p| p.perplexity).collect();
    let all: Vec<Option<f64>> = mine.iter().map(|p| p.min_step).collect();
    SweepCell {
        layer,
        method,
        records: mine.len(),
        successes: steps.len(),
        median_step: median(&steps),
        log10_step: MeanStd::of(&logs),
        step_for_95: step_for_fraction(&all, 0.95),
        perplexity: MeanStd::of(&ppl),
    }
}

/// The Figure 26 sweep: for every layer in `options.layers`, method and record, the minimum
/// successful step ([`min_step`]) and the perplexity after that edit. `progress(done, total)`
/// is called after each (layer, method, record). The model's weights are restored after every
/// probe.
pub fn sweep(
    model: &mut dyn LanguageModel,
    records: &[Record],
    options: &SweepOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SweepReport> {
    let start = std::time::Instant::now();
    for &l in &options.layers {
        check_layer(&*model, l)?;
    }
    if options.layers.is_empty() || options.methods.is_empty() || records.is_empty() {
        return Err(EditError::Setting("the sweep needs at least one layer, method and record".into()));
    }
    let requests =
        records.iter().map(|r| EditRequest::from_record(model.tokenizer(), r)).collect::<Result<Vec<_>>>()?;
    let base_perplexity = options.perplexity_corpus.as_deref().map(|c| perplexity(&*model, c)).transpose()?;
    let total = options.layers.len() * options.methods.len() * records.len();
    let mut points = Vec::with_capacity(total);
    let mut done = 0usize;
    for &method in &options.methods {
        let mut start_step = method.default_start();
        for &layer in &options.layers {
            for (i, (record, request)) in records.iter().zip(&requests).enumerate() {
                let mut point = SweepPoint {
                    case_id: record.case_id,
                    layer,
                    method,
                    already: false,
                    min_step: None,
                    perplexity: None,
                    probes: 0,
                };
                if predicts(&*model, &request.prompt, &request.target)? {
                    point.already = true;
                } else if let Some(dir) = method.direction(&*model, request, layer)? {
                    let search = StepSearch {
                        start: start_step,
                        resolution: options.resolution,
                        max_doublings: options.max_doublings,
                    };
                    let (found, probes) = min_step(model, layer, &dir, request, &search)?;
                    point.min_step = found;
                    point.probes = probes;
                    if let Some(s) = found {
                        start_step = s; // warm start for the next record (and layer)
                        let with_ppl = options.perplexity_records.is_none_or(|n| i < n);
                        if let Some(corpus) = options.perplexity_corpus.as_deref().filter(|_| with_ppl) {
                            let edit = step_edit(&*model, layer, &dir, s)?;
                            let guard = EditGuard::apply(&mut *model, &edit)?;
                            point.perplexity = Some(perplexity(guard.model(), corpus)?);
                        }
                    }
                } else {
                    point.already = true; // forward pass shift skipped it: already the argmax
                }
                points.push(point);
                done += 1;
                progress(done, total);
            }
        }
    }
    let mut cells = Vec::new();
    for &layer in &options.layers {
        for &method in &options.methods {
            cells.push(summarize_cell(layer, method, &points));
        }
    }
    Ok(SweepReport {
        model: model.name().to_string(),
        records: records.len(),
        base_perplexity,
        cells,
        points,
        seconds: start.elapsed().as_secs_f64(),
    })
}
