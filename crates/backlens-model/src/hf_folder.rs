//! A local Hugging Face model folder: `config.json`, the weights as `model.safetensors` (or
//! `model.safetensors.index.json` and its shards), and `tokenizer.json`.
//!
//! Every architecture loaded from safetensors goes through [`HfFolder`]: lenient config
//! accessors whose errors name the file and the key, and memory-mapped tensors converted to f32
//! with their shapes and finiteness checked. Truncated or corrupt files are errors, never panics.

use crate::error::{ModelError, Result};
use crate::tokenizer::TextTokenizer;
use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The single-file weights of a folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of sharded weights: `{"weight_map": {tensor name: shard file}}`.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// A Hugging Face model folder with its parsed `config.json` and memory-mapped weights.
pub struct HfFolder {
    dir: PathBuf,
    config: Value,
    /// One mapping per file (the single file, or each shard).
    shards: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name -> (index in `shards`, shape from the safetensors header).
    names: BTreeMap<String, (usize, Vec<usize>)>,
}

impl HfFolder {
    /// Opens a folder with `config.json` and `model.safetensors` (or
    /// `model.safetensors.index.json` and its shards), parsing the config and every
    /// safetensors header.
    pub fn open(dir: &Path) -> Result<HfFolder> {
        if !dir.is_dir() {
            return Err(folder_error(dir, "is not a folder: pass a local Hugging Face model folder (config.json, model.safetensors, tokenizer.json)"));
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| folder_error(&config_path, &format!("cannot read the model's config.json: {e}")))?;
        let config: Value =
            serde_json::from_str(&text).map_err(|e| folder_error(&config_path, &format!("is not valid JSON: {e}")))?;
        if !config.is_object() {
            return Err(folder_error(&config_path, "must hold a JSON object"));
        }
        let single = dir.join(WEIGHTS_FILE);
        let index = dir.join(WEIGHTS_INDEX_FILE);
        let (weights_path, shards) = if single.is_file() {
            (single.clone(), vec![single])
        } else if index.is_file() {
            let shards = shard_files(dir, &index)?;
            (index, shards)
        } else {
            return Err(folder_error(dir, &format!("has no weights: expected {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE}")));
        };
        for shard in &shards {
            if !shard.is_file() {
                return Err(folder_error(shard, &format!("is listed in {} but missing", weights_path.display())));
            }
        }
        let mut names = BTreeMap::new();
        let mut mapped = Vec::with_capacity(shards.len());
        for (i, shard) in shards.into_iter().enumerate() {
            #[allow(unsafe_code)] // the workspace denies unsafe code; this mapping is the one exception
            // SAFETY: the file is mapped read-only; like every memory-mapped loader we assume it is
            // not modified while the folder is open. safetensors validates the header against the
            // file size, so a truncated file is an error here.
            let st = unsafe { MmapedSafetensors::new(&shard) }
                .map_err(|e| ModelError::Safetensors { path: shard.clone(), reason: e.to_string() })?;
            names.extend(st.tensors().into_iter().map(|(name, view)| (name, (i, view.shape().to_vec()))));
            mapped.push((shard, st));
        }
        Ok(HfFolder { dir: dir.to_path_buf(), config, shards: mapped, names })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &Value {
        &self.config
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn value(&self, key: &str) -> Result<&Value> {
        match self.config.get(key) {
            Some(Value::Null) | None => Err(self.config_error(key, "missing".to_string())),
            Some(v) => Ok(v),
        }
    }

    fn config_error(&self, key: &str, problem: String) -> ModelError {
        ModelError::Config { path: self.config_path(), key: key.to_string(), problem }
    }

    fn type_error(&self, key: &str, wanted: &str, found: &Value) -> ModelError {
        let found: String = found.to_string().chars().take(60).collect();
        self.config_error(key, format!("expected {wanted}, found {found}"))
    }

    /// A non-negative integer (`12`, or `12.0` as some writers store it).
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.value(key)?;
        as_usize(v).ok_or_else(|| self.type_error(key, "a non-negative integer", v))
    }

    /// A number.
    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = self.value(key)?;
        v.as_f64().ok_or_else(|| self.type_error(key, "a number", v))
    }

    /// A string.
    pub fn string(&self, key: &str) -> Result<&str> {
        let v = self.value(key)?;
        v.as_str().ok_or_else(|| self.type_error(key, "a string", v))
    }

    /// A non-negative integer, or `None` when the key is missing, null or of another type.
    pub fn opt_usize(&self, key: &str) -> Option<usize> {
        self.config.get(key).and_then(as_usize)
    }

    /// A number, or `None` when the key is missing, null or of another type.
    pub fn opt_f64(&self, key: &str) -> Option<f64> {
        self.config.get(key).and_then(Value::as_f64)
    }

    /// A non-negative integer, or `default` when the key is missing or null; another type is an
    /// error naming the key.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    /// A number, or `default` when the key is missing or null; another type is an error naming
    /// the key.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.f64(key),
        }
    }

    /// A boolean, or `default` when the key is missing or null; another type is an error naming
    /// the key.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.type_error(key, "true or false", v)),
        }
    }

    /// The shape of tensor `name` from its safetensors header, or `None` when the weights have
    /// no such tensor.
    pub fn tensor_shape(&self, name: &str) -> Option<&[usize]> {
        self.names.get(name).map(|(_, shape)| shape.as_slice())
    }

    /// A boolean, or `None` when the key is missing, null or of another type.
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.config.get(key).and_then(Value::as_bool)
    }

    /// Whether the weights have tensor `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Every tensor name in the weights, sorted.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Loads tensors converted to f32 (from f32, f16, bf16 or f64), checking that each exists
    /// ([`ModelError::MissingTensor`]), has the expected shape ([`ModelError::ShapeMismatch`])
    /// and holds only finite values ([`ModelError::NonFinite`]). Every shape is checked before
    /// any data is read.
    ///
    /// # Shapes
    /// Tensor i has shape `specs[i].1`, in the file's layout (no transposition here).
    pub fn tensors(&self, specs: &[(String, Vec<usize>)], device: &Device) -> Result<Vec<Tensor>> {
        let mut views = Vec::with_capacity(specs.len());
        for (name, expected) in specs {
            let &(shard, _) = self.names.get(name).ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
            let (path, st) = &self.shards[shard];
            let view = st
                .get(name)
                .map_err(|e| ModelError::Safetensors { path: path.clone(), reason: format!("tensor `{name}`: {e}") })?;
            if view.shape() != expected.as_slice() {
                return Err(ModelError::ShapeMismatch {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: view.shape().to_vec(),
                });
            }
            views.push((path, view));
        }
        specs
            .iter()
            .zip(views)
            .map(|((name, _), (path, view))| {
                let bad = |reason: String| ModelError::Safetensors {
                    path: path.clone(),
                    reason: format!("tensor `{name}`: {reason}"),
                };
                let t = view.load(device).map_err(|e| bad(e.to_string()))?;
                if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
                    return Err(bad(format!(
                        "dtype {:?} is not a floating-point type (expected f32, f16 or bf16)",
                        t.dtype()
                    )));
                }
                let t = t.to_dtype(DType::F32)?;
                if !t.sum_all()?.to_scalar::<f32>()?.is_finite() {
                    return Err(ModelError::NonFinite { name: name.clone() });
                }
                Ok(t)
            })
            .collect()
    }

    /// The tokenizer from `tokenizer.json`.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        TextTokenizer::from_tokenizer_json(&self.dir.join("tokenizer.json"))
    }
}

fn folder_error(path: &Path, problem: &str) -> ModelError {
    ModelError::HfFolder { path: path.to_path_buf(), problem: problem.to_string() }
}

/// The distinct shard files named by an index's `weight_map`, in first-seen order.
fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| folder_error(index, &format!("cannot read: {e}")))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| folder_error(index, &format!("is not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| folder_error(index, "has no `weight_map` object"))?;
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let file =
            file.as_str().ok_or_else(|| folder_error(index, &format!("`weight_map[{name:?}]` is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(folder_error(index, &format!("shard {file:?} must be a file name inside the folder")));
        }
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    if files.is_empty() {
        return Err(folder_error(index, "`weight_map` is empty"));
    }
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

fn as_usize(v: &Value) -> Option<usize> {
    if let Some(x) = v.as_u64() {
        return usize::try_from(x).ok();
    }
    let x = v.as_f64()?;
    (x >= 0.0 && x.fract() == 0.0 && x <= usize::MAX as f64).then_some(x as usize)
}
