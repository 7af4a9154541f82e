//! A JSON [`Constraint`] applied while sampling: the two parts that need the loaded model.
//!
//! - [`GrammarMask`]: llama.cpp's grammar sampler (`llama_sampler_init_grammar`) as a logit mask.
//!   Sampling itself stays in [`super::sampling`]; the grammar only says which tokens may come
//!   next (it sets the others' logits to -inf) and advances when a token is chosen. llama.cpp
//!   aborts the process if a token the grammar rejects is accepted, so [`GrammarMask::accept`]
//!   checks first and returns an error instead.
//! - [`ModelVocab`]: the model's tokenizer as `json::budget` needs it to close the answer in time.
//!
//! Everything else about JSON (schemas, GBNF text, the scanner, the budget's plan) is in
//! [`crate::json`], which knows nothing of llama.cpp: the LLM side uses it, not the reverse.
use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use llama_cpp_sys_2 as sys;

use crate::json::budget::{spell_greedy, Vocab};
use crate::json::Constraint;

use super::ffi::{Model, Token};
use super::sampling::Sampler;

/// Tokens checked first when the greedy choice is rejected (see [`GrammarMask::sample`]).
pub const SHORTLIST: usize = 128;

/// A live grammar state for one generation.
pub struct GrammarMask {
    smpl: NonNull<sys::llama_sampler>,
    vocab: *const sys::llama_vocab,
    n_vocab: usize,
    buf: Vec<sys::llama_token_data>,
}

// SAFETY: the sampler is owned exclusively by this value and only used through `&mut self`;
// the vocab pointer is read-only and outlives it (the caller keeps the Model alive).
unsafe impl Send for GrammarMask {}

impl GrammarMask {
    /// Compile `c` for `model`'s vocabulary. A grammar llama.cpp cannot parse is an error.
    pub fn new(model: &Model, c: &Constraint) -> Result<GrammarMask> {
        let g = CString::new(c.gbnf.as_str()).context("the grammar contains a NUL byte")?;
        let root = CString::new(c.root.as_str()).context("the grammar root contains a NUL byte")?;
        let vocab = model.vocab_ptr();
        // SAFETY: both strings are NUL-terminated and live across the call; `vocab` is valid
        // while `model` lives. Returns null when the grammar does not parse.
        let raw = unsafe { sys::llama_sampler_init_grammar(vocab, g.as_ptr(), root.as_ptr()) };
        let smpl = NonNull::new(raw).context("llama.cpp could not parse the generated JSON grammar (run with --verbose to see why)")?;
        Ok(GrammarMask { smpl, vocab, n_vocab: model.n_vocab(), buf: Vec::new() })
    }

    fn apply(&mut self) {
        let mut arr = sys::llama_token_data_array { data: self.buf.as_mut_ptr(), size: self.buf.len(), selected: -1, sorted: false };
        // SAFETY: `arr` points into `self.buf`, valid for `size` entries during the call; the
        // sampler only rewrites logits in place.
        unsafe { sys::llama_sampler_apply(self.smpl.as_ptr(), &mut arr) };
    }

    /// Whether the grammar allows `tok` next.
    pub fn allows(&mut self, tok: Token) -> bool {
        // llama.cpp looks the piece up with a bounds-checked `at()` that throws across FFI.
        if tok < 0 || tok as usize >= self.n_vocab {
            return false;
        }
        self.buf.clear();
        self.buf.push(sys::llama_token_data { id: tok, logit: 0.0, p: 0.0 });
        self.apply();
        self.buf[0].logit.is_finite()
    }

    /// Set the logits of every token the grammar forbids to -inf. Errors when nothing is left.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        if logits.len() > self.n_vocab {
            bail!("{} logits for a vocabulary of {}", logits.len(), self.n_vocab);
        }
        self.buf.clear();
        self.buf.extend(logits.iter().enumerate().map(|(i, &l)| sys::llama_token_data { id: i as Token, logit: l, p: 0.0 }));
        self.apply();
        let mut any = false;
        for (l, d) in logits.iter_mut().zip(&self.buf) {
            *l = d.logit;
            any |= d.logit > f32::NEG_INFINITY;
        }
        if !any {
            bail!("the JSON grammar allows no token at this point (vocabulary cannot express it)");
        }
        Ok(())
    }

    /// Choose the next token among those the grammar allows. `greedy` (the sampler is an argmax,
    /// possibly after a repeat penalty): try the unconstrained choice first; if the grammar
    /// rejects it, check only a shortlist (the [`SHORTLIST`] highest raw logits plus every token
    /// of `recent`, the only ones a repeat penalty can move). The shortlist's best allowed token
    /// is the global one (ties aside) as soon as an allowed, unpenalised shortlist token exists (everything
    /// outside ranks below it); otherwise the whole vocabulary is masked. Masking 32k tokens
    /// through the grammar costs ~20 ms a step, the shortlist well under 1 ms. Non-greedy: mask
    /// everything first so the draw is from the constrained distribution.
    pub fn sample(&mut self, sampler: &mut Sampler, logits: &mut [f32], recent: &[Token], greedy: bool) -> Result<Token> {
        if greedy {
            let t = sampler.sample(logits, recent);
            if self.allows(t) {
                return Ok(t);
            }
            if let Some(t) = self.sample_shortlist(sampler, logits, recent) {
                return Ok(t);
            }
        }
        self.mask(logits)?;
        Ok(sampler.sample(logits, recent))
    }

    fn sample_shortlist(&mut self, sampler: &mut Sampler, logits: &[f32], recent: &[Token]) -> Option<Token> {
        let n = logits.len();
        if n == 0 || n > self.n_vocab {
            return None; // `mask` reports the mismatch
        }
        let k = SHORTLIST.min(n);
        let mut idx: Vec<usize> = (0..n).collect();
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        let in_recent: std::collections::HashSet<Token> = recent.iter().copied().filter(|&t| t >= 0 && (t as usize) < n).collect();
        let mut cand: Vec<Token> = idx[..k].iter().map(|&i| i as Token).collect();
        cand.extend(in_recent.iter().copied().filter(|&t| !idx[..k].contains(&(t as usize))));
        self.buf.clear();
        self.buf.extend(cand.iter().map(|&t| sys::llama_token_data { id: t, logit: logits[t as usize], p: 0.0 }));
        self.apply();
        // Exact only if an allowed top-k token is untouched by the penalty.
        if !self.buf[..k].iter().any(|d| d.logit > f32::NEG_INFINITY && !in_recent.contains(&d.id)) {
            return None;
        }
        let mut masked = vec![f32::NEG_INFINITY; n];
        for d in &self.buf {
            masked[d.id as usize] = d.logit;
        }
        Some(sampler.sample(&masked, recent))
    }

    /// Advance the grammar past `tok` (which must be allowed).
    pub fn accept(&mut self, tok: Token) -> Result<()> {
        if !self.allows(tok) {
            bail!("token {tok} does not follow the JSON grammar");
        }
        // SAFETY: valid sampler; `tok` was just checked to be accepted, so llama.cpp will not abort.
        unsafe { sys::llama_sampler_accept(self.smpl.as_ptr(), tok) };
        Ok(())
    }

    /// Whether `tok` is an end-of-generation token of the vocabulary (the only tokens the
    /// grammar allows once the JSON value is complete).
    pub fn is_eog(&self, tok: Token) -> bool {
        // SAFETY: valid vocab pointer; llama.cpp answers from a set lookup (any id is fine).
        tok >= 0 && unsafe { sys::llama_vocab_is_eog(self.vocab, tok) }
    }
}

impl Drop for GrammarMask {
    fn drop(&mut self) {
        // SAFETY: created by llama_sampler_init_grammar and freed exactly once.
        unsafe { sys::llama_sampler_free(self.smpl.as_ptr()) };
    }
}

/// [`Vocab`] over a llama.cpp model: `encode` is `llama_tokenize` minus SentencePiece's dummy
/// leading space; pieces are the non-special tokens' bytes (byte-fallback tokens included).
pub struct ModelVocab {
    model: Arc<Model>,
    pieces: Vec<Vec<u8>>,
    by_piece: HashMap<Vec<u8>, Token>,
    max_len: usize,
}

impl ModelVocab {
    /// Reads every token's piece once (~32k calls, a few ms).
    pub fn new(model: Arc<Model>) -> ModelVocab {
        let n = model.n_vocab();
        let mut pieces = Vec::with_capacity(n);
        let mut by_piece = HashMap::with_capacity(n);
        for t in 0..n as Token {
            let p = if model.is_special(t) { Vec::new() } else { model.token_to_piece(t, false) };
            if !p.is_empty() {
                by_piece.entry(p.clone()).or_insert(t);
            }
            pieces.push(p);
        }
        let max_len = pieces.iter().map(Vec::len).max().unwrap_or(1);
        ModelVocab { model, pieces, by_piece, max_len }
    }

    fn spelled(&self, ids: &[Token]) -> Vec<u8> {
        ids.iter().flat_map(|&t| self.piece(t).iter().copied()).collect()
    }
}

impl Vocab for ModelVocab {
    fn encode(&self, text: &[u8]) -> Option<Vec<Token>> {
        // Continuation bytes of a character split by the model (byte-fallback tokens) first.
        let lead = text.iter().take_while(|&&b| b & 0xC0 == 0x80).count();
        let mut out = spell_greedy(self, &text[..lead])?;
        let rest = &text[lead..];
        if rest.is_empty() {
            return Some(out);
        }
        let ids = std::str::from_utf8(rest).ok().and_then(|s| self.model.tokenize(s, false).ok());
        let Some(ids) = ids.filter(|i| !i.is_empty()) else {
            out.extend(spell_greedy(self, rest)?);
            return Some(out);
        };
        let spelled = self.spelled(&ids);
        if spelled == rest {
            out.extend(ids);
        } else if spelled.len() == rest.len() + 1 && spelled[0] == b' ' && &spelled[1..] == rest {
            // The dummy prefix: drop the space token, or swap the first token for its piece
            // without the space.
            let p0 = self.piece(ids[0]);
            if p0 == b" " {
                out.extend(&ids[1..]);
            } else if let Some(t) = self.token_of(&p0[1..]) {
                out.push(t);
                out.extend(&ids[1..]);
            } else {
                out.extend(spell_greedy(self, rest)?);
            }
        } else {
            out.extend(spell_greedy(self, rest)?);
        }
        Some(out)
    }

    fn piece(&self, t: Token) -> &[u8] {
        usize::try_from(t).ok().and_then(|i| self.pieces.get(i)).map(Vec::as_slice).unwrap_or(&[])
    }

    fn token_of(&self, bytes: &[u8]) -> Option<Token> {
        self.by_piece.get(bytes).copied()
    }

    fn max_piece_len(&self) -> usize {
        self.max_len
    }
}
