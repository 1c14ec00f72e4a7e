//! What to edit: a prompt and the new target's token ids.

use crate::error::{EditError, Result};
use backlens_data::Record;
use backlens_model::TextTokenizer;

/// One edit request: after `prompt`, the model should continue with `target`.
///
/// `target` holds every sub-token of the new target. Forward pass shift uses only the first
/// (the paper's App. I.2, "we select the prefix (the first token)"); the gradient methods use the
/// teacher-forced loss over all of them; the metrics check all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRequest {
    /// Token ids of the prompt (non-empty).
    pub prompt: Vec<u32>,
    /// Token ids of the new target (non-empty).
    pub target: Vec<u32>,
    /// The prompt's template with `{}` where the subject goes, when known (CounterFact's
    /// `prompt`); the template-contrast key of forward pass shift needs it.
    pub template: Option<String>,
}

impl EditRequest {
    /// A request from token ids; both must be non-empty.
    pub fn new(prompt: Vec<u32>, target: Vec<u32>) -> Result<EditRequest> {
        if prompt.is_empty() {
            return Err(EditError::Request("the prompt has no tokens".into()));
        }
        if target.is_empty() {
            return Err(EditError::Request("the target has no tokens".into()));
        }
        Ok(EditRequest { prompt, target, template: None })
    }

    /// A request from text. The target is encoded as given: for a word after the prompt this
    /// usually needs a leading space (`" Paris"`).
    pub fn from_text(tokenizer: &TextTokenizer, prompt: &str, target: &str) -> Result<EditRequest> {
        EditRequest::new(tokenizer.encode(prompt)?, tokenizer.encode(target)?)
    }

    /// The rewrite of a CounterFact record: `prompt.format(subject)` → `" " + target_new`
    /// (the leading space as in the authors' code).
    /// The record's template is kept in [`template`](Self::template).
    pub fn from_record(tokenizer: &TextTokenizer, record: &Record) -> Result<EditRequest> {
        Ok(EditRequest::from_text(tokenizer, &record.rewrite_prompt(), &spaced(&record.target_new))?
            .with_template(&record.prompt))
    }

    /// The same request with its prompt's template (`{}` where the subject goes).
    pub fn with_template(self, template: &str) -> EditRequest {
        EditRequest { template: Some(template.to_string()), ..self }
    }

    /// The first sub-token of the target, the one forward pass shift writes in.
    pub fn first_target(&self) -> u32 {
        self.target[0]
    }

    /// The teacher-forced steps of the target: for each sub-token k, the context
    /// `prompt ++ target[..k]` and the token `target[k]` it should predict.
    pub fn teacher_forced(&self) -> impl Iterator<Item = (Vec<u32>, u32)> + '_ {
        (0..self.target.len()).map(|k| {
            let mut ids = self.prompt.clone();
            ids.extend_from_slice(&self.target[..k]);
            (ids, self.target[k])
        })
    }
}

/// `" " + text` unless `text` already starts with whitespace (CounterFact stores targets
/// without the leading space).
pub fn spaced(text: &str) -> String {
    if text.starts_with(char::is_whitespace) {
        text.to_string()
    } else {
        format!(" {text}")
    }
}
