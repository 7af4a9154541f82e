//! The h2ogpt2 chat prompt and its token layout, exactly as the reference `chat()` builds it.
//!
//! Template (FastChat "h2ogpt2", empty system, no colon): every finished turn is
//! `<|prompt|>{q}<|end|><|answer|>{a}<|end|>`, the open one ends with `<|answer|>`.
//! `<|prompt|>`/`<|answer|>` are plain text; `<|end|>` is a special token. Each `<image>` becomes
//! `<img>` + `<IMG_CONTEXT>`×(256·tiles) + `</img>`; those IMG_CONTEXT positions are later fed
//! as image-embedding rows instead of token ids. No BOS.
//!
//! Tokenization is llama.cpp's, from the GGUF vocabulary, with special tokens parsed: it splits
//! on specials and gives every text chunk SentencePiece's dummy prefix, which is HF's slow
//! `legacy=True` behaviour. Each image is tokenized as a single `<IMG_CONTEXT>` and expanded
//! afterwards: specials are split boundaries, so this gives the same ids as tokenizing the long
//! run, without feeding llama.cpp a 50 kB string.
use anyhow::{bail, Result};

use super::ffi::Token;

pub const IMAGE_PLACEHOLDER: &str = "<image>";
pub const IMG_START: &str = "<img>";
pub const IMG_END: &str = "</img>";
pub const IMG_CONTEXT: &str = "<IMG_CONTEXT>";
pub const ROLE_USER: &str = "<|prompt|>";
pub const ROLE_ASSISTANT: &str = "<|answer|>";
pub const SEP: &str = "<|end|>";

/// `<IMG_CONTEXT>`: the positions that receive image-embedding rows.
pub const IMG_CONTEXT_ID: Token = 32002;
/// `<|end|>`: end of an answer (the reference `chat()` eos).
pub const END_ID: Token = 32009;
/// `</s>`: also a stop token (generation_config eos_token_id [2, 32009]).
pub const EOS_ID: Token = 2;
/// LLM positions per 448×448 tile (1024 patches after the 2×2 pixel shuffle).
pub const TOKENS_PER_TILE: usize = 256;

/// True for the ids that end generation.
pub fn is_stop(t: Token) -> bool {
    t == END_ID || t == EOS_ID
}

/// One slot of the LLM input: a token id, or row `row` of the embeddings of image `key`.
/// Comparing slot lists tells how much of the KV cache a new turn can keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Token(Token),
    Image { key: u64, row: u32 },
}

/// Add the `<image>` placeholders the reference adds when the question has none:
/// one image → `<image>\n{q}`; several → `Image-1: <image>\nImage-2: <image>\n{q}`
/// (numbered from `first_number`, the vLLM / model-card convention).
/// If the question already has placeholders, their count must match the images.
pub fn question_with_placeholders(question: &str, n_images: usize, first_number: usize) -> Result<String> {
    let have = question.matches(IMAGE_PLACEHOLDER).count();
    if have > 0 {
        if have != n_images {
            bail!("the question has {have} `<image>` placeholder(s) but {n_images} image(s) were given");
        }
        return Ok(question.to_string());
    }
    Ok(match n_images {
        0 => question.to_string(),
        1 => format!("{IMAGE_PLACEHOLDER}\n{question}"),
        n => {
            let mut s = String::new();
            for k in 0..n {
                s.push_str(&format!("Image-{}: {IMAGE_PLACEHOLDER}\n", first_number + k));
            }
            s.push_str(question);
            s
        }
    })
}

/// The h2ogpt2 prompt for `history` (finished (question, answer) turns) plus the open `question`.
pub fn render<'a>(history: impl IntoIterator<Item = (&'a str, &'a str)>, question: &str) -> String {
    let mut s = String::new();
    for (q, a) in history {
        s.push_str(ROLE_USER);
        s.push_str(q);
        s.push_str(SEP);
        s.push_str(ROLE_ASSISTANT);
        s.push_str(a);
        s.push_str(SEP);
    }
    s.push_str(ROLE_USER);
    s.push_str(question);
    s.push_str(SEP);
    s.push_str(ROLE_ASSISTANT);
    s
}

/// The token ids and slots of a rendered prompt.
#[derive(Clone, Debug, Default)]
pub struct PromptTokens {
    /// Ids as the reference `input_ids` (IMG_CONTEXT ids included).
    pub ids: Vec<Token>,
    /// Same length: what is fed at each position.
    pub slots: Vec<Slot>,
}

impl PromptTokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn n_image_positions(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s, Slot::Image { .. })).count()
    }
}

/// Tokenize a rendered prompt (with `<image>` placeholders) and lay out its slots.
/// `images[k] = (key, n_tiles)` for the k-th `<image>` in order of appearance.
pub fn tokenize_prompt(
    rendered: &str,
    images: &[(u64, usize)],
    tokenize: impl Fn(&str) -> Result<Vec<Token>>,
) -> Result<PromptTokens> {
    let n_ph = rendered.matches(IMAGE_PLACEHOLDER).count();
    if n_ph != images.len() {
        bail!("the conversation has {n_ph} `<image>` placeholder(s) but {} image(s)", images.len());
    }
    let collapsed = rendered.replace(IMAGE_PLACEHOLDER, &format!("{IMG_START}{IMG_CONTEXT}{IMG_END}"));
    let short = tokenize(&collapsed)?;
    let n_ctx_tokens = short.iter().filter(|&&t| t == IMG_CONTEXT_ID).count();
    if n_ctx_tokens != images.len() {
        bail!(
            "the prompt text contains `{IMG_CONTEXT}` (or the vocabulary lacks it as a special token): \
             expected {} image marker(s), found {n_ctx_tokens}",
            images.len()
        );
    }
    let total: usize = short.len() + images.iter().map(|&(_, t)| t * TOKENS_PER_TILE).sum::<usize>() - images.len();
    let mut out = PromptTokens { ids: Vec::with_capacity(total), slots: Vec::with_capacity(total) };
    let mut next_image = 0;
    for t in short {
        if t == IMG_CONTEXT_ID {
            let (key, tiles) = images[next_image];
            next_image += 1;
            for row in 0..tiles * TOKENS_PER_TILE {
                out.ids.push(IMG_CONTEXT_ID);
                out.slots.push(Slot::Image { key, row: row as u32 });
            }
        } else {
            out.ids.push(t);
            out.slots.push(Slot::Token(t));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_turn_template() {
        assert_eq!(render([], "Hi"), "<|prompt|>Hi<|end|><|answer|>");
    }

    #[test]
    fn multi_turn_template_closes_finished_turns() {
        let s = render([("q1", "a1"), ("q2", "a2")], "q3");
        assert_eq!(s, "<|prompt|>q1<|end|><|answer|>a1<|end|><|prompt|>q2<|end|><|answer|>a2<|end|><|prompt|>q3<|end|><|answer|>");
    }

    #[test]
    fn placeholders_match_the_golden_prompts() {
        // quant-tests/fixtures/golden/cases/*/summary.json → question_with_placeholders
        assert_eq!(
            question_with_placeholders("Describe this image in detail.", 1, 1).unwrap(),
            "<image>\nDescribe this image in detail."
        );
        assert_eq!(
            question_with_placeholders("What is different between the two images?", 2, 1).unwrap(),
            "Image-1: <image>\nImage-2: <image>\nWhat is different between the two images?"
        );
        assert_eq!(question_with_placeholders("Poem", 0, 1).unwrap(), "Poem");
        let explicit = "Image-1: <image>\nImage-2: <image>\nWhat differs?";
        assert_eq!(question_with_placeholders(explicit, 2, 1).unwrap(), explicit);
        assert!(question_with_placeholders(explicit, 1, 1).is_err());
        assert!(question_with_placeholders("<image> x", 0, 1).is_err());
    }

    /// A toy tokenizer: specials by exact match, every other char its code point.
    fn toy(s: &str) -> Result<Vec<Token>> {
        let specials = [(IMG_START, 32000), (IMG_END, 32001), (IMG_CONTEXT, 32002), (SEP, 32009)];
        let mut out = Vec::new();
        let mut rest = s;
        'outer: while !rest.is_empty() {
            for (txt, id) in specials {
                if let Some(r) = rest.strip_prefix(txt) {
                    out.push(id);
                    rest = r;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap();
            out.push(c as Token);
            rest = &rest[c.len_utf8()..];
        }
        Ok(out)
    }

    #[test]
    fn images_expand_to_256_rows_per_tile_in_order() {
        let p = render([], &question_with_placeholders("q", 2, 1).unwrap());
        let t = tokenize_prompt(&p, &[(7, 2), (9, 1)], toy).unwrap();
        assert_eq!(t.ids.len(), t.slots.len());
        assert_eq!(t.n_image_positions(), 3 * TOKENS_PER_TILE);
        assert_eq!(t.ids.iter().filter(|&&i| i == IMG_CONTEXT_ID).count(), 768);
        let first = t.ids.iter().position(|&i| i == IMG_CONTEXT_ID).unwrap();
        assert_eq!(t.ids[first - 1], 32000);
        assert_eq!(t.slots[first], Slot::Image { key: 7, row: 0 });
        assert_eq!(t.slots[first + 511], Slot::Image { key: 7, row: 511 });
        assert_eq!(t.ids[first + 512], 32001);
        let second = first + 512 + t.ids[first + 512..].iter().position(|&i| i == IMG_CONTEXT_ID).unwrap();
        assert_eq!(t.slots[second], Slot::Image { key: 9, row: 0 });
        assert_eq!(t.slots[second + 255], Slot::Image { key: 9, row: 255 });
        assert_eq!(t.ids[second + 256], 32001);
        // Text slots mirror ids.
        for (i, s) in t.ids.iter().zip(&t.slots) {
            if let Slot::Token(x) = s {
                assert_eq!(x, i);
            }
        }
    }

    #[test]
    fn count_mismatches_are_errors() {
        let p = render([], "<image>\nq");
        assert!(tokenize_prompt(&p, &[], toy).is_err());
        // Literal <IMG_CONTEXT> typed by the user would shift the image rows: refuse.
        let p = render([], "<image>\n<IMG_CONTEXT>");
        assert!(tokenize_prompt(&p, &[(1, 1)], toy).is_err());
    }
}
