//! Compares matmul orientations for skinny (few-token) products against large weights.
use candle_core::{Device, Tensor};
use std::time::Instant;
fn time(name: &str, f: impl Fn() -> Tensor) {
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("{name:<40} {best:>8.0} us");
}
fn main() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (7, 576), &dev).unwrap();
    let w = Tensor::randn(0f32, 1., (1536, 576), &dev).unwrap();
    let g = Tensor::randn(0f32, 1., (7, 1536), &dev).unwrap();
    time("fwd x W^T (strided rhs)", || x.matmul(&w.t().unwrap()).unwrap());
    time("fwd (W x^T)^T", || w.matmul(&x.t().unwrap()).unwrap().t().unwrap());
    time("fwd (W x^T)^T contiguous", || w.matmul(&x.t().unwrap().contiguous().unwrap()).unwrap().t().unwrap().contiguous().unwrap());
    time("bwd g W", || g.matmul(&w).unwrap());
    time("bwd (W^T g^T)^T", || w.t().unwrap().matmul(&g.t().unwrap()).unwrap().t().unwrap());
    let e = Tensor::randn(0f32, 1., (49152, 576), &dev).unwrap();
    let v = Tensor::randn(0f32, 1., (420, 576), &dev).unwrap();
    time("lens v E^T", || v.matmul(&e.t().unwrap()).unwrap());
    time("lens (E v^T)^T", || e.matmul(&v.t().unwrap()).unwrap());
}
