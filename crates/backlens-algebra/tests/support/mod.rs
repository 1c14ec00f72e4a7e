//! Helpers shared by `imprint_shift.rs` and `neurons.rs` (not a test target itself).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;

/// `PROPTEST_CASES` overrides the default case count (small, so that the crate's whole test run
/// stays well under a minute on 2 cores).
pub fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig::with_cases(cases)
}

/// Bounded data: never `any::<f64>()` (NaN, infinities).
pub fn data(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.0f64..1.0, len)
}

/// Two different sizes in `lo..=hi` (non-square matrices catch transposes).
pub fn two_sizes(lo: usize, hi: usize) -> impl Strategy<Value = (usize, usize)> {
    (lo..=hi, lo..=hi).prop_map(|(a, b)| if a == b { (a, a + 1) } else { (a, b) })
}

pub fn dtype_of(f64_: bool) -> DType {
    if f64_ {
        DType::F64
    } else {
        DType::F32
    }
}

pub fn eps(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f32::EPSILON as f64,
        _ => f64::EPSILON,
    }
}

pub fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

pub fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts `|a_k - b_k| <= bound_k` elementwise, with a readable message.
pub fn assert_within(a: &Tensor, b: &Tensor, bound: &[f64], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.dims(), b.dims(), "{}: shapes differ", what);
    let (a, b) = (to_vec(a), to_vec(b));
    for (k, ((x, y), t)) in a.iter().zip(&b).zip(bound).enumerate() {
        prop_assert!((x - y).abs() <= *t, "{}: element {} differs: {} vs {} (bound {:e})", what, k, x, y, t);
    }
    Ok(())
}

/// Asserts `|a - b| <= atol + rtol * max|b|` elementwise.
pub fn assert_close(a: &Tensor, b: &Tensor, atol: f64, rtol: f64, what: &str) -> Result<(), TestCaseError> {
    let scale = to_vec(b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = vec![atol + rtol * scale; b.elem_count()];
    assert_within(a, b, &bound, what)
}

/// Worst-case rounding bound for `W' x - W x` compared with an exact rank-one change `pred`
/// (element `j`): each matrix-vector product of length `d_in` errs by at most
/// `d_in·eps·(|W| |x|)_j` (standard dot-product bound), forming `W'` adds `eps·(|W'| |x|)_j`, the
/// subtraction and `pred`'s own rounding add `eps` of the magnitudes. So
/// `bound_j = (d_in + 2)·eps·((|W| + |W'|) |x|)_j + 4·eps·|pred_j| + tiny`.
/// The bound is linear in the reduction length `d_in`, never flakes, and stays orders of
/// magnitude below the O(1) errors of an orientation or sign bug.
pub fn rerun_bound(w: &Tensor, w_new: &Tensor, x: &Tensor, pred: &Tensor) -> Vec<f64> {
    let f = DType::F64;
    let e = eps(w.dtype());
    let d_in = w.dims()[1] as f64;
    let abs_sum = (w.to_dtype(f).unwrap().abs().unwrap() + w_new.to_dtype(f).unwrap().abs().unwrap()).unwrap();
    let mag = abs_sum.matmul(&x.to_dtype(f).unwrap().abs().unwrap().unsqueeze(1).unwrap()).unwrap();
    to_vec(&mag).iter().zip(to_vec(pred)).map(|(m, p)| (d_in + 2.0) * e * m + 4.0 * e * p.abs() + 1e-300).collect()
}

/// `W x` for one vector: the layer rerun on one token.
pub fn apply(w: &Tensor, x: &Tensor) -> Tensor {
    w.matmul(&x.unsqueeze(1).unwrap()).unwrap().squeeze(1).unwrap()
}
