//! Statement 7: neuron views (Section 4.2) and the helpers of the neuron-level analysis
//! (Appendix C): batched cosine similarity and the signed top-k lens intersection, composed
//! with `backlens_lens::LogitLens` on random data where the answer is known.
//! `PROPTEST_CASES` overrides the case counts.

mod support;

use backlens_algebra::{
    cosine_similarity, top_k_intersection, AlgebraError, LensReading, LowRankGradient, SpanningSet,
};
use backlens_lens::{LogitLens, ProjectOptions, Projection};
use backlens_ops::Norm;
use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use std::collections::HashSet;
use support::*;

/// The paper's k (Appendix C: top-100 / bottom-100).
const K: usize = 100;

fn reading(p: &Projection, r: LensReading) -> &[u32] {
    match r {
        LensReading::MostLikely => &p.top,
        LensReading::LeastLikely => &p.bottom,
    }
}

/// A random RMSNorm lens (bias-free, positive gain) over `v` tokens of width `d`.
fn rms_lens(gain: &[f64], unembed: &[f64], v: usize, d: usize) -> LogitLens {
    let weight = tensor(&gain.iter().map(|g| g.abs() + 0.5).collect::<Vec<_>>(), &[d], DType::F32);
    LogitLens::new(Norm::Rms { weight, eps: 1e-5 }, tensor(unembed, &[v, d], DType::F32)).unwrap()
}

proptest! {
    #![proptest_config(config(32))]

    /// `cosine_similarity` equals the pairwise formula, is invariant to positive scaling of a
    /// row, flips sign under negation, gives 1 on the diagonal of `cos(a, a)` and 0 for a zero
    /// row. Tolerance: f64, reductions of length d <= 16: `1e-12`.
    #[test]
    fn cosine_similarity_matches_the_pairwise_formula(
        (m, k, d, av, bv) in (1usize..=5, 1usize..=6, 1usize..=16).prop_flat_map(|(m, k, d)| (Just(m), Just(k), Just(d), data(m * d), data(k * d))),
        c in 0.01f64..100.0,
    ) {
        let (a, b) = (tensor(&av, &[m, d], DType::F64), tensor(&bv, &[k, d], DType::F64));
        let cos = cosine_similarity(&a, &b).unwrap();
        prop_assert_eq!(cos.dims(), &[m, k]);
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut expected = vec![0.0; m * k];
        for r in 0..m {
            for s in 0..k {
                let (x, y) = (&av[r * d..(r + 1) * d], &bv[s * d..(s + 1) * d]);
                let (nx, ny) = (norm(x), norm(y));
                expected[r * k + s] = if nx == 0.0 || ny == 0.0 { 0.0 } else { x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>() / (nx * ny) };
            }
        }
        assert_close(&cos, &tensor(&expected, &[m, k], DType::F64), 1e-12, 0.0, "cosine vs pairwise")?;
        prop_assert!(to_vec(&cos).iter().all(|v| v.abs() <= 1.0 + 1e-12));
        assert_close(&cosine_similarity(&a.affine(c, 0.0).unwrap(), &b).unwrap(), &cos, 1e-12, 0.0, "positive scaling")?;
        assert_close(&cosine_similarity(&a.neg().unwrap(), &b).unwrap(), &cos.neg().unwrap(), 1e-12, 0.0, "negation")?;
        let self_cos = to_vec(&cosine_similarity(&a, &a).unwrap());
        for r in 0..m {
            let nonzero = av[r * d..(r + 1) * d].iter().any(|v| *v != 0.0);
            prop_assert!(!nonzero || (self_cos[r * m + r] - 1.0).abs() < 1e-12);
        }
        let with_zero = Tensor::cat(&[&b, &b.get(0).unwrap().zeros_like().unwrap().unsqueeze(0).unwrap()], 0).unwrap();
        let z = to_vec(&cosine_similarity(&a, &with_zero).unwrap());
        prop_assert!((0..m).all(|r| z[r * (k + 1) + k] == 0.0), "zero row must give 0, got {:?}", z);
    }

    /// `top_k_intersection` is the size of the set intersection: symmetric, bounded by each
    /// list's number of distinct ids, duplicates counted once, a list with itself gives its
    /// distinct count.
    #[test]
    fn top_k_intersection_is_the_set_intersection(
        a in prop::collection::vec(0u32..60, 0..40),
        b in prop::collection::vec(0u32..60, 0..40),
    ) {
        let (sa, sb): (HashSet<u32>, HashSet<u32>) = (a.iter().copied().collect(), b.iter().copied().collect());
        let brute = sa.iter().filter(|x| sb.contains(x)).count();
        prop_assert_eq!(top_k_intersection(&a, &b), brute);
        prop_assert_eq!(top_k_intersection(&b, &a), brute);
        prop_assert_eq!(top_k_intersection(&a, &a), sa.len());
        prop_assert!(brute <= sa.len().min(sb.len()));
    }

    /// The signed lens intersection of Appendix C, composed with the real `LogitLens` (RMSNorm,
    /// V >= 200 so that a ranking's top-100 and bottom-100 are disjoint):
    /// * FF2 (`SpanningSet::Vjps`, read by the bottom-100): choose the inputs so that gradient
    ///   neuron j (`input_neurons`) is exactly `s·delta_a`. With `s = +1` its bottom-100 equals
    ///   `delta_a`'s: intersection 100, cosine 1. With `s = -1` (the neuron *subtracts*
    ///   `delta_a`) the bottom-100 of the neuron is the top-100 of `delta_a`: intersection 0,
    ///   cosine -1.
    /// * FF1 (`SpanningSet::Inputs`, read by the top-100): choose the VJPs so that gradient neuron
    ///   j (`output_neurons`) is exactly `s·x_a`; the same known answers.
    ///
    /// `s = ±1` keeps every product exact (`0·v + s·v`), and RMSNorm is odd, so the answers are
    /// exact: no tolerance is involved.
    #[test]
    fn signed_lens_intersection_of_a_neuron_equal_to_a_spanning_vector(
        (v, d, (n, d_ff), a, j, gain, unembed, xv, dv) in (200usize..=320, two_sizes(4, 14), (2usize..=5, 3usize..=12), 0usize..5, 0usize..12)
            .prop_flat_map(|(v, (d, _), (n, d_ff), a, j)| {
                let d_ff = if d_ff == d { d + 1 } else { d_ff };
                (Just(v), Just(d), Just((n, d_ff)), Just(a % n), Just(j % d_ff), data(d), data(v * d), data(n * d_ff), data(n * d))
            }),
        negate in any::<bool>(),
    ) {
        let lens = rms_lens(&gain, &unembed, v, d);
        let opts = ProjectOptions { k: K, rank_tokens: vec![], normalize: false };
        let s = if negate { -1.0 } else { 1.0 };
        let expected = if negate { 0 } else { K };
        let project = |t: &Tensor| lens.project(&t.to_dtype(DType::F32).unwrap(), &opts).unwrap();

        // FF2: X (n, d_ff) with column j = s·e_a, Delta (n, d) generic; neuron j = s·delta_a.
        let mut x = xv.clone();
        for i in 0..n {
            x[i * d_ff + j] = if i == a { s } else { 0.0 };
        }
        let g = LowRankGradient::new(tensor(&x, &[n, d_ff], DType::F32), tensor(&dv, &[n, d], DType::F32)).unwrap();
        let neuron = g.input_neurons(&[j]).unwrap(); // (1, d)
        let spanning = g.vjps().get(a).unwrap().unsqueeze(0).unwrap();
        let r = SpanningSet::Vjps.reading();
        prop_assert_eq!(r, LensReading::LeastLikely);
        let (pn, ps) = (project(&neuron), project(&spanning));
        prop_assume!(!ps[0].bottom.is_empty()); // a zero delta_a has no ranking
        prop_assert_eq!(top_k_intersection(reading(&pn[0], r), reading(&ps[0], r)), expected, "FF2, s = {}", s);
        let cos = to_vec(&cosine_similarity(&neuron, &spanning).unwrap())[0];
        prop_assert!((cos - s).abs() < 1e-5, "FF2 cosine {}", cos);

        // FF1: X (n, d) generic, Delta (n, d_ff) with column j = s·e_a; neuron j = s·x_a.
        let mut delta = vec![0.5; n * d_ff];
        for i in 0..n {
            delta[i * d_ff + j] = if i == a { s } else { 0.0 };
        }
        let g = LowRankGradient::new(tensor(&dv, &[n, d], DType::F32), tensor(&delta, &[n, d_ff], DType::F32)).unwrap();
        let neuron = g.output_neurons(&[j]).unwrap(); // (1, d)
        let spanning = g.inputs().get(a).unwrap().unsqueeze(0).unwrap();
        let r = SpanningSet::Inputs.reading();
        prop_assert_eq!(r, LensReading::MostLikely);
        let (pn, ps) = (project(&neuron), project(&spanning));
        prop_assert_eq!(top_k_intersection(reading(&pn[0], r), reading(&ps[0], r)), expected, "FF1, s = {}", s);
    }
}

#[test]
fn cosine_similarity_rejects_mismatched_shapes() {
    let dev = Device::Cpu;
    let a = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let b = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
    let err = cosine_similarity(&a, &b).unwrap_err();
    assert!(matches!(err, AlgebraError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("[2, 3]") && err.to_string().contains("[4, 5]"), "{err}");
    let err = cosine_similarity(&a, &a.to_dtype(DType::F64).unwrap()).unwrap_err().to_string();
    assert!(err.contains("F64"), "{err}");
}
