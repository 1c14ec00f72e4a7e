//! Editing the default model (SmolLM2-135M-Instruct, fetched once into `$BACKLENS_HOME`):
//! the no-grad logits agree with the trace, and forward pass shift at the documented setting
//! reaches high efficacy on a slice of the project's CounterFact-format dataset, leaving the
//! model bit-identical afterwards; the template-contrast key keeps the neighborhood accuracy the
//! paper's key destroys; one-step SGD and Adam at their documented learning rates edit the same
//! slice. About a minute in release on 2 cores.

use backlens_edit::defaults::{DEFAULT_ADAM_LR, DEFAULT_FPS_ETA, DEFAULT_KEY_SHRINKAGE, DEFAULT_LAYER, DEFAULT_SGD_LR};
use backlens_edit::{evaluate, EditGuard, EditMethod, EditRequest, Eta, EvalOptions, ForwardPassShift};
use backlens_model::testing::bits;
use backlens_model::{default_model, LanguageModel, Llama, Module, TraceOptions};
use candle_core::IndexOp;
use std::sync::OnceLock;

/// The documented default of `backlens edit`/`eval` ([`DEFAULT_LAYER`], [`DEFAULT_FPS_ETA`]):
/// layer 23 of 30 (relative depth 0.79; the paper's 35/47 is 0.74), scale-free η 500 (see the
/// crate README for the search that chose it).
const LAYER: usize = DEFAULT_LAYER;
const ETA: Eta = DEFAULT_FPS_ETA;
/// Records in the slice (seeded sample of the project's dataset).
const SLICE: usize = 10;

fn model() -> &'static Llama {
    static MODEL: OnceLock<Llama> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = default_model::ensure_default_model().expect("fetching the default model");
        Llama::from_gguf(&path, &candle_core::Device::Cpu).expect("loading the default model")
    })
}

#[test]
fn logits_last_row_equals_the_trace_logits() {
    let m = model();
    let ids = m.tokenizer().encode("Lionel Messi plays for").unwrap();
    let all = m.logits(&ids).unwrap();
    assert_eq!(all.dims(), &[ids.len(), 49152]);
    let trace = m.trace(&ids, 7042, &TraceOptions::only([])).unwrap();
    let diff = (all.i(ids.len() - 1).unwrap() - &trace.logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = trace.logits.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    eprintln!("last row of logits vs trace logits: max|diff| {diff:e} (max|logit| {scale})");
    assert!(diff <= 1e-5 * scale, "max |diff| {diff}");
    // "The capital of France is" predicts " Paris" (id 7042) at the last row.
    let ids = m.tokenizer().encode("The capital of France is").unwrap();
    assert_eq!(m.logits(&ids).unwrap().i(ids.len() - 1).unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap(), 7042);
}

#[test]
fn forward_pass_shift_reaches_high_efficacy_on_a_slice() {
    let records = backlens_data::load(&backlens_data::default_dataset_path()).unwrap();
    let slice = backlens_data::sample(&records, SLICE, 0);
    let mut edited = model().clone();
    let before: Vec<u32> = bits(edited.weight(LAYER, Module::MlpDown).unwrap());
    let fps = ForwardPassShift::new(LAYER, ETA);
    let start = std::time::Instant::now();
    // Unedited: no rewrite prompt predicts its new target yet.
    for r in &slice {
        let req = EditRequest::from_record(edited.tokenizer(), r).unwrap();
        assert!(
            !backlens_edit::eval::predicts(&edited, &req.prompt, &req.target).unwrap(),
            "case {} already predicts",
            r.case_id
        );
    }
    let report = evaluate(&mut edited, Some(&fps), &slice, &EvalOptions::default(), &mut |_, _| {}).unwrap();
    eprint!("{}", backlens_edit::eval::markdown_table(std::slice::from_ref(&report.summary)));
    eprintln!("({SLICE} records in {:.1} s)", start.elapsed().as_secs_f64());
    assert!(report.summary.efficacy.mean >= 90.0, "efficacy {} at layer {LAYER}, eta {ETA}", report.summary.efficacy);
    // The paraphrases follow the edit too (unedited: 2.5% on a 20-record sample).
    assert!(report.summary.paraphrase.mean >= 25.0, "paraphrase {}", report.summary.paraphrase);
    let after: Vec<u32> = bits(edited.weight(LAYER, Module::MlpDown).unwrap());
    assert!(before == after, "the model was not restored bit for bit");
}

/// The specificity claim of the README: on the slice, forward pass shift with the paper's key
/// loses most of the unedited model's neighborhood accuracy; with the template-contrast key it
/// keeps at least 80% of it, at the same η and the same efficacy.
#[test]
fn template_contrast_key_keeps_the_neighborhood_accuracy() {
    use backlens_edit::keys::{Key, TemplateContrast};
    let records = backlens_data::load(&backlens_data::default_dataset_path()).unwrap();
    let slice = backlens_data::sample(&records, SLICE, 0);
    let mut m = model().clone();
    let plain = ForwardPassShift::new(LAYER, ETA);
    let contrast = plain
        .clone()
        .with_key(Key::TemplateContrast(std::sync::Arc::new(TemplateContrast::new(DEFAULT_KEY_SHRINKAGE))));
    let mut rows = Vec::new();
    for method in [None, Some(&plain as &dyn EditMethod), Some(&contrast as &dyn EditMethod)] {
        rows.push(evaluate(&mut m, method, &slice, &EvalOptions::default(), &mut |_, _| {}).unwrap().summary);
    }
    eprint!("{}", backlens_edit::eval::markdown_table(&rows));
    let (unedited, plain, contrast) = (&rows[0], &rows[1], &rows[2]);
    assert!(contrast.efficacy.mean >= 90.0, "efficacy {}", contrast.efficacy);
    assert!(
        contrast.neighborhood.mean >= 0.8 * unedited.neighborhood.mean,
        "neighborhood {} vs unedited {}",
        contrast.neighborhood,
        unedited.neighborhood
    );
    assert!(
        plain.neighborhood.mean < 0.8 * unedited.neighborhood.mean,
        "the paper's key kept {} of {}: the slice shows no specificity problem",
        plain.neighborhood,
        unedited.neighborhood
    );
}

#[test]
fn messi_plays_for_paris_after_one_edit() {
    let mut m = model().clone();
    let req = EditRequest::from_text(m.tokenizer(), "Lionel Messi plays for", " Paris").unwrap();
    let edit = ForwardPassShift::new(LAYER, ETA).compute(&m, std::slice::from_ref(&req)).unwrap();
    let guard = EditGuard::apply(&mut m, &edit).unwrap();
    assert!(backlens_edit::eval::predicts(guard.model(), &req.prompt, &req.target).unwrap());
}

/// The documented one-step SGD and Adam learning rates at layer 23 ([`DEFAULT_SGD_LR`],
/// [`DEFAULT_ADAM_LR`]), chosen by `backlens sweep-lr` as the smallest lr editing ≥ 95% of a
/// 20-record sample, rounded up.
const SGD_LR: f64 = DEFAULT_SGD_LR;
const ADAM_LR: f64 = DEFAULT_ADAM_LR;

#[test]
fn one_step_sgd_and_adam_at_the_documented_lrs_edit_the_slice() {
    use backlens_edit::search::efficacy;
    use backlens_edit::sweep::{min_step, StepSearch};
    use backlens_edit::StepSizeMethod;
    use backlens_edit::{OneStepAdam, OneStepSgd};
    let records = backlens_data::load(&backlens_data::default_dataset_path()).unwrap();
    let slice = backlens_data::sample(&records, SLICE, 0);
    let mut m = model().clone();
    let requests: Vec<EditRequest> =
        slice.iter().map(|r| EditRequest::from_record(m.tokenizer(), r).unwrap()).collect();
    let sgd = efficacy(&mut m, &OneStepSgd { layer: LAYER, lr: SGD_LR }, &requests).unwrap();
    let adam = efficacy(&mut m, &OneStepAdam::new(LAYER, ADAM_LR), &requests).unwrap();
    eprintln!("efficacy on {SLICE} records at layer {LAYER}: SGD lr {SGD_LR}: {sgd}%, Adam lr {ADAM_LR}: {adam}%");
    // (Measured: SGD 100%, Adam 90%: one record needs a slightly larger lr.)
    assert!(sgd >= 90.0 && adam >= 80.0, "SGD {sgd}%, Adam {adam}%");
    // A tenth of the documented lr is not enough for most records: the lrs are near the minimum.
    let weak = efficacy(&mut m, &OneStepSgd { layer: LAYER, lr: SGD_LR / 10.0 }, &requests).unwrap();
    assert!(weak <= 50.0, "SGD at lr {}: {weak}%", SGD_LR / 10.0);
    // The sweep's minimum step for the first record is below the documented lr, and succeeds.
    let dir = OneStepSgd { layer: LAYER, lr: SGD_LR }.direction(&m, &requests[0], LAYER).unwrap().unwrap();
    let (s, _) =
        min_step(&mut m, LAYER, &dir, &requests[0], &StepSearch { start: 1.0, resolution: 1.1, max_doublings: 20 })
            .unwrap();
    let s = s.expect("a successful SGD step exists at layer 23");
    assert!(s <= SGD_LR, "minimum lr {s}");
    assert_eq!(efficacy(&mut m, &OneStepSgd { layer: LAYER, lr: s }, &requests[..1]).unwrap(), 100.0);
}
