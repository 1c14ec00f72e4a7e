//! Reading a GGUF file: lenient metadata accessors and shape-checked, dequantized tensors.

use crate::error::{ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A parsed GGUF header; tensor data is read on demand from the file.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl GgufFile {
    /// Opens and parses the header of a GGUF file.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| ModelError::Gguf { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(GgufFile { path: path.to_path_buf(), content })
    }

    /// The raw metadata value of `key`.
    pub fn value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| ModelError::Metadata { key: key.to_string(), problem: "missing from the file".to_string() })
    }

    /// Whether the metadata has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    /// A string value.
    pub fn string(&self, key: &str) -> Result<&str> {
        match self.value(key)? {
            Value::String(s) => Ok(s),
            other => Err(type_error(key, "a string", other)),
        }
    }

    /// A non-negative integer stored as any GGUF integer type (writers differ).
    pub fn usize(&self, key: &str) -> Result<usize> {
        as_usize(self.value(key)?).ok_or_else(|| type_error(key, "a non-negative integer", self.value(key).unwrap()))
    }

    /// A number stored as any GGUF integer or float type.
    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = self.value(key)?;
        match v {
            Value::F32(x) => Ok(*x as f64),
            Value::F64(x) => Ok(*x),
            _ => as_usize(v).map(|x| x as f64).ok_or_else(|| type_error(key, "a number", v)),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(type_error(key, "an array of strings", other)),
            })
            .collect()
    }

    /// An array of integers.
    pub fn integers(&self, key: &str) -> Result<Vec<i64>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::I32(x) => Ok(*x as i64),
                Value::I64(x) => Ok(*x),
                other => {
                    as_usize(other).map(|x| x as i64).ok_or_else(|| type_error(key, "an array of integers", other))
                }
            })
            .collect()
    }

    fn array(&self, key: &str) -> Result<&Vec<Value>> {
        match self.value(key)? {
            Value::Array(a) => Ok(a),
            other => Err(type_error(key, "an array", other)),
        }
    }

    /// Whether the file has tensor `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Loads tensors dequantized to f32, checking each shape and that every value is finite.
    ///
    /// Reading and dequantization run on all cores, each worker with its own file handle.
    ///
    /// # Shapes
    /// Tensor i has shape `specs[i].1` (GGUF lists dims innermost-first; candle reverses them,
    /// so a linear weight arrives as (out, in)).
    pub fn tensors(&self, specs: &[(String, Vec<usize>)], device: &Device) -> Result<Vec<Tensor>> {
        for (name, expected) in specs {
            let info = self.content.tensor_infos.get(name).ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
            if info.shape.dims() != expected.as_slice() {
                return Err(ModelError::ShapeMismatch {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: info.shape.dims().to_vec(),
                });
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Interleave so every worker gets a similar mix of large and small tensors.
        std::thread::scope(|scope| {
            let workers: Vec<_> =
                (0..threads).map(|w| scope.spawn(move || self.load_every(specs, w, threads, device))).collect();
            let mut parts = Vec::with_capacity(threads);
            for worker in workers {
                parts.push(worker.join().expect("tensor loading thread panicked")?.into_iter());
            }
            Ok((0..specs.len()).map(|i| parts[i % threads].next().expect("one tensor per spec")).collect())
        })
    }

    /// Tensors `start, start + step, ...` of `specs`, read with a private file handle.
    fn load_every(
        &self,
        specs: &[(String, Vec<usize>)],
        start: usize,
        step: usize,
        device: &Device,
    ) -> Result<Vec<Tensor>> {
        let file = File::open(&self.path).map_err(|source| ModelError::Io { path: self.path.clone(), source })?;
        let mut reader = BufReader::new(file);
        specs
            .iter()
            .skip(start)
            .step_by(step)
            .map(|(name, _)| {
                let q = self.content.tensor(&mut reader, name, device).map_err(|e| ModelError::Gguf {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}`: {e}"),
                })?;
                dequantize(name, &q, device)
            })
            .collect()
    }
}

fn dequantize(name: &str, q: &QTensor, device: &Device) -> Result<Tensor> {
    let t = q.dequantize(device)?.to_dtype(DType::F32)?;
    if !t.sum_all()?.to_scalar::<f32>()?.is_finite() {
        return Err(ModelError::NonFinite { name: name.to_string() });
    }
    Ok(t)
}

fn as_usize(v: &Value) -> Option<usize> {
    let x: i128 = match v {
        Value::U8(x) => *x as i128,
        Value::I8(x) => *x as i128,
        Value::U16(x) => *x as i128,
        Value::I16(x) => *x as i128,
        Value::U32(x) => *x as i128,
        Value::I32(x) => *x as i128,
        Value::U64(x) => *x as i128,
        Value::I64(x) => *x as i128,
        _ => return None,
    };
    usize::try_from(x).ok()
}

fn type_error(key: &str, wanted: &str, found: &Value) -> ModelError {
    let found = format!("{found:?}");
    let found: String = found.chars().take(60).collect();
    ModelError::Metadata { key: key.to_string(), problem: format!("expected {wanted}, found {found}") }
}
