//! CounterFact metrics as the MEMIT/ROME code computes them (the `*_acc` variants the paper's
//! Table 1 reports), fluency, and perplexity, as pure functions of logits and text.
//!
//! * [`teacher_forced_correct`]: the target is the argmax at every one of its sub-tokens, the
//!   sequence being `prompt ++ target[..k]` (teacher forcing); argmax ties go to the lowest id
//!   (PyTorch's `argmax`).
//! * [`MeanStd`]: mean and **population** standard deviation (numpy's default) over records.
//! * [`ngram_entropy`]: MEMIT's `compute_n_gram_entropy`: Shannon entropies (bits) of the
//!   bigram and trigram frequency distributions of a text's words, weighted 2/3 and 4/3, averaged.
//! * [`sequence_nll`]: the summed next-token NLL of a sequence under its logits.

use crate::error::{EditError, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The lowest index of the largest value (`NaN`s never win).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Whether the target's sub-tokens are all argmax predictions, teacher-forced.
///
/// `logits` are the model's logits for the sequence `prompt ++ target[..K-1]` (at least
/// `prompt_len + K - 1` rows); sub-token `k` is predicted by row `prompt_len - 1 + k`.
///
/// # Shapes
/// - `logits`: (T, V) with `T >= prompt_len + target.len() - 1`
pub fn teacher_forced_correct(logits: &Tensor, prompt_len: usize, target: &[u32]) -> Result<bool> {
    let t = logits.dim(0)?;
    if prompt_len == 0 || target.is_empty() || t < prompt_len + target.len() - 1 {
        return Err(EditError::Request(format!(
            "teacher forcing needs a non-empty prompt and target and {} logit rows, got prompt {prompt_len}, target {}, rows {t}",
            prompt_len + target.len().max(1) - 1,
            target.len()
        )));
    }
    let rows = logits.narrow(0, prompt_len - 1, target.len())?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows.iter().zip(target).all(|(row, &tok)| argmax(row) == tok as usize))
}

/// The summed next-token NLL (natural log) of `ids` under `logits` and the number of predicted
/// tokens: `Σ_{i<T-1} -log softmax(logits[i])[ids[i+1]]`, computed in f64.
///
/// # Shapes
/// - `logits`: (T, V), `ids`: T
pub fn sequence_nll(logits: &Tensor, ids: &[u32]) -> Result<(f64, usize)> {
    let rows = logits.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    if rows.len() != ids.len() {
        return Err(EditError::Request(format!("{} logit rows for {} tokens", rows.len(), ids.len())));
    }
    let mut nll = 0.0;
    for (row, &next) in rows.iter().zip(&ids[1..]) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        nll += lse - row[next as usize];
    }
    Ok((nll, ids.len().saturating_sub(1)))
}

/// Words of a text for the n-gram entropy: runs of letters, digits and inner apostrophes, and
/// every other non-space character on its own. An approximation of `nltk.word_tokenize`
/// (which MEMIT uses; it also splits punctuation off words), without its contraction rules.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner_apostrophe = c == '\'' && !cur.is_empty() && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            cur.push(c);
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Shannon entropy (bits) of the frequency distribution of the `n`-grams of `tokens`
/// (0 when there are none).
pub fn ngram_distribution_entropy(tokens: &[String], n: usize) -> f64 {
    if n == 0 || tokens.len() < n {
        return 0.0;
    }
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for w in tokens.windows(n) {
        *counts.entry(w).or_default() += 1;
    }
    let total = (tokens.len() - n + 1) as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// MEMIT's `compute_n_gram_entropy(text)`: the mean of `2/3 · H₂` and `4/3 · H₃` (bits), with
/// `H_n` the entropy of the text's n-gram distribution. The paper's tables show it ×100.
pub fn ngram_entropy(text: &str) -> f64 {
    let tokens = words(text);
    let weighted = [(2, 2.0 / 3.0), (3, 4.0 / 3.0)].map(|(n, w)| w * ngram_distribution_entropy(&tokens, n));
    weighted.iter().sum::<f64>() / weighted.len() as f64
}

/// Mean and population standard deviation (numpy's `np.std`, ddof 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The population standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Over `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<MeanStd> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(MeanStd { mean, std: var.sqrt() })
    }

    /// Both scaled by `k` (the paper reports accuracies and n-gram entropies ×100).
    pub fn scaled(self, k: f64) -> MeanStd {
        MeanStd { mean: self.mean * k, std: self.std * k }
    }
}

impl std::fmt::Display for MeanStd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ± {:.2}", self.mean, self.std)
    }
}
