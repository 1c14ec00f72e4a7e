//! The whitened key of `backlens_algebra::whitening` against f64 references computed here:
//! the second moment, the shrunk inverse, the normalisation `kᵀx = |x|²`, the reduction to the
//! plain key at λ = 1, the reduced spill-over onto inputs that share a common direction, and
//! the error messages.

use backlens_algebra::{SecondMoment, Whitener};
use candle_core::{DType, Device, Tensor};

/// A deterministic pseudo-random matrix (T, d) in f32, a linear congruential generator.
fn random(t: usize, d: usize, seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let data: Vec<f32> = (0..t * d)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
        })
        .collect();
    Tensor::from_vec(data, (t, d), &Device::Cpu).unwrap()
}

fn v64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn moment_of(batches: &[Tensor]) -> SecondMoment {
    let mut m = SecondMoment::new(batches[0].dims()[1]).unwrap();
    for b in batches {
        m.add(b).unwrap();
    }
    m
}

#[test]
fn second_moment_is_the_mean_outer_product_over_all_batches() {
    let (a, b) = (random(5, 4, 1), random(3, 4, 2));
    let m = moment_of(&[a.clone(), b.clone()]);
    assert_eq!(m.count(), 8);
    let rows: Vec<Vec<f64>> =
        [a, b].iter().flat_map(|t| t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()).collect();
    let got = m.matrix().unwrap().to_vec2::<f64>().unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let want = rows.iter().map(|r| r[i] * r[j]).sum::<f64>() / 8.0;
            assert!((got[i][j] - want).abs() < 1e-12, "C[{i}][{j}] = {} want {want}", got[i][j]);
        }
    }
}

#[test]
fn whitener_inverts_the_shrunk_second_moment() {
    let m = moment_of(&[random(30, 6, 3)]);
    let c = m.matrix().unwrap().to_vec2::<f64>().unwrap();
    let mean_var = (0..6).map(|i| c[i][i]).sum::<f64>() / 6.0;
    for lambda in [1.0, 0.5, 0.05] {
        let w = m.whitener(lambda).unwrap();
        let inv = w.inverse().to_vec2::<f64>().unwrap();
        for (i, c_i) in c.iter().enumerate() {
            for j in 0..6 {
                // (C_λ · C_λ⁻¹)[i][j]
                let p: f64 = (c_i.iter().zip(&inv).enumerate())
                    .map(|(k, (c_ik, inv_k))| {
                        ((1.0 - lambda) * c_ik + if i == k { lambda * mean_var } else { 0.0 }) * inv_k[j]
                    })
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p - want).abs() < 1e-9, "λ {lambda}: (C_λ C_λ⁻¹)[{i}][{j}] = {p}");
            }
        }
    }
}

#[test]
fn key_is_normalised_to_the_input_norm_and_is_the_input_without_whitening() {
    let m = moment_of(&[random(40, 8, 4)]);
    let x = random(1, 8, 5).squeeze(0).unwrap();
    let xv = v64(&x);
    for lambda in [1.0, 0.3, 0.01] {
        let k = m.whitener(lambda).unwrap().key(&x).unwrap();
        assert_eq!(k.dtype(), DType::F32);
        let kv = v64(&k);
        assert!(
            (dot(&kv, &xv) - dot(&xv, &xv)).abs() < 1e-5 * dot(&xv, &xv),
            "λ {lambda}: kᵀx {} vs |x|² {}",
            dot(&kv, &xv),
            dot(&xv, &xv)
        );
        if lambda == 1.0 {
            let diff = kv.iter().zip(&xv).fold(0f64, |a, (p, q)| a.max((p - q).abs()));
            assert!(diff < 1e-6, "λ = 1 must give k = x, max diff {diff:e}");
        }
    }
}

/// The purpose of whitening: generic inputs share a large common direction `u`; two inputs
/// `x = u + v` and `x' = u + w` overlap mostly through `u`. The plain key passes a large part
/// of the edit on to `x'` (`x·x'/|x|²`); the whitened key much less.
#[test]
fn whitened_key_passes_less_of_the_edit_to_an_input_sharing_the_common_direction() {
    let d = 16;
    let u: Vec<f32> = (0..d).map(|i| if i == 0 { 3.0 } else { 0.0 }).collect();
    let noise = random(200, d, 6);
    let common = Tensor::from_vec(u.clone(), (1, d), &Device::Cpu).unwrap();
    let generic = noise.broadcast_add(&common).unwrap(); // (200, d): u + noise
    let m = moment_of(&[generic]);
    let x = (Tensor::from_vec(u.clone(), d, &Device::Cpu).unwrap() + random(1, d, 7).squeeze(0).unwrap()).unwrap();
    let x2 = (Tensor::from_vec(u, d, &Device::Cpu).unwrap() + random(1, d, 8).squeeze(0).unwrap()).unwrap();
    let (xv, x2v) = (v64(&x), v64(&x2));
    let plain = dot(&xv, &x2v) / dot(&xv, &xv);
    let k = v64(&m.whitener(0.01).unwrap().key(&x).unwrap());
    let whitened = dot(&k, &x2v) / dot(&xv, &xv);
    assert!(plain > 0.7, "the construction shares most of x with x': {plain}");
    assert!(whitened.abs() < 0.5 * plain, "whitened spill-over {whitened} vs plain {plain}");
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let empty = SecondMoment::new(4).unwrap();
    assert!(empty.matrix().unwrap_err().to_string().contains("no vectors"));
    let mut m = SecondMoment::new(4).unwrap();
    let err = m.add(&random(3, 5, 1)).unwrap_err().to_string();
    assert!(err.contains("width 4") && err.contains("[3, 5]"), "{err}");
    let nan = Tensor::new(&[[f32::NAN, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
    assert!(m.add(&nan).unwrap_err().to_string().contains("non-finite"));
    m.add(&random(10, 4, 2)).unwrap();
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = m.whitener(bad).unwrap_err().to_string();
        assert!(err.contains("shrinkage must be in (0, 1]"), "{bad}: {err}");
    }
    let mut zero = SecondMoment::new(3).unwrap();
    zero.add(&Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
    assert!(zero.whitener(0.5).unwrap_err().to_string().contains("zero"));
    let w: Whitener = m.whitener(0.5).unwrap();
    assert!(w.key(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string().contains("shape [4]"));
    assert!(w
        .key(&Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string()
        .contains("zero input"));
}
