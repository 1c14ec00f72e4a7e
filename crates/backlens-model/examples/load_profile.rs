//! Times the stages of loading the default model (header, tokenizer, tensor read, dequantize).
use backlens_model::gguf::GgufFile;
use backlens_model::{default_model, LlamaConfig, TextTokenizer};
use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    let path = default_model::ensure_default_model()?;
    let t = Instant::now();
    let g = GgufFile::open(&path)?;
    println!("header      {:?}", t.elapsed());
    let t = Instant::now();
    let _c = LlamaConfig::from_gguf(&g)?;
    let _tok = TextTokenizer::from_gguf(&g)?;
    println!("tokenizer   {:?}", t.elapsed());
    let mut f = std::io::BufReader::new(std::fs::File::open(&path)?);
    let content = Content::read(&mut f)?;
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    let t = Instant::now();
    let qs: Vec<_> = names.iter().map(|n| content.tensor(&mut f, n, &Device::Cpu).unwrap()).collect();
    println!("read all    {:?}", t.elapsed());
    let t = Instant::now();
    let ts: Vec<_> = qs.iter().map(|q| q.dequantize(&Device::Cpu).unwrap()).collect();
    println!("dequantize  {:?} (serial)", t.elapsed());
    let t = Instant::now();
    for x in &ts { x.sum_all()?; }
    println!("sum_all     {:?}", t.elapsed());
    let t = Instant::now();
    std::thread::scope(|s| {
        let (a, b) = qs.split_at(qs.len() / 2);
        let h1 = s.spawn(move || a.iter().map(|q| q.dequantize(&Device::Cpu).unwrap()).count());
        let h2 = s.spawn(move || b.iter().map(|q| q.dequantize(&Device::Cpu).unwrap()).count());
        h1.join().unwrap() + h2.join().unwrap()
    });
    println!("dequantize  {:?} (2 threads)", t.elapsed());
    Ok(())
}
#[allow(dead_code)]
fn unused() {}
