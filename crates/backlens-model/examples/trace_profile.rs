//! Times forward+backward of the running example with and without probes.
use backlens_model::{default_model, LanguageModel, Llama, Site, TraceOptions};
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    let m = Llama::from_gguf(&default_model::ensure_default_model()?, &candle_core::Device::Cpu)?;
    let ids = m.tokenizer().encode("Lionel Messi plays for")?;
    for (name, opts) in [("no sites", TraceOptions::only([])), ("2 sites", TraceOptions::only([Site::MLP_UP_INPUT, Site::MLP_DOWN_VJP])), ("all", TraceOptions::all())] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            m.trace(&ids, 7042, &opts)?;
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("{name:<10} {best:.1} ms");
    }
    Ok(())
}
