//! `LanguageModel::logits`, the no-grad forward over every position, against the trace path:
//! its last row is the trace's logits, row i is the last row of the prefix `ids[..=i]`
//! (causality), and it rejects what the trace rejects.

use backlens_model::testing::{random_gpt2, random_llama, strategies, TinyGpt2, TinyLlama};
use backlens_model::{LanguageModel, ModelError, TraceOptions};
use candle_core::{IndexOp, Tensor};
use proptest::prelude::*;

/// Max |a - b| and max |b|.
fn diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let s = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    (d, s)
}

fn check(model: &dyn LanguageModel, ids: &[u32], target: u32) -> Result<(), TestCaseError> {
    let all = model.logits(ids).unwrap();
    prop_assert_eq!(all.dims(), &[ids.len(), model.unembedding().dim(0).unwrap()][..]);
    let trace = model.trace(ids, target, &TraceOptions::only([])).unwrap();
    let (d, s) = diff(&all.i(ids.len() - 1).unwrap(), &trace.logits);
    prop_assert!(d <= 1e-6 + 1e-5 * s, "last row vs trace logits: max|diff| {} (max|ref| {})", d, s);
    for i in 0..ids.len() - 1 {
        let prefix = model.logits(&ids[..=i]).unwrap();
        let (d, s) = diff(&all.i(i).unwrap(), &prefix.i(i).unwrap());
        prop_assert!(d <= 1e-6 + 1e-5 * s, "row {} vs the prefix's last row: max|diff| {} (max|ref| {})", i, d, s);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn llama_logits_match_the_trace_and_are_causal(
        (spec, seed, (ids, target)) in strategies::tiny_llama().prop_flat_map(|s| (Just(s), any::<u64>(), strategies::prompt(s.vocab, 1..=strategies::MAX_PROMPT)))
    ) {
        check(&random_llama(spec, seed), &ids, target)?;
    }

    #[test]
    fn gpt2_logits_match_the_trace_and_are_causal(
        (spec, seed, (ids, target)) in strategies::tiny_gpt2().prop_flat_map(|s| (Just(s), any::<u64>(), strategies::prompt(s.vocab, 1..=strategies::MAX_PROMPT)))
    ) {
        check(&random_gpt2(spec, seed), &ids, target)?;
    }
}

#[test]
fn logits_reject_bad_sequences() {
    let spec = TinyLlama { n_layers: 1, vocab: 11, context: 5, ..TinyLlama::SMALL };
    let model = random_llama(spec, 1);
    assert!(matches!(model.logits(&[]), Err(ModelError::EmptyPrompt)));
    assert!(matches!(model.logits(&[1, 2, 3, 4, 5, 6]), Err(ModelError::PromptTooLong { tokens: 6, context: 5 })));
    assert!(matches!(model.logits(&[1, 11]), Err(ModelError::TokenOutOfRange { id: 11, vocab: 11 })));
    let gpt2 = random_gpt2(
        TinyGpt2 {
            n_layers: 1,
            d_model: 8,
            n_heads: 2,
            d_ff: 12,
            vocab: 11,
            context: 5,
            activation: backlens_model::Gpt2Activation::GeluTanh,
            tied: true,
        },
        2,
    );
    assert!(matches!(gpt2.logits(&[0, 1, 2, 3, 4, 5]), Err(ModelError::PromptTooLong { .. })));
}
