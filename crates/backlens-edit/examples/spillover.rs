//! Why a whitened key does not rescue specificity at the last token, and whether editing at the
//! last subject token (ROME's position) does: a diagnostic on the default model.
//!
//! ```text
//! cargo run --release -p backlens-edit --example spillover -- ratios LAYER LIMIT
//! cargo run --release -p backlens-edit --example spillover -- subject LAYERS LIMIT
//! cargo run --release -p backlens-edit --example spillover -- template LAYER LIMIT SHRINKAGE
//! ```
//! `ratios`: for each record, the share `kᵀx'/kᵀx_n` of the edit that reaches the last-token FF2
//! input `x'` of its neighborhood prompts and of generic text (the perplexity corpus), for the
//! paper's key and whitened keys. `subject`: forward pass shift (scale-free) written at the last
//! subject token instead of the last token; per layer the smallest η reaching 95% efficacy and
//! the metrics there. `template`: the same shares for the template-contrast key, and for the
//! paraphrase prompts.
use backlens_edit::corpus::{default_corpus_path, default_key_corpus_path, load_corpus};
use backlens_edit::defaults::{DEFAULT_ETA, DEFAULT_KEY_SHRINKAGE};
use backlens_edit::keys::{self, LayerWhitener, TemplateContrast};
use backlens_edit::search::{min_setting, SearchOptions};
use backlens_edit::*;
use backlens_model::{default_model, LanguageModel, Llama, Module};
use candle_core::{DType, IndexOp, Tensor};
use std::collections::HashMap;

fn ff2_inputs(model: &dyn LanguageModel, ids: &[u32], layer: usize) -> Tensor {
    keys::ff2_inputs(model, layer, ids, 0).unwrap().to_dtype(DType::F64).unwrap()
}
fn dot(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() * b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

struct SubjectShift {
    layer: usize,
    eta: f64,
    positions: HashMap<Vec<u32>, usize>,
}
impl EditMethod for SubjectShift {
    fn name(&self) -> String {
        format!("subject-token shift (layer {}, eta {} scale-free)", self.layer, self.eta)
    }
    fn compute(&self, model: &dyn LanguageModel, requests: &[EditRequest]) -> backlens_edit::Result<Edit> {
        let mut w = model.weight(self.layer, Module::MlpDown)?.clone();
        for r in requests {
            let s = self.positions[&r.prompt];
            let x = ff2_inputs(model, &r.prompt, self.layer).i(s)?.to_dtype(DType::F32)?;
            let e = model.unembedding().i(r.first_target() as usize)?;
            let c = self.eta / (dot(&x, &x) * dot(&e, &e));
            w = backlens_algebra::forward_pass_shift(&w, &x, &e, c)?;
        }
        Ok(Edit {
            updates: vec![WeightUpdate { layer: self.layer, module: Module::MlpDown, weight: w }],
            ..Default::default()
        })
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut model = Llama::from_gguf(&default_model::ensure_default_model()?, &candle_core::Device::Cpu)?;
    let args: Vec<String> = std::env::args().collect();
    let layers: Vec<usize> = args[2].split(',').map(|x| x.parse().unwrap()).collect();
    let limit: usize = args[3].parse()?;
    let records = backlens_data::load(&backlens_data::default_dataset_path())?;
    let slice = backlens_data::sample(&records, limit, 0);
    if args[1] == "template" {
        // The record's own template filled with invented subjects: the last-token FF2 inputs of
        // "the same question about someone else", whitened away from the key.
        let layer = layers[0];
        let lambda: f64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(DEFAULT_KEY_SHRINKAGE);
        let (mut neigh, mut para, mut cos) = (Vec::new(), Vec::new(), Vec::new());
        for rec in &slice {
            let w = TemplateContrast::new(lambda).whitener(&model, layer, &rec.prompt)?;
            let ids = model.tokenizer().encode(&rec.rewrite_prompt())?;
            let x = ff2_inputs(&model, &ids, layer).i(ids.len() - 1)?;
            let k = w.key(&x)?;
            let kx = dot(&k, &x);
            for p in &rec.neighborhood_prompts {
                let pid = model.tokenizer().encode(p)?;
                let xp = ff2_inputs(&model, &pid, layer).i(pid.len() - 1)?;
                neigh.push(dot(&k, &xp) / kx);
                cos.push(dot(&x, &xp) / kx);
            }
            for p in &rec.paraphrase_prompts {
                let pid = model.tokenizer().encode(p)?;
                let xp = ff2_inputs(&model, &pid, layer).i(pid.len() - 1)?;
                para.push((dot(&k, &xp) / kx, dot(&x, &xp) / dot(&x, &x)));
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let pk: Vec<f64> = para.iter().map(|p| p.0).collect();
        let px: Vec<f64> = para.iter().map(|p| p.1).collect();
        println!("layer {layer} template-whitened λ {lambda}: neighborhood share {:.3} (plain {:.3}); paraphrase share {:.3} (plain {:.3})", mean(&neigh), mean(&cos), mean(&pk), mean(&px));
        return Ok(());
    }
    if args[1] == "ratios" {
        let layer = layers[0];
        let generic = load_corpus(&model, &default_corpus_path(), 256)?;
        let generic: Vec<Tensor> = generic.iter().map(|ids| ff2_inputs(&model, ids, layer)).collect();
        let generic = Tensor::cat(&generic, 0)?; // (N, d_ff)
        let keys: Vec<(String, Option<LayerWhitener>)> = std::iter::once(("x_n".to_string(), None))
            .chain([0.3, 0.1, 0.01].map(|l| {
                (
                    format!("whitened λ {l}"),
                    Some(LayerWhitener::from_corpus(&model, layer, &default_key_corpus_path(), l).unwrap()),
                )
            }))
            .collect();
        for (name, w) in &keys {
            let (mut neigh, mut gen, mut cos) = (Vec::new(), Vec::new(), Vec::new());
            for rec in &slice {
                let ids = model.tokenizer().encode(&rec.rewrite_prompt())?;
                let x = ff2_inputs(&model, &ids, layer).i(ids.len() - 1)?;
                let k = match w {
                    None => x.clone(),
                    Some(w) => w.whitener.key(&x)?,
                };
                let kx = dot(&k, &x);
                for p in &rec.neighborhood_prompts {
                    let pid = model.tokenizer().encode(p)?;
                    let xp = ff2_inputs(&model, &pid, layer).i(pid.len() - 1)?;
                    neigh.push(dot(&k, &xp) / kx);
                    cos.push(dot(&x, &xp) / (dot(&x, &x) * dot(&xp, &xp)).sqrt());
                }
                let g = generic.matmul(&k.unsqueeze(1)?)?.squeeze(1)?.to_vec1::<f64>()?;
                gen.extend(g.iter().map(|v| v.abs() / kx));
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            println!("layer {layer} {name}: neighborhood kᵀx'/kᵀx_n mean {:.3}; generic |kᵀx|/kᵀx_n mean {:.3}; cos(x_n, x') mean {:.3} ({} neighborhood prompts)", mean(&neigh), mean(&gen), mean(&cos), neigh.len());
        }
        return Ok(());
    }
    // Last subject token: the prompt prefix up to the end of the subject, tokenized (ROME's rule).
    let mut positions = HashMap::new();
    for rec in &slice {
        let text = rec.rewrite_prompt();
        let ids = model.tokenizer().encode(&text)?;
        let start = rec.prompt.find("{}").unwrap();
        let prefix = model.tokenizer().encode(&text[..start + rec.subject.len()])?;
        assert!(ids.starts_with(&prefix), "{text}: the subject's tokens are not a prefix");
        positions.insert(ids, prefix.len() - 1);
    }
    let requests = slice
        .iter()
        .map(|r| EditRequest::from_record(model.tokenizer(), r))
        .collect::<backlens_edit::Result<Vec<_>>>()?;
    let base = evaluate(&mut model, None, &slice, &EvalOptions::default(), &mut |_, _| {})?;
    let mut rows = vec![base.summary];
    for &layer in &layers {
        let opts = SearchOptions {
            kind: EtaKind::ScaleFree,
            start: DEFAULT_ETA,
            goal: 95.0,
            resolution: 1.15,
            max_doublings: 8,
        };
        let make =
            |eta: f64| -> Box<dyn EditMethod> { Box::new(SubjectShift { layer, eta, positions: positions.clone() }) };
        let (eta, probes) = min_setting(&mut model, &make, &requests, &opts)?;
        println!("layer {layer}: eta {eta:?} probes {probes:?}");
        if let Some(eta) = eta {
            let m = SubjectShift { layer, eta, positions: positions.clone() };
            rows.push(evaluate(&mut model, Some(&m), &slice, &EvalOptions::default(), &mut |_, _| {})?.summary);
            print!("{}", eval::markdown_table(&rows[rows.len() - 1..]));
        }
    }
    println!("{}", eval::markdown_table(&rows));
    Ok(())
}
