//! The embedding-injection path of the prefill: feeding a token's own `token_embd` row as an
//! "image" embedding row must give the same logits as feeding the token id, for any layout of
//! token runs and embedding runs and any chunking (n_batch) — that is what makes the
//! `<IMG_CONTEXT>` substitution exact.
mod common;
use common::*;
use std::sync::Arc;

use anyhow::Result;
use h2ovl_format::gguf::GgufFile;
use h2ovl_runtime::llm::decode::prefill;
use h2ovl_runtime::llm::ffi::{Context, ContextParams, KvType, Model, Token};
use h2ovl_runtime::llm::prompt::Slot;


fn context(model: &Arc<Model>, n_batch: u32) -> Result<Context> {
    Context::new(
        model.clone(),
        &ContextParams { n_ctx: 256, n_batch, n_threads: 2, kv_type: KvType::F32, flash_attn: Some(false) },
    )
}

/// Logits at every position for the given slot layout.
fn all_logits(model: &Arc<Model>, n_batch: u32, slots: &[Slot], table: &[f32], n_embd: usize, ids: &[Token]) -> Result<Vec<Vec<f32>>> {
    let mut ctx = context(model, n_batch)?;
    let want: Vec<usize> = (0..slots.len()).collect();
    let out = prefill(
        &mut ctx,
        slots,
        0,
        |_key, row| {
            let t = ids[row as usize] as usize;
            table.get(t * n_embd..(t + 1) * n_embd)
        },
        &want,
    )?;
    assert_eq!(out.at.len(), slots.len());
    assert_eq!(out.last, out.at.last().unwrap().1);
    Ok(out.at.into_iter().map(|(_, l)| l).collect())
}

#[test]
fn embedding_rows_reproduce_token_ids_in_any_layout_and_chunking() -> Result<()> {
    let model = Arc::new(Model::load(tiny_llm(), false)?);
    let n_embd = model.n_embd();
    let gguf = GgufFile::open(tiny_llm())?;
    let te = gguf.tensor("token_embd.weight")?;
    assert_eq!(te.ne, &[n_embd, model.n_vocab()]);
    let table: Vec<f32> = te.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();

    let ids = model.tokenize("<|prompt|>Hello world, this is a test of embeddings.<|end|><|answer|>", true)?;
    assert!(ids.len() > 12);
    let tokens: Vec<Slot> = ids.iter().map(|&t| Slot::Token(t)).collect();
    let reference = all_logits(&model, 512, &tokens, &table, n_embd, &ids)?;

    // All positions as embedding rows; a text/embedding/text sandwich; with tiny chunks.
    let as_embd = |i: usize| Slot::Image { key: 0, row: i as u32 };
    let layouts: Vec<(&str, Vec<Slot>)> = vec![
        ("all embeddings", (0..ids.len()).map(as_embd).collect()),
        (
            "text / embeddings / text",
            (0..ids.len()).map(|i| if (3..10).contains(&i) { as_embd(i) } else { Slot::Token(ids[i]) }).collect(),
        ),
        ("alternating", (0..ids.len()).map(|i| if i % 2 == 1 { as_embd(i) } else { Slot::Token(ids[i]) }).collect()),
    ];
    for n_batch in [512u32, 5] {
        for (name, slots) in &layouts {
            let got = all_logits(&model, n_batch, slots, &table, n_embd, &ids)?;
            let worst = got
                .iter()
                .zip(&reference)
                .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
                .fold(0f32, f32::max);
            println!("{name}, n_batch {n_batch}: max|Δlogit| vs token ids {worst:.2e}");
            assert!(worst <= 1e-4, "{name}, n_batch {n_batch}: max|Δlogit| {worst}");
        }
    }
    Ok(())
}

#[test]
fn missing_embedding_rows_and_bad_widths_are_errors_not_panics() -> Result<()> {
    let model = Arc::new(Model::load(tiny_llm(), false)?);
    let mut ctx = context(&model, 512)?;
    let slots = [Slot::Token(523), Slot::Image { key: 1, row: 0 }];
    let e = prefill(&mut ctx, &slots, 0, |_, _| None, &[]).unwrap_err();
    assert!(format!("{e:#}").contains("no embedding row 0"), "{e:#}");
    let short = [0f32; 3];
    let mut ctx = context(&model, 512)?;
    let e = prefill(&mut ctx, &slots, 0, |_, _| Some(&short[..]), &[]).unwrap_err();
    assert!(format!("{e:#}").contains("width 3"), "{e:#}");
    // A gap in positions is refused by llama.cpp and reported.
    let mut ctx = context(&model, 512)?;
    prefill(&mut ctx, &[Slot::Token(523)], 0, |_, _| None, &[])?;
    let e = prefill(&mut ctx, &[Slot::Token(523)], 5, |_, _| None, &[]).unwrap_err();
    assert!(format!("{e:#}").contains("positions"), "{e:#}");
    Ok(())
}
