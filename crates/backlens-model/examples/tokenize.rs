//! Prints token ids of each command-line argument (a quick tokenizer probe).
use backlens_model::{default_model, LanguageModel, Llama};
fn main() -> anyhow::Result<()> {
    let m = Llama::from_gguf(&default_model::ensure_default_model()?, &candle_core::Device::Cpu)?;
    for a in std::env::args().skip(1) {
        println!("{a:?} -> {:?}", m.tokenizer().encode(&a)?);
    }
    Ok(())
}
