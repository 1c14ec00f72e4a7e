//! The tokenizer, rebuilt from GGUF metadata with the `tokenizers` crate.
//!
//! candle's `TokenizerFromGguf` is wrong for SmolLM2 (it adds a prefix space). llama.cpp's
//! `smollm` pre-tokenizer is: split every digit on its own, then GPT-2 byte-level splitting
//! without a prefix space; the decoder is byte-level; control tokens are special tokens.

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

/// GGUF `token_type` of control tokens such as `<|im_start|>`.
const CONTROL_TOKEN: i64 = 3;

/// A byte-level BPE tokenizer with the vocabulary pieces kept for display.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pieces: Vec<String>,
}

impl TextTokenizer {
    /// Builds the tokenizer described by `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<TextTokenizer> {
        let model = gguf.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(ModelError::Tokenizer(format!(
                "tokenizer model `{model}` is not supported; backlens reads byte-level BPE (`gpt2`) tokenizers"
            )));
        }
        let pre = if gguf.has("tokenizer.ggml.pre") { gguf.string("tokenizer.ggml.pre")? } else { "default" };
        let pieces: Vec<String> = gguf.strings("tokenizer.ggml.tokens")?.into_iter().map(str::to_string).collect();
        let merges = gguf
            .strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                    ModelError::Tokenizer(format!("malformed merge {m:?} (expected two pieces separated by a space)"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: Vocab = pieces.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| ModelError::Tokenizer(format!("building BPE: {e}")))?;

        let byte_level = ByteLevel::default().add_prefix_space(false).use_regex(true);
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
            "gpt-2" | "gpt2" | "default" => byte_level.into(),
            other => {
                return Err(ModelError::Tokenizer(format!(
                    "pre-tokenizer `{other}` is not supported (supported: smollm, gpt-2, default)"
                )))
            }
        };
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        if gguf.has("tokenizer.ggml.token_type") {
            let types = gguf.integers("tokenizer.ggml.token_type")?;
            let special: Vec<AddedToken> = types
                .iter()
                .zip(&pieces)
                .filter(|(t, _)| **t == CONTROL_TOKEN)
                .map(|(_, p)| AddedToken::from(p.clone(), true))
                .collect();
            inner
                .add_special_tokens(special)
                .map_err(|e| ModelError::Tokenizer(format!("adding control tokens: {e}")))?;
        }
        Ok(TextTokenizer { inner, pieces })
    }

    /// Loads a Hugging Face `tokenizer.json` (any model the `tokenizers` crate reads: byte-level
    /// BPE for GPT-2, WordLevel, ...). The pieces are the vocabulary by id, added tokens included;
    /// ids missing from the vocabulary get an empty piece.
    pub fn from_tokenizer_json(path: &std::path::Path) -> Result<TextTokenizer> {
        if !path.is_file() {
            return Err(ModelError::Tokenizer(format!(
                "{} is missing: the model folder needs its tokenizer.json",
                path.display()
            )));
        }
        let inner = Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{} is not a readable tokenizer.json: {e}", path.display())))?;
        Ok(TextTokenizer::from_tokenizer(inner))
    }

    /// Wraps a `tokenizers` tokenizer; the pieces are its vocabulary by id, added tokens
    /// included, and ids missing from the vocabulary get an empty piece.
    pub(crate) fn from_tokenizer(inner: Tokenizer) -> TextTokenizer {
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut pieces = vec![String::new(); size];
        for (piece, id) in vocab {
            pieces[id as usize] = piece;
        }
        TextTokenizer { inner, pieces }
    }

    /// Token ids of `text`, with no special tokens added (SmolLM2 adds no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of token ids, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The raw vocabulary piece of a token (byte-level characters, e.g. `ĠParis`).
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The single token id of `target`, or an error naming its tokens and hinting at a leading space.
    pub fn single_token(&self, target: &str) -> Result<u32> {
        let ids = self.encode(target)?;
        if let [id] = ids[..] {
            return Ok(id);
        }
        let pieces = ids.iter().map(|&id| self.decode(&[id])).collect::<Result<Vec<_>>>()?;
        let mut hint = String::new();
        if !target.starts_with(' ') {
            let spaced = format!(" {target}");
            if let Ok([id]) = self.encode(&spaced).as_deref() {
                hint = format!("; did you mean {spaced:?} with a leading space (one token, id {id})?");
            }
        }
        if hint.is_empty() {
            hint = "; most words after a space start with a space, e.g. \" Paris\"".to_string();
        }
        Err(ModelError::TargetNotOneToken { target: target.to_string(), ids, pieces, hint })
    }
}
