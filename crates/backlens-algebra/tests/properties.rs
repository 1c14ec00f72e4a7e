//! Property tests of `LowRankGradient` against candle autograd, finite differences and dense
//! linear algebra. Dimensions are drawn first, then data from a bounded range; shapes are
//! non-square (d_in != d_out). `PROPTEST_CASES` overrides the default case count.

use backlens_algebra::{dense_singular_values, LowRankGradient, RankTolerance};
use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    ProptestConfig::with_cases(cases)
}

/// Layer dimensions `(n, d_in, d_out)` with `d_in != d_out`, any ordering of `n` against them.
fn dims() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=10, 1usize..=16, 1usize..=16).prop_map(|(n, a, b)| if a == b { (n, a, a + 1) } else { (n, a, b) })
}

/// Dimensions with `n < min(d_in, d_out)` and `d_in != d_out` (so rank n is reachable).
fn dims_thin() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=6, 1usize..=5, 1usize..=5, any::<bool>()).prop_map(|(n, extra_a, extra_b, swap)| {
        let a = n + extra_a;
        let b = if extra_a == extra_b { n + extra_b + 1 } else { n + extra_b };
        if swap {
            (n, b, a)
        } else {
            (n, a, b)
        }
    })
}

fn data(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.0f64..1.0, len)
}

/// `(n, d_in, d_out, x data, delta data)`.
fn factors(
    dims: impl Strategy<Value = (usize, usize, usize)>,
) -> impl Strategy<Value = (usize, usize, usize, Vec<f64>, Vec<f64>)> {
    dims.prop_flat_map(|(n, di, d_o)| (Just(n), Just(di), Just(d_o), data(n * di), data(n * d_o)))
}

fn tensor(v: &[f64], shape: (usize, usize), dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-5),
        _ => (1e-12, 1e-10),
    }
}

/// Asserts `|a - b| <= atol + rtol * scale` elementwise, `scale` being the largest |b|.
fn assert_close(a: &Tensor, b: &Tensor, atol: f64, rtol: f64, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.dims(), b.dims(), "{}: shapes differ", what);
    let (a, b) = (to_vec(a), to_vec(b));
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        prop_assert!(
            (x - y).abs() <= atol + rtol * scale,
            "{}: element {} differs: {} vs {} (scale {})",
            what,
            k,
            x,
            y,
            scale
        );
    }
    Ok(())
}

fn assert_close_vec(a: &[f64], b: &[f64], atol: f64, rtol: f64, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len(), "{}: lengths differ", what);
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            (x - y).abs() <= atol + rtol * scale,
            "{}: element {} differs: {} vs {} (scale {}); {:?} vs {:?}",
            what,
            k,
            x,
            y,
            scale,
            a,
            b
        );
    }
    Ok(())
}

fn dtype_of(f64_: bool) -> DType {
    if f64_ {
        DType::F64
    } else {
        DType::F32
    }
}

/// L(W) = sum(C * (x W^T)), so that dL/dy = C.
fn loss(x: &Tensor, w: &Tensor, c: &Tensor) -> Tensor {
    (c * x.matmul(&w.t().unwrap()).unwrap()).unwrap().sum_all().unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// 1. dense() equals candle autograd's dL/dW for y = x W^T, L = sum(C * y).
    #[test]
    fn dense_equals_autograd(
        (n, d_in, d_out, xv, cv) in factors(dims()),
        wv in data(17 * 17),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let x = tensor(&xv, (n, d_in), dtype);
        let c = tensor(&cv, (n, d_out), dtype);
        let w = Var::from_tensor(&tensor(&wv[..d_out * d_in], (d_out, d_in), dtype)).unwrap();
        let grads = loss(&x, w.as_tensor(), &c).backward().unwrap();
        let g = grads.get(w.as_tensor()).expect("gradient of W must be recorded");
        prop_assert_eq!(g.dims(), &[d_out, d_in]);
        let lr = LowRankGradient::new(x, c).unwrap();
        let (atol, rtol) = tol(dtype);
        assert_close(&lr.dense().unwrap(), g, atol, rtol, "dense vs autograd")?;
    }

    /// 1b. dense() matches central finite differences of L w.r.t. entries of W (f64).
    #[test]
    fn dense_equals_finite_differences(
        (n, d_in, d_out, xv, cv) in factors(dims()),
        wv in data(17 * 17),
        picks in prop::collection::vec((0usize..100, 0usize..100), 3),
    ) {
        let x = tensor(&xv, (n, d_in), DType::F64);
        let c = tensor(&cv, (n, d_out), DType::F64);
        let wflat = &wv[..d_out * d_in];
        let dense = to_vec(&LowRankGradient::new(x.clone(), c.clone()).unwrap().dense().unwrap());
        let h = 1e-3;
        let mut entries = vec![(0, 0), (d_out - 1, d_in - 1)];
        entries.extend(picks.iter().map(|&(r, k)| (r % d_out, k % d_in)));
        for (r, k) in entries {
            let mut plus = wflat.to_vec();
            plus[r * d_in + k] += h;
            let mut minus = wflat.to_vec();
            minus[r * d_in + k] -= h;
            let lp = loss(&x, &tensor(&plus, (d_out, d_in), DType::F64), &c).to_scalar::<f64>().unwrap();
            let lm = loss(&x, &tensor(&minus, (d_out, d_in), DType::F64), &c).to_scalar::<f64>().unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let an = dense[r * d_in + k];
            prop_assert!(
                (fd - an).abs() <= 1e-9 + 1e-7 * an.abs(),
                "dL/dW[{}, {}]: finite difference {} vs dense {}", r, k, fd, an
            );
        }
    }

    /// 2a. QR-core singular values equal the dense SVD's.
    #[test]
    fn singular_values_match_dense(
        (n, d_in, d_out, xv, dv) in factors(dims()),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let lr = LowRankGradient::new(tensor(&xv, (n, d_in), dtype), tensor(&dv, (n, d_out), dtype)).unwrap();
        let sv = lr.singular_values().unwrap();
        prop_assert_eq!(sv.len(), n.min(d_in).min(d_out));
        prop_assert!(sv.windows(2).all(|w| w[0] >= w[1]), "not descending: {:?}", sv);
        // The reference: the dense gradient of the same factors, formed in f64.
        let dense64 = LowRankGradient::new(
            tensor(&to_vec(lr.inputs()), (n, d_in), DType::F64),
            tensor(&to_vec(lr.vjps()), (n, d_out), DType::F64),
        ).unwrap().dense().unwrap();
        let reference = dense_singular_values(&dense64).unwrap();
        prop_assert_eq!(reference.len(), d_out.min(d_in));
        // Beyond min(n, d_in, d_out) the dense spectrum is numerically zero.
        let smax = reference[0];
        for s in &reference[sv.len()..] {
            prop_assert!(*s <= 1e-12 * (1.0 + smax), "trailing singular value {} in {:?}", s, reference);
        }
        assert_close_vec(&sv, &reference[..sv.len()], 1e-12, 1e-10, "QR-core vs dense SVD")?;
    }

    /// 2b. Generic random factors with n < min(d_in, d_out) give rank n (Lemma 4.1 is tight).
    #[test]
    fn generic_rank_is_n(
        (n, d_in, d_out, xv, dv) in factors(dims_thin()),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let lr = LowRankGradient::new(tensor(&xv, (n, d_in), dtype), tensor(&dv, (n, d_out), dtype)).unwrap();
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Default).unwrap(), n);
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Relative(1e-9)).unwrap(), n);
    }

    /// 2c. Factors that are products of rank-r matrices give rank r.
    #[test]
    fn product_factors_have_rank_r(
        (r, n, d_in, d_out, av, bv, cv, ev) in (1usize..=4, 0usize..=3, 0usize..=4, 0usize..=4)
            .prop_flat_map(|(r, en, ea, eb)| {
                let n = r + en + 1;
                let (d_in, d_out) = (n + ea, if ea == eb { n + eb + 1 } else { n + eb });
                (Just(r), Just(n), Just(d_in), Just(d_out),
                 data(n * r), data(r * d_in), data(n * r), data(r * d_out))
            }),
    ) {
        let dev = Device::Cpu;
        let a = Tensor::from_vec(av, (n, r), &dev).unwrap();
        let b = Tensor::from_vec(bv, (r, d_in), &dev).unwrap();
        let c = Tensor::from_vec(cv, (n, r), &dev).unwrap();
        let e = Tensor::from_vec(ev, (r, d_out), &dev).unwrap();
        let x = a.matmul(&b).unwrap();
        let delta = c.matmul(&e).unwrap();
        let lr = LowRankGradient::new(x, delta).unwrap();
        let sv = lr.singular_values().unwrap();
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Default).unwrap(), r, "spectrum {:?}", sv);
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Relative(1e-9)).unwrap(), r, "spectrum {:?}", sv);
    }

    /// 2d. All-zero VJPs give rank 0 and no NaN; the last layer's pattern (only the last token's
    /// VJP non-zero, Appendix A) gives rank 1.
    #[test]
    fn zero_vjps_give_rank_zero_and_last_layer_rank_one(
        (n, d_in, d_out, xv, dv) in factors(dims()),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let x = tensor(&xv, (n, d_in), dtype);
        let zero = LowRankGradient::new(x.clone(), Tensor::zeros((n, d_out), dtype, &Device::Cpu).unwrap()).unwrap();
        let sv = zero.singular_values().unwrap();
        prop_assert!(sv.iter().all(|s| *s == 0.0), "{:?}", sv);
        for tol in [RankTolerance::Default, RankTolerance::Relative(1e-6), RankTolerance::Absolute(0.0)] {
            prop_assert_eq!(zero.numerical_rank(tol).unwrap(), 0);
        }
        prop_assert_eq!(zero.frobenius_norm().unwrap(), 0.0);
        let both_zero = LowRankGradient::new(x.zeros_like().unwrap(), zero.vjps().clone()).unwrap();
        prop_assert_eq!(both_zero.numerical_rank(RankTolerance::Default).unwrap(), 0);

        // Zero out every VJP row but the last one.
        let mut last_only = vec![0.0; n * d_out];
        last_only[(n - 1) * d_out..].copy_from_slice(&dv[(n - 1) * d_out..]);
        prop_assume!(dv[(n - 1) * d_out..].iter().any(|v| v.abs() > 1e-3));
        prop_assume!(xv[(n - 1) * d_in..].iter().any(|v| v.abs() > 1e-3));
        let last = LowRankGradient::new(x, tensor(&last_only, (n, d_out), dtype)).unwrap();
        prop_assert_eq!(last.numerical_rank(RankTolerance::Default).unwrap(), 1, "{:?}", last.singular_values().unwrap());
    }

    /// 2e. Making two VJP rows linearly dependent lowers the rank by one (Lemma 4.1 remark).
    #[test]
    fn dependent_vjp_rows_drop_rank_by_one(
        (n, d_in, d_out, xv, dv) in factors(dims_thin().prop_filter("n >= 2", |d| d.0 >= 2)),
        (a, b) in (0usize..100, 1usize..100),
        scale in prop::sample::select(vec![-2.0f64, -1.0, -0.5, 0.5, 1.0, 2.0]),
        (alpha, beta) in (0.25f64..1.0, -1.0f64..-0.25),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let (a, b) = (a % n, (a + b % (n - 1) + 1) % n);
        prop_assert_ne!(a, b);
        let x = tensor(&xv, (n, d_in), dtype);
        let full = LowRankGradient::new(x.clone(), tensor(&dv, (n, d_out), dtype)).unwrap();
        prop_assert_eq!(full.numerical_rank(RankTolerance::Default).unwrap(), n);

        // delta_b = scale * delta_a, exact in floating point (scale is a power of two).
        let mut dep = dv.clone();
        for k in 0..d_out {
            dep[b * d_out + k] = scale * dv[a * d_out + k];
        }
        let lr = LowRankGradient::new(x.clone(), tensor(&dep, (n, d_out), dtype)).unwrap();
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Default).unwrap(), n - 1, "{:?}", lr.singular_values().unwrap());

        // A general combination of two other rows (rounded): rank n - 1 at a relative tolerance.
        if n >= 3 && use_f64 {
            let c = (0..n).find(|&k| k != a && k != b).unwrap();
            let mut comb = dv.clone();
            for k in 0..d_out {
                comb[b * d_out + k] = alpha * dv[a * d_out + k] + beta * dv[c * d_out + k];
            }
            let lr = LowRankGradient::new(x, tensor(&comb, (n, d_out), dtype)).unwrap();
            prop_assert_eq!(lr.numerical_rank(RankTolerance::Relative(1e-10)).unwrap(), n - 1);
        }
    }

    /// 3. Neuron views are rows/columns of dense(); token terms sum to dense(); the factored
    /// Frobenius norm equals the dense one; dense_transposed() is dense()^T.
    #[test]
    fn views_agree_with_dense(
        (n, d_in, d_out, xv, dv) in factors(dims()),
        out_units in prop::collection::vec(0usize..100, 0..5),
        in_units in prop::collection::vec(0usize..100, 0..5),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let (atol, rtol) = tol(dtype);
        let lr = LowRankGradient::new(tensor(&xv, (n, d_in), dtype), tensor(&dv, (n, d_out), dtype)).unwrap();
        prop_assert_eq!((lr.n_tokens(), lr.d_in(), lr.d_out()), (n, d_in, d_out));
        let dense = lr.dense().unwrap();
        prop_assert_eq!(dense.dims(), &[d_out, d_in]);

        // Rows of dL/dW, checked element by element against the dense matrix.
        let out_units: Vec<usize> = out_units.iter().map(|u| u % d_out).collect();
        let rows = lr.output_neurons(&out_units).unwrap();
        prop_assert_eq!(rows.dims(), &[out_units.len(), d_in]);
        let dv_dense = to_vec(&dense);
        let expected_rows: Vec<f64> = out_units.iter()
            .flat_map(|&j| dv_dense[j * d_in..(j + 1) * d_in].to_vec()).collect();
        assert_close_vec(&to_vec(&rows), &expected_rows, atol, rtol, "output_neurons")?;

        // Columns of dL/dW, returned as rows.
        let in_units: Vec<usize> = in_units.iter().map(|u| u % d_in).collect();
        let cols = lr.input_neurons(&in_units).unwrap();
        prop_assert_eq!(cols.dims(), &[in_units.len(), d_out]);
        let expected_cols: Vec<f64> = in_units.iter()
            .flat_map(|&j| (0..d_out).map(move |r| (r, j)))
            .map(|(r, j)| dv_dense[r * d_in + j]).collect();
        assert_close_vec(&to_vec(&cols), &expected_cols, atol, rtol, "input_neurons")?;

        // Per-token rank-1 terms sum to the gradient.
        let mut sum = dense.zeros_like().unwrap();
        for i in 0..n {
            let term = lr.token_contribution(i).unwrap();
            prop_assert_eq!(term.n_tokens(), 1);
            prop_assert!(term.numerical_rank(RankTolerance::Default).unwrap() <= 1);
            sum = (sum + term.dense().unwrap()).unwrap();
        }
        assert_close(&sum, &dense, atol, rtol, "sum of token contributions")?;

        // Frobenius norm from the factors.
        let fro = lr.frobenius_norm().unwrap();
        let fro_dense = dv_dense.iter().map(|v| v * v).sum::<f64>().sqrt();
        prop_assert!((fro - fro_dense).abs() <= atol + rtol * fro_dense, "{} vs {}", fro, fro_dense);
        // ... which is also the 2-norm of the spectrum.
        let fro_sv = lr.singular_values().unwrap().iter().map(|s| s * s).sum::<f64>().sqrt();
        prop_assert!((fro - fro_sv).abs() <= 1e-12 + 1e-10 * fro, "{} vs {}", fro, fro_sv);

        // Conv1D layout.
        let dt = lr.dense_transposed().unwrap();
        prop_assert_eq!(dt.dims(), &[d_in, d_out]);
        assert_close(&dt, &dense.t().unwrap(), atol, rtol, "dense_transposed")?;
    }
}

/// `y = x W^T + b` through candle's ordinary matmul, followed by a non-linear loss
/// `L = sum(C * y^2)`, so the VJPs `delta = 2 C * y` are genuine (they depend on W, b and x).
/// The VJPs are read from a zero probe `p` (`y + p`), the way the model's trace reads them.
/// Returns `(dL/dW, dL/db, Delta)` from autograd.
fn biased_autograd(x: &Tensor, w: &Tensor, b: &Tensor, c: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (w, b) = (Var::from_tensor(w).unwrap(), Var::from_tensor(b).unwrap());
    let y = x.matmul(&w.as_tensor().t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap();
    let probe = Var::zeros(y.shape(), y.dtype(), y.device()).unwrap();
    let y = (y + probe.as_tensor()).unwrap();
    let grads = (c * y.sqr().unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    (
        grads.get(w.as_tensor()).expect("dL/dW").clone(),
        grads.get(b.as_tensor()).expect("dL/db").clone(),
        grads.get(probe.as_tensor()).expect("dL/dy").clone(),
    )
}

/// `(n, d_in, d_out, x, w, b, c)` data for a biased layer.
#[allow(clippy::type_complexity)]
fn biased_layer(
    dims: impl Strategy<Value = (usize, usize, usize)>,
) -> impl Strategy<Value = (usize, usize, usize, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)> {
    dims.prop_flat_map(|(n, di, d_o)| {
        (Just(n), Just(di), Just(d_o), data(n * di), data(d_o * di), data(d_o), data(n * d_o))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Statement 1 (Lemma 4.1 with a bias): for `y_i = W x_i + b`, autograd's dL/dW is
    /// `Delta^T X` (`dense`) and dL/db is `sum_i delta_i` (`bias_gradient`), with the VJPs
    /// `delta_i` read from a probe. The augmented weight `[W | b]` has gradient `Delta^T [X | 1]`.
    /// Tolerance: f32 sums over n <= 10 tokens of products of O(1) values, so `1e-5 + 1e-5·max`.
    #[test]
    fn bias_gradient_equals_autograd(
        (n, d_in, d_out, xv, wv, bv, cv) in biased_layer(dims()),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let (atol, rtol) = tol(dtype);
        let x = tensor(&xv, (n, d_in), dtype);
        let w = tensor(&wv, (d_out, d_in), dtype);
        let b = tensor(&bv, (1, d_out), dtype).squeeze(0).unwrap();
        let c = tensor(&cv, (n, d_out), dtype);
        let (dw, db, delta) = biased_autograd(&x, &w, &b, &c);
        let lr = LowRankGradient::new(x.clone(), delta.clone()).unwrap();
        assert_close(&lr.dense().unwrap(), &dw, atol, rtol, "dL/dW = Delta^T X")?;
        let bias = lr.bias_gradient().unwrap();
        prop_assert_eq!(bias.dims(), &[d_out]);
        assert_close(&bias, &db, atol, rtol, "dL/db = sum_i delta_i")?;

        // The bias is a weight column with constant input 1.
        let ones = Tensor::ones((n, 1), dtype, &Device::Cpu).unwrap();
        let aug = LowRankGradient::new(Tensor::cat(&[&x, &ones], 1).unwrap(), delta).unwrap();
        let expected = Tensor::cat(&[&dw, &db.unsqueeze(1).unwrap()], 1).unwrap();
        assert_close(&aug.dense().unwrap(), &expected, atol, rtol, "d/d[W|b] = Delta^T [X|1]")?;
        prop_assert!(aug.numerical_rank(RankTolerance::Default).unwrap() <= n);
    }

    /// Statement 1, checked without autograd: central finite differences (f64) of
    /// `L = sum(C * (x W^T + b)^2)` w.r.t. entries of `b` and `W` agree with `bias_gradient` and
    /// `dense` built from the probe's VJPs. `L` is quadratic, so the central difference is exact
    /// up to rounding: `h = 1e-3`, tolerance `1e-8 + 1e-7·|g|` (rounding of `L ~ n·d_out` over `2h`).
    #[test]
    fn bias_gradient_equals_finite_differences(
        (n, d_in, d_out, xv, wv, bv, cv) in biased_layer(dims()),
        picks in prop::collection::vec((0usize..100, 0usize..100), 3),
    ) {
        let f = DType::F64;
        let x = tensor(&xv, (n, d_in), f);
        let c = tensor(&cv, (n, d_out), f);
        let w = tensor(&wv, (d_out, d_in), f);
        let b = tensor(&bv, (1, d_out), f).squeeze(0).unwrap();
        let (_, _, delta) = biased_autograd(&x, &w, &b, &c);
        let lr = LowRankGradient::new(x.clone(), delta).unwrap();
        let (dense, bias) = (to_vec(&lr.dense().unwrap()), to_vec(&lr.bias_gradient().unwrap()));
        let l = |wv: &[f64], bv: &[f64]| -> f64 {
            let y = x.matmul(&tensor(wv, (d_out, d_in), f).t().unwrap()).unwrap()
                .broadcast_add(&tensor(bv, (1, d_out), f)).unwrap();
            (&c * y.sqr().unwrap()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        let h = 1e-3;
        for (k, &(r, _)) in picks.iter().enumerate() {
            let r = if k == 0 { d_out - 1 } else { r % d_out };
            let (mut p, mut m) = (bv.clone(), bv.clone());
            p[r] += h;
            m[r] -= h;
            let fd = (l(&wv, &p) - l(&wv, &m)) / (2.0 * h);
            prop_assert!((fd - bias[r]).abs() <= 1e-8 + 1e-7 * fd.abs(), "dL/db[{}]: fd {} vs {}", r, fd, bias[r]);
        }
        for &(r, k) in &picks {
            let (r, k) = (r % d_out, k % d_in);
            let (mut p, mut m) = (wv.clone(), wv.clone());
            p[r * d_in + k] += h;
            m[r * d_in + k] -= h;
            let fd = (l(&p, &bv) - l(&m, &bv)) / (2.0 * h);
            let an = dense[r * d_in + k];
            prop_assert!((fd - an).abs() <= 1e-8 + 1e-7 * fd.abs(), "dL/dW[{}, {}]: fd {} vs {}", r, k, fd, an);
        }
    }

    /// Statement 1, rank drop through the *inputs*: making two input rows linearly dependent
    /// (`x_b = s·x_a`, exact for a power-of-two `s`; or `x_b = alpha x_a + beta x_c`) lowers the
    /// rank from n to n - 1, with generic VJPs. (The VJP side is `dependent_vjp_rows_drop_rank_by_one`.)
    #[test]
    fn dependent_input_rows_drop_rank_by_one(
        (n, d_in, d_out, xv, dv) in factors(dims_thin().prop_filter("n >= 2", |d| d.0 >= 2)),
        (a, b) in (0usize..100, 1usize..100),
        scale in prop::sample::select(vec![-2.0f64, -1.0, -0.5, 0.5, 1.0, 2.0]),
        (alpha, beta) in (0.25f64..1.0, -1.0f64..-0.25),
        use_f64 in any::<bool>(),
    ) {
        let dtype = dtype_of(use_f64);
        let (a, b) = (a % n, (a + b % (n - 1) + 1) % n);
        let delta = tensor(&dv, (n, d_out), dtype);
        let full = LowRankGradient::new(tensor(&xv, (n, d_in), dtype), delta.clone()).unwrap();
        prop_assert_eq!(full.numerical_rank(RankTolerance::Default).unwrap(), n);

        let mut dep = xv.clone();
        for k in 0..d_in {
            dep[b * d_in + k] = scale * xv[a * d_in + k];
        }
        let lr = LowRankGradient::new(tensor(&dep, (n, d_in), dtype), delta.clone()).unwrap();
        prop_assert_eq!(lr.numerical_rank(RankTolerance::Default).unwrap(), n - 1, "{:?}", lr.singular_values().unwrap());

        if n >= 3 && use_f64 {
            let c = (0..n).find(|&k| k != a && k != b).unwrap();
            let mut comb = xv.clone();
            for k in 0..d_in {
                comb[b * d_in + k] = alpha * xv[a * d_in + k] + beta * xv[c * d_in + k];
            }
            let lr = LowRankGradient::new(tensor(&comb, (n, d_in), dtype), delta).unwrap();
            prop_assert_eq!(lr.numerical_rank(RankTolerance::Relative(1e-10)).unwrap(), n - 1);
        }
    }
}
