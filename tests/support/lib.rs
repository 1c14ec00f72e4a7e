//! Shared support for the workspace-level integration tests: the default model, loaded once
//! per test binary, and readable max-diff comparisons.

use backlens::Backlens;
use candle_core::Tensor;
use std::sync::OnceLock;

/// The default model (fetched into `$BACKLENS_HOME` on first use), loaded once per test binary.
pub fn default_backlens() -> &'static Backlens {
    static MODEL: OnceLock<Backlens> = OnceLock::new();
    MODEL.get_or_init(|| Backlens::load_default().expect("loading the default model"))
}

/// Maximum absolute difference and the largest magnitude of `reference`.
pub fn max_diff(got: &Tensor, reference: &Tensor) -> (f32, f32) {
    assert_eq!(got.dims(), reference.dims(), "shapes differ");
    let diff = (got - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    (diff, scale)
}

/// Asserts `|got - reference| <= atol + rtol * max|reference|` elementwise-max, printing a
/// readable report line either way.
pub fn assert_close(what: &str, got: &Tensor, reference: &Tensor, atol: f32, rtol: f32) {
    let (diff, scale) = max_diff(got, reference);
    let bound = atol + rtol * scale;
    let verdict = if diff <= bound { "ok" } else { "FAIL" };
    eprintln!("{what:<40} max|diff| {diff:.3e}  max|ref| {scale:.3e}  bound {bound:.3e}  {verdict}");
    assert!(diff <= bound, "{what}: max |diff| {diff:e} exceeds {bound:e} (max |ref| {scale:e})");
}
