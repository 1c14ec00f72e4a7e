//! CounterFact-style evaluation of an edit method: one edit per record, evaluated, then
//! restored (the paper's protocol, `--num_edits=1`).
//!
//! Per record (MEMIT's `compute_rewrite_quality_counterfact` with the `*_acc` summaries):
//! * **Efficacy**: the rewrite prompt predicts every sub-token of `" " + target_new` (argmax,
//!   teacher-forced): 1 or 0.
//! * **Paraphrase**: the same on each paraphrase prompt, averaged over the record's prompts.
//! * **Neighborhood**: each neighborhood prompt predicts `" " + target_true`, averaged.
//! * **N-gram entropy** (optional): [`ngram_entropy`] of each greedy generation from the
//!   generation prompts (the prompt included, as MEMIT's `generate_fast` returns it), averaged.
//! * **Perplexity** (optional): `exp(Σ NLL / Σ tokens)` over a fixed corpus, after the edit.
//!
//! The summary is the mean and population std over records, accuracies and n-gram entropy ×100
//! (the paper's Tables 1, 6, 7); perplexity as is.

use crate::apply::{Edit, EditGuard};
use crate::error::{EditError, Result};
use crate::methods::EditMethod;
use crate::metrics::{argmax, ngram_entropy, sequence_nll, teacher_forced_correct, MeanStd};
use crate::request::{spaced, EditRequest};
use backlens_data::Record;
use backlens_model::LanguageModel;
use candle_core::IndexOp;
use serde::Serialize;
use std::time::Instant;

/// Whether `model` predicts every sub-token of `target` after `prompt` (argmax, teacher-forced):
/// one forward pass over `prompt ++ target[..K-1]`.
pub fn predicts(model: &dyn LanguageModel, prompt: &[u32], target: &[u32]) -> Result<bool> {
    if target.is_empty() {
        return Err(EditError::Request("the target has no tokens".into()));
    }
    let mut ids = prompt.to_vec();
    ids.extend_from_slice(&target[..target.len() - 1]);
    teacher_forced_correct(&model.logits(&ids)?, prompt.len(), target)
}

/// Fraction of `prompts` (text) after which `model` predicts `target` (token ids).
pub fn accuracy(model: &dyn LanguageModel, prompts: &[String], target: &[u32]) -> Result<f64> {
    if prompts.is_empty() {
        return Err(EditError::Request("no prompts to evaluate".into()));
    }
    let mut hits = 0usize;
    for p in prompts {
        hits += usize::from(predicts(model, &model.tokenizer().encode(p)?, target)?);
    }
    Ok(hits as f64 / prompts.len() as f64)
}

/// Greedy continuation of `prompt` by `new_tokens` tokens (no sampling, no early stop), as
/// token ids (prompt included). One forward pass per new token over the whole sequence (the
/// model has no KV cache), so keep `new_tokens` small on a CPU.
pub fn generate_greedy(model: &dyn LanguageModel, prompt: &[u32], new_tokens: usize) -> Result<Vec<u32>> {
    let mut ids = prompt.to_vec();
    for _ in 0..new_tokens {
        if ids.len() >= model.context_length() {
            break;
        }
        let logits = model.logits(&ids)?;
        let last = logits.i(ids.len() - 1)?.to_vec1::<f32>()?;
        ids.push(argmax(&last) as u32);
    }
    Ok(ids)
}

/// Perplexity of `model` on token sequences: `exp(Σ NLL / Σ predicted tokens)`, every sequence
/// scored on its own (no context across sequences).
pub fn perplexity(model: &dyn LanguageModel, sequences: &[Vec<u32>]) -> Result<f64> {
    let (mut nll, mut n) = (0.0, 0usize);
    for ids in sequences.iter().filter(|s| s.len() >= 2) {
        let (s, k) = sequence_nll(&model.logits(ids)?, ids)?;
        nll += s;
        n += k;
    }
    if n == 0 {
        return Err(EditError::Request("the perplexity corpus has no sequence of two or more tokens".into()));
    }
    Ok((nll / n as f64).exp())
}

/// What to measure besides the three accuracies.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// New tokens per greedy generation for the n-gram entropy; 0 skips fluency.
    pub generation_tokens: usize,
    /// Measure n-gram entropy and perplexity only for the first N evaluated records (they
    /// dominate the cost: one forward pass per generated token, and the whole corpus per edit);
    /// `None`: for every record.
    pub fluency_records: Option<usize>,
    /// Token sequences for perplexity after each edit; `None` skips it.
    pub perplexity_corpus: Option<Vec<Vec<u32>>>,
}

/// One record's results.
#[derive(Debug, Clone, Serialize)]
pub struct RecordEval {
    /// The record.
    pub case_id: u64,
    /// The method declined to edit (forward pass shift: the target already was the argmax).
    pub skipped: bool,
    /// The method's loss before the edit, if it computed one.
    pub loss_before: Option<f32>,
    /// 1 when the rewrite prompt predicts the new target, else 0.
    pub efficacy: f64,
    /// Fraction of the paraphrase prompts that predict the new target.
    pub paraphrase: f64,
    /// Fraction of the neighborhood prompts that still predict the true target.
    pub neighborhood: f64,
    /// Mean n-gram entropy of the greedy generations (bits), when measured.
    pub ngram_entropy: Option<f64>,
    /// Perplexity on the corpus after the edit, when measured.
    pub perplexity: Option<f64>,
    /// Seconds to compute the edit.
    pub edit_seconds: f64,
    /// Seconds to measure the edited model.
    pub eval_seconds: f64,
}

/// The paper's table row: mean ± population std over records; accuracies and n-gram entropy
/// ×100.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    /// The method's name ([`EditMethod::name`]), or `original model`.
    pub method: String,
    /// Records evaluated.
    pub records: usize,
    /// Records the method declined to edit.
    pub skipped: usize,
    /// Efficacy ×100.
    pub efficacy: MeanStd,
    /// Paraphrase accuracy ×100.
    pub paraphrase: MeanStd,
    /// Neighborhood accuracy ×100.
    pub neighborhood: MeanStd,
    /// N-gram entropy ×100, when measured.
    pub ngram_entropy: Option<MeanStd>,
    /// Perplexity, when measured.
    pub perplexity: Option<MeanStd>,
    /// Mean seconds to compute one edit.
    pub edit_seconds: f64,
    /// Wall-clock seconds of the whole evaluation.
    pub seconds: f64,
}

/// A whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The table row.
    pub summary: EvalSummary,
    /// Every record's results, in order.
    pub records: Vec<RecordEval>,
}

/// Evaluates the edited model on one record's prompts (the edit is already applied).
pub fn measure(
    model: &dyn LanguageModel,
    record: &Record,
    request: &EditRequest,
    with_generation: usize,
    corpus: Option<&[Vec<u32>]>,
) -> Result<RecordEval> {
    let tok = model.tokenizer();
    let efficacy = f64::from(u8::from(predicts(model, &request.prompt, &request.target)?));
    let paraphrase = accuracy(model, &record.paraphrase_prompts, &request.target)?;
    let true_ids = tok.encode(&spaced(&record.target_true))?;
    let neighborhood = accuracy(model, &record.neighborhood_prompts, &true_ids)?;
    let ngram = if with_generation > 0 && !record.generation_prompts.is_empty() {
        let mut sum = 0.0;
        for p in &record.generation_prompts {
            let ids = generate_greedy(model, &tok.encode(p)?, with_generation)?;
            sum += ngram_entropy(&tok.decode(&ids)?);
        }
        Some(sum / record.generation_prompts.len() as f64)
    } else {
        None
    };
    let perplexity = corpus.map(|c| perplexity(model, c)).transpose()?;
    Ok(RecordEval {
        case_id: record.case_id,
        skipped: false,
        loss_before: None,
        efficacy,
        paraphrase,
        neighborhood,
        ngram_entropy: ngram,
        perplexity,
        edit_seconds: 0.0,
        eval_seconds: 0.0,
    })
}

/// Edits `model` with `method` (the unedited model when `None`) for each record in turn,
/// measures, and restores the weights before the next record. `progress(done, total)` is called
/// after each record.
pub fn evaluate(
    model: &mut dyn LanguageModel,
    method: Option<&dyn EditMethod>,
    records: &[Record],
    options: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    let start = Instant::now();
    let mut results = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let request = EditRequest::from_record(model.tokenizer(), record)?;
        let t0 = Instant::now();
        let edit = match method {
            Some(m) => m.compute(&*model, std::slice::from_ref(&request))?,
            None => Edit::default(),
        };
        let edit_seconds = t0.elapsed().as_secs_f64();
        let fluency = options.fluency_records.is_none_or(|n| i < n);
        let generation = if fluency { options.generation_tokens } else { 0 };
        let corpus = options.perplexity_corpus.as_deref().filter(|_| fluency);
        let t1 = Instant::now();
        let guard = EditGuard::apply(&mut *model, &edit)?;
        let mut r = measure(guard.model(), record, &request, generation, corpus)?;
        guard.restore()?;
        r.skipped = method.is_some() && !edit.skipped.is_empty();
        r.loss_before = edit.loss_before;
        r.edit_seconds = edit_seconds;
        r.eval_seconds = t1.elapsed().as_secs_f64();
        results.push(r);
        progress(i + 1, records.len());
    }
    let name = method.map_or_else(|| "original model".to_string(), |m| m.name());
    Ok(EvalReport { summary: summarize(name, &results, start.elapsed().as_secs_f64())?, records: results })
}

/// The table row of a list of record results.
pub fn summarize(method: String, records: &[RecordEval], seconds: f64) -> Result<EvalSummary> {
    let col = |f: &dyn Fn(&RecordEval) -> Option<f64>| -> Vec<f64> { records.iter().filter_map(f).collect() };
    let pct = |v: Vec<f64>| MeanStd::of(&v).map(|m| m.scaled(100.0));
    let none = || EditError::Request("no records to summarize".into());
    Ok(EvalSummary {
        method,
        records: records.len(),
        skipped: records.iter().filter(|r| r.skipped).count(),
        efficacy: pct(col(&|r| Some(r.efficacy))).ok_or_else(none)?,
        paraphrase: pct(col(&|r| Some(r.paraphrase))).ok_or_else(none)?,
        neighborhood: pct(col(&|r| Some(r.neighborhood))).ok_or_else(none)?,
        ngram_entropy: pct(col(&|r| r.ngram_entropy)),
        perplexity: MeanStd::of(&col(&|r| r.perplexity)),
        edit_seconds: col(&|r| Some(r.edit_seconds)).iter().sum::<f64>() / records.len() as f64,
        seconds,
    })
}

/// A Markdown table like the paper's Tables 1/6/7 (mean ± std).
pub fn markdown_table(rows: &[EvalSummary]) -> String {
    let mut s = String::from("| method | records | skipped | efficacy ↑ | paraphrase ↑ | neighborhood ↑ | n-gram entropy ↑ | perplexity ↓ | s/edit |\n|---|---:|---:|---|---|---|---|---|---:|\n");
    let opt = |m: &Option<MeanStd>| m.map_or_else(|| "–".to_string(), |m| m.to_string());
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
            r.method,
            r.records,
            r.skipped,
            r.efficacy,
            r.paraphrase,
            r.neighborhood,
            opt(&r.ngram_entropy),
            opt(&r.perplexity),
            r.edit_seconds
        ));
    }
    s
}
