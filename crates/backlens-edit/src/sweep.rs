//! The layer × learning-rate sweep of the paper's Figure 26 (App. I.1): for each edited layer
//! and each method, the **minimum step size that makes an edit successful** (the target becomes
//! the argmax, teacher-forced over its sub-tokens), per record, and the model's perplexity on a
//! fixed corpus after the edit at that step size.
//!
//! The compared methods are [`StepSizeMethod`]s: they edit one FF2 (`mlp.down`) matrix, and
//! their update is *linear in their step size* `s`: `W' = W + s U`, with a direction `U` that does
//! not depend on `s` ([`StepSizeMethod::direction`]; the table of methods is in
//! [`step`](crate::step)). So `U` is computed once per (record, layer, method), and the search
//! for the smallest successful `s` costs one forward pass per probe: bracket by doubling or
//! halving from a start (the previous record's result at the same layer, else the method's
//! [`StepSizeMethod::default_start`]), then bisect in log space until `hi/lo <= resolution`.
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
use crate::metrics::MeanStd;
use crate::request::EditRequest;
use crate::step::StepSizeMethod;
use backlens_data::Record;
use backlens_model::{LanguageModel, Module};
use candle_core::Tensor;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

/// The method names of sweep reports written before methods were [`StepSizeMethod`]s (the
/// variants of the former `StepMethod` enum) and the labels they stand for.
const LEGACY_METHOD_NAMES: [(&str, &str); 4] = [
    ("FpsRaw", "forward pass shift (raw η)"),
    ("FpsScaleFree", "forward pass shift (scale-free η)"),
    ("Sgd", "one-step SGD"),
    ("Adam", "one-step Adam"),
];

/// Reads a method label, translating the names of [`LEGACY_METHOD_NAMES`].
fn method_label<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    Ok(LEGACY_METHOD_NAMES.iter().find(|(old, _)| *old == name).map_or(name, |(_, label)| label.to_string()))
}

/// The edit `W + s U` of `layer`'s `mlp.down`.
///
/// # Shapes
/// - `direction`: `(d_model, d_ff)`, the layout of `mlp.down`
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
///
/// # Shapes
/// - `direction`: `(d_model, d_ff)`, the layout of `mlp.down`
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
    /// The edited layers.
    pub layers: Vec<usize>,
    /// The methods, in the order of the report's tables and legends (e.g. from
    /// [`registry::step_methods_named`](crate::registry::step_methods_named)); their own layer
    /// and step size are not used.
    pub methods: Vec<Arc<dyn StepSizeMethod>>,
    /// Resolution of each search (the start is chosen per method and record).
    pub resolution: f64,
    /// Bracket limit of each search.
    pub max_doublings: usize,
    /// Token sequences for the perplexity after each minimum-step edit; `None` skips it.
    pub perplexity_corpus: Option<Vec<Vec<u32>>>,
    /// Measure the perplexity only for the first N records of each (layer, method) (it costs
    /// a pass over the whole corpus per edit); `None`: for every record.
    pub perplexity_records: Option<usize>,
}

impl Default for SweepOptions {
    /// No layer; forward pass shift with the paper's raw η, one-step SGD and one-step Adam
    /// (`sweep-lr`'s default `fps,sgd,adam`); resolution 1.1, at most 20 doublings; no perplexity.
    fn default() -> SweepOptions {
        let methods = crate::registry::step_methods_named(&["fps", "sgd", "adam"], &Default::default())
            .expect("the registry has fps, sgd and adam");
        SweepOptions {
            layers: Vec::new(),
            methods,
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
    /// The record.
    pub case_id: u64,
    /// The edited layer.
    pub layer: usize,
    /// The method's [`StepSizeMethod::label`] (reports written before it was a label hold the
    /// former enum's names, e.g. `FpsRaw`, read as their labels).
    #[serde(deserialize_with = "method_label")]
    pub method: String,
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
    /// The edited layer.
    pub layer: usize,
    /// The method's [`StepSizeMethod::label`] (old names read as in [`SweepPoint::method`]).
    #[serde(deserialize_with = "method_label")]
    pub method: String,
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
    /// The model's name.
    pub model: String,
    /// The number of records.
    pub records: usize,
    /// The unedited model's perplexity on the corpus.
    pub base_perplexity: Option<f64>,
    /// One cell per (layer, method), layer-major.
    pub cells: Vec<SweepCell>,
    /// One point per (method, layer, record).
    pub points: Vec<SweepPoint>,
    /// Wall-clock seconds of the sweep.
    pub seconds: f64,
}

impl SweepReport {
    /// The cell of `(layer, method)` (`method` a label).
    pub fn cell(&self, layer: usize, method: &str) -> Option<&SweepCell> {
        self.cells.iter().find(|c| c.layer == layer && c.method == method)
    }

    /// The methods' labels in the order of the cells (the order of [`SweepOptions::methods`]).
    pub fn methods(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.cells {
            if !out.contains(&c.method.as_str()) {
                out.push(&c.method);
            }
        }
        out
    }

    /// A Markdown table: one row per layer, for each method the median minimum step, the std of
    /// its log10 over records, the step for 95% efficacy and the perplexity.
    pub fn markdown(&self) -> String {
        let methods = self.methods();
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
pub fn summarize_cell(layer: usize, method: &str, points: &[SweepPoint]) -> SweepCell {
    let mine: Vec<&SweepPoint> =
        points.iter().filter(|p| p.layer == layer && p.method == method && !p.already).collect();
    let steps: Vec<f64> = mine.iter().filter_map(|p| p.min_step).collect();
    let logs: Vec<f64> = steps.iter().map(|s| s.log10()).collect();
    let ppl: Vec<f64> = mine.iter().filter(|p| p.min_step.is_some()).filter_map(|p| p.perplexity).collect();
    let all: Vec<Option<f64>> = mine.iter().map(|p| p.min_step).collect();
    SweepCell {
        layer,
        method: method.to_string(),
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
    for method in &options.methods {
        let label = method.label();
        let mut start_step = method.default_start();
        for &layer in &options.layers {
            for (i, (record, request)) in records.iter().zip(&requests).enumerate() {
                let mut point = SweepPoint {
                    case_id: record.case_id,
                    layer,
                    method: label.clone(),
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
        for method in &options.methods {
            cells.push(summarize_cell(layer, &method.label(), &points));
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
