//! `hf:org/name[@revision]` model specifications.

use crate::HubError;
use std::fmt;
use std::str::FromStr;

/// The revision used when a specification names none.
pub const DEFAULT_REVISION: &str = "main";

/// The prefix that marks a Hub model specification.
pub const HUB_PREFIX: &str = "hf:";

/// A model on the Hugging Face Hub: `hf:org/name[@revision]` (revision defaults to `main`), or
/// `hf:name` for the Hub's legacy canonical repositories such as `hf:gpt2`.
///
/// ```
/// use backlens_hub::HubSpec;
/// let spec: HubSpec = "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0".parse().unwrap();
/// assert_eq!(spec.repo, "TinyLlama/TinyLlama-1.1B-Chat-v1.0");
/// assert_eq!(spec.revision, "main");
/// assert_eq!(spec.to_string().parse::<HubSpec>().unwrap(), spec);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubSpec {
    /// Repository id, `org/name`.
    pub repo: String,
    /// Branch, tag or commit hash (`main` by default).
    pub revision: String,
}

impl HubSpec {
    /// A specification for `repo` (`org/name`) at `revision`, validated like [`FromStr`].
    pub fn new(repo: &str, revision: &str) -> Result<Self, HubError> {
        format!("{HUB_PREFIX}{repo}@{revision}").parse()
    }

    /// Whether `text` looks like a Hub specification (starts with `hf:`), as opposed to a local path.
    pub fn is_hub_spec(text: &str) -> bool {
        text.starts_with(HUB_PREFIX)
    }

    /// The name of the repository's folder in the Hub cache: `models--org--name`.
    pub fn cache_folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }

    /// Whether the revision is a full 40-hex-digit commit hash.
    pub fn revision_is_commit(&self) -> bool {
        is_commit_hash(&self.revision)
    }
}

/// Whether `s` is a full (40 hex digits) git commit hash.
pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn invalid(input: &str, reason: impl Into<String>) -> HubError {
    HubError::InvalidSpec { input: input.to_string(), reason: reason.into() }
}

fn check_repo_part(input: &str, what: &str, part: &str) -> Result<(), HubError> {
    if part.is_empty() {
        return Err(invalid(input, format!("the {what} is empty")));
    }
    if let Some(c) = part.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(invalid(
            input,
            format!("the {what} {part:?} contains {c:?} (allowed: letters, digits, '-', '_', '.')"),
        ));
    }
    if part.contains("--") || part.contains("..") {
        return Err(invalid(input, format!("the {what} {part:?} contains '--' or '..'")));
    }
    if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
        return Err(invalid(input, format!("the {what} {part:?} starts or ends with '-' or '.'")));
    }
    if part.len() > 96 {
        return Err(invalid(input, format!("the {what} is longer than 96 characters")));
    }
    Ok(())
}

fn check_revision(input: &str, rev: &str) -> Result<(), HubError> {
    if rev.is_empty() {
        return Err(invalid(input, "the revision after '@' is empty (omit '@' to use `main`)"));
    }
    if let Some(c) = rev.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))) {
        return Err(invalid(
            input,
            format!("the revision {rev:?} contains {c:?} (allowed: letters, digits, '-', '_', '.', '/')"),
        ));
    }
    // The revision names a file under `refs/` in the cache: keep it a plain relative path.
    if rev.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(invalid(input, format!("the revision {rev:?} has an empty, '.' or '..' path segment")));
    }
    Ok(())
}

impl FromStr for HubSpec {
    type Err = HubError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.chars().any(char::is_whitespace) {
            return Err(invalid(input, "it contains whitespace"));
        }
        let rest = input.strip_prefix(HUB_PREFIX).ok_or_else(|| invalid(input, "it does not start with `hf:`"))?;
        if rest.is_empty() {
            return Err(invalid(input, "the repository is missing after `hf:`"));
        }
        let (repo, revision) = match rest.split_once('@') {
            Some((repo, rev)) => {
                if rev.contains('@') {
                    return Err(invalid(input, "it contains more than one '@'"));
                }
                (repo, rev)
            }
            None => (rest, DEFAULT_REVISION),
        };
        // Legacy canonical repositories have no organisation (`gpt2`, `bert-base-uncased`).
        match repo.split_once('/') {
            None => check_repo_part(input, "model name", repo)?,
            Some((_, name)) if name.contains('/') => {
                return Err(invalid(
                    input,
                    format!("the repository {repo:?} has more than one '/' (write it as org/name)"),
                ));
            }
            Some((org, name)) => {
                check_repo_part(input, "organisation", org)?;
                check_repo_part(input, "model name", name)?;
            }
        }
        check_revision(input, revision)?;
        Ok(HubSpec { repo: repo.to_string(), revision: revision.to_string() })
    }
}

impl fmt::Display for HubSpec {
    /// `hf:org/name` when the revision is `main`, `hf:org/name@revision` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.revision == DEFAULT_REVISION {
            write!(f, "{HUB_PREFIX}{}", self.repo)
        } else {
            write!(f, "{HUB_PREFIX}{}@{}", self.repo, self.revision)
        }
    }
}
