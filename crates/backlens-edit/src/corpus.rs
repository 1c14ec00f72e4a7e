//! The project's text corpora and how they are read: the perplexity corpus
//! (`data/perplexity-corpus.txt`, measured after each edit by [`eval`](crate::eval) and
//! [`sweep`](crate::sweep)) and the key corpus (`data/key-corpus.txt`, the statistics of the
//! whitened key in [`keys`](crate::keys)). Both are passages separated by blank lines, `#` lines
//! are comments.

use crate::error::{EditError, Result};
use backlens_model::LanguageModel;
use std::path::{Path, PathBuf};

/// The project's perplexity corpus, `data/perplexity-corpus.txt` (self-written passages; see
/// `data/README.md`).
pub fn default_corpus_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/perplexity-corpus.txt")
}

/// The project's key corpus, `data/key-corpus.txt` (self-written, disjoint from the perplexity
/// corpus so that perplexity is never measured on the text the edit was whitened on).
pub fn default_key_corpus_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/key-corpus.txt")
}

/// Reads a corpus of passages separated by blank lines (lines starting with `#` are comments),
/// tokenized and truncated to `max_tokens` each (the paper truncates WikiText sentences to 256).
pub fn load_corpus(model: &dyn LanguageModel, path: &Path, max_tokens: usize) -> Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EditError::Setting(format!("cannot read the corpus {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for passage in passages(&text) {
        let mut ids = model.tokenizer().encode(&passage)?;
        ids.truncate(max_tokens.min(model.context_length()));
        out.push(ids);
    }
    if out.is_empty() {
        return Err(EditError::Setting(format!("the corpus {} has no passage", path.display())));
    }
    Ok(out)
}

/// Passages of a corpus text: blocks separated by blank lines, `#` comment lines dropped, lines
/// of a block joined by single spaces.
pub fn passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines().chain([""]) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(cur.join(" "));
                cur.clear();
            }
        } else {
            cur.push(line);
        }
    }
    out
}
