//! JSON that parses whatever the token budget: close every open value before `max_new_tokens`.
//!
//! A bounded grammar guarantees the answer *can* end, not that it ends within `max_new_tokens`:
//! cut there, `{"name": "Jo` does not parse. [`Budget`] follows the answer with a
//! [`Scanner`] and, before each sampled token is accepted, checks that the shortest completion
//! of the text *with* that token still fits in the tokens left after it, counted with the model's
//! own tokenizer ([`Vocab::encode`]). When it would not fit, generation switches to closing: the
//! completion of the text so far is tokenized once and its tokens are emitted one by one, each
//! checked against the grammar first (a rejected one re-plans from the grammar-allowed vocabulary
//! pieces that spell the completion). The invariant "the completion fits in what is left" holds
//! from the first step because the smallest valid value is checked up front
//! ([`Budget::minimum`]).
use std::collections::VecDeque;
use std::sync::Arc;

use super::scanner::Scanner;
use super::shape::Shape;

/// A token id, numbered as llama.cpp numbers them (`llama_token`); this module needs no model,
/// only a [`Vocab`] (`llm::grammar::ModelVocab` is the one over a loaded model).
pub type Token = i32;

/// The model's tokenizer as the closer needs it.
pub trait Vocab {
    /// Tokens that spell exactly `text` (no leading space added), as the model's tokenizer
    /// splits it; `None` if the vocabulary cannot spell it.
    fn encode(&self, text: &[u8]) -> Option<Vec<Token>>;
    /// The bytes a token adds to the answer.
    fn piece(&self, t: Token) -> &[u8];
    /// The token whose piece is exactly `bytes`, if any.
    fn token_of(&self, bytes: &[u8]) -> Option<Token>;
    /// Length of the longest piece.
    fn max_piece_len(&self) -> usize;
}

impl<V: Vocab> Vocab for Arc<V> {
    fn encode(&self, text: &[u8]) -> Option<Vec<Token>> {
        (**self).encode(text)
    }
    fn piece(&self, t: Token) -> &[u8] {
        (**self).piece(t)
    }
    fn token_of(&self, bytes: &[u8]) -> Option<Token> {
        (**self).token_of(bytes)
    }
    fn max_piece_len(&self) -> usize {
        (**self).max_piece_len()
    }
}

/// Longest-match spelling of `text` with vocabulary pieces (the fallback of [`Vocab::encode`]).
pub fn spell_greedy(v: &impl Vocab, text: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let longest = v.max_piece_len().min(text.len() - i);
        let (len, t) = (1..=longest).rev().find_map(|n| v.token_of(&text[i..i + n]).map(|t| (n, t)))?;
        out.push(t);
        i += len;
    }
    Some(out)
}

/// The budget keeper of one constrained generation.
pub struct Budget<V: Vocab> {
    shape: Shape,
    scanner: Scanner,
    vocab: V,
    plan: VecDeque<Token>,
    closing: bool,
}

impl<V: Vocab> Budget<V> {
    pub fn new(shape: Shape, vocab: V) -> Budget<V> {
        Budget { shape, scanner: Scanner::new(), vocab, plan: VecDeque::new(), closing: false }
    }

    /// Tokens of the smallest valid answer, and its text: a `max_new_tokens` below it is refused.
    pub fn minimum(&self) -> (usize, String) {
        let text = self.shape.minimal(self.shape.root);
        let n = self.vocab.encode(text.as_bytes()).map_or(text.len(), |t| t.len());
        (n, text)
    }

    /// Whether generation was switched to closing (the answer ends because of the budget).
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// False when the answer left the shape the scanner follows (then nothing is forced).
    pub fn tracking(&self) -> bool {
        self.scanner.is_tracking()
    }

    /// Tokens needed to complete the answer as it stands (`None` when not tracking).
    pub fn needed(&self) -> Option<usize> {
        self.scanner.completion(&self.shape).and_then(|c| self.vocab.encode(&c)).map(|t| t.len())
    }

    /// The token to emit instead of (or as) `sampled`, given `left_after` tokens may follow it;
    /// `allows` asks the grammar. Not for end-of-generation tokens (they add no text).
    pub fn choose(&mut self, sampled: Token, left_after: usize, allows: &mut dyn FnMut(Token) -> bool) -> Token {
        if !self.closing {
            let mut next = self.scanner.clone();
            next.push(&self.shape, self.vocab.piece(sampled));
            let fits = match next.completion(&self.shape) {
                Some(c) => self.vocab.encode(&c).is_some_and(|t| t.len() <= left_after),
                None => true, // not tracking: cannot help, do not interfere
            };
            if fits || !self.scanner.is_tracking() {
                self.scanner = next;
                return sampled;
            }
            self.closing = true;
            self.plan = self.scanner.completion(&self.shape).and_then(|c| self.vocab.encode(&c)).unwrap_or_default().into();
        }
        let tok = match self.plan.front() {
            Some(&t) if allows(t) => {
                self.plan.pop_front();
                Some(t)
            }
            _ => self.replan(allows),
        };
        let tok = tok.unwrap_or(sampled);
        self.scanner.push(&self.shape, self.vocab.piece(tok));
        tok
    }

    /// The planned token was refused: take the longest grammar-allowed piece that starts the
    /// completion, and plan the rest from there.
    fn replan(&mut self, allows: &mut dyn FnMut(Token) -> bool) -> Option<Token> {
        let c = self.scanner.completion(&self.shape)?;
        let longest = self.vocab.max_piece_len().min(c.len());
        let (len, t) = (1..=longest).rev().find_map(|n| self.vocab.token_of(&c[..n]).filter(|&t| allows(t)).map(|t| (n, t)))?;
        self.plan = self.vocab.encode(&c[len..]).unwrap_or_default().into();
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::gbnf::Limits;
    use crate::json::ordered::OValue;

    /// A toy vocabulary: every ASCII byte, plus a few multi-byte pieces (so counts are tokens,
    /// not characters).
    struct Toy {
        pieces: Vec<Vec<u8>>,
    }

    impl Toy {
        fn new() -> Toy {
            let mut pieces: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
            for p in ["\":", "\",\"", "}]", "name", "age", "\"\"", "Jo", "hn"] {
                pieces.push(p.as_bytes().to_vec());
            }
            Toy { pieces }
        }
    }

    impl Vocab for Toy {
        fn encode(&self, text: &[u8]) -> Option<Vec<Token>> {
            spell_greedy(self, text)
        }
        fn piece(&self, t: Token) -> &[u8] {
            &self.pieces[t as usize]
        }
        fn token_of(&self, bytes: &[u8]) -> Option<Token> {
            self.pieces.iter().position(|p| p == bytes).map(|i| i as Token)
        }
        fn max_piece_len(&self) -> usize {
            4
        }
    }

    const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#;

    fn budget() -> Budget<Toy> {
        Budget::new(Shape::from_schema(&OValue::parse(PERSON).unwrap(), &Limits::default()), Toy::new())
    }

    /// A "model" that keeps writing `{"name":"JohnJohnJohn…` for `max` tokens; the budget is
    /// told `reserve` tokens fewer than are left.
    fn run(max: usize, reserve: usize, allows: &mut dyn FnMut(Token) -> bool) -> (String, bool, bool) {
        let mut b = budget();
        let v = Toy::new();
        let script = spell_greedy(&v, br#"{"name":"JohnJohnJohnJohnJohnJohnJohnJohnJohnJohnJohnJohn"#).unwrap();
        let mut out = Vec::new();
        for step in 0..max {
            if b.scanner.is_done() {
                break;
            }
            let sampled = script.get(step).copied().unwrap_or(v.token_of(b"n").unwrap());
            let t = b.choose(sampled, (max - step - 1).saturating_sub(reserve), allows);
            out.extend_from_slice(v.piece(t));
        }
        (String::from_utf8(out).unwrap(), b.closing(), b.scanner.is_done())
    }

    #[test]
    fn minimum_counts_tokens_not_characters() {
        let b = budget();
        let (n, text) = b.minimum();
        assert_eq!(text, r#"{"name":"","age":0}"#);
        // { " name ": "" , " age ": 0 } with the toy pieces.
        assert_eq!(n, b.vocab.encode(text.as_bytes()).unwrap().len());
        assert!(n < text.len(), "{n} tokens for {} bytes", text.len());
    }

    #[test]
    fn every_budget_from_the_minimum_gives_json_that_parses() {
        let (min, _) = budget().minimum();
        for max in min..=40 {
            let (text, closing, done) = run(max, 0, &mut |_| true);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("max {max}: {e}: {text}"));
            assert!(v["name"].is_string() && v["age"].is_i64(), "max {max}: {text}");
            assert!(closing && done, "max {max}: the script never closes by itself");
        }
    }

    /// The grammar judges text, so it accepts any spelling of a valid completion and a refused
    /// plan token means a scanner bug; even then the answer closes: spelled from the allowed
    /// pieces instead (here `","` refused: `"` `,` `"`, two tokens more, hence the reserve).
    #[test]
    fn a_refused_planned_token_is_replanned_from_allowed_pieces() {
        let v = Toy::new();
        let banned = v.token_of(b"\",\"").unwrap();
        let (min, _) = budget().minimum();
        for max in min + 2..=30 {
            let (text, closing, done) = run(max, 2, &mut |t| t != banned);
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("max {max}: {e}: {text}"));
            assert!(closing && done, "max {max}: {text}");
        }
    }
}
