//! The lens against brute force: full sorts, explicit norm + matmul, sign symmetry.

use backlens_lens::{rank_of, summarize_row, LensError, LogitLens, ProjectOptions};
use backlens_ops::Norm;
use candle_core::{Device, Tensor};
use proptest::prelude::*;

fn tensor(rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn rms_lens(vocab: usize, d: usize) -> LogitLens {
    let weight = (tensor(1, d, 1).squeeze(0).unwrap().abs().unwrap() + 0.5).unwrap();
    LogitLens::new(Norm::Rms { weight, eps: 1e-5 }, tensor(vocab, d, 2)).unwrap()
}

/// Ids sorted by descending logit, ties by ascending id.
fn full_order(logits: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    ids
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn top_bottom_and_ranks_match_a_full_sort(
        logits in proptest::collection::vec(-8i32..8, 1..200),
        k in 0usize..12,
    ) {
        // Small integer logits force many ties.
        let logits: Vec<f32> = logits.into_iter().map(|x| x as f32 * 0.5).collect();
        let order = full_order(&logits);
        let rank_tokens: Vec<u32> = (0..logits.len() as u32).collect();
        let p = summarize_row(&logits, 1.0, &ProjectOptions { k, rank_tokens: rank_tokens.clone(), normalize: false });
        if logits.iter().all(|&x| x == logits[0]) {
            // A row whose logits all tie has no ranking (documented on `Projection::ranks`).
            prop_assert!(p.top.is_empty() && p.bottom.is_empty());
            prop_assert!(p.ranks.iter().all(Option::is_none));
            return Ok(());
        }
        let k = k.min(logits.len());
        prop_assert_eq!(&p.top, &order[..k].to_vec());
        let mut ascending: Vec<u32> = (0..logits.len() as u32).collect();
        ascending.sort_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]).then(a.cmp(&b)));
        prop_assert_eq!(&p.bottom, &ascending[..k].to_vec());
        for t in rank_tokens {
            let greater = logits.iter().filter(|&&x| x > logits[t as usize]).count();
            prop_assert_eq!(p.ranks[t as usize], Some(greater));
        }
    }

    /// Any k up to the row's length and beyond (clamped), on rows up to 3000 long with many ties
    /// and infinities: the bounded-heap selection equals a full sort (ties: lower id first).
    #[test]
    fn top_and_bottom_match_a_full_sort_for_large_k(
        (logits, k) in proptest::collection::vec(-40i32..40, 1..3000)
            .prop_flat_map(|l| { let n = l.len(); (Just(l), 0..=n + 3) }),
    ) {
        let logits: Vec<f32> = logits
            .into_iter()
            .map(|x| match x { -40 => f32::NEG_INFINITY, 39 => f32::INFINITY, x => x as f32 * 0.25 })
            .collect();
        prop_assume!(logits.iter().any(|&x| x != logits[0]));
        let p = summarize_row(&logits, 1.0, &ProjectOptions { k, rank_tokens: vec![], normalize: false });
        let k = k.min(logits.len());
        prop_assert_eq!(&p.top, &full_order(&logits)[..k].to_vec());
        let mut ascending: Vec<u32> = (0..logits.len() as u32).collect();
        ascending.sort_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]).then(a.cmp(&b)));
        prop_assert_eq!(&p.bottom, &ascending[..k].to_vec());
    }
}

/// k = V on a SmolLM2-sized row (V = 49152): the former insertion into a sorted vector was
/// O(V·k) per row and ran for minutes here; the selection is O(V log k).
#[test]
fn k_equal_to_a_real_vocabulary_is_a_full_sort() {
    let vocab = 49_152;
    let logits: Vec<f32> = tensor(1, vocab, 7).to_vec2::<f32>().unwrap().remove(0);
    let start = std::time::Instant::now();
    for k in [vocab, vocab / 2, 1] {
        let p = summarize_row(&logits, 1.0, &ProjectOptions { k, rank_tokens: vec![], normalize: false });
        assert_eq!(p.top, full_order(&logits)[..k].to_vec(), "top, k = {k}");
        let mut ascending: Vec<u32> = (0..vocab as u32).collect();
        ascending.sort_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]).then(a.cmp(&b)));
        assert_eq!(p.bottom, ascending[..k].to_vec(), "bottom, k = {k}");
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(60), "took {:?}", start.elapsed());
}

/// Signed zeros tie (IEEE `-0.0 == 0.0`), so the lower id comes first at both ends.
#[test]
fn signed_zeros_tie_and_keep_the_lower_id_first() {
    let logits = [0.0, -0.0, 1.0, -1.0, -0.0, 0.0];
    let p = summarize_row(&logits, 1.0, &ProjectOptions { k: 6, rank_tokens: vec![], normalize: false });
    assert_eq!(p.top, vec![2, 0, 1, 4, 5, 3]);
    assert_eq!(p.bottom, vec![3, 0, 1, 4, 5, 2]);
}

/// `project` accepts k in 1..=V and refuses 0 and V+1 with an error naming both bounds.
#[test]
fn project_bounds_k_to_the_vocabulary() {
    let lens = rms_lens(10, 4);
    let v = tensor(2, 4, 3);
    for k in [0, 11, usize::MAX] {
        let err = lens.project(&v, &ProjectOptions { k, ..Default::default() }).unwrap_err();
        assert!(matches!(err, LensError::TopK { vocab: 10, .. }), "{err}");
        assert!(err.to_string().contains("between 1 and the vocabulary size 10"), "{err}");
    }
    let all = lens.project(&v, &ProjectOptions { k: 10, ..Default::default() }).unwrap();
    let logits = lens.logits(&v).unwrap().to_vec2::<f32>().unwrap();
    for (p, row) in all.iter().zip(&logits) {
        assert_eq!(p.top, full_order(row));
    }
    assert_eq!(lens.project(&v, &ProjectOptions { k: 1, ..Default::default() }).unwrap()[0].top.len(), 1);
}

#[test]
fn a_row_of_tied_logits_has_no_ranking_but_one_differing_logit_gives_one() {
    let opts = ProjectOptions { k: 2, rank_tokens: vec![0, 1, 2], normalize: false };
    let tied = summarize_row(&[0.5, 0.5, 0.5], 1.0, &opts);
    assert_eq!(tied.ranks, vec![None, None, None]);
    let almost = summarize_row(&[0.5, 0.5, 0.25], 1.0, &opts);
    assert_eq!(almost.ranks, vec![Some(0), Some(0), Some(2)]);
    assert_eq!(almost.bottom, vec![2, 0]);
}

#[test]
fn rank_counts_strictly_greater_logits() {
    let logits = [1.0, 3.0, 3.0, -2.0];
    assert_eq!(rank_of(&logits, 1), 0);
    assert_eq!(rank_of(&logits, 2), 0);
    assert_eq!(rank_of(&logits, 0), 2);
    assert_eq!(rank_of(&logits, 3), 3);
}

#[test]
fn logits_are_final_norm_then_unembedding() {
    let lens = rms_lens(50, 8);
    let v = tensor(3, 8, 3);
    let got = lens.logits(&v).unwrap();
    let weight = (tensor(1, 8, 1).squeeze(0).unwrap().abs().unwrap() + 0.5).unwrap();
    // Explicit RMSNorm, row by row, then the unembedding.
    let rows = v.to_vec2::<f32>().unwrap();
    let w = weight.to_vec1::<f32>().unwrap();
    let e = tensor(50, 8, 2).to_vec2::<f32>().unwrap();
    let got = got.to_vec2::<f32>().unwrap();
    for (r, row) in rows.iter().enumerate() {
        let rms = (row.iter().map(|x| x * x).sum::<f32>() / 8.0 + 1e-5).sqrt();
        for (t, emb) in e.iter().enumerate() {
            let want: f32 = row.iter().zip(&w).zip(emb).map(|((x, g), u)| x / rms * g * u).sum();
            assert!((got[r][t] - want).abs() < 1e-4, "row {r} token {t}: {} vs {want}", got[r][t]);
        }
    }
}

#[test]
fn zero_vectors_have_no_ranking() {
    let lens = rms_lens(20, 4);
    let mut v = tensor(2, 4, 4).to_vec2::<f32>().unwrap();
    v[1] = vec![0.0; 4];
    let v = Tensor::new(v, &Device::Cpu).unwrap();
    let p = lens.project(&v, &ProjectOptions { k: 3, rank_tokens: vec![7], normalize: false }).unwrap();
    assert!(p[0].ranks[0].is_some() && p[0].top.len() == 3);
    assert_eq!(p[1].ranks, vec![None]);
    assert!(p[1].top.is_empty() && p[1].bottom.is_empty());
    assert_eq!(p[1].norm, 0.0);
    // The normalized lens must not turn a zero vector into NaN.
    let p = lens.project(&v, &ProjectOptions { k: 3, rank_tokens: vec![7], normalize: true }).unwrap();
    assert_eq!(p[1].ranks, vec![None]);
}

#[test]
fn under_layernorm_a_zero_vector_projects_to_the_bias() {
    let (weight, bias) = ((tensor(1, 4, 7).squeeze(0).unwrap() + 1.5).unwrap(), tensor(1, 4, 8).squeeze(0).unwrap());
    let unembed = tensor(20, 4, 2);
    let lens = LogitLens::new(Norm::Layer { weight, bias: bias.clone(), eps: 1e-5 }, unembed.clone()).unwrap();
    let zero = Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let p = lens.project(&zero, &ProjectOptions { k: 3, rank_tokens: (0..20).collect(), normalize: false }).unwrap();
    // LL(0) = β·D: the paper's "ZERO VECTOR" rows for GPT-2.
    let bias_logits =
        unembed.matmul(&bias.unsqueeze(1).unwrap()).unwrap().squeeze(1).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(p[0].top, full_order(&bias_logits)[..3].to_vec());
    assert_eq!(p[0].norm, 0.0);
    assert!(p[0].ranks.iter().all(Option::is_some));
}

#[test]
fn rmsnorm_lens_is_odd_so_bottom_of_v_is_top_of_minus_v() {
    let lens = rms_lens(64, 8);
    let v = tensor(4, 8, 5);
    let opts = ProjectOptions { k: 6, rank_tokens: (0..64).collect(), normalize: false };
    let plus = lens.project(&v, &opts).unwrap();
    let minus = lens.project(&v.neg().unwrap(), &opts).unwrap();
    for (p, m) in plus.iter().zip(&minus) {
        assert_eq!(p.bottom, m.top);
        for (rp, rm) in p.ranks.iter().zip(&m.ranks) {
            assert_eq!(rp.unwrap() + rm.unwrap(), 63, "random logits have no ties");
        }
    }
}

#[test]
fn normalized_lens_ranks_like_the_plain_one_for_rmsnorm_but_not_layernorm() {
    let v = (tensor(5, 8, 6) * 0.01).unwrap(); // small vectors: LayerNorm's bias matters
    let plain = ProjectOptions { k: 5, rank_tokens: (0..40).collect(), normalize: false };
    let normalized = ProjectOptions { normalize: true, ..plain.clone() };
    let rms = rms_lens(40, 8);
    let a = rms.project(&v, &plain).unwrap();
    let b = rms.project(&v, &normalized).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.ranks, y.ranks);
        assert_eq!(x.norm, y.norm, "the reported norm is the original vector's");
    }
    let ln = LogitLens::new(
        Norm::Layer {
            weight: (tensor(1, 8, 7).squeeze(0).unwrap() + 1.5).unwrap(),
            bias: tensor(1, 8, 8).squeeze(0).unwrap(),
            eps: 1e-5,
        },
        tensor(40, 8, 2),
    )
    .unwrap();
    let a = ln.project(&v, &plain).unwrap();
    let b = ln.project(&v, &normalized).unwrap();
    assert!(a.iter().zip(&b).any(|(x, y)| x.ranks != y.ranks), "LayerNorm's bias makes scale matter");
}

#[test]
fn bad_input_is_an_error() {
    let lens = rms_lens(10, 4);
    let err = lens.project(&tensor(2, 5, 9), &ProjectOptions::default()).unwrap_err();
    assert!(matches!(err, LensError::Dimension { expected: 4, .. }), "{err}");
    let err =
        lens.project(&tensor(2, 4, 9), &ProjectOptions { rank_tokens: vec![10], ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("token id 10"), "{err}");
    let err = LogitLens::new(Norm::Rms { weight: tensor(1, 4, 1).squeeze(0).unwrap(), eps: 1e-5 }, tensor(10, 5, 2))
        .unwrap_err();
    assert!(matches!(err, LensError::Mismatch { .. }), "{err}");
    let nan = Tensor::new(&[[f32::NAN, 0.0, 1.0, 2.0]], &Device::Cpu).unwrap();
    assert!(matches!(lens.project(&nan, &ProjectOptions::default()), Err(LensError::NonFinite { row: 0 })));
}

/// `summarize_row` on a row with NaN logits (the lens refuses such rows, direct callers may not):
/// a NaN is less extreme than every number at both ends, NaNs keep id order among themselves,
/// and a number displaces a NaN that was kept first.
#[test]
fn nan_logits_are_less_extreme_than_every_number() {
    let options = |k| ProjectOptions { k, rank_tokens: vec![], normalize: false };
    let row = [1.0, f32::NAN, -1.0, 2.0, f32::NAN];
    let three = summarize_row(&row, 1.0, &options(3));
    assert_eq!(three.top, vec![3, 0, 2]);
    assert_eq!(three.bottom, vec![2, 0, 3]);
    let all = summarize_row(&row, 1.0, &options(5));
    assert_eq!(all.top, vec![3, 0, 2, 1, 4]);
    assert_eq!(all.bottom, vec![2, 0, 3, 1, 4]);
    let nan_first = summarize_row(&[f32::NAN, 0.0, f32::NAN], 1.0, &options(1));
    assert_eq!((nan_first.top, nan_first.bottom), (vec![1], vec![1]));
}
