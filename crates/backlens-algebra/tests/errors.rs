//! Error cases: every invalid input gives `Err` with a message naming the shapes or index.

use backlens_algebra::{dense_singular_values, AlgebraError, LowRankGradient, RankTolerance};
use candle_core::{DType, Device, Tensor};

fn t(shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap().to_dtype(dtype).unwrap().reshape(shape).unwrap()
}

fn msg<T: std::fmt::Debug>(r: Result<T, AlgebraError>) -> (AlgebraError, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "error message {message:?} does not mention {p:?}");
    }
}

#[test]
fn mismatched_token_count() {
    let (e, m) = msg(LowRankGradient::new(t(&[3, 4], DType::F32), t(&[2, 5], DType::F32)));
    assert!(matches!(e, AlgebraError::TokenCountMismatch { .. }), "{e:?}");
    assert_mentions(&m, &["[3, 4]", "[2, 5]"]);
}

#[test]
fn one_dimensional_and_three_dimensional_factors() {
    let (e, m) = msg(LowRankGradient::new(t(&[4], DType::F32), t(&[2, 5], DType::F32)));
    assert!(matches!(e, AlgebraError::NotTwoDimensional { .. }), "{e:?}");
    assert_mentions(&m, &["[4]", "[2, 5]"]);
    let (_, m) = msg(LowRankGradient::new(t(&[2, 4], DType::F32), t(&[5], DType::F32)));
    assert_mentions(&m, &["[2, 4]", "[5]"]);
    let (_, m) = msg(LowRankGradient::new(t(&[1, 2, 4], DType::F32), t(&[2, 5], DType::F32)));
    assert_mentions(&m, &["[1, 2, 4]", "[2, 5]"]);
}

#[test]
fn empty_factors() {
    let (e, m) = msg(LowRankGradient::new(t(&[0, 4], DType::F32), t(&[0, 5], DType::F32)));
    assert!(matches!(e, AlgebraError::EmptyFactor { .. }), "{e:?}");
    assert_mentions(&m, &["[0, 4]", "[0, 5]"]);
    let (e, _) = msg(LowRankGradient::new(t(&[2, 0], DType::F32), t(&[2, 5], DType::F32)));
    assert!(matches!(e, AlgebraError::EmptyFactor { .. }), "{e:?}");
}

#[test]
fn dtype_mismatch() {
    let (e, m) = msg(LowRankGradient::new(t(&[2, 4], DType::F32), t(&[2, 5], DType::F64)));
    assert!(matches!(e, AlgebraError::DTypeMismatch { .. }), "{e:?}");
    assert_mentions(&m, &["[2, 4]", "[2, 5]", "F32", "F64"]);
}

#[test]
fn unsupported_dtype() {
    for dtype in [DType::F16, DType::BF16, DType::U32] {
        let (e, m) = msg(LowRankGradient::new(t(&[2, 4], dtype), t(&[2, 5], dtype)));
        assert!(matches!(e, AlgebraError::UnsupportedDType { .. }), "{e:?}");
        assert_mentions(&m, &["[2, 4]", "[2, 5]", &format!("{dtype:?}")]);
    }
}

#[test]
fn out_of_range_units_and_tokens() {
    // d_out = 5, d_in = 4.
    let g = LowRankGradient::new(t(&[2, 4], DType::F64), t(&[2, 5], DType::F64)).unwrap();
    assert!(g.output_neurons(&[0, 4]).is_ok());
    let (e, m) = msg(g.output_neurons(&[0, 5]));
    assert!(matches!(e, AlgebraError::UnitOutOfRange { index: 5, .. }), "{e:?}");
    assert_mentions(&m, &["output", "5", "d_out = 5", "d_in = 4"]);

    assert!(g.input_neurons(&[3]).is_ok());
    let (e, m) = msg(g.input_neurons(&[1, 4]));
    assert!(matches!(e, AlgebraError::UnitOutOfRange { index: 4, .. }), "{e:?}");
    assert_mentions(&m, &["input", "index 4", "0..4"]);

    let (e, m) = msg(g.token_contribution(2));
    assert!(matches!(e, AlgebraError::TokenOutOfRange { index: 2, n: 2, .. }), "{e:?}");
    assert_mentions(&m, &["index 2", "n = 2", "[2, 4]", "[2, 5]"]);
}

#[test]
fn empty_unit_lists_give_empty_matrices() {
    let g = LowRankGradient::new(t(&[2, 4], DType::F32), t(&[2, 5], DType::F32)).unwrap();
    assert_eq!(g.output_neurons(&[]).unwrap().dims(), &[0, 4]);
    assert_eq!(g.input_neurons(&[]).unwrap().dims(), &[0, 5]);
}

#[test]
fn invalid_tolerances() {
    let g = LowRankGradient::new(t(&[2, 4], DType::F32), t(&[2, 5], DType::F32)).unwrap();
    for tol in [
        RankTolerance::Relative(-1e-3),
        RankTolerance::Relative(f64::NAN),
        RankTolerance::Absolute(f64::INFINITY),
        RankTolerance::Absolute(-1.0),
    ] {
        let (e, _) = msg(g.numerical_rank(tol));
        assert!(matches!(e, AlgebraError::InvalidTolerance(_)), "{e:?}");
    }
}

#[test]
fn non_finite_factors_are_reported() {
    let x = Tensor::new(&[[1.0f64, f64::NAN, 0.0]], &Device::Cpu).unwrap();
    let d = Tensor::new(&[[1.0f64, 2.0]], &Device::Cpu).unwrap();
    let g = LowRankGradient::new(x, d).unwrap();
    let (e, m) = msg(g.singular_values());
    assert!(matches!(e, AlgebraError::NonFinite { .. }), "{e:?}");
    assert_mentions(&m, &["[1, 3]"]);
}

#[test]
fn dense_singular_values_needs_a_matrix() {
    let (e, m) = msg(dense_singular_values(&t(&[6], DType::F32)));
    assert!(matches!(e, AlgebraError::NotAMatrix { .. }), "{e:?}");
    assert_mentions(&m, &["[6]"]);
    let (_, m) = msg(dense_singular_values(&t(&[1, 2, 3], DType::F32)));
    assert_mentions(&m, &["[1, 2, 3]"]);
}

/// A hand-checkable example: dL/dW for two tokens, known spectrum and rank.
#[test]
fn small_worked_example() {
    let dev = Device::Cpu;
    // x_1 = e_1, x_2 = e_2 in R^3; delta_1 = (3, 0), delta_2 = (0, 4) in R^2.
    let x = Tensor::new(&[[1.0f64, 0.0, 0.0], [0.0, 1.0, 0.0]], &dev).unwrap();
    let d = Tensor::new(&[[3.0f64, 0.0], [0.0, 4.0]], &dev).unwrap();
    let g = LowRankGradient::new(x, d).unwrap();
    let dense: Vec<Vec<f64>> = g.dense().unwrap().to_vec2().unwrap();
    assert_eq!(dense, vec![vec![3.0, 0.0, 0.0], vec![0.0, 4.0, 0.0]]);
    let sv = g.singular_values().unwrap();
    assert!((sv[0] - 4.0).abs() < 1e-12 && (sv[1] - 3.0).abs() < 1e-12, "{sv:?}");
    assert_eq!(g.numerical_rank(RankTolerance::Default).unwrap(), 2);
    assert_eq!(g.numerical_rank(RankTolerance::Absolute(3.5)).unwrap(), 1);
    assert_eq!(g.numerical_rank(RankTolerance::Relative(0.8)).unwrap(), 1);
    assert!((g.frobenius_norm().unwrap() - 5.0).abs() < 1e-12);
    // Output unit 1 = 4 * x_2; input unit 0 = 1 * delta_1.
    assert_eq!(g.output_neurons(&[1]).unwrap().to_vec2::<f64>().unwrap(), vec![vec![0.0, 4.0, 0.0]]);
    assert_eq!(g.input_neurons(&[0]).unwrap().to_vec2::<f64>().unwrap(), vec![vec![3.0, 0.0]]);
}
