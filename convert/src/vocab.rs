//! Tokenizer → GGUF SPM vocab (`tokenizer.ggml.model = "llama"`).
//!
//! Source is `tokenizer.model` (SentencePiece `ModelProto`, parsed here: the format is a handful of
//! protobuf fields) plus `added_tokens.json`, or `tokenizer.json` when no `tokenizer.model` exists.
//! Special ids and the chat template come from `tokenizer_config.json` / `special_tokens_map.json`.
use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// llama.cpp `llama_token_type` (same numbering as SentencePiece's `Type` enum).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The h2ogpt2 chat template of the real H2OVL `tokenizer_config.json`, used when the file has none.
pub const H2OGPT2_CHAT_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% if ((message['role'] == 'user') != (loop.index0 % 2 == 0)) or ((message['role'] == 'assistant') != (loop.index0 % 2 == 1)) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '<|prompt|>' + message['content'].strip() + eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|answer|>' + message['content'].strip() + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|answer|>' }}{% endif %}";

/// Everything the `tokenizer.*` GGUF keys need.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    pub pad: u32,
    pub add_bos: bool,
    pub add_eos: bool,
    /// SentencePiece `add_dummy_prefix`: HF's legacy slow tokenizer prefixes ▁ to every text chunk,
    /// which is what llama.cpp does with `add_space_prefix` (also after special tokens).
    pub add_space_prefix: bool,
    pub chat_template: Option<String>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, tok: &str) -> Option<u32> {
        self.tokens.iter().position(|t| t == tok).map(|i| i as u32)
    }
}

/// One SentencePiece entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SpmPiece {
    pub piece: String,
    pub score: f32,
    pub ty: i32,
}

/// Parsed `ModelProto` subset.
#[derive(Clone, Debug)]
pub struct SpmModel {
    pub pieces: Vec<SpmPiece>,
    pub add_dummy_prefix: bool,
}

/// Minimal protobuf reader (wire types 0, 1, 2, 5).
struct Proto<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Proto<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| anyhow!("truncated varint"))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| anyhow!("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            w => bail!("unsupported protobuf wire type {w} at byte {}", self.pos),
        };
        Ok(Some((num, f)))
    }
}

/// Parses a SentencePiece `tokenizer.model` (ModelProto: 1 = pieces, 3 = normalizer_spec).
pub fn parse_spm(bytes: &[u8]) -> Result<SpmModel> {
    let mut p = Proto { buf: bytes, pos: 0 };
    let mut pieces = Vec::new();
    let mut add_dummy_prefix = true;
    while let Some((num, f)) = p.next()? {
        match (num, f) {
            (1, Field::Bytes(b)) => {
                let mut q = Proto { buf: b, pos: 0 };
                let (mut piece, mut score, mut ty) = (None, 0.0f32, token_type::NORMAL);
                while let Some((n, f)) = q.next()? {
                    match (n, f) {
                        (1, Field::Bytes(s)) => {
                            piece = Some(
                                String::from_utf8(s.to_vec())
                                    .map_err(|_| anyhow!("piece #{} is not UTF-8", pieces.len()))?,
                            )
                        }
                        (2, Field::Fixed32(v)) => score = f32::from_bits(v),
                        (3, Field::Varint(v)) => ty = v as i32,
                        _ => {}
                    }
                }
                let piece = piece.ok_or_else(|| anyhow!("piece #{} has no text", pieces.len()))?;
                ensure!((1..=6).contains(&ty), "piece #{} {piece:?} has unknown type {ty}", pieces.len());
                pieces.push(SpmPiece { piece, score, ty });
            }
            (3, Field::Bytes(b)) => {
                let mut q = Proto { buf: b, pos: 0 };
                while let Some((n, f)) = q.next()? {
                    if let (3, Field::Varint(v)) = (n, f) {
                        add_dummy_prefix = v != 0;
                    }
                }
            }
            _ => {}
        }
    }
    ensure!(!pieces.is_empty(), "no pieces (not a SentencePiece model?)");
    Ok(SpmModel { pieces, add_dummy_prefix })
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?))
}

/// A special-token entry: a bare string or `{"content": ...}`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

/// Loads the vocab of checkpoint folder `dir`.
pub fn load_vocab(dir: &Path) -> Result<Vocab> {
    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let special_map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Value::Null);
    let spm_path = dir.join("tokenizer.model");
    let tj_path = dir.join("tokenizer.json");
    let (mut tokens, mut scores, mut types, add_space_prefix) = if spm_path.is_file() {
        let bytes = std::fs::read(&spm_path).with_context(|| format!("reading {}", spm_path.display()))?;
        let m = parse_spm(&bytes).with_context(|| format!("parsing {}", spm_path.display()))?;
        let mut t = Vec::with_capacity(m.pieces.len() + 16);
        let mut s = Vec::with_capacity(m.pieces.len() + 16);
        let mut y = Vec::with_capacity(m.pieces.len() + 16);
        for p in m.pieces {
            t.push(p.piece);
            s.push(p.score);
            y.push(p.ty);
        }
        (t, s, y, m.add_dummy_prefix)
    } else if tj_path.is_file() {
        let v = read_json(&tj_path)?.expect("checked is_file");
        let (t, s, y) = hf_json_vocab(&v).with_context(|| format!("reading vocab from {}", tj_path.display()))?;
        (t, s, y, true)
    } else {
        bail!("{}: neither tokenizer.model nor tokenizer.json found", dir.display());
    };

    // Added tokens (ids after the base vocab), special ones as CONTROL.
    let decoder = tok_cfg.get("added_tokens_decoder").and_then(|d| d.as_object());
    let extra_special: Vec<String> = tok_cfg
        .get("additional_special_tokens")
        .or_else(|| special_map.get("additional_special_tokens"))
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(token_content).collect())
        .unwrap_or_default();
    let added_path = dir.join("added_tokens.json");
    if let Some(added) = read_json(&added_path)? {
        let obj = added.as_object().ok_or_else(|| anyhow!("{}: not a JSON object", added_path.display()))?;
        let mut list: Vec<(usize, String)> = Vec::new();
        for (content, id) in obj {
            let id = id.as_u64().ok_or_else(|| anyhow!("{}: id of {content:?} is not an integer", added_path.display()))?;
            list.push((id as usize, content.clone()));
        }
        list.sort();
        for (id, content) in list {
            if id < tokens.len() {
                ensure!(
                    tokens[id] == content,
                    "{}: token {content:?} has id {id}, which is {:?} in the base vocab",
                    added_path.display(),
                    tokens[id]
                );
                continue;
            }
            ensure!(
                id == tokens.len(),
                "{}: added token {content:?} has id {id} but the next free id is {} (ids must be contiguous)",
                added_path.display(),
                tokens.len()
            );
            let special = decoder
                .and_then(|d| d.get(&id.to_string()))
                .and_then(|e| e.get("special"))
                .and_then(|s| s.as_bool())
                .unwrap_or_else(|| extra_special.contains(&content));
            tokens.push(content);
            scores.push(-1000.0);
            types.push(if special { token_type::CONTROL } else { token_type::USER_DEFINED });
        }
    }

    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        if let Some(j) = seen.insert(t.as_str(), i) {
            bail!("duplicate token string {t:?} (ids {j} and {i}); llama.cpp requires unique tokens");
        }
    }

    let lookup = |key: &str| -> Result<Option<u32>> {
        let content = tok_cfg.get(key).and_then(token_content).or_else(|| special_map.get(key).and_then(token_content));
        match content {
            None => Ok(None),
            Some(c) => seen
                .get(c.as_str())
                .map(|&i| Some(i as u32))
                .ok_or_else(|| anyhow!("{key} {c:?} (tokenizer_config.json) is not in the vocab")),
        }
    };
    let bos = lookup("bos_token")?.unwrap_or(1);
    let eos = match lookup("eos_token")? {
        Some(e) => e,
        None => seen.get("<|end|>").map(|&i| i as u32).unwrap_or(2),
    };
    let unk = lookup("unk_token")?.unwrap_or(0);
    let pad = lookup("pad_token")?.unwrap_or(unk);
    let add_bos = tok_cfg.get("add_bos_token").and_then(|b| b.as_bool()).unwrap_or(false);
    let add_eos = tok_cfg.get("add_eos_token").and_then(|b| b.as_bool()).unwrap_or(false);
    let chat_template = match tok_cfg.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    // generation_config.json's stop ids must exist (llama.cpp stops on eos and on `</s>`/`<|end|>`
    // by name, which covers H2OVL's [2, 32009]).
    let gen_path = dir.join("generation_config.json");
    if let Some(g) = read_json(&gen_path)? {
        let ids: Vec<&Value> = match g.get("eos_token_id") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for id in ids {
            let i = id.as_u64().ok_or_else(|| anyhow!("{}: eos_token_id {id} is not an id", gen_path.display()))?;
            ensure!((i as usize) < tokens.len(), "{}: eos_token_id {i} is outside the vocab ({})", gen_path.display(), tokens.len());
        }
    }
    Ok(Vocab { tokens, scores, types, bos, eos, unk, pad, add_bos, add_eos, add_space_prefix, chat_template })
}

/// Tokens, scores and types of a HF `tokenizer.json` held in memory (the fuzzers' entry; the
/// same checks as [`load_vocab`] makes on a checkpoint without `tokenizer.model`).
pub fn parse_tokenizer_json(bytes: &[u8]) -> Result<(Vec<String>, Vec<f32>, Vec<i32>)> {
    let v: Value = serde_json::from_slice(bytes).context("tokenizer.json is not JSON")?;
    hf_json_vocab(&v)
}

/// Vocab from a HF `tokenizer.json` with an SPM-derived byte-fallback BPE model: merge-rank scores
/// (earlier merge = higher score, which is what llama.cpp's SPM merge priority needs), `<0xNN>` as
/// BYTE, specials as CONTROL (`<unk>` UNKNOWN).
fn hf_json_vocab(v: &Value) -> Result<(Vec<String>, Vec<f32>, Vec<i32>)> {
    let model = v.get("model").ok_or_else(|| anyhow!("no model section"))?;
    let ty = model.get("type").and_then(|t| t.as_str()).unwrap_or("");
    ensure!(ty == "BPE", "tokenizer.json model type {ty:?} is not supported (SentencePiece-style BPE expected)");
    ensure!(
        model.get("byte_fallback").and_then(|b| b.as_bool()) == Some(true),
        "tokenizer.json BPE without byte_fallback is not an SPM vocab"
    );
    let vocab = model.get("vocab").and_then(|x| x.as_object()).ok_or_else(|| anyhow!("no model.vocab"))?;
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    if let Some(arr) = v.get("added_tokens").and_then(|a| a.as_array()) {
        for a in arr {
            let id = a.get("id").and_then(|x| x.as_u64()).ok_or_else(|| anyhow!("added token without id"))? as usize;
            let c = a.get("content").and_then(|x| x.as_str()).ok_or_else(|| anyhow!("added token {id} without content"))?;
            let special = a.get("special").and_then(|x| x.as_bool()).unwrap_or(false);
            added.push((id, c.to_string(), special));
        }
    }
    let n = vocab.len();
    let mut tokens = vec![None; n];
    for (t, id) in vocab {
        let id = id.as_u64().ok_or_else(|| anyhow!("vocab id of {t:?} is not an integer"))? as usize;
        ensure!(id < n, "vocab id {id} of {t:?} is outside 0..{n} (ids must be contiguous)");
        ensure!(tokens[id].is_none(), "vocab id {id} is used twice");
        tokens[id] = Some(t.clone());
    }
    let tokens: Vec<String> = tokens.into_iter().map(|t| t.expect("ids are a permutation of 0..n")).collect();
    let mut scores = vec![-1e9f32; n];
    if let Some(merges) = model.get("merges").and_then(|m| m.as_array()) {
        let index: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        for (rank, m) in merges.iter().enumerate() {
            let merged = match m {
                Value::String(s) => s.split_once(' ').map(|(a, b)| format!("{a}{b}")),
                Value::Array(p) if p.len() == 2 => Some(format!("{}{}", p[0].as_str().unwrap_or(""), p[1].as_str().unwrap_or(""))),
                _ => None,
            }
            .ok_or_else(|| anyhow!("merge #{rank} is malformed"))?;
            if let Some(&i) = index.get(merged.as_str()) {
                scores[i] = scores[i].max(-(rank as f32));
            }
        }
    }
    let unk = model.get("unk_token").and_then(|u| u.as_str());
    let mut types = vec![token_type::NORMAL; n];
    for (i, t) in tokens.iter().enumerate() {
        let b = t.as_bytes();
        if b.len() == 6 && t.starts_with("<0x") && t.ends_with('>') && b[3..5].iter().all(|c| c.is_ascii_hexdigit()) {
            types[i] = token_type::BYTE;
            scores[i] = 0.0;
        }
    }
    let mut tokens = tokens;
    added.sort();
    for (id, c, special) in &added {
        if *id < n {
            ensure!(tokens[*id] == *c, "added token {c:?} has id {id}, which is {:?} in the vocab", tokens[*id]);
            if *special {
                types[*id] = if Some(c.as_str()) == unk { token_type::UNKNOWN } else { token_type::CONTROL };
                scores[*id] = 0.0;
            }
        } else {
            ensure!(*id == tokens.len(), "added token {c:?} has id {id} but the next free id is {}", tokens.len());
            tokens.push(c.clone());
            scores.push(-1000.0);
            types.push(if *special { token_type::CONTROL } else { token_type::USER_DEFINED });
        }
    }
    Ok((tokens, scores, types))
}
