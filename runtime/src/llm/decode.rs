//! Feeding a prompt into llama.cpp: text runs as token batches, `<IMG_CONTEXT>` runs as
//! embedding batches (a classic `llama_batch` holds one kind only), positions contiguous with
//! the KV cache, each `llama_decode` at most `n_batch` rows.
use anyhow::{Context as _, Result};

use super::ffi::{Batch, Context, Token};
use super::prompt::Slot;

/// Logits produced by a prefill.
#[derive(Debug, Default)]
pub struct PrefillOutput {
    /// Logits at the last prompt position (they choose the first generated token).
    pub last: Vec<f32>,
    /// (absolute position, logits) for each requested position that was computed.
    pub at: Vec<(usize, Vec<f32>)>,
}

/// Decode `slots` at absolute positions `start..start+slots.len()`.
/// `embedding(key, row)` returns row `row` of image `key`'s projected embeddings.
/// `want` lists extra absolute positions whose logits to keep.
pub fn prefill<'a>(
    ctx: &mut Context,
    slots: &[Slot],
    start: usize,
    embedding: impl Fn(u64, u32) -> Option<&'a [f32]>,
    want: &[usize],
) -> Result<PrefillOutput> {
    let mut out = PrefillOutput::default();
    if slots.is_empty() {
        return Ok(out);
    }
    let n_batch = ctx.n_batch().max(1);
    let n_embd = ctx.model().n_embd();
    let last_pos = start + slots.len() - 1;
    let mut tok_batch: Option<Batch> = None;
    let mut emb_batch: Option<Batch> = None;
    let mut i = 0;
    while i < slots.len() {
        // The maximal run of one kind starting at i, capped at n_batch.
        let is_img = matches!(slots[i], Slot::Image { .. });
        let mut j = i;
        while j < slots.len() && j - i < n_batch && matches!(slots[j], Slot::Image { .. }) == is_img {
            j += 1;
        }
        let batch = if is_img {
            emb_batch.get_or_insert_with(|| Batch::embeddings(n_batch.min(slots.len()), n_embd))
        } else {
            tok_batch.get_or_insert_with(|| Batch::tokens(n_batch.min(slots.len())))
        };
        batch.clear();
        let mut wanted_rows = Vec::new();
        for (k, slot) in slots[i..j].iter().enumerate() {
            let pos = start + i + k;
            let logits = pos == last_pos || want.contains(&pos);
            if logits {
                wanted_rows.push((k, pos));
            }
            match *slot {
                Slot::Token(t) => batch.push_token(t, pos, logits)?,
                Slot::Image { key, row } => {
                    let r = embedding(key, row)
                        .with_context(|| format!("no embedding row {row} for image {key:016x}"))?;
                    batch.push_embedding(r, pos, logits)?;
                }
            }
        }
        ctx.decode(batch).with_context(|| format!("prefill of positions {}..{}", start + i, start + j))?;
        for (k, pos) in wanted_rows {
            let l = ctx.logits(k)?.to_vec();
            if want.contains(&pos) {
                out.at.push((pos, l.clone()));
            }
            if pos == last_pos {
                out.last = l;
            }
        }
        i = j;
    }
    Ok(out)
}

/// Reusable single-token decoder for the generation loop.
pub struct Stepper {
    batch: Batch,
}

impl Default for Stepper {
    fn default() -> Self {
        Stepper { batch: Batch::tokens(1) }
    }
}

impl Stepper {
    /// Append `token` at `pos` and return the logits that follow it.
    pub fn step<'c>(&mut self, ctx: &'c mut Context, token: Token, pos: usize) -> Result<&'c [f32]> {
        self.batch.clear();
        self.batch.push_token(token, pos, true)?;
        ctx.decode(&self.batch).with_context(|| format!("decoding the generated token at position {pos}"))?;
        ctx.logits(0)
    }
}
