//! The chat API on the converted tiny golden checkpoint: multi-turn KV-cache reuse gives the
//! same tokens/logits as recomputing the conversation from scratch, images are encoded once,
//! stop tokens and special-token skipping, and the errors users can hit (context overflow
//! before any compute, images without a vision model, placeholder mismatches, missing files).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use h2ovl_runtime::llm::prompt::{END_ID, IMG_CONTEXT_ID};
use h2ovl_runtime::llm::{
    GenerationConfig, History, ImageEncoder, ImageInput, KvType, Pipeline, PipelineOptions, PrecomputedEncoder,
    PreparedImage, StopReason, TilingOptions,
};
use h2ovl_runtime::npy;



fn opts() -> PipelineOptions {
    PipelineOptions { threads: 2, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() }
}

fn image_path() -> PathBuf {
    golden().join("images/gradient_640x480.png")
}

/// Reference embeddings of gradient_640x480.png (7 tiles), counting encode calls.
struct Counting {
    inner: PrecomputedEncoder,
    encodes: Arc<AtomicUsize>,
}

impl ImageEncoder for Counting {
    fn prepare(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<PreparedImage> {
        self.inner.prepare(image, tiling)
    }
    fn encode(&self, prepared: &PreparedImage, threads: usize) -> Result<Vec<f32>> {
        self.encodes.fetch_add(1, Ordering::SeqCst);
        self.inner.encode(prepared, threads)
    }
    fn n_embd(&self) -> usize {
        self.inner.n_embd
    }
    fn uses_msac(&self) -> bool {
        false
    }
}

fn pipeline_with_image(o: PipelineOptions) -> Result<(Pipeline, Arc<AtomicUsize>)> {
    let (shape, rows) = npy::read_f32(&golden().join("cases/tiny_single_640x480/image_embeds.npy"))?;
    let inner = PrecomputedEncoder { images: vec![(image_path(), 7, rows)], n_embd: shape[1] };
    let encodes = Arc::new(AtomicUsize::new(0));
    let enc = Counting { inner, encodes: encodes.clone() };
    Ok((Pipeline::with_encoder(tiny_llm(), Some(Box::new(enc)), o)?, encodes))
}

fn greedy(n: usize) -> GenerationConfig {
    let mut c = GenerationConfig::greedy_fixed(n);
    c.probe.step_logits = true;
    c
}

#[test]
fn second_turn_reuses_the_kv_cache_and_matches_a_fresh_recompute() -> Result<()> {
    let (mut a, encodes) = pipeline_with_image(opts())?;
    let img = [ImageInput::Path(image_path())];
    let t1 = a.chat_stream(&img, "Describe this image in detail.", &greedy(8), &History::new(), &mut |_| {})?;
    assert_eq!(t1.reused_tokens, 0);
    assert_eq!(t1.timings.images_encoded, 1);
    assert_eq!(t1.history.turns.len(), 1);
    assert_eq!(t1.history.turns[0].question, "<image>\nDescribe this image in detail.");

    let t2 = a.chat_stream(&[], "And the colours?", &greedy(8), &t1.history, &mut |_| {})?;
    // Everything up to the first answer's text is reused; only the tail is decoded.
    assert!(t2.reused_tokens >= t1.prompt_ids.len(), "reused {} of {}", t2.reused_tokens, t1.prompt_ids.len());
    assert!(t2.timings.prefill_tokens < 40, "prefilled {} tokens", t2.timings.prefill_tokens);
    assert_eq!(t2.timings.images_encoded, 0);
    assert_eq!(encodes.load(Ordering::SeqCst), 1);
    // The image placeholder of turn 1 is still expanded in turn 2's prompt.
    assert_eq!(t2.prompt_ids.iter().filter(|&&t| t == IMG_CONTEXT_ID).count(), 7 * 256);

    // A fresh pipeline given the same history computes the whole prompt and must agree.
    let (mut b, _) = pipeline_with_image(opts())?;
    let f2 = b.chat_stream(&[], "And the colours?", &greedy(8), &t1.history, &mut |_| {})?;
    assert_eq!(f2.reused_tokens, 0);
    assert_eq!(f2.prompt_ids, t2.prompt_ids);
    assert_eq!(f2.tokens, t2.tokens);
    let worst = t2
        .step_logits
        .iter()
        .zip(&f2.step_logits)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max);
    println!("turn 2 cached vs recomputed: max|Δlogit| {worst:.2e}, {} reused", t2.reused_tokens);
    assert!(worst <= 5e-3, "max|Δlogit| {worst}");

    // Attaching the same picture again is a cache hit, numbered after the first image.
    let t3 = a.chat_stream(&img, "Same?", &greedy(2), &t2.history, &mut |_| {})?;
    assert_eq!(t3.timings.images_encoded, 0);
    assert_eq!(t3.history.turns[2].question, "<image>\nSame?");
    assert_eq!(t3.image_tiles, vec![7, 7]);
    Ok(())
}

#[test]
fn repeating_a_turn_recomputes_only_the_last_position() -> Result<()> {
    let (mut p, _) = pipeline_with_image(opts())?;
    let a = p.chat_stream(&[], "Hello", &greedy(4), &History::new(), &mut |_| {})?;
    let b = p.chat_stream(&[], "Hello", &greedy(4), &History::new(), &mut |_| {})?;
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(b.reused_tokens, a.prompt_ids.len() - 1);
    assert_eq!(b.timings.prefill_tokens, 1);
    Ok(())
}

#[test]
fn stops_at_end_token_and_skips_special_tokens_in_text() -> Result<()> {
    let (mut p, _) = pipeline_with_image(opts())?;
    let mut cfg = GenerationConfig { max_new_tokens: 10, ..Default::default() };
    // Force "<img>" (special, must not show), a normal token, then <|end|>.
    let normal = p.tokenize("Hello")?;
    cfg.probe.forced = vec![32000, normal[0], END_ID, normal[0]];
    let mut streamed = String::new();
    let out = p.chat_stream(&[], "Hi", &cfg, &History::new(), &mut |s| streamed.push_str(s))?;
    assert_eq!(out.stop, StopReason::EndOfAnswer);
    assert_eq!(out.tokens, vec![32000, normal[0]]);
    assert_eq!(out.answer, "Hello");
    assert_eq!(streamed.trim_end(), out.answer);
    Ok(())
}

#[test]
fn context_overflow_is_refused_before_encoding() -> Result<()> {
    let (mut p, encodes) = pipeline_with_image(PipelineOptions { n_ctx: Some(1024), ..opts() })?;
    let img = [ImageInput::Path(image_path())];
    // Fitting (the default --pages-mode auto) cannot help: 7 precomputed tiles at every budget.
    let err = p.chat(&img, "Describe.", &GenerationConfig::default(), &History::new()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("even at the floor") && msg.contains("1792 image positions"), "{msg}");
    p.set_pages_mode(h2ovl_runtime::llm::PagesMode::Off);
    let err = p.chat(&img, "Describe.", &GenerationConfig::default(), &History::new()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("--max-tiles") && msg.contains("1792 image positions"), "{msg}");
    assert_eq!(encodes.load(Ordering::SeqCst), 0, "nothing may be encoded before the size check");
    // The pipeline is still usable afterwards.
    let (ans, hist) = p.chat(&[], "Hi", &GenerationConfig { max_new_tokens: 3, ..Default::default() }, &History::new())?;
    assert_eq!(hist.turns.len(), 1);
    assert_eq!(hist.turns[0].answer, ans);
    Ok(())
}

#[test]
fn user_errors_are_clear() -> Result<()> {
    let mut text_only = Pipeline::with_encoder(tiny_llm(), None, opts())?;
    let img = [ImageInput::Path(image_path())];
    let e = text_only.chat(&img, "x", &GenerationConfig::default(), &History::new()).unwrap_err();
    assert!(format!("{e:#}").contains("--mmproj"), "{e:#}");

    let (mut p, _) = pipeline_with_image(opts())?;
    let e = p.chat(&img, "<image> and <image>", &GenerationConfig::default(), &History::new()).unwrap_err();
    assert!(format!("{e:#}").contains("2 `<image>` placeholder(s) but 1 image(s)"), "{e:#}");

    let missing = golden().join("images/nope.png");
    let e = p.chat(&[ImageInput::Path(missing)], "x", &GenerationConfig::default(), &History::new()).unwrap_err();
    assert!(format!("{e:#}").contains("nope.png"), "{e:#}");

    let e = Pipeline::with_encoder(Path::new("/nonexistent/model.gguf"), None, opts()).err().expect("must fail");
    assert!(format!("{e:#}").contains("/nonexistent/model.gguf"), "{e:#}");

    // A file that is not a GGUF.
    let e = Pipeline::with_encoder(&image_path(), None, opts()).err().expect("must fail");
    assert!(format!("{e:#}").contains("gradient_640x480.png"), "{e:#}");
    Ok(())
}

/// `force_continuation` (what `h2ovl eval` forces a candidate with) reproduces generation's own
/// logits bit for bit: cut the KV cache back into an answer and feed the answer's tokens again,
/// one per decode, and every row equals the row generation computed there — on a Q8_0 model too,
/// where a one-batch pass can differ by whole 8-bit rounding steps (issue 22).
#[test]
fn forcing_a_continuation_gives_the_generation_logits_bit_for_bit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let q8 = h2ovl_convert::convert(&h2ovl_convert::ConvertOptions {
        input: golden().join("checkpoints/tiny"),
        outdir: dir.path().to_path_buf(),
        quant: h2ovl_convert::LlmQuant::Q8_0,
        vision_quant: h2ovl_convert::VisionQuant::F32,
        quiet: true,
        threads: Some(2),
    })?;
    for llm in [tiny_llm().to_path_buf(), q8.llm] {
        let (shape, rows) = npy::read_f32(&golden().join("cases/tiny_single_640x480/image_embeds.npy"))?;
        let enc = PrecomputedEncoder { images: vec![(image_path(), 7, rows)], n_embd: shape[1] };
        let mut p = Pipeline::with_encoder(&llm, Some(Box::new(enc)), opts())?;
        let img = [ImageInput::Path(image_path())];
        let out = p.chat_stream(&img, "Describe this image in detail.", &greedy(10), &History::new(), &mut |_| {})?;
        assert_eq!(out.tokens.len(), 10);
        let base = out.prompt_ids.len();
        assert_eq!(p.kv_len(), base + 9, "the last generated token is never decoded");
        for cut in [0usize, 4] {
            // Keep the prompt + tokens[..cut]; rows cut+1.. follow tokens[cut..9].
            let rows = p.force_continuation(base + cut, &out.tokens[cut..9])?;
            assert_eq!(rows.len(), 9 - cut);
            for (i, r) in rows.iter().enumerate() {
                assert!(*r == out.step_logits[cut + 1 + i], "{}: cut {cut}, row {} differs", llm.display(), cut + 1 + i);
            }
        }
        let e = p.force_continuation(base + 20, &out.tokens[..1]).unwrap_err().to_string();
        assert!(e.contains("keep"), "{e}");
    }
    Ok(())
}
