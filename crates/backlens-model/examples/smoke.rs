use backlens_model::*;
use candle_core::Device;
fn main() -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let path = default_model::ensure_default_model()?;
    let m = Llama::from_gguf(&path, &Device::Cpu)?;
    eprintln!("load {:?}", t0.elapsed());
    let tok = m.tokenizer();
    println!("{:?}", tok.encode(" Paris")?);
    println!("{:?}", tok.encode("The capital of France is")?);
    println!("{:?}", tok.encode("Lionel Messi plays for")?);
    let ids = tok.encode("The capital of France is")?;
    let t1 = std::time::Instant::now();
    let tr = m.trace(&ids, 7042, &TraceOptions::all())?;
    eprintln!("trace {:?}", t1.elapsed());
    let argmax = tr.logits.argmax(0)?.to_scalar::<u32>()?;
    println!("argmax {} {:?} loss {} p={}", argmax, tok.decode(&[argmax])?, tr.loss, (-tr.loss).exp());
    Ok(())
}
