//! Edits are applied through `set_weight` and undone bit for bit: by dropping the guard, by
//! `restore`, when an application fails half-way, and after a whole evaluation.

use backlens_data::Record;
use backlens_edit::{
    evaluate, Edit, EditGuard, EditMethod, EditRequest, Eta, EvalOptions, FineTune, ForwardPassShift, OneStepAdam,
    OneStepSgd, WeightUpdate,
};
use backlens_model::testing::{bits, random_gpt2, random_llama, TinyGpt2, TinyLlama};
use backlens_model::{Gpt2Activation, LanguageModel, Module, RopeLayout};
use candle_core::Tensor;

const LLAMA: TinyLlama =
    TinyLlama { n_kv_heads: 2, vocab: 17, rope: RopeLayout::Interleaved, tied: false, ..TinyLlama::SMALL };

/// Every linear weight of the model as raw bits.
fn snapshot(model: &dyn LanguageModel) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for layer in 0..model.n_layers() {
        for m in Module::linear() {
            if let Ok(w) = model.weight(layer, m) {
                out.push(w.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect());
            }
        }
    }
    out
}

#[test]
fn guard_applies_then_restores_bit_identically() {
    let mut model = random_llama(LLAMA, 5);
    let before = snapshot(&model);
    let req = [EditRequest::new(vec![1, 2, 3], vec![9]).unwrap()];
    let methods: Vec<Box<dyn EditMethod>> = vec![
        Box::new(ForwardPassShift::new(1, Eta::ScaleFree(5.0))),
        Box::new(OneStepSgd { layer: 0, lr: 0.5 }),
        Box::new(OneStepAdam::new(1, 1e-2)),
        Box::new(FineTune { modules: vec![Module::MlpDown, Module::MlpUp], ..FineTune::paper(0) }),
    ];
    for m in &methods {
        let edit = m.compute(&model, &req).unwrap();
        assert!(!edit.is_empty(), "{}", m.name());
        assert_eq!(snapshot(&model), before, "{}: computing an edit changed the model", m.name());
        {
            let guard = EditGuard::apply(&mut model, &edit).unwrap();
            for u in &edit.updates {
                assert_eq!(
                    bits(guard.weight(u.layer, u.module).unwrap()),
                    bits(&u.weight),
                    "{}: edit not applied",
                    m.name()
                );
            }
            assert_ne!(snapshot(guard.model()), before);
        } // dropped
        assert_eq!(snapshot(&model), before, "{}: not restored on drop", m.name());
        let guard = EditGuard::apply(&mut model, &edit).unwrap();
        guard.restore().unwrap();
        assert_eq!(snapshot(&model), before, "{}: not restored by restore()", m.name());
    }
}

#[test]
fn a_failed_application_undoes_what_it_replaced() {
    let mut model = random_llama(LLAMA, 6);
    let before = snapshot(&model);
    let good = WeightUpdate {
        layer: 0,
        module: Module::MlpDown,
        weight: Tensor::zeros((8, 12), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    };
    let bad = WeightUpdate {
        layer: 1,
        module: Module::MlpDown,
        weight: Tensor::zeros((12, 8), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    };
    let edit = Edit { updates: vec![good.clone(), bad], ..Edit::default() };
    assert!(EditGuard::apply(&mut model, &edit).is_err());
    assert_eq!(snapshot(&model), before);
    // The same weight replaced twice comes back as the original.
    let twice = Edit {
        updates: vec![good.clone(), WeightUpdate { weight: (good.weight.clone() + 1.0).unwrap(), ..good }],
        ..Edit::default()
    };
    drop(EditGuard::apply(&mut model, &twice).unwrap());
    assert_eq!(snapshot(&model), before);
}

fn record(case_id: u64, subject: &str, new: &str, true_: &str) -> Record {
    Record {
        case_id,
        subject: subject.into(),
        prompt: "t1 {} t2".into(),
        relation_id: "P0".into(),
        target_true: true_.into(),
        target_new: new.into(),
        paraphrase_prompts: vec![format!("t3 {subject} t2"), format!("{subject} t4 t2")],
        neighborhood_prompts: vec!["t1 t5 t2".into(), "t1 t6 t2".into(), "t1 t7 t2".into()],
        generation_prompts: vec![format!("{subject} t8")],
    }
}

#[test]
fn evaluation_leaves_the_model_unchanged() {
    let records = vec![record(0, "t9", "t10", "t11"), record(1, "t12", "t13", "t14 t15")];
    let mut llama = random_llama(LLAMA, 7);
    let mut gpt2 = random_gpt2(
        TinyGpt2 {
            n_layers: 2,
            d_model: 8,
            n_heads: 2,
            d_ff: 12,
            vocab: 17,
            context: 16,
            activation: Gpt2Activation::GeluErf,
            tied: true,
        },
        8,
    );
    let corpus = vec![vec![1, 2, 3, 4, 5, 6], vec![7, 8, 9]];
    let options = EvalOptions { generation_tokens: 3, fluency_records: Some(1), perplexity_corpus: Some(corpus) };
    for model in [&mut llama as &mut dyn LanguageModel, &mut gpt2] {
        let before = snapshot(model);
        let fps = ForwardPassShift::new(1, Eta::ScaleFree(50.0));
        let mut calls = Vec::new();
        let report = evaluate(model, Some(&fps), &records, &options, &mut |i, n| calls.push((i, n))).unwrap();
        assert_eq!(snapshot(model), before);
        assert_eq!(calls, vec![(1, 2), (2, 2)]);
        assert!(report.records[0].ngram_entropy.is_some() && report.records[1].ngram_entropy.is_none());
        assert!(report.records[0].perplexity.is_some() && report.records[1].perplexity.is_none());
        // The recorded efficacy is that of the edit applied by hand.
        for (r, rec) in report.records.iter().zip(&records) {
            let req = EditRequest::from_record(model.tokenizer(), rec).unwrap();
            let edit = fps.compute(&*model, std::slice::from_ref(&req)).unwrap();
            let guard = EditGuard::apply(&mut *model, &edit).unwrap();
            let hit = backlens_edit::eval::predicts(guard.model(), &req.prompt, &req.target).unwrap();
            assert_eq!(r.efficacy, f64::from(u8::from(hit)));
        }
        let all = EvalOptions { fluency_records: None, ..options.clone() };
        let base = evaluate(model, None, &records, &all, &mut |_, _| {}).unwrap();
        assert_eq!(snapshot(model), before);
        assert_eq!(base.summary.method, "original model");
        // The perplexity of the unedited model is the same for every record.
        assert_eq!(base.records[0].perplexity, base.records[1].perplexity);
    }
}

/// A new weight with a NaN or an infinity is refused before anything is replaced, with an error
/// naming the layer, the module and the settings to change: from a hand-made update and from
/// methods given a non-finite or absurd step.
#[test]
fn a_non_finite_weight_is_never_applied() {
    let mut model = random_llama(LLAMA, 7);
    let before = snapshot(&model);
    let good = WeightUpdate {
        layer: 0,
        module: Module::MlpDown,
        weight: Tensor::zeros((8, 12), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    };
    for bad_value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = vec![0f32; 8 * 12];
        values[5] = bad_value;
        let bad = WeightUpdate {
            layer: 1,
            module: Module::MlpDown,
            weight: Tensor::from_vec(values, (8, 12), &candle_core::Device::Cpu).unwrap(),
        };
        let edit = Edit { updates: vec![good.clone(), bad], ..Edit::default() };
        let err = EditGuard::apply(&mut model, &edit).err().expect("a non-finite weight is refused");
        let message = err.to_string();
        assert!(message.contains("layers.1.mlp.down.weight has 1 NaN or infinite"), "{message}");
        assert!(message.contains("--eta"), "{message}");
        assert_eq!(snapshot(&model), before, "nothing replaced");
    }
    let req = [EditRequest::new(vec![1, 2, 3], vec![9]).unwrap()];
    let methods: Vec<Box<dyn EditMethod>> = vec![
        Box::new(ForwardPassShift::new(1, Eta::Raw(f64::NAN))),
        Box::new(ForwardPassShift::new(1, Eta::Raw(f64::INFINITY))),
        Box::new(OneStepSgd { layer: 0, lr: f64::NAN }),
        Box::new(OneStepSgd { layer: 0, lr: 1e300 }),
    ];
    for m in &methods {
        // A method may refuse the step itself; if it computes an edit, applying it must fail.
        if let Ok(edit) = m.compute(&model, &req) {
            if !edit.is_empty() {
                assert!(EditGuard::apply(&mut model, &edit).is_err(), "{}", m.name());
            }
        }
        assert_eq!(snapshot(&model), before, "{}", m.name());
    }
}
