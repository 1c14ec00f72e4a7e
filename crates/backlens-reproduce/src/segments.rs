//! Prompt segments (Figures 5, 6 and 16): which part of an edit prompt each token belongs to.
//!
//! The paper divides "each prompt's tokens into segments" without defining them; we use the
//! ROME-style split its figures label (first subject token, middle subject tokens, last subject
//! token, further tokens, last token) and add the tokens *before* the subject, which CounterFact
//! templates such as "The mother tongue of {} is" have:
//!
//! | segment | tokens |
//! |---|---|
//! | `before subject` | every token before the subject's first token |
//! | `first subject` | the subject's first token, when the subject has two or more tokens |
//! | `middle subject` | subject tokens strictly between its first and last |
//! | `last subject` | the subject's last token (a one-token subject is only this) |
//! | `further` | tokens after the subject, except the prompt's last token |
//! | `last` | the prompt's last token (it wins over every other segment) |
//!
//! A token belongs to the subject when its characters overlap the subject's characters in the
//! prompt, so a token such as `" Messi"` (leading space outside the subject) counts.

use backlens_model::TextTokenizer;
use serde::Serialize;

use backlens::Error;

/// The part of an edit prompt a token belongs to (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Segment {
    /// Every token before the subject's first token.
    BeforeSubject,
    /// The subject's first token, when the subject has two or more tokens.
    FirstSubject,
    /// Subject tokens strictly between its first and last.
    MiddleSubject,
    /// The subject's last token (a one-token subject is only this).
    LastSubject,
    /// Tokens after the subject, except the prompt's last token.
    Further,
    /// The prompt's last token (it wins over every other segment).
    Last,
}

impl Segment {
    /// Every segment, in prompt order.
    pub const ALL: [Segment; 6] = [
        Segment::BeforeSubject,
        Segment::FirstSubject,
        Segment::MiddleSubject,
        Segment::LastSubject,
        Segment::Further,
        Segment::Last,
    ];

    /// The label used in figures.
    pub fn label(self) -> &'static str {
        match self {
            Segment::BeforeSubject => "before subject",
            Segment::FirstSubject => "first subject",
            Segment::MiddleSubject => "middle subject",
            Segment::LastSubject => "last subject",
            Segment::Further => "further",
            Segment::Last => "last",
        }
    }

    /// Position in [`Segment::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The segment of each token of `template` with `subject` in place of its `{}`.
///
/// Returns the prompt's token ids and one segment per token. Errors when the template has no
/// `{}`, the prompt is empty, or no token overlaps the subject.
pub fn segment_prompt(
    tokenizer: &TextTokenizer,
    template: &str,
    subject: &str,
) -> Result<(Vec<u32>, Vec<Segment>), Error> {
    let invalid =
        |reason: String| Error::Input(format!("cannot segment {template:?} with subject {subject:?}: {reason}"));
    let start = template.find("{}").ok_or_else(|| invalid("the template has no `{}` for the subject".into()))?;
    let prompt = template.replacen("{}", subject, 1);
    let ids = tokenizer.encode(&prompt)?;
    if ids.is_empty() {
        return Err(invalid("the prompt has no tokens".into()));
    }
    // Character end of each token: the length of the decoded prefix that ends with it.
    let ends = (1..=ids.len()).map(|k| tokenizer.decode(&ids[..k]).map(|s| s.len())).collect::<Result<Vec<_>, _>>()?;
    let subject_span = start..start + subject.len();
    let subject_tokens: Vec<usize> = (0..ids.len())
        .filter(|&k| {
            let begin = if k == 0 { 0 } else { ends[k - 1] };
            begin < subject_span.end && ends[k] > subject_span.start
        })
        .collect();
    let (&first, &last) = match (subject_tokens.first(), subject_tokens.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(invalid("no token overlaps the subject".into())),
    };
    let segments = (0..ids.len())
        .map(|k| match k {
            _ if k + 1 == ids.len() => Segment::Last,
            _ if k < first => Segment::BeforeSubject,
            _ if k == last => Segment::LastSubject,
            _ if k == first => Segment::FirstSubject,
            _ if k < last => Segment::MiddleSubject,
            _ => Segment::Further,
        })
        .collect();
    Ok((ids, segments))
}

/// Mean of `values` over the tokens of each segment: `None` where a segment has no token or no
/// value (`values[k]` is `None` for a token without one).
pub fn segment_means(segments: &[Segment], values: impl IntoIterator<Item = Option<f64>>) -> [Option<f64>; 6] {
    let mut sum = [0.0; 6];
    let mut count = [0usize; 6];
    for (segment, value) in segments.iter().zip(values) {
        if let Some(v) = value {
            sum[segment.index()] += v;
            count[segment.index()] += 1;
        }
    }
    std::array::from_fn(|s| (count[s] > 0).then(|| sum[s] / count[s] as f64))
}
