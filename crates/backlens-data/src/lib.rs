//! CounterFact-format datasets (ROME/MEMIT's `counterfact.json`) for the Backward Lens.
//!
//! [`load`] reads either the original release's format (one JSON array of records) or JSON lines
//! (one record per line), validates every record and returns flat [`Record`]s.
//! [`default_dataset_path`] is the project's own dataset, `data/counterfact-backlens.json`
//! (see `data/README.md`). [`sample`] draws a deterministic, seeded subset ("100 random prompts").
//!
//! One record on disk:
//! ```json
//! {"case_id": 0, "requested_rewrite": {"prompt": "{} plays for", "subject": "Lionel Messi",
//!   "relation_id": "P54", "target_true": {"str": "Inter Miami", "id": ""},
//!   "target_new": {"str": "Paris", "id": ""}},
//!  "paraphrase_prompts": ["..."], "neighborhood_prompts": ["..."], "generation_prompts": ["..."]}
//! ```
//! Unknown fields (e.g. the original's `attribute_prompts`) are ignored; ids may be empty.

// Only the CLI prints; a library that must print says why in a narrow `#[allow]`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One CounterFact record, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's `case_id`, unique within a file (duplicates are rejected by [`load`]).
    pub case_id: u64,
    /// `requested_rewrite.subject`, the entity whose fact is edited, e.g. `"Lionel Messi"`;
    /// never empty.
    pub subject: String,
    /// Template with exactly one `{}` where the subject goes, e.g. `"{} plays for"`.
    pub prompt: String,
    /// `requested_rewrite.relation_id`, the Wikidata property of the fact, e.g. `"P54"`
    /// (member of sports team).
    pub relation_id: String,
    /// The true object (`target_true.str`), without a leading space.
    pub target_true: String,
    /// The counterfactual object (`target_new.str`), without a leading space; the editing
    /// target token is usually `" " + target_new`.
    pub target_new: String,
    /// Prompts that state the same fact in other words (for the edit's generalization score);
    /// at least one, none empty.
    pub paraphrase_prompts: Vec<String>,
    /// Prompts about other subjects that share `target_true` for the same relation (for the
    /// edit's specificity score, which they should keep); at least one, none empty.
    pub neighborhood_prompts: Vec<String>,
    /// Open-ended prompts about the subject for generation checks. The list may be empty (a
    /// missing field reads as empty); no prompt in it is empty.
    pub generation_prompts: Vec<String>,
}

impl Record {
    /// The template with the subject filled in (`prompt.format(subject)` in the original code).
    pub fn rewrite_prompt(&self) -> String {
        self.prompt.replacen("{}", &self.subject, 1)
    }
}

/// Errors of [`load`]. Record-level errors name the record by its position in the file
/// (`index`, 0-based; for JSON lines also the line) and by its `case_id` where it has one.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset file could not be read (missing, unreadable, or not UTF-8).
    #[error("cannot read dataset {path}: {source}")]
    Io {
        /// The dataset file that failed.
        path: PathBuf,
        /// The error from reading it.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid JSON: the array as a whole, or one line of a JSON-lines file.
    #[error("invalid JSON in {path} at line {line}, column {column}: {message}")]
    Json {
        /// The dataset file (for [`parse`], the path it was given).
        path: PathBuf,
        /// 1-based line in the file where the parser stopped (for JSON lines, the offending line).
        line: usize,
        /// 1-based column within that line, as serde_json reports it.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// The file holds nothing but whitespace (or an empty JSON array).
    #[error("dataset {path} is empty: expected a JSON array of CounterFact records or JSON lines")]
    Empty {
        /// The empty dataset file.
        path: PathBuf,
    },
    /// A record is not an object, a field has the wrong type, or validation failed: a required
    /// field missing or empty, a prompt without exactly one `{}`, `target_new` equal to
    /// `target_true`, no paraphrase or neighborhood prompt, or an empty prompt.
    #[error("{path}: record {index}{}: {problem}", case_label(.case_id))]
    Invalid {
        /// The dataset file.
        path: PathBuf,
        /// 0-based position of the record in the file (among non-blank lines for JSON lines).
        index: usize,
        /// The record's `case_id`, where it has a numeric one.
        case_id: Option<u64>,
        /// What is wrong, naming the field; for JSON lines prefixed with `(line N)`.
        problem: String,
    },
    /// Two records share a `case_id`.
    #[error("{path}: duplicate case_id {case_id} in record {index} (first used by record {first_index})")]
    DuplicateCaseId {
        /// The dataset file.
        path: PathBuf,
        /// The repeated `case_id`.
        case_id: u64,
        /// 0-based position of the later record.
        index: usize,
        /// 0-based position of the first record with that `case_id`.
        first_index: usize,
    },
}

fn case_label(case_id: &Option<u64>) -> String {
    match case_id {
        Some(id) => format!(" (case_id {id})"),
        None => String::new(),
    }
}

/// The project's dataset: `data/counterfact-backlens.json` at the repository root.
pub fn default_dataset_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/counterfact-backlens.json")
}

// ----- on-disk format ------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawRecord {
    case_id: Option<u64>,
    requested_rewrite: Option<RawRewrite>,
    paraphrase_prompts: Option<Vec<String>>,
    neighborhood_prompts: Option<Vec<String>>,
    #[serde(default)]
    generation_prompts: Vec<String>,
}

#[derive(Deserialize)]
struct RawRewrite {
    prompt: Option<String>,
    subject: Option<String>,
    relation_id: Option<String>,
    target_true: Option<RawTarget>,
    target_new: Option<RawTarget>,
}

#[derive(Deserialize)]
struct RawTarget {
    str: Option<String>,
}

/// Loads and validates a CounterFact-format dataset: a JSON array of records (the original
/// release's format) or JSON lines (one record object per non-blank line).
pub fn load(path: &Path) -> Result<Vec<Record>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// [`load`] on text already in memory; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Record>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    let json_err = |e: serde_json::Error, line_offset: usize| DataError::Json {
        path: path.to_path_buf(),
        line: e.line() + line_offset,
        column: e.column(),
        message: e.to_string(),
    };
    // Parse to generic values first, so that a record of the wrong shape is reported by
    // validation (naming the record and field) rather than as an anonymous serde error.
    let values: Vec<(serde_json::Value, Option<usize>)> = if trimmed.starts_with('[') {
        let v: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| json_err(e, 0))?;
        v.into_iter().map(|v| (v, None)).collect()
    } else {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| json_err(e, i))?;
            out.push((v, Some(i + 1)));
        }
        out
    };
    if values.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    let mut records = Vec::with_capacity(values.len());
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (index, (value, line)) in values.into_iter().enumerate() {
        let case_id_hint = value.get("case_id").and_then(|v| v.as_u64());
        let invalid = |problem: String| DataError::Invalid {
            path: path.to_path_buf(),
            index,
            case_id: case_id_hint,
            problem: match line {
                Some(l) => format!("(line {l}) {problem}"),
                None => problem,
            },
        };
        if !value.is_object() {
            return Err(invalid(format!("expected a JSON object, found {}", kind(&value))));
        }
        let raw: RawRecord = serde_json::from_value(value).map_err(|e| invalid(format!("wrong field type: {e}")))?;
        let record = validate(raw).map_err(invalid)?;
        if let Some(&first_index) = seen.get(&record.case_id) {
            return Err(DataError::DuplicateCaseId {
                path: path.to_path_buf(),
                case_id: record.case_id,
                index,
                first_index,
            });
        }
        seen.insert(record.case_id, index);
        records.push(record);
    }
    Ok(records)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn required(v: Option<String>, field: &str) -> Result<String, String> {
    match v {
        None => Err(format!("field `{field}` is missing")),
        Some(s) if s.trim().is_empty() => Err(format!("field `{field}` is empty")),
        Some(s) => Ok(s),
    }
}

fn prompts(v: Option<Vec<String>>, field: &str, min: usize) -> Result<Vec<String>, String> {
    let v = v.ok_or_else(|| format!("field `{field}` is missing"))?;
    if v.len() < min {
        return Err(format!("field `{field}` has {} prompts, at least {min} required", v.len()));
    }
    if let Some(i) = v.iter().position(|p| p.trim().is_empty()) {
        return Err(format!("field `{field}`[{i}] is an empty prompt"));
    }
    Ok(v)
}

fn validate(raw: RawRecord) -> Result<Record, String> {
    let case_id = raw.case_id.ok_or("field `case_id` is missing")?;
    let rw = raw.requested_rewrite.ok_or("field `requested_rewrite` is missing")?;
    let prompt = required(rw.prompt, "requested_rewrite.prompt")?;
    let holes = prompt.matches("{}").count();
    if holes != 1 {
        return Err(format!(
            "field `requested_rewrite.prompt` ({prompt:?}) must contain `{{}}` exactly once, found {holes}"
        ));
    }
    let subject = required(rw.subject, "requested_rewrite.subject")?;
    let relation_id = required(rw.relation_id, "requested_rewrite.relation_id")?;
    let target_true = required(
        rw.target_true.ok_or("field `requested_rewrite.target_true` is missing")?.str,
        "requested_rewrite.target_true.str",
    )?;
    let target_new = required(
        rw.target_new.ok_or("field `requested_rewrite.target_new` is missing")?.str,
        "requested_rewrite.target_new.str",
    )?;
    if target_new.trim() == target_true.trim() {
        return Err(format!(
            "field `requested_rewrite.target_new.str` equals target_true ({target_true:?}): nothing to edit"
        ));
    }
    let paraphrase_prompts = prompts(raw.paraphrase_prompts, "paraphrase_prompts", 1)?;
    let neighborhood_prompts = prompts(raw.neighborhood_prompts, "neighborhood_prompts", 1)?;
    let generation_prompts = prompts(Some(raw.generation_prompts), "generation_prompts", 0)?;
    Ok(Record {
        case_id,
        subject,
        prompt,
        relation_id,
        target_true,
        target_new,
        paraphrase_prompts,
        neighborhood_prompts,
        generation_prompts,
    })
}

// ----- sampling ------------------------------------------------------------------------------

/// A deterministic subset of `limit` records: a Fisher-Yates shuffle seeded by `seed`
/// (SplitMix64, independent of platform and crate versions), truncated to `limit`.
/// `limit >= records.len()` returns all records in their original order.
pub fn sample(records: &[Record], limit: usize, seed: u64) -> Vec<Record> {
    if limit >= records.len() {
        return records.to_vec();
    }
    let mut idx: Vec<usize> = (0..records.len()).collect();
    let mut state = seed;
    for i in (1..idx.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    idx[..limit].iter().map(|&i| records[i].clone()).collect()
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
