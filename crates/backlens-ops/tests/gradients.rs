//! Every op must pass its gradient to its input, and that gradient must match central finite
//! differences in f64. candle's fused ops fail the first check silently.

use backlens_ops::{linear, linear_with_weight_grad, Norm};
use candle_core::{DType, Device, Result, Tensor, Var};

const DEV: Device = Device::Cpu;

/// Deterministic, non-trivial f64 test data in [-1, 1).
fn data(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &DEV).unwrap()
}

/// Checks autograd's dL/dx of `L = sum(c * f(x))` against central differences.
fn check_input_gradient(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> Result<()> {
    let y = f(x)?;
    let c = data(y.dims(), 99);
    let loss = |t: &Tensor| -> Result<f64> { (f(t)? * &c)?.sum_all()?.to_scalar::<f64>() };

    let x_var = Var::from_tensor(x)?;
    let grads = (f(x_var.as_tensor())? * &c)?.sum_all()?.backward()?;
    let analytic = grads
        .get(x_var.as_tensor())
        .expect("the gradient never reached the input: a fused op without backward?")
        .flatten_all()?
        .to_vec1::<f64>()?;

    let flat = x.flatten_all()?.to_vec1::<f64>()?;
    let h = 1e-6;
    let mut worst = 0f64;
    for i in 0..flat.len() {
        let mut plus = flat.clone();
        plus[i] += h;
        let mut minus = flat.clone();
        minus[i] -= h;
        let fd = (loss(&Tensor::from_vec(plus, x.dims(), &DEV)?)? - loss(&Tensor::from_vec(minus, x.dims(), &DEV)?)?)
            / (2.0 * h);
        let err = (fd - analytic[i]).abs() / (1e-6 + fd.abs());
        worst = worst.max(err);
    }
    assert!(worst < 1e-5, "finite differences disagree with autograd: worst relative error {worst:e}");
    Ok(())
}

#[test]
fn rms_norm_gradient_matches_finite_differences() -> Result<()> {
    let norm = Norm::Rms { weight: data(&[6], 1), eps: 1e-5 };
    check_input_gradient(|x| norm.forward(x), &data(&[3, 6], 2))
}

#[test]
fn layer_norm_gradient_matches_finite_differences() -> Result<()> {
    let norm = Norm::Layer { weight: data(&[5], 3), bias: data(&[5], 4), eps: 1e-5 };
    check_input_gradient(|x| norm.forward(x), &data(&[4, 5], 5))
}

#[test]
fn linear_gradient_matches_finite_differences() -> Result<()> {
    let w = data(&[7, 4], 6); // (d_out, d_in), non-square to catch transposes
    let b = data(&[7], 7);
    check_input_gradient(|x| linear(x, &w, Some(&b)), &data(&[3, 4], 8))
}

#[test]
fn softmax_gradient_matches_finite_differences() -> Result<()> {
    check_input_gradient(|x| candle_nn::ops::softmax(x, candle_core::D::Minus1), &data(&[2, 5], 9))
}

#[test]
fn linear_matches_matmul_and_skips_the_weight_gradient() -> Result<()> {
    let x = data(&[3, 4], 10).to_dtype(DType::F32)?;
    let w = Var::from_tensor(&data(&[5, 4], 11).to_dtype(DType::F32)?)?;
    let x_var = Var::from_tensor(&x)?;

    let fast = linear(x_var.as_tensor(), w.as_tensor(), None)?;
    let reference = linear_with_weight_grad(x_var.as_tensor(), w.as_tensor(), None)?;
    let diff = (&fast - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-6, "forward differs by {diff}");

    let g_fast = fast.sum_all()?.backward()?;
    let g_ref = reference.sum_all()?.backward()?;
    assert!(g_fast.get(w.as_tensor()).is_none(), "linear must not compute dL/dW");
    assert!(g_ref.get(w.as_tensor()).is_some());
    let dx = (g_fast.get(x_var.as_tensor()).unwrap() - g_ref.get(x_var.as_tensor()).unwrap())?;
    assert_eq!(dx.abs()?.max_all()?.to_scalar::<f32>()?, 0.0, "input gradients must be bit-identical");
    Ok(())
}

#[test]
fn rms_norm_matches_candle_fused_forward() -> Result<()> {
    let x = data(&[3, 8], 12).to_dtype(DType::F32)?;
    let w = data(&[8], 13).to_dtype(DType::F32)?;
    let ours = Norm::Rms { weight: w.clone(), eps: 1e-5 }.forward(&x)?;
    let fused = candle_nn::ops::rms_norm(&x, &w, 1e-5)?;
    let diff = (ours - fused)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5, "RMSNorm differs from candle's kernel by {diff}");
    Ok(())
}

#[test]
fn linear_rejects_mismatched_features() {
    let x = Tensor::zeros((2, 3), DType::F32, &DEV).unwrap();
    let w = Tensor::zeros((4, 5), DType::F32, &DEV).unwrap();
    let err = linear(&x, &w, None).unwrap_err().to_string();
    assert!(err.contains("3 features") && err.contains("5"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The candle ops the models compose: RoPE in both layouts, the MLP activations, the loss.

/// cos and sin tables of angles `pos · θ_i` for `t` positions and `half` frequencies.
///
/// # Shapes
/// Returns (cos, sin), each (t, half).
fn rope_tables(t: usize, half: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
    let angles: Vec<f64> =
        (0..t).flat_map(|p| (0..half).map(move |i| p as f64 * 10_000f64.powf(-(i as f64) / half as f64))).collect();
    let angles = Tensor::from_vec(angles, (t, half), &DEV)?.to_dtype(dtype)?;
    Ok((angles.cos()?, angles.sin()?))
}

#[test]
fn rope_interleaved_gradient_matches_finite_differences() -> Result<()> {
    let (cos, sin) = rope_tables(3, 3, DType::F64)?;
    // (batch, heads, T, head_dim), non-square everywhere.
    check_input_gradient(|x| candle_nn::rotary_emb::rope_i_slow(x, &cos, &sin), &data(&[1, 2, 3, 6], 14))
}

#[test]
fn rope_half_split_gradient_matches_finite_differences() -> Result<()> {
    let (cos, sin) = rope_tables(3, 3, DType::F64)?;
    check_input_gradient(|x| candle_nn::rotary_emb::rope_slow(x, &cos, &sin), &data(&[1, 2, 3, 6], 15))
}

/// The two layouts pair different dimensions: interleaved rotates (2i, 2i+1), half-split
/// (i, i + hd/2). A model that used the wrong one for its checkpoint would still be a
/// differentiable model, so the pairing is pinned here against a hand-written rotation, and the
/// slow (differentiable) ops against candle's fused kernels.
#[test]
fn rope_layouts_pair_the_documented_dimensions_and_match_the_fused_kernels() -> Result<()> {
    let (t, hd) = (3, 6);
    let (cos, sin) = rope_tables(t, hd / 2, DType::F64)?;
    let x = data(&[1, 1, t, hd], 16);
    let (xv, c, s) = (x.flatten_all()?.to_vec1::<f64>()?, cos.to_vec2::<f64>()?, sin.to_vec2::<f64>()?);
    let rotate = |pair: &dyn Fn(usize) -> (usize, usize)| -> Vec<f64> {
        let mut y = vec![0.0; t * hd];
        for p in 0..t {
            for i in 0..hd / 2 {
                let (a, b) = pair(i);
                let (xa, xb) = (xv[p * hd + a], xv[p * hd + b]);
                y[p * hd + a] = xa * c[p][i] - xb * s[p][i];
                y[p * hd + b] = xa * s[p][i] + xb * c[p][i];
            }
        }
        y
    };
    let max_diff = |a: &Tensor, b: &[f64]| -> Result<f64> {
        Ok(a.flatten_all()?.to_vec1::<f64>()?.iter().zip(b).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max))
    };
    let interleaved = rotate(&|i| (2 * i, 2 * i + 1));
    let half_split = rotate(&|i| (i, i + hd / 2));
    assert!(max_diff(&candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin)?, &interleaved)? < 1e-12);
    assert!(max_diff(&candle_nn::rotary_emb::rope_slow(&x, &cos, &sin)?, &half_split)? < 1e-12);
    assert!(
        max_diff(&candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin)?, &half_split)? > 1e-2,
        "the layouts must differ"
    );
    assert!(max_diff(&candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?, &interleaved)? < 1e-12);
    assert!(max_diff(&candle_nn::rotary_emb::rope(&x, &cos, &sin)?, &half_split)? < 1e-12);
    Ok(())
}

#[test]
fn silu_gradient_matches_finite_differences() -> Result<()> {
    check_input_gradient(|x| (x * 3.0)?.silu(), &data(&[3, 5], 17))
}

#[test]
fn gelu_tanh_gradient_matches_finite_differences() -> Result<()> {
    check_input_gradient(|x| (x * 3.0)?.gelu(), &data(&[3, 5], 18))
}

#[test]
fn gelu_erf_gradient_matches_finite_differences() -> Result<()> {
    check_input_gradient(|x| (x * 3.0)?.gelu_erf(), &data(&[3, 5], 19))
}

#[test]
fn log_softmax_gradient_matches_finite_differences() -> Result<()> {
    check_input_gradient(|x| candle_nn::ops::log_softmax(&(x * 4.0)?, candle_core::D::Minus1), &data(&[2, 7], 20))
}

/// Why the models never call candle's fused kernels: their backward is missing, and
/// `backward()` still returns `Ok`; every gradient upstream of them silently disappears.
#[test]
fn fused_kernels_silently_drop_the_gradient() -> Result<()> {
    let x = Var::from_tensor(&data(&[1, 2, 3, 6], 21).to_dtype(DType::F32)?)?;
    let (cos, sin) = rope_tables(3, 3, DType::F32)?;
    let grads = candle_nn::rotary_emb::rope_i(x.as_tensor(), &cos, &sin)?.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(x.as_tensor()).is_none(), "rope_i gained a backward: it could replace rope_i_slow");
    let grads = candle_nn::rotary_emb::rope_i_slow(x.as_tensor(), &cos, &sin)?.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(x.as_tensor()).is_some());

    let w = data(&[6], 22).to_dtype(DType::F32)?;
    let h = Var::from_tensor(&data(&[3, 6], 23).to_dtype(DType::F32)?)?;
    let grads = candle_nn::ops::rms_norm(h.as_tensor(), &w, 1e-5)?.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(h.as_tensor()).is_none(), "the fused rms_norm gained a backward");
    let grads = Norm::Rms { weight: w, eps: 1e-5 }.forward(h.as_tensor())?.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(h.as_tensor()).is_some());
    Ok(())
}
