//! The Figure 26 sweep: each method's update is `s · U` with `U` from `StepSizeMethod::direction`
//! (checked against the methods themselves), the minimum step brackets the success threshold,
//! the summary statistics on hand-made values, and a whole sweep on a tiny model leaves the
//! weights bit-identical.

use backlens_data::Record;
use backlens_edit::eval::predicts;
use backlens_edit::registry::{step_methods, step_methods_named};
use backlens_edit::sweep::{
    median, min_step, step_edit, step_for_fraction, summarize_cell, sweep, target_margin, StepSearch, SweepOptions,
    SweepPoint, SweepReport,
};
use backlens_edit::{EditGuard, EditRequest, Eta, ForwardPassShift, MethodSettings, OneStepSgd, StepSizeMethod};
use backlens_model::testing::{bits, random_gpt2, random_llama, TinyGpt2, TinyLlama};
use backlens_model::{Gpt2Activation, LanguageModel, Module};
use candle_core::DType;
use std::sync::Arc;

const LLAMA: TinyLlama = TinyLlama::SMALL;
const GPT2: TinyGpt2 = TinyGpt2 {
    n_layers: 2,
    d_model: 8,
    n_heads: 2,
    d_ff: 16,
    vocab: 19,
    context: 16,
    activation: Gpt2Activation::GeluTanh,
    tied: false,
};

/// Forward pass shift with the scale-free and the raw η.
fn fps_scale_free() -> ForwardPassShift {
    ForwardPassShift::new(1, Eta::ScaleFree(1.0))
}
fn fps_raw() -> ForwardPassShift {
    ForwardPassShift::new(1, Eta::Raw(1.0))
}

/// Every step-size method of the registry, with the default settings.
fn all_step_methods() -> Vec<Arc<dyn StepSizeMethod>> {
    step_methods().map(|e| e.step_method(&MethodSettings::default()).unwrap()).collect()
}

fn m64(t: &candle_core::Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// A request whose target is not the prediction, and which a large scale-free shift at the last
/// layer does reach.
fn reachable_request(model: &mut dyn LanguageModel, prompt: Vec<u32>) -> EditRequest {
    let vocab = model.unembedding().dim(0).unwrap() as u32;
    let logits = model.logits(&prompt).unwrap();
    let top = backlens_edit::metrics::argmax(&logits.get(prompt.len() - 1).unwrap().to_vec1::<f32>().unwrap()) as u32;
    (1..vocab)
        .map(|k| EditRequest::new(prompt.clone(), vec![(top + k) % vocab]).unwrap())
        .find(|r| {
            let dir = fps_scale_free().direction(&*model, r, 1).unwrap().unwrap();
            let edit = step_edit(&*model, 1, &dir, 1e5).unwrap();
            let guard = EditGuard::apply(&mut *model, &edit).unwrap();
            predicts(guard.model(), &r.prompt, &r.target).unwrap()
        })
        .expect("some target is reachable")
}

#[test]
fn each_methods_edit_is_its_step_times_the_direction() {
    let models: Vec<Box<dyn LanguageModel>> = vec![Box::new(random_llama(LLAMA, 3)), Box::new(random_gpt2(GPT2, 4))];
    for model in models {
        let req = EditRequest::new(vec![1, 2, 3, 4], vec![5, 6]).unwrap();
        for layer in 0..model.n_layers() {
            let w = m64(model.weight(layer, Module::MlpDown).unwrap());
            let methods = all_step_methods();
            assert!(methods.len() >= 4, "fps (raw), fps-scale-free, sgd, adam and any added since");
            for method in &methods {
                let method = method.as_ref();
                let dir = method.direction(model.as_ref(), &req, layer).unwrap().expect("target is not the prediction");
                assert_eq!(dir.dims(), model.weight(layer, Module::MlpDown).unwrap().dims());
                for step in [0.37, 2.5] {
                    let edit =
                        method.with_step(layer, step).compute(model.as_ref(), std::slice::from_ref(&req)).unwrap();
                    let method = method.label();
                    assert_eq!(edit.updates.len(), 1, "{method}");
                    let want = m64(&edit.updates[0].weight);
                    let got = m64(&step_edit(model.as_ref(), layer, &dir, step).unwrap().updates[0].weight);
                    let scale = want.iter().zip(&w).fold(0f64, |a, (v, w0)| a.max((v - w0).abs()));
                    let diff = got.iter().zip(&want).fold(0f64, |a, (g, v)| a.max((g - v).abs()));
                    assert!(scale > 0.0, "{method}: the edit changes nothing");
                    assert!(
                        diff <= 1e-5 * scale + 1e-6,
                        "{} {method} layer {layer} step {step}: max |diff| {diff:e}, max |ΔW| {scale:e}",
                        model.name()
                    );
                }
            }
        }
    }
}

#[test]
fn forward_pass_shift_has_no_direction_when_the_target_is_already_predicted() {
    let model = random_llama(LLAMA, 5);
    let prompt = vec![2, 7, 1];
    let top = backlens_edit::metrics::argmax(&model.logits(&prompt).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap())
        as u32;
    let req = EditRequest::new(prompt, vec![top]).unwrap();
    assert!(fps_raw().direction(&model, &req, 1).unwrap().is_none());
    assert!(OneStepSgd { layer: 1, lr: 1.0 }.direction(&model, &req, 1).unwrap().is_some());
}

#[test]
fn target_margin_is_positive_exactly_when_the_target_is_predicted() {
    let mut model = random_llama(LLAMA, 6);
    let req = reachable_request(&mut model, vec![3, 1, 4]);
    let dir = fps_scale_free().direction(&model, &req, 1).unwrap().unwrap();
    let mut seen = [false, false];
    for step in [0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5] {
        let edit = step_edit(&model, 1, &dir, step).unwrap();
        let guard = EditGuard::apply(&mut model, &edit).unwrap();
        let ok = predicts(guard.model(), &req.prompt, &req.target).unwrap();
        let margin = target_margin(guard.model(), &req).unwrap();
        assert_eq!(ok, margin > 0.0, "step {step}: predicts {ok}, margin {margin}");
        seen[usize::from(ok)] = true;
    }
    assert_eq!(seen, [true, true], "both outcomes occur on the step grid");
}

#[test]
fn min_step_brackets_the_success_threshold_from_either_side() {
    let mut model = random_llama(LLAMA, 7);
    for prompt in [vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]] {
        let req = reachable_request(&mut model, prompt);
        for fps in [fps_scale_free(), fps_raw()] {
            let dir = fps.direction(&model, &req, 1).unwrap().unwrap();
            let method = fps.label();
            let ok = |model: &mut dyn LanguageModel, s: f64| {
                let edit = step_edit(&*model, 1, &dir, s).unwrap();
                let guard = EditGuard::apply(model, &edit).unwrap();
                predicts(guard.model(), &req.prompt, &req.target).unwrap()
            };
            let mut found = Vec::new();
            for start in [1e-3, 1.0, 1e4] {
                let search = StepSearch { start, resolution: 1.05, max_doublings: 40 };
                let (s, probes) = min_step(&mut model, 1, &dir, &req, &search).unwrap();
                let s = s.unwrap_or_else(|| panic!("{method} from {start}: none found in {probes} probes"));
                assert!(ok(&mut model, s), "{method}: the returned step {s} does not succeed");
                // Success at the last layer grows with the step here, so below the bracket it fails.
                assert!(!ok(&mut model, s / 1.05), "{method}: {s}/1.05 already succeeds");
                found.push(s);
            }
            assert!(found.iter().all(|s| s / found[0] < 1.06 && found[0] / s < 1.06), "{method}: {found:?}");
        }
    }
}

#[test]
fn min_step_gives_up_when_no_step_succeeds() {
    let mut model = random_llama(LLAMA, 8);
    let req = EditRequest::new(vec![1, 2, 3], vec![4]).unwrap();
    // A zero direction never changes the prediction: the doubling runs to its limit.
    let dir = model.weight(1, Module::MlpDown).unwrap().zeros_like().unwrap();
    let (s, probes) =
        min_step(&mut model, 1, &dir, &req, &StepSearch { start: 1.0, resolution: 1.1, max_doublings: 6 }).unwrap();
    if !predicts(&model, &req.prompt, &req.target).unwrap() {
        assert_eq!(s, None);
        assert_eq!(probes, 7, "the start and 6 doublings");
    }
    assert!(min_step(&mut model, 1, &dir, &req, &StepSearch { start: 0.0, resolution: 1.1, max_doublings: 6 }).is_err());
}

#[test]
fn summary_statistics_on_known_values() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[]), None);
    // 95% of 20 records: the 19th smallest minimum; one failure is allowed, two are not.
    let mut steps: Vec<Option<f64>> = (1..=20).map(|i| Some(i as f64)).collect();
    assert_eq!(step_for_fraction(&steps, 0.95), Some(19.0));
    assert_eq!(step_for_fraction(&steps, 1.0), Some(20.0));
    steps[4] = None;
    assert_eq!(step_for_fraction(&steps, 0.95), Some(20.0));
    steps[5] = None;
    assert_eq!(step_for_fraction(&steps, 0.95), None);
    assert_eq!(step_for_fraction(&[Some(3.0), Some(1.0)], 0.5), Some(1.0));

    let p = |case_id, min_step: Option<f64>, already, perplexity| SweepPoint {
        case_id,
        layer: 2,
        method: "one-step SGD".into(),
        already,
        min_step,
        perplexity,
        probes: 1,
    };
    let points = vec![
        p(0, Some(10.0), false, Some(5.0)),
        p(1, Some(1000.0), false, Some(7.0)),
        p(2, None, false, None),
        p(3, Some(0.0), true, None),
    ];
    let cell = summarize_cell(2, "one-step SGD", &points);
    assert_eq!((cell.records, cell.successes), (3, 2));
    assert_eq!(cell.median_step, Some(505.0));
    let log = cell.log10_step.unwrap();
    assert!((log.mean - 2.0).abs() < 1e-12 && (log.std - 1.0).abs() < 1e-12, "{log:?}");
    assert_eq!(cell.step_for_95, None);
    let ppl = cell.perplexity.unwrap();
    assert!((ppl.mean - 6.0).abs() < 1e-12 && (ppl.std - 1.0).abs() < 1e-12);
    assert_eq!(summarize_cell(3, "one-step SGD", &points).records, 0);
}

fn record(case_id: u64, subject: &str, new: &str) -> Record {
    Record {
        case_id,
        subject: subject.into(),
        prompt: "t1 {} t2".into(),
        relation_id: "P0".into(),
        target_true: "t3".into(),
        target_new: new.into(),
        paraphrase_prompts: vec![],
        neighborhood_prompts: vec![],
        generation_prompts: vec![],
    }
}

#[test]
fn a_sweep_covers_every_cell_and_leaves_the_model_unchanged() {
    let mut model = random_gpt2(GPT2, 9);
    let snapshot = |m: &dyn LanguageModel| -> Vec<Vec<u32>> {
        (0..m.n_layers()).map(|l| bits(m.weight(l, Module::MlpDown).unwrap())).collect()
    };
    let before = snapshot(&model);
    let records = vec![record(0, "t4", "t5"), record(1, "t6", "t7"), record(2, "t8", "t9")];
    let options = SweepOptions {
        layers: vec![0, 1],
        methods: step_methods_named(&["fps", "sgd", "adam"], &MethodSettings::default()).unwrap(),
        perplexity_corpus: Some(vec![vec![1, 2, 3, 4, 5], vec![6, 7, 8]]),
        perplexity_records: Some(2),
        ..SweepOptions::default()
    };
    let mut calls = 0;
    let report = sweep(&mut model, &records, &options, &mut |done, total| {
        calls += 1;
        assert_eq!((done, total), (calls, 18));
    })
    .unwrap();
    assert_eq!(snapshot(&model), before);
    assert_eq!(report.points.len(), 18);
    assert_eq!(report.cells.len(), 6);
    assert!(report.base_perplexity.unwrap() > 1.0);
    for c in &report.cells {
        let mine: Vec<&SweepPoint> =
            report.points.iter().filter(|p| p.layer == c.layer && p.method == c.method).collect();
        assert_eq!(mine.len(), 3);
        // Perplexity only for the first two records, and only after a successful search.
        assert!(mine[2].perplexity.is_none());
        for p in &mine[..2] {
            assert_eq!(p.perplexity.is_some(), p.min_step.is_some() && !p.already, "{p:?}");
        }
    }
    // The markdown table has one row per layer.
    let md = report.markdown();
    assert!(md.contains("\n| 0 |") && md.contains("\n| 1 |"), "{md}");
    assert!(sweep(&mut model, &records, &SweepOptions { layers: vec![2], ..options.clone() }, &mut |_, _| {}).is_err());
}

/// A report written before the methods were `StepSizeMethod`s names them by the former enum's
/// variants (`"FpsRaw"`, …): `sweep-lr --from-json` still reads it, as the labels.
#[test]
fn a_report_with_the_former_method_names_still_reads() {
    let json = r#"{
        "model": "m", "records": 1, "base_perplexity": null, "seconds": 1.0,
        "cells": [
            {"layer": 3, "method": "FpsRaw", "records": 1, "successes": 1, "median_step": 0.5,
             "log10_step": {"mean": -0.30103, "std": 0.0}, "step_for_95": 0.5, "perplexity": null},
            {"layer": 3, "method": "FpsScaleFree", "records": 1, "successes": 0, "median_step": null,
             "log10_step": null, "step_for_95": null, "perplexity": null},
            {"layer": 3, "method": "Sgd", "records": 1, "successes": 1, "median_step": 2.0,
             "log10_step": {"mean": 0.30103, "std": 0.0}, "step_for_95": 2.0, "perplexity": null},
            {"layer": 3, "method": "Adam", "records": 0, "successes": 0, "median_step": null,
             "log10_step": null, "step_for_95": null, "perplexity": null}
        ],
        "points": [
            {"case_id": 7, "layer": 3, "method": "FpsRaw", "already": false, "min_step": 0.5, "perplexity": null,
             "probes": 4}
        ]
    }"#;
    let report: SweepReport = serde_json::from_str(json).unwrap();
    let labels: Vec<String> = all_step_methods().iter().map(|m| m.label()).collect();
    assert_eq!(report.methods(), labels, "the former names, in the former order, are the registry's labels");
    assert_eq!(report.points[0].method, "forward pass shift (raw η)");
    assert_eq!(report.cell(3, "one-step SGD").unwrap().median_step, Some(2.0));
    let md = report.markdown();
    assert!(md.contains("forward pass shift (raw η): median min lr") && md.contains("| 3 | 5.000e-1 |"), "{md}");
    // Written again, the report names the methods by their labels, and reads back the same.
    let again: SweepReport = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(again.methods(), report.methods());
}

/// The step-size view of forward pass shift with a whitened key is the method itself too.
#[test]
fn whitened_forward_pass_shift_is_its_step_times_the_direction() {
    use backlens_edit::{Key, LayerWhitener};
    let model = random_llama(LLAMA, 11);
    let sequences: Vec<Vec<u32>> = (0..6).map(|i| (0..8).map(|j| (i * 5 + j * 3) % 19).collect()).collect();
    let whitener = LayerWhitener::estimate(&model, 1, &sequences, 0.1).unwrap();
    let fps = ForwardPassShift::new(1, Eta::ScaleFree(1.0)).with_key(Key::Whitened(Arc::new(whitener)));
    let req = EditRequest::new(vec![1, 2, 3, 4], vec![5]).unwrap();
    let dir = fps.direction(&model, &req, 1).unwrap().expect("target is not the prediction");
    let want = m64(&fps.with_step(1, 3.0).compute(&model, std::slice::from_ref(&req)).unwrap().updates[0].weight);
    let got = m64(&step_edit(&model, 1, &dir, 3.0).unwrap().updates[0].weight);
    let diff = got.iter().zip(&want).fold(0f64, |a, (g, v)| a.max((g - v).abs()));
    assert!(diff <= 1e-6, "max |diff| {diff:e}");
    assert_eq!(fps.label(), "forward pass shift (scale-free η, whitened key)");
}
