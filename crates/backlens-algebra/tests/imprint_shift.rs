//! Statements 5 and 6: Lemma 5.2 ("imprint and shift") and the Forward Pass Shift identity of
//! Section 7, exactly, on random data and with VJPs from candle autograd of a tiny SwiGLU MLP
//! (checked in turn against f64 finite differences). Dimensions are drawn first, then data from
//! bounded ranges; every matrix is non-square. `PROPTEST_CASES` overrides the case counts.

mod support;

use backlens_algebra::{
    forward_pass_shift, forward_pass_shift_change, predicted_change, single_token_step, AlgebraError, LowRankGradient,
};
use candle_core::{DType, Device, Tensor, Var, D};
use proptest::prelude::*;
use support::*;

/// `(d_in, d_out, W, x, delta)` for one linear layer and one token.
#[allow(clippy::type_complexity)]
fn layer_and_token() -> impl Strategy<Value = (usize, usize, Vec<f64>, Vec<f64>, Vec<f64>)> {
    two_sizes(1, 24)
        .prop_flat_map(|(d_in, d_out)| (Just(d_in), Just(d_out), data(d_out * d_in), data(d_in), data(d_out)))
}

proptest! {
    #![proptest_config(config(32))]

    /// Statement 5, the algebra: after `W <- W - lr delta_i x_i^T` the layer rerun on `x_i`
    /// changes output unit `j` by exactly `-lr |x_i|^2 delta_i[j]` (FF1 pre-activations, Eq. 17;
    /// FF2 output, Eq. 18 summed), to the worst-case rounding bound of `support::rerun_bound`.
    /// The step is also the full gradient step of a one-token `LowRankGradient`.
    #[test]
    fn single_token_step_changes_the_rerun_output_by_the_predicted_amount(
        (d_in, d_out, wv, xv, dv) in layer_and_token(),
        lr in 0.01f64..3.0,
        use_f64 in any::<bool>(),
    ) {
        let dt = dtype_of(use_f64);
        let (w, x, delta) = (tensor(&wv, &[d_out, d_in], dt), tensor(&xv, &[d_in], dt), tensor(&dv, &[d_out], dt));
        let w_new = single_token_step(&w, &x, &delta, lr).unwrap();
        prop_assert_eq!(w_new.dims(), &[d_out, d_in]);
        let change = (apply(&w_new, &x) - apply(&w, &x)).unwrap();
        let pred = predicted_change(&x, &delta, lr).unwrap();
        prop_assert_eq!(pred.dims(), &[d_out]);
        assert_within(&change, &pred, &rerun_bound(&w, &w_new, &x, &pred), "W'x - Wx vs -lr|x|^2 delta")?;
        // The predicted change, written out: -lr * |x|^2 * delta, in f64.
        let sq: f64 = xv.iter().map(|v| v * v).sum();
        let explicit: Vec<f64> = dv.iter().map(|d| -lr * sq * d).collect();
        assert_close(&pred, &tensor(&explicit, &[d_out], DType::F64), 1e-300, 4.0 * eps(dt), "predicted_change formula")?;
        // Same as subtracting lr times the one-token gradient Delta^T X (Lemma 4.1's factors).
        let g = LowRankGradient::new(x.unsqueeze(0).unwrap(), delta.unsqueeze(0).unwrap()).unwrap();
        let via_grad = (&w - g.dense().unwrap().affine(lr, 0.0).unwrap()).unwrap();
        assert_close(&w_new, &via_grad, 0.0, 2.0 * eps(dt), "step vs W - lr dense()")?;
    }

    /// Statement 6, the algebra: `FF2 <- FF2 + eta D^T[t] x_n^T` moves the output at `x_n` by
    /// exactly `eta |x_n|^2 D^T[t]`, so its projection on the target direction grows by
    /// `eta |x_n|^2 |D^T[t]|^2 > 0`.
    #[test]
    fn forward_pass_shift_moves_the_output_by_eta_x_squared_target(
        (d_ff, d_model, wv, xv, ev) in layer_and_token(),
        eta in 0.01f64..3.0,
        use_f64 in any::<bool>(),
    ) {
        prop_assume!(xv.iter().any(|v| v.abs() > 1e-2) && ev.iter().any(|v| v.abs() > 1e-2));
        let dt = dtype_of(use_f64);
        let (w2, x, e) = (tensor(&wv, &[d_model, d_ff], dt), tensor(&xv, &[d_ff], dt), tensor(&ev, &[d_model], dt));
        let w_new = forward_pass_shift(&w2, &x, &e, eta).unwrap();
        let change = (apply(&w_new, &x) - apply(&w2, &x)).unwrap();
        let pred = forward_pass_shift_change(&x, &e, eta).unwrap();
        assert_within(&change, &pred, &rerun_bound(&w2, &w_new, &x, &pred), "FF2'x - FF2 x vs eta|x|^2 e_t")?;
        let sq_x: f64 = xv.iter().map(|v| v * v).sum();
        let sq_e: f64 = ev.iter().map(|v| v * v).sum();
        let along: f64 = to_vec(&change).iter().zip(&ev).map(|(c, e)| c * e).sum();
        let expected = eta * sq_x * sq_e;
        let bound: f64 = rerun_bound(&w2, &w_new, &x, &pred).iter().zip(&ev).map(|(b, e)| b * e.abs()).sum::<f64>()
            + 4.0 * (d_model as f64) * eps(dt) * expected;
        prop_assert!(along > 0.0 && (along - expected).abs() <= bound, "target direction grows by {} (expected {})", along, expected);
        // It is predicted_change with lr = -eta and delta = e_t (a "step" that adds e_t).
        assert_close(&pred, &predicted_change(&x, &e, -eta).unwrap(), 0.0, 0.0, "shift = step with -eta")?;
    }
}

/// A tiny SwiGLU MLP with a language-model head:
/// `g = x Wg^T + pg`, `u = x Wu^T + pu`, `h = silu(g) * u`, `y = h Wd^T + pd`,
/// `L = sum_i -log softmax(y_i E^T)[t_i]` (every token has a target, so every VJP is non-zero).
/// The zero probes `pg, pu, pd` expose the VJPs of gate, up and down (`dL/dp = dL/d(output)`).
struct SwiGlu {
    x: Tensor,
    wg: Tensor,
    wu: Tensor,
    wd: Tensor,
    e: Tensor,
    onehot: Tensor,
}

impl SwiGlu {
    /// `(L, h)` for given probe values.
    fn loss(&self, wg: &Tensor, wu: &Tensor, wd: &Tensor, p: [&Tensor; 3]) -> (Tensor, Tensor) {
        let g = (self.x.matmul(&wg.t().unwrap()).unwrap() + p[0]).unwrap();
        let u = (self.x.matmul(&wu.t().unwrap()).unwrap() + p[1]).unwrap();
        let h = (g.silu().unwrap() * u).unwrap();
        let y = (h.matmul(&wd.t().unwrap()).unwrap() + p[2]).unwrap();
        let logits = y.matmul(&self.e.t().unwrap()).unwrap(); // (n, V); |logits| is small: no max shift needed
        let lse = logits.exp().unwrap().sum_keepdim(D::Minus1).unwrap().log().unwrap(); // (n, 1)
        let picked = (&logits * &self.onehot).unwrap().sum_keepdim(D::Minus1).unwrap();
        ((lse - picked).unwrap().sum_all().unwrap(), h)
    }

    fn zero_probes(&self) -> [Tensor; 3] {
        let (n, d_ff, d) = (self.x.dims()[0], self.wg.dims()[0], self.wd.dims()[0]);
        let z = |c| Tensor::zeros((n, c), self.x.dtype(), &Device::Cpu).unwrap();
        [z(d_ff), z(d_ff), z(d)]
    }

    /// Autograd: `(h, [delta_gate, delta_up, delta_down], [dL/dWg, dL/dWu, dL/dWd])`.
    fn autograd(&self) -> (Tensor, [Tensor; 3], [Tensor; 3]) {
        let vars = [&self.wg, &self.wu, &self.wd].map(|w| Var::from_tensor(w).unwrap());
        let probes = self.zero_probes().map(|p| Var::from_tensor(&p).unwrap());
        let (l, h) = self.loss(
            vars[0].as_tensor(),
            vars[1].as_tensor(),
            vars[2].as_tensor(),
            [probes[0].as_tensor(), probes[1].as_tensor(), probes[2].as_tensor()],
        );
        let grads = l.backward().unwrap();
        let get = |v: &Var| grads.get(v.as_tensor()).expect("gradient recorded").clone();
        (h.detach(), [get(&probes[0]), get(&probes[1]), get(&probes[2])], [get(&vars[0]), get(&vars[1]), get(&vars[2])])
    }
}

/// `(n, d, d_ff, V, i, data...)`: dimensions first (d != d_ff), then data.
#[allow(clippy::type_complexity)]
fn swiglu(
) -> impl Strategy<Value = (usize, usize, usize, usize, usize, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<usize>)>
{
    (1usize..=4, two_sizes(2, 10), 3usize..=12, 0usize..4).prop_flat_map(|(n, (d, d_ff), v, i)| {
        (
            Just(n),
            Just(d),
            Just(d_ff),
            Just(v),
            Just(i % n),
            data(n * d),
            data(d_ff * d),
            data(d_ff * d),
            data(d * d_ff),
            data(v * d),
            prop::collection::vec(0..v, n),
        )
    })
}

fn build(n: usize, d: usize, d_ff: usize, v: usize, data: [&[f64]; 5], targets: &[usize], dt: DType) -> SwiGlu {
    let mut onehot = vec![0.0; n * v];
    for (i, &t) in targets.iter().enumerate() {
        onehot[i * v + t] = 1.0;
    }
    SwiGlu {
        x: tensor(data[0], &[n, d], dt),
        wg: tensor(data[1], &[d_ff, d], dt),
        wu: tensor(data[2], &[d_ff, d], dt),
        wd: tensor(data[3], &[d, d_ff], dt),
        e: tensor(data[4], &[v, d], dt),
        onehot: tensor(&onehot, &[n, v], dt),
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Statement 5 with genuine VJPs: in a tiny SwiGLU MLP, one token's gradient step on gate,
    /// up and down, each with **its own** VJP from autograd, changes the rerun gate
    /// pre-activations by `-lr|x_i|^2 delta_gate_i`, the up pre-activations by
    /// `-lr|x_i|^2 delta_up_i`, and the MLP output by `-lr|h_i|^2 delta_down_i` (FF2's input is
    /// `h_i = silu(g_i) * u_i`). Autograd's dL/dW of each matrix is also checked to be `Delta^T X`.
    #[test]
    fn swiglu_imprint_and_shift_with_autograd_vjps(
        (n, d, d_ff, v, i, xv, gv, uv, dv, ev, targets) in swiglu(),
        lr in 0.01f64..2.0,
        use_f64 in any::<bool>(),
    ) {
        let dt = dtype_of(use_f64);
        let m = build(n, d, d_ff, v, [&xv, &gv, &uv, &dv, &ev], &targets, dt);
        let (h, deltas, dws) = m.autograd();
        // Lemma 4.1 factors: autograd's dW = Delta^T X, X being x for gate/up and h for down.
        // f32 tolerance: reductions over n <= 4 tokens of O(1) values.
        for (k, (xk, name)) in [(&m.x, "gate"), (&m.x, "up"), (&h, "down")].into_iter().enumerate() {
            let dense = LowRankGradient::new(xk.clone(), deltas[k].clone()).unwrap().dense().unwrap();
            assert_close(&dense, &dws[k], 1e-6, 1e-5, &format!("dL/dW_{name} = Delta^T X"))?;
        }
        let row = |t: &Tensor| t.get(i).unwrap();
        for (k, (w, input, name)) in [(&m.wg, &m.x, "gate"), (&m.wu, &m.x, "up"), (&m.wd, &h, "down")].into_iter().enumerate() {
            let (x_i, delta_i) = (row(input), row(&deltas[k]));
            let w_new = single_token_step(w, &x_i, &delta_i, lr).unwrap();
            let change = (apply(&w_new, &x_i) - apply(w, &x_i)).unwrap();
            let pred = predicted_change(&x_i, &delta_i, lr).unwrap();
            assert_within(&change, &pred, &rerun_bound(w, &w_new, &x_i, &pred), &format!("{name}: rerun change at token {i}"))?;
        }
    }

    /// The VJPs used above, checked without autograd: central finite differences (f64) of `L`
    /// w.r.t. the probes of gate, up and down at token `i`. `L` is smooth with O(1) third
    /// derivatives, so with `h = 1e-5` the truncation error is ~1e-10: tolerance `1e-7 + 1e-6·|g|`.
    #[test]
    fn swiglu_vjps_equal_finite_differences(
        (n, d, d_ff, v, i, xv, gv, uv, dv, ev, targets) in swiglu(),
        picks in prop::collection::vec(0usize..100, 3),
    ) {
        let m = build(n, d, d_ff, v, [&xv, &gv, &uv, &dv, &ev], &targets, DType::F64);
        let (_, deltas, _) = m.autograd();
        let h = 1e-5;
        for (k, &pick) in picks.iter().enumerate() {
            let mut probes = m.zero_probes();
            let width = probes[k].dims()[1];
            let j = pick % width;
            let at = |s: f64, probes: &mut [Tensor; 3]| {
                let mut bump = vec![0.0; n * width];
                bump[i * width + j] = s;
                probes[k] = tensor(&bump, &[n, width], DType::F64);
                let (l, _) = m.loss(&m.wg, &m.wu, &m.wd, [&probes[0], &probes[1], &probes[2]]);
                l.to_scalar::<f64>().unwrap()
            };
            let fd = (at(h, &mut probes) - at(-h, &mut probes)) / (2.0 * h);
            let an = to_vec(&deltas[k])[i * width + j];
            prop_assert!((fd - an).abs() <= 1e-7 + 1e-6 * an.abs(), "probe {} ({}, {}): fd {} vs autograd {}", k, i, j, fd, an);
        }
    }

    /// Statement 6, the sign relation of digest section 3.7, with autograd: for a top layer
    /// `h = W x_n`, `logits = E h`, `L = -log softmax(logits)[t]` (no norm), the VJP is
    /// `delta_n = E^T (p - onehot(t)) = -(1 - p_t) E[t] + sum_{k != t} p_k E[k]`: the target's
    /// coefficient is negative, every other one positive. So the descent step is
    /// `W - lr delta_n x_n^T = forward_pass_shift(W, x_n, E[t], lr (1 - p_t)) - lr sum_{k != t} p_k E[k] x_n^T`,
    /// a forward pass shift with a **positive** eta plus the other tokens' terms.
    #[test]
    fn descent_on_the_top_ff2_is_a_positive_forward_pass_shift(
        ((d_ff, d), v, t, wv, xv, ev) in (two_sizes(2, 12), 2usize..=16, 0usize..16).prop_flat_map(|((a, b), v, t)| {
            (Just((a, b)), Just(v), Just(t % v), data(b * a), data(a), data(v * b))
        }),
        lr in 0.01f64..2.0,
        use_f64 in any::<bool>(),
    ) {
        let dt = dtype_of(use_f64);
        let (w, x, e) = (tensor(&wv, &[d, d_ff], dt), tensor(&xv, &[d_ff], dt), tensor(&ev, &[v, d], dt));
        // Autograd through a probe on the layer output.
        let probe = Var::zeros(d, dt, &Device::Cpu).unwrap();
        let out = (apply(&w, &x) + probe.as_tensor()).unwrap();
        let logits = apply(&e, &out);
        let lse = logits.exp().unwrap().sum_all().unwrap().log().unwrap();
        let loss = (lse - logits.get(t).unwrap()).unwrap();
        let delta = loss.backward().unwrap().get(probe.as_tensor()).unwrap().clone();

        let p: Vec<f64> = {
            let l = to_vec(&logits);
            let z: f64 = l.iter().map(|v| v.exp()).sum();
            l.iter().map(|v| v.exp() / z).collect()
        };
        // Coefficients of delta_n in the rows of E: c_t = p_t - 1 < 0, c_k = p_k > 0.
        let mut coeff = p.clone();
        coeff[t] -= 1.0;
        prop_assert!(coeff[t] < 0.0 && coeff.iter().enumerate().all(|(k, c)| k == t || *c > 0.0));
        let closed = apply(&e.t().unwrap(), &tensor(&coeff, &[v], dt));
        assert_close(&delta, &closed, 1e-6, 1e-5, "delta_n = E^T (p - onehot(t))")?;

        let step = single_token_step(&w, &x, &delta, lr).unwrap();
        let shift = forward_pass_shift(&w, &x, &e.get(t).unwrap(), lr * (1.0 - p[t])).unwrap();
        let mut others = p.clone();
        others[t] = 0.0;
        let others = apply(&e.t().unwrap(), &tensor(&others, &[v], dt)); // sum_{k != t} p_k E[k]
        let rest = single_token_step(&shift, &x, &others, lr).unwrap();
        // f32: entries are sums of v <= 16 products of O(1) values.
        assert_close(&step, &rest, 1e-6, 1e-5, "descent step = shift(+lr(1-p_t)) - lr (others) x^T")?;
    }
}

#[test]
fn shape_and_dtype_errors_name_the_shapes() {
    let dev = Device::Cpu;
    let w = Tensor::zeros((3, 5), DType::F32, &dev).unwrap();
    let x = Tensor::zeros(5, DType::F32, &dev).unwrap();
    let d = Tensor::zeros(3, DType::F32, &dev).unwrap();
    assert!(single_token_step(&w, &x, &d, 0.1).is_ok());
    // The classic orientation bug: x and delta swapped.
    let err = single_token_step(&w, &d, &x, 0.1).unwrap_err();
    assert!(matches!(err, AlgebraError::ShapeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("[3, 5]") && msg.contains("single_token_step"), "{msg}");
    let err = forward_pass_shift(&w.t().unwrap(), &x, &d, 0.1).unwrap_err().to_string();
    assert!(err.contains("[5, 3]"), "{err}");
    let err = predicted_change(&x.unsqueeze(0).unwrap(), &d, 0.1).unwrap_err().to_string();
    assert!(err.contains("[1, 5]"), "{err}");
    let err = single_token_step(&w, &x.to_dtype(DType::F64).unwrap(), &d, 0.1).unwrap_err().to_string();
    assert!(err.contains("F64"), "{err}");
}

/// A hand-checkable case: W = 0 (2x3), x = (1, 2, 0), delta = (1, -1): |x|^2 = 5, so with
/// lr = 0.1 the rerun output moves by (-0.5, 0.5).
#[test]
fn worked_example() {
    let dev = Device::Cpu;
    let w = Tensor::zeros((2, 3), DType::F64, &dev).unwrap();
    let x = Tensor::new(&[1.0f64, 2.0, 0.0], &dev).unwrap();
    let d = Tensor::new(&[1.0f64, -1.0], &dev).unwrap();
    let w_new = single_token_step(&w, &x, &d, 0.1).unwrap();
    assert_eq!(w_new.to_vec2::<f64>().unwrap(), vec![vec![-0.1, -0.2, 0.0], vec![0.1, 0.2, 0.0]]);
    let pred = predicted_change(&x, &d, 0.1).unwrap().to_vec1::<f64>().unwrap();
    assert!((pred[0] + 0.5).abs() < 1e-15 && (pred[1] - 0.5).abs() < 1e-15, "{pred:?}");
    let shifted = forward_pass_shift(&w, &x, &d, 2.0).unwrap();
    assert_eq!(shifted.to_vec2::<f64>().unwrap(), vec![vec![2.0, 4.0, 0.0], vec![-2.0, -4.0, 0.0]]);
    assert_eq!(forward_pass_shift_change(&x, &d, 2.0).unwrap().to_vec1::<f64>().unwrap(), vec![10.0, -10.0]);
}
