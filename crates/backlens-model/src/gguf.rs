//! Reading a GGUF file: lenient metadata accessors and shape-checked, dequantized tensors.
//!
//! The header is untrusted. Before candle parses it, [`GgufFile::open`] walks the metadata once
//! without allocating and refuses a `general.alignment` of 0 (candle divides by it). candle
//! itself bounds the tensor and metadata counts, string and array lengths by the bytes left in
//! the file. After parsing, every tensor's byte size is computed with overflow checks and must
//! lie inside the file, so no dimension in the header can exceed the file size (unless another
//! dimension of the same tensor is 0) and no later product of dimensions can overflow.

use crate::error::{ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A parsed GGUF header; tensor data is read on demand from the file.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl GgufFile {
    /// Opens and parses the header of a GGUF file.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let io = |source| ModelError::Io { path: path.to_path_buf(), source };
        let bad = |reason: String| ModelError::Gguf { path: path.to_path_buf(), reason };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(file);
        if let Some(problem) = prescan(&mut reader, file_size) {
            return Err(bad(problem));
        }
        std::io::Seek::rewind(&mut reader).map_err(io)?;
        let content = Content::read(&mut reader).map_err(|e| bad(e.to_string()))?;
        for (name, info) in &content.tensor_infos {
            check_extent(name, info, content.tensor_data_offset, file_size).map_err(bad)?;
        }
        Ok(GgufFile { path: path.to_path_buf(), content })
    }

    /// The shape of tensor `name` as candle reports it (GGUF dims reversed: a linear weight is
    /// (out, in)), or `None` when the file has no such tensor.
    pub fn tensor_shape(&self, name: &str) -> Option<&[usize]> {
        self.content.tensor_infos.get(name).map(|info| info.shape.dims())
    }

    /// The names of every tensor in the file, in no particular order.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.content.tensor_infos.keys().map(String::as_str)
    }

    /// The GGUF file.
    pub fn path(&self) -> &Path {
        &self.path
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

/// Checks that tensor `name`'s data, as its header describes it, lies inside the file: its
/// element count and byte size computed without overflow, a whole number of quantization blocks
/// in the innermost dimension, and `data offset + offset + bytes <= file size`.
fn check_extent(
    name: &str,
    info: &candle_core::quantized::gguf_file::TensorInfo,
    data_offset: u64,
    file_size: u64,
) -> std::result::Result<(), String> {
    let dims = info.shape.dims();
    let (block, type_size) = (info.ggml_dtype.block_size() as u64, info.ggml_dtype.type_size() as u64);
    let elems = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let fits = elems.and_then(|n| {
        let whole_blocks = n.is_multiple_of(block) && dims.last().is_none_or(|&d| (d as u64).is_multiple_of(block));
        let bytes = (n / block).checked_mul(type_size)?;
        let end = data_offset.checked_add(info.offset)?.checked_add(bytes)?;
        (whole_blocks && end <= file_size && usize::try_from(n).is_ok()).then_some(())
    });
    fits.ok_or_else(|| {
        format!(
            "tensor `{name}` of shape {dims:?} ({:?}) at offset {} does not fit in the file's {file_size} bytes \
             (or its innermost dimension is not a whole number of {block}-element blocks)",
            info.ggml_dtype, info.offset
        )
    })
}

/// Walks the GGUF metadata without allocating and returns a problem candle's parser would turn
/// into a panic: `general.alignment` of 0. Anything else unreadable (wrong magic, a truncated
/// header, an unknown type) is left to candle's parser, which reports it as an error.
fn prescan(reader: &mut BufReader<File>, file_size: u64) -> Option<String> {
    let mut w = Walker { reader, pos: 0, size: file_size, wide: true };
    if w.u32()? != 0x4655_4747 {
        return None;
    }
    w.wide = match w.u32()? {
        1 => false,
        2 | 3 => true,
        _ => return None,
    };
    let _tensor_count = w.len()?;
    let kv_count = w.len()?;
    for _ in 0..kv_count {
        let key_len = w.len()?;
        let is_alignment = key_len == ALIGNMENT_KEY.len() as u64 && {
            let mut key = [0u8; ALIGNMENT_KEY.len()];
            w.bytes(&mut key)?;
            key == *ALIGNMENT_KEY.as_bytes()
        };
        if !is_alignment {
            w.skip(key_len)?;
        }
        let value_type = w.u32()?;
        if is_alignment && value_type <= 7 {
            // U8, I8, U16, I16, U32, I32, U64, I64: value 0 would divide by zero in candle.
            let size = [1, 1, 2, 2, 4, 4, 8, 8][value_type as usize];
            let mut value = [0u8; 8];
            w.bytes(&mut value[..size])?;
            if value.iter().all(|&b| b == 0) {
                return Some(format!(
                    "metadata key `{ALIGNMENT_KEY}` is 0; it must be a positive power of two (GGUF writers use 32): \
                     rewrite the file with a valid alignment"
                ));
            }
            continue;
        }
        w.skip_value(value_type, 0)?;
    }
    None
}

const ALIGNMENT_KEY: &str = "general.alignment";

/// A forward-only reader over the GGUF header that tracks its position; every method returns
/// `None` at the end of the file or on a malformed length.
struct Walker<'a> {
    reader: &'a mut BufReader<File>,
    pos: u64,
    size: u64,
    /// Whether lengths are u64 (GGUF v2, v3) rather than u32 (v1).
    wide: bool,
}

impl Walker<'_> {
    fn bytes(&mut self, buf: &mut [u8]) -> Option<()> {
        self.reader.read_exact(buf).ok()?;
        self.pos += buf.len() as u64;
        Some(())
    }

    fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        self.bytes(&mut b)?;
        Some(u32::from_le_bytes(b))
    }

    fn len(&mut self) -> Option<u64> {
        if self.wide {
            let mut b = [0u8; 8];
            self.bytes(&mut b)?;
            Some(u64::from_le_bytes(b))
        } else {
            self.u32().map(u64::from)
        }
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        if n > self.size.saturating_sub(self.pos) {
            return None;
        }
        // seek_relative keeps BufReader's buffer (a plain seek would discard it on every skip).
        self.reader.seek_relative(i64::try_from(n).ok()?).ok()?;
        self.pos += n;
        Some(())
    }

    /// Skips one value of GGUF type `value_type` (arrays recursively, at most 64 deep).
    fn skip_value(&mut self, value_type: u32, depth: usize) -> Option<()> {
        match value_type {
            0 | 1 | 7 => self.skip(1),
            2 | 3 => self.skip(2),
            4..=6 => self.skip(4),
            10..=12 => self.skip(8),
            8 => {
                let n = self.len()?;
                self.skip(n)
            }
            9 if depth < 64 => {
                let inner = self.u32()?;
                let n = self.len()?;
                let fixed = match inner {
                    0 | 1 | 7 => Some(1u64),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match fixed {
                    Some(size) => self.skip(n.checked_mul(size)?),
                    None => {
                        // Each element takes at least 4 bytes, so the loop is bounded by the file.
                        if n > self.size.saturating_sub(self.pos) / 4 {
                            return None;
                        }
                        (0..n).try_for_each(|_| self.skip_value(inner, depth + 1))
                    }
                }
            }
            _ => None,
        }
    }
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
