//! The layer × η search for forward pass shift: per layer, the smallest η (on a geometric
//! grid, found by bracketing and bisection) whose efficacy reaches a goal on a set of records,
//! then the full metrics at that η.
//!
//! Efficacy is assumed to grow with η (a larger shift along the target embedding), so the
//! smallest sufficient η is also the gentlest edit at that layer: neighborhood accuracy falls as
//! η grows. The bisection only evaluates efficacy (one edit and one forward pass per record).

use crate::apply::EditGuard;
use crate::error::Result;
use crate::eta::EtaKind;
use crate::eval::{evaluate, predicts, EvalOptions, EvalSummary};
use crate::keys::Key;
use crate::methods::{EditMethod, ForwardPassShift};
use crate::request::EditRequest;
use backlens_data::Record;
use backlens_model::LanguageModel;
use serde::Serialize;

/// Efficacy (% of requests whose target becomes the teacher-forced argmax) of `method`, one
/// edit at a time, each restored.
pub fn efficacy(model: &mut dyn LanguageModel, method: &dyn EditMethod, requests: &[EditRequest]) -> Result<f64> {
    let mut hits = 0usize;
    for r in requests {
        let edit = method.compute(&*model, std::slice::from_ref(r))?;
        let guard = EditGuard::apply(&mut *model, &edit)?;
        hits += usize::from(predicts(guard.model(), &r.prompt, &r.target)?);
    }
    Ok(100.0 * hits as f64 / requests.len() as f64)
}

/// Search settings.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// How η is read.
    pub kind: EtaKind,
    /// First η tried; the bracket doubles or halves from here.
    pub start: f64,
    /// Efficacy goal, in %.
    pub goal: f64,
    /// Stop bisecting when hi/lo is below this ratio (e.g. 1.1).
    pub resolution: f64,
    /// Give up after this many doublings.
    pub max_doublings: usize,
}

/// One layer's result.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    /// The edited layer.
    pub layer: usize,
    /// How η is read.
    pub kind: EtaKind,
    /// The smallest η found whose efficacy reached the goal; `None` if none did.
    pub eta: Option<f64>,
    /// Every (η, efficacy %) evaluated, in order.
    pub probes: Probes,
    /// The full metrics at `eta`.
    pub summary: Option<EvalSummary>,
}

/// Every (η, efficacy %) pair a search evaluated, in order.
pub type Probes = Vec<(f64, f64)>;

/// The smallest η at `layer` whose efficacy on `requests` reaches `opts.goal` (bracket, then
/// bisect in log space; `None` if none did), with every probe.
pub fn min_eta(
    model: &mut dyn LanguageModel,
    layer: usize,
    requests: &[EditRequest],
    opts: &SearchOptions,
) -> Result<(Option<f64>, Probes)> {
    min_eta_with_key(model, layer, &Key::Input, requests, opts)
}

/// [`min_eta`] for forward pass shift with `key`.
pub fn min_eta_with_key(
    model: &mut dyn LanguageModel,
    layer: usize,
    key: &Key,
    requests: &[EditRequest],
    opts: &SearchOptions,
) -> Result<(Option<f64>, Probes)> {
    let kind = opts.kind;
    min_setting(
        model,
        &|eta| Box::new(ForwardPassShift::new(layer, kind.eta(eta)).with_key(key.clone())),
        requests,
        opts,
    )
}

/// How a layer search chooses forward pass shift's key at each layer.
pub type KeyForLayer<'a> = &'a dyn Fn(&dyn LanguageModel, usize) -> Result<Key>;

/// The smallest step size `s` (learning rate, η) for which the method `make(s)` reaches
/// `opts.goal` % efficacy on `requests` (bracket from `opts.start` by doubling or halving, then
/// bisect in log space to `opts.resolution`); `None` if none did. With one request and a goal of
/// 100 this is the paper's Figure 26 quantity, the minimum lr of a successful edit.
/// `opts.kind` is not used.
pub fn min_setting(
    model: &mut dyn LanguageModel,
    make: &dyn Fn(f64) -> Box<dyn EditMethod>,
    requests: &[EditRequest],
    opts: &SearchOptions,
) -> Result<(Option<f64>, Probes)> {
    let mut probes: Probes = Vec::new();
    let eff = |model: &mut dyn LanguageModel, probes: &mut Probes, eta: f64| -> Result<bool> {
        let e = efficacy(model, make(eta).as_ref(), requests)?;
        probes.push((eta, e));
        Ok(e >= opts.goal)
    };
    let (mut lo, mut hi);
    if eff(model, &mut probes, opts.start)? {
        hi = opts.start;
        lo = hi / 2.0;
        let mut n = 0;
        while eff(model, &mut probes, lo)? {
            hi = lo;
            lo /= 2.0;
            n += 1;
            if n > opts.max_doublings {
                return Ok((Some(hi), probes));
            }
        }
    } else {
        lo = opts.start;
        hi = lo * 2.0;
        let mut n = 0;
        while !eff(model, &mut probes, hi)? {
            lo = hi;
            hi *= 2.0;
            n += 1;
            // Too large a shift breaks the model instead (efficacy falls again at early layers):
            // stop once two doublings in a row lost efficacy.
            let k = probes.len();
            let falling = k >= 3 && probes[k - 1].1 < probes[k - 2].1 && probes[k - 2].1 < probes[k - 3].1;
            if n > opts.max_doublings || falling {
                return Ok((None, probes));
            }
        }
    }
    while hi / lo > opts.resolution {
        let mid = (lo * hi).sqrt();
        if eff(model, &mut probes, mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((Some(hi), probes))
}

/// For each layer: the smallest sufficient η on `records` with the key `key_for(model, layer)`,
/// then the full evaluation there. `report(result)` is called after each layer.
pub fn search_layers(
    model: &mut dyn LanguageModel,
    layers: &[usize],
    key_for: KeyForLayer<'_>,
    records: &[Record],
    opts: &SearchOptions,
    eval: &EvalOptions,
    report: &mut dyn FnMut(&LayerResult),
) -> Result<Vec<LayerResult>> {
    let requests =
        records.iter().map(|r| EditRequest::from_record(model.tokenizer(), r)).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for &layer in layers {
        let key = key_for(&*model, layer)?;
        let (eta, probes) = min_eta_with_key(model, layer, &key, &requests, opts)?;
        let summary = match eta {
            Some(e) => {
                let fps = ForwardPassShift::new(layer, opts.kind.eta(e)).with_key(key);
                Some(evaluate(model, Some(&fps), records, eval, &mut |_, _| {})?.summary)
            }
            None => None,
        };
        let r = LayerResult { layer, kind: opts.kind, eta, probes, summary };
        report(&r);
        out.push(r);
    }
    Ok(out)
}
