//! The layer × η search for forward pass shift on the default model: per layer, the smallest η
//! reaching 95% efficacy on a seeded sample, then efficacy, paraphrase and neighborhood there.
//!
//! ```text
//! cargo run --release -p backlens-edit --example fps_search -- LAYERS KIND START LIMIT [KEY=SHRINKAGE]
//! cargo run --release -p backlens-edit --example fps_search -- 16,19,21,23,25,27 scale-free 500 20
//! cargo run --release -p backlens-edit --example fps_search -- 23 raw 0.24 20 whitened=0.1
//! cargo run --release -p backlens-edit --example fps_search -- 23 raw 0.24 20 template=0.1
//! ```
//! KIND is `raw` or `scale-free`; START the first η tried; LIMIT the number of records (seed 0);
//! KEY=SHRINKAGE, if given, uses `Key::Whitened` (estimated on `data/key-corpus.txt`) or
//! `Key::TemplateContrast` with that λ.
use backlens_edit::corpus::default_key_corpus_path;
use backlens_edit::keys::{Key, LayerWhitener, TemplateContrast};
use backlens_edit::search::{search_layers, SearchOptions};
use backlens_edit::*;
use backlens_model::{default_model, LanguageModel, Llama};
use std::sync::Arc;
fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut model = Llama::from_gguf(&default_model::ensure_default_model()?, &candle_core::Device::Cpu)?;
    let args: Vec<String> = std::env::args().collect();
    let layers: Vec<usize> = args[1].split(',').map(|x| x.parse().unwrap()).collect();
    let kind = if args[2] == "raw" { EtaKind::Raw } else { EtaKind::ScaleFree };
    let start: f64 = args[3].parse()?;
    let limit: usize = args[4].parse()?;
    let key: Option<(String, f64)> = args.get(5).map(|s| {
        let (kind, l) = s.split_once('=').expect("KEY=SHRINKAGE");
        (kind.to_string(), l.parse().expect("a number"))
    });
    let records = backlens_data::load(&backlens_data::default_dataset_path())?;
    let slice = backlens_data::sample(&records, limit, 0);
    let base = evaluate(&mut model, None, &slice, &EvalOptions::default(), &mut |_, _| {})?;
    println!("{}", eval::markdown_table(std::slice::from_ref(&base.summary)));
    let opts = SearchOptions { kind, start, goal: 95.0, resolution: 1.15, max_doublings: 12 };
    let key_for = |m: &dyn LanguageModel, layer: usize| -> backlens_edit::Result<Key> {
        Ok(match &key {
            None => Key::Input,
            Some((kind, l)) if kind == "template" => Key::TemplateContrast(Arc::new(TemplateContrast::new(*l))),
            Some((_, l)) => {
                Key::Whitened(Arc::new(LayerWhitener::from_corpus(m, layer, &default_key_corpus_path(), *l)?))
            }
        })
    };
    let res = search_layers(&mut model, &layers, &key_for, &slice, &opts, &EvalOptions::default(), &mut |r| {
        println!("layer {} eta {:?} probes {:?}", r.layer, r.eta, r.probes);
        if let Some(s) = &r.summary {
            print!("{}", eval::markdown_table(std::slice::from_ref(s)));
        }
    })?;
    let rows: Vec<EvalSummary> = res.into_iter().filter_map(|r| r.summary).collect();
    println!("{}", eval::markdown_table(&rows));
    Ok(())
}
