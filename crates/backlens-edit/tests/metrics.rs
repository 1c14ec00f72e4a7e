//! The metrics on hand-made cases with known answers.

use backlens_edit::corpus::passages;
use backlens_edit::eval::{perplexity, predicts};
use backlens_edit::metrics::{
    argmax, ngram_distribution_entropy, ngram_entropy, sequence_nll, teacher_forced_correct, words, MeanStd,
};
use backlens_edit::request::spaced;
use candle_core::{Device, Tensor};

fn logits(rows: &[&[f32]]) -> Tensor {
    let v = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), v), &Device::Cpu).unwrap()
}

#[test]
fn argmax_takes_the_lowest_index_of_ties() {
    assert_eq!(argmax(&[0.0, 2.0, 1.0, 2.0]), 1);
    assert_eq!(argmax(&[f32::NAN, -1.0, -3.0]), 1);
    assert_eq!(argmax(&[5.0]), 0);
}

#[test]
fn teacher_forcing_checks_every_sub_token_at_its_position() {
    // A prompt of 2 tokens and a target of 2: rows 1 and 2 predict the two sub-tokens; row 0
    // (inside the prompt) is ignored.
    let l = logits(&[&[9.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 3.0, 0.0], &[0.0, 1.0, 0.0, 0.0]]);
    assert!(teacher_forced_correct(&l, 2, &[2, 1]).unwrap());
    assert!(!teacher_forced_correct(&l, 2, &[2, 3]).unwrap(), "the second sub-token is wrong");
    assert!(!teacher_forced_correct(&l, 2, &[1, 1]).unwrap(), "the first sub-token is wrong");
    assert!(teacher_forced_correct(&l, 3, &[1]).unwrap());
    assert!(teacher_forced_correct(&l, 1, &[0, 2, 1]).unwrap());
    // A tie is won by the lowest id.
    let tie = logits(&[&[1.0, 1.0, 0.0]]);
    assert!(teacher_forced_correct(&tie, 1, &[0]).unwrap());
    assert!(!teacher_forced_correct(&tie, 1, &[1]).unwrap());
    // Too few rows, empty target.
    assert!(teacher_forced_correct(&l, 3, &[1, 1]).is_err());
    assert!(teacher_forced_correct(&l, 2, &[]).is_err());
}

#[test]
fn sequence_nll_of_known_distributions() {
    // Uniform logits over V = 4: every token costs ln 4; perplexity 4.
    let u = logits(&[&[0.5; 4], &[0.5; 4], &[0.5; 4]]);
    let (nll, n) = sequence_nll(&u, &[3, 1, 2]).unwrap();
    assert_eq!(n, 2);
    assert!((nll - 2.0 * 4f64.ln()).abs() < 1e-12);
    // logits (ln 3, 0): p = 3/4 and 1/4.
    let l = logits(&[&[3f32.ln(), 0.0], &[0.0, 0.0]]);
    let (nll, _) = sequence_nll(&l, &[1, 0]).unwrap();
    assert!((nll - 4f64.ln() + 3f64.ln()).abs() < 1e-6, "{nll}");
    let (nll, _) = sequence_nll(&l, &[1, 1]).unwrap();
    assert!((nll - 4f64.ln()).abs() < 1e-6);
    // Large logits do not overflow.
    let big = logits(&[&[1000.0, 0.0], &[0.0, 0.0]]);
    assert!(sequence_nll(&big, &[0, 0]).unwrap().0.abs() < 1e-12);
    assert!(sequence_nll(&big, &[0]).is_err());
}

#[test]
fn mean_and_population_std() {
    let m = MeanStd::of(&[1.0, 0.0, 1.0, 1.0]).unwrap();
    assert!((m.mean - 0.75).abs() < 1e-12);
    assert!((m.std - (0.75f64 * 0.25).sqrt()).abs() < 1e-12, "Bernoulli std sqrt(p(1-p)), ddof 0");
    // The paper's Table 6: 99.4% efficacy over 1000 records has std 7.72.
    let mut v = vec![1.0; 994];
    v.extend([0.0; 6]);
    let s = MeanStd::of(&v).unwrap().scaled(100.0);
    assert!((s.mean - 99.4).abs() < 1e-9 && (s.std - 7.72).abs() < 0.005, "{s}");
    assert!(MeanStd::of(&[]).is_none());
    assert_eq!(MeanStd::of(&[2.0]).unwrap(), MeanStd { mean: 2.0, std: 0.0 });
}

#[test]
fn words_split_punctuation_and_keep_contractions() {
    assert_eq!(words("Hello, world! It's 2024."), ["Hello", ",", "world", "!", "It's", "2024", "."]);
    assert_eq!(words("  a\tb\n"), ["a", "b"]);
    assert_eq!(words("'quoted'"), ["'", "quoted", "'"]);
    assert!(words("").is_empty());
}

#[test]
fn ngram_entropy_of_hand_counted_texts() {
    let w = |s: &str| words(s);
    // "a b a b a b": bigrams ab×3, ba×2 -> H2 = H(3/5, 2/5); trigrams aba×2, bab×2 -> H3 = 1 bit.
    let h2 = -(0.6f64 * 0.6f64.log2() + 0.4 * 0.4f64.log2());
    assert!((ngram_distribution_entropy(&w("a b a b a b"), 2) - h2).abs() < 1e-12);
    assert!((ngram_distribution_entropy(&w("a b a b a b"), 3) - 1.0).abs() < 1e-12);
    assert!((ngram_entropy("a b a b a b") - (2.0 / 3.0 * h2 + 4.0 / 3.0 * 1.0) / 2.0).abs() < 1e-12);
    // All-distinct words: k bigrams -> log2 k bits; k-1 trigrams -> log2 (k-1).
    let text = "one two three four five";
    let want = (2.0 / 3.0 * 4f64.log2() + 4.0 / 3.0 * 3f64.log2()) / 2.0;
    assert!((ngram_entropy(text) - want).abs() < 1e-12);
    // A repeated word has zero entropy; fewer than 2 words has none.
    assert_eq!(ngram_entropy("the the the the"), 0.0);
    assert_eq!(ngram_entropy("word"), 0.0);
    // More varied text scores higher than a loop.
    assert!(
        ngram_entropy("the cat sat on the mat and the dog ran off")
            > ngram_entropy("the cat the cat the cat the cat the cat")
    );
}

#[test]
fn corpus_passages_and_targets() {
    let text = "# comment\nFirst line\nsecond line.\n\n\n  Another passage.  \n# another comment\n";
    assert_eq!(passages(text), ["First line second line.", "Another passage."]);
    assert_eq!(spaced("Paris"), " Paris");
    assert_eq!(spaced(" Paris"), " Paris");
    let _ = (perplexity, predicts);
}
