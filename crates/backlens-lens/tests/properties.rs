//! Statement 8, the lens's dependence on scale, as property tests: for a bias-free RMSNorm the
//! ranking of `LL(c·v)` does not depend on `c > 0` (so the normalized lens ranks identically);
//! for a LayerNorm with a bias it does (a constructed case where the target moves from the top
//! to the bottom); `LL(0)` under LayerNorm ranks like `β·D`. Dimensions first, then bounded
//! data; `PROPTEST_CASES` overrides the case count (default 32). Extends the unit tests of
//! `tests/lens.rs`, which check single fixed cases of the same facts.

use backlens_lens::{rank_of, LogitLens, ProjectOptions};
use backlens_ops::Norm;
use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    ProptestConfig::with_cases(cases)
}

fn data(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.0f64..1.0, len)
}

fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn row(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Ids by descending logit (ties: lower id first).
fn order(logits: &[f64]) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    ids
}

/// The smallest gap between consecutive sorted logits, relative to the largest |logit|.
fn relative_min_gap(logits: &[f64]) -> f64 {
    let o = order(logits);
    let scale = logits.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    o.windows(2).map(|w| logits[w[0]] - logits[w[1]]).fold(f64::INFINITY, f64::min) / scale.max(f64::MIN_POSITIVE)
}

fn rms_lens(gain: &[f64], unembed: &[f64], v: usize, d: usize, dtype: DType) -> LogitLens {
    let weight = tensor(&gain.iter().map(|g| g.abs() + 0.25).collect::<Vec<_>>(), &[d], dtype);
    LogitLens::new(Norm::Rms { weight, eps: 1e-5 }, tensor(unembed, &[v, d], dtype)).unwrap()
}

/// `(V, d, gain, unembedding, vector)`; V and d independent, so the unembedding is non-square.
fn lens_data() -> impl Strategy<Value = (usize, usize, Vec<f64>, Vec<f64>, Vec<f64>)> {
    (8usize..=48, 2usize..=16).prop_flat_map(|(v, d)| (Just(v), Just(d), data(d), data(v * d), data(d)))
}

proptest! {
    #![proptest_config(config())]

    /// RMSNorm(c·v) = (positive scalar)·RMSNorm(v) for c > 0, so the full ranking of
    /// `LL(c·v)` equals that of `LL(v)` for c across eight orders of magnitude. Computed in
    /// f64, where rounding (~1e-15 relative) cannot swap logits more than 1e-9 apart (assumed).
    #[test]
    fn rmsnorm_lens_ranking_does_not_depend_on_scale(
        (v, d, gain, unembed, vec) in lens_data(),
        log_c in -4.0f64..4.0,
    ) {
        let lens = rms_lens(&gain, &unembed, v, d, DType::F64);
        let x = tensor(&vec, &[1, d], DType::F64);
        let base = row(&lens.logits(&x).unwrap());
        prop_assume!(vec.iter().any(|x| x.abs() > 1e-3) && relative_min_gap(&base) > 1e-9);
        let scaled = row(&lens.logits(&x.affine(10f64.powf(log_c), 0.0).unwrap()).unwrap());
        prop_assert_eq!(order(&scaled), order(&base), "c = 1e{}", log_c);
    }

    /// The normalized lens (`ProjectOptions::normalize`, App. H) gives the same top-k, bottom-k
    /// and ranks as the plain one under RMSNorm, through `project` (f32). Logits closer than
    /// 1e-4 of the largest (f32 rounding, d <= 16 terms) could swap: such draws are skipped.
    #[test]
    fn rmsnorm_normalized_lens_ranks_identically(
        (v, d, gain, unembed, vec) in lens_data(),
        log_c in -3.0f64..3.0,
    ) {
        let lens = rms_lens(&gain, &unembed, v, d, DType::F32);
        let x = tensor(&vec, &[1, d], DType::F32).affine(10f64.powf(log_c), 0.0).unwrap();
        prop_assume!(vec.iter().any(|x| x.abs() > 1e-3) && relative_min_gap(&row(&lens.logits(&x).unwrap())) > 1e-4);
        let plain = ProjectOptions { k: 5, rank_tokens: (0..v as u32).collect(), normalize: false };
        let normalized = ProjectOptions { normalize: true, ..plain.clone() };
        let (a, b) = (lens.project(&x, &plain).unwrap(), lens.project(&x, &normalized).unwrap());
        prop_assert_eq!(&a[0].top, &b[0].top);
        prop_assert_eq!(&a[0].bottom, &b[0].bottom);
        prop_assert_eq!(&a[0].ranks, &b[0].ranks);
    }

    /// LayerNorm with a bias: `LN(0) = β` exactly, so `LL(0)` has the logits `β·D` and ranks
    /// like them (the paper's "ZERO VECTOR" rows for GPT-2). Logits equal to f32 rounding of a
    /// d-term dot product; rankings compared where no two logits are within 1e-4 (assumed).
    #[test]
    fn layernorm_lens_of_zero_is_the_bias_ranking(
        (v, d, gain, unembed, bias) in lens_data(),
    ) {
        let weight = tensor(&gain.iter().map(|g| g + 1.5).collect::<Vec<_>>(), &[d], DType::F32);
        let beta = tensor(&bias, &[d], DType::F32);
        let lens = LogitLens::new(Norm::Layer { weight, bias: beta, eps: 1e-5 }, tensor(&unembed, &[v, d], DType::F32)).unwrap();
        let zero = Tensor::zeros((1, d), DType::F32, &Device::Cpu).unwrap();
        let got = row(&lens.logits(&zero).unwrap());
        let explicit: Vec<f64> = (0..v).map(|k| (0..d).map(|j| bias[j] * unembed[k * d + j]).sum()).collect();
        let scale = explicit.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (g, e) in got.iter().zip(&explicit) {
            prop_assert!((g - e).abs() <= 1e-6 + 1e-5 * scale, "LL(0) logit {} vs beta·D {}", g, e);
        }
        prop_assume!(relative_min_gap(&explicit) > 1e-4);
        let p = lens.project(&zero, &ProjectOptions { k: 5, rank_tokens: (0..v as u32).collect(), normalize: false }).unwrap();
        let o: Vec<u32> = order(&explicit).into_iter().map(|k| k as u32).collect();
        prop_assert_eq!(&p[0].top, &o[..5.min(v)].to_vec());
        let expl32: Vec<f32> = explicit.iter().map(|&x| x as f32).collect();
        for t in 0..v as u32 {
            prop_assert_eq!(p[0].ranks[t as usize], Some(rank_of(&expl32, t)));
        }
    }

    /// LayerNorm with a bias: the ranking of `LL(c·v)` **does** depend on c, in a constructed
    /// case. Gain 1, unembedding rows centred (zero mean), token `a`'s row `D_a` four times
    /// longer than any other, `β = -γ D_a/|D_a|` with `0.1 <= γ <= sqrt(d)/2`, and `v = D_a`.
    /// * c tiny (1e-8): `LN(c v) ≈ β`, whose logits `β·D_k >= -γ|D_a|/4 > -γ|D_a| = β·D_a`:
    ///   `a` is the **least** likely token.
    /// * c = 10: `LN(c v) ≈ sqrt(d) D_a/|D_a| + β`; by Cauchy-Schwarz and `γ < 0.6 sqrt(d)`,
    ///   `a` is the **most** likely token.
    /// * The normalized lens sees `v/|v|` at either scale: `a` on top, unlike the plain lens at
    ///   tiny c. (Under RMSNorm none of this can happen: see the tests above.)
    #[test]
    fn layernorm_lens_ranking_depends_on_scale(
        (v, d, a, unembed, gamma_frac) in (3usize..=40, 2usize..=16, 0usize..40)
            .prop_flat_map(|(v, d, a)| (Just(v), Just(d), Just(a % v), data(v * d), 0.0f64..1.0)),
    ) {
        // Centre the rows; scale row a to 4x the longest other row.
        let mut u = unembed.clone();
        for k in 0..v {
            let mean = u[k * d..(k + 1) * d].iter().sum::<f64>() / d as f64;
            u[k * d..(k + 1) * d].iter_mut().for_each(|x| *x -= mean);
        }
        let norm = |k: usize, u: &[f64]| u[k * d..(k + 1) * d].iter().map(|x| x * x).sum::<f64>().sqrt();
        let longest = (0..v).filter(|&k| k != a).map(|k| norm(k, &u)).fold(0.0, f64::max);
        prop_assume!(longest > 0.1 && norm(a, &u) > 1e-3);
        let s = 4.0 * longest / norm(a, &u);
        u[a * d..(a + 1) * d].iter_mut().for_each(|x| *x *= s);
        let da: Vec<f64> = u[a * d..(a + 1) * d].to_vec();
        let na = norm(a, &u);
        let gamma = 0.1 + gamma_frac * ((d as f64).sqrt() / 2.0 - 0.1).max(0.0);
        let beta: Vec<f64> = da.iter().map(|x| -gamma * x / na).collect();
        let lens = LogitLens::new(
            Norm::Layer { weight: tensor(&vec![1.0; d], &[d], DType::F32), bias: tensor(&beta, &[d], DType::F32), eps: 1e-5 },
            tensor(&u, &[v, d], DType::F32),
        ).unwrap();
        let opts = ProjectOptions { k: 1, rank_tokens: vec![a as u32], normalize: false };
        let x = tensor(&da, &[1, d], DType::F32);
        let tiny = lens.project(&x.affine(1e-8, 0.0).unwrap(), &opts).unwrap();
        let large = lens.project(&x.affine(10.0, 0.0).unwrap(), &opts).unwrap();
        prop_assert_eq!(tiny[0].ranks[0], Some(v - 1), "tiny c: a must be the least likely");
        prop_assert_eq!(large[0].ranks[0], Some(0), "c = 10: a must be the most likely");
        let normalized = lens.project(&x.affine(1e-8, 0.0).unwrap(), &ProjectOptions { normalize: true, ..opts }).unwrap();
        prop_assert_eq!(normalized[0].ranks[0], Some(0), "the normalized lens ranks a on top at any scale");
    }
}
