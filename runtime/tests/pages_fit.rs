//! Fitting a request's images to the context (`--pages-mode`, issue 23) on the tiny golden
//! checkpoints with the real vision encoder: the largest tile budget that fits is chosen (it fits,
//! one step larger would not), MSAC goes first on the 2B, every image is tiled exactly as the
//! reference tiling code does at the chosen `max_num`; `off` keeps today's refusal, a floor that
//! cannot fit is one error naming the way out; and a conversation that outgrows its context keeps
//! its KV cache (item 5: no re-prefill of the earlier turns).
mod common;
use common::*;
use std::path::PathBuf;

use anyhow::Result;
use h2ovl_runtime::llm::{ChatOutput, GenerationConfig, History, ImageInput, KvType, PagesMode, Pipeline, PipelineOptions, PrecomputedEncoder};
use h2ovl_runtime::npy;
use h2ovl_runtime::preprocess::{load_image, tile_image, PreprocessConfig};

const N: usize = 4;

fn opts(n_ctx: usize) -> PipelineOptions {
    PipelineOptions { threads: 2, n_ctx: Some(n_ctx), kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() }
}

fn img(name: &str) -> PathBuf {
    golden().join("images").join(name)
}

/// Tiles the reference tiling code makes of `path` at `max_tiles` (MSAC as asked).
fn reference_tiles(path: &PathBuf, cfg: &PreprocessConfig, max_tiles: u32, msac: bool) -> usize {
    let rgb = load_image(path, u64::MAX).unwrap();
    tile_image(&rgb, &PreprocessConfig { max_tiles, ..cfg.clone() }, msac).tiles.len()
}

fn ask(p: &mut Pipeline, paths: &[PathBuf]) -> Result<ChatOutput> {
    let images: Vec<ImageInput> = paths.iter().cloned().map(ImageInput::Path).collect();
    p.chat_stream(&images, "Describe.", &GenerationConfig::greedy_fixed(N), &History::new(), &mut |_| {})
}

/// Five images that need 23 tiles at max 6 (11 at max 3–5, 9 at max 2): fitted into a 2560-token
/// context at the largest `max_num` that fits, checked against the reference tiling at that
/// `max_num` and one above.
#[test]
fn five_images_get_the_largest_tile_budget_that_fits() -> Result<()> {
    let m = tiny_f32();
    let mut p = Pipeline::load(&m.llm, Some(&m.vision), opts(2560))?;
    let paths: Vec<PathBuf> = ["gradient_640x480.png", "tall_300x900.png", "square_448x448.jpg", "tall_300x900.png", "gradient_640x480.png"].map(img).to_vec();
    let out = ask(&mut p, &paths)?;
    let fit = out.fit.clone().expect("the images were fitted");
    let cfg = PreprocessConfig::default();
    let m_used = fit.used.max_tiles as u32;
    let at = |mt: u32| -> Vec<usize> { paths.iter().map(|q| reference_tiles(q, &cfg, mt, false)).collect() };
    assert_eq!(out.image_tiles, at(m_used), "tiles per image at max {m_used}");
    let text = out.prompt_ids.len() - 256 * out.image_tiles.iter().sum::<usize>();
    assert!(out.prompt_ids.len() + N <= 2560, "the fitted prompt fits");
    assert!(m_used < 6 && text + 256 * at(m_used + 1).iter().sum::<usize>() + N > 2560, "max {} would fit too", m_used + 1);
    assert_eq!(fit.tiles_requested, at(6).iter().sum::<usize>());
    assert!(!fit.used.msac && !fit.requested.msac, "several images never use MSAC");
    let line = fit.to_string();
    assert!(line.contains("5 images") && line.contains(&format!("max {m_used} tiles")), "{line}");
    println!("5 images in 2560: {line}");

    // `off`: today's refusal, naming the way out.
    p.set_pages_mode(PagesMode::Off);
    let e = format!("{:#}", ask(&mut p, &paths).unwrap_err());
    assert!(e.contains("more than the context size 2560") && e.contains("--pages-mode auto"), "{e}");
    Ok(())
}

/// The 2B with MSAC: a single image at 13 tiles does not fit 2048, without MSAC (7 tiles) it does:
/// MSAC is the first thing dropped, the grid stays at max 6.
#[test]
fn msac_is_dropped_first_on_the_2b() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let m = convert_f32("tiny-2b", dir.path());
    let mut p = Pipeline::load(&m.llm, Some(&m.vision), opts(2048))?;
    let path = img("gradient_640x480.png");
    let out = ask(&mut p, std::slice::from_ref(&path))?;
    let fit = out.fit.expect("fitted");
    assert!(fit.requested.msac && !fit.used.msac && fit.used.max_tiles == 6, "{fit:?}");
    let cfg = PreprocessConfig { use_msac: true, ..Default::default() };
    assert_eq!(out.image_tiles, vec![reference_tiles(&path, &cfg, 6, false)]);
    assert_eq!(fit.tiles_requested, reference_tiles(&path, &cfg, 6, true));
    // With room for MSAC nothing is lowered.
    let mut roomy = Pipeline::load(&m.llm, Some(&m.vision), opts(8192))?;
    let out = ask(&mut roomy, &[path.clone()])?;
    assert!(out.fit.is_none());
    assert_eq!(out.image_tiles, vec![reference_tiles(&path, &cfg, 6, true)]);
    Ok(())
}

/// Even the floor does not fit: one error that says so and names the ways out.
#[test]
fn a_floor_that_cannot_fit_is_one_clear_error() -> Result<()> {
    let m = tiny_f32();
    let mut p = Pipeline::load(&m.llm, Some(&m.vision), PipelineOptions { min_tiles: 3, ..opts(1024) })?;
    let paths: Vec<PathBuf> = ["tall_300x900.png"; 3].map(img).to_vec();
    let e = format!("{:#}", ask(&mut p, &paths).unwrap_err());
    assert!(e.contains("even at the floor of max 3 tiles") && e.contains("--min-tiles (now 3)") && e.contains("--pages"), "{e}");
    Ok(())
}

/// A conversation that outgrows its context (a page added in turn 2) keeps the KV cache of
/// turn 1 — the context grows, the cache moves with it — and computes exactly what a pipeline
/// whose context was large from the start computes.
#[test]
fn growing_the_context_keeps_the_kv_cache() -> Result<()> {
    let load = |n_ctx: Option<usize>| -> Result<Pipeline> {
        let (shape, rows) = npy::read_f32(&golden().join("cases/tiny_single_640x480/image_embeds.npy"))?;
        let enc = PrecomputedEncoder { images: vec![(img("gradient_640x480.png"), 7, rows)], n_embd: shape[1] };
        Ok(Pipeline::with_encoder(tiny_llm(), Some(Box::new(enc)), PipelineOptions { n_ctx, ..opts(0) })?)
    };
    let mut cfg = GenerationConfig::greedy_fixed(6);
    cfg.probe.step_logits = true;
    let two_turns = |p: &mut Pipeline| -> Result<(ChatOutput, ChatOutput)> {
        let t1 = p.chat_stream(&[], "Hello, who are you?", &cfg, &History::new(), &mut |_| {})?;
        let page = [ImageInput::Path(img("gradient_640x480.png"))];
        let t2 = p.chat_stream(&page, "And this page?", &cfg, &t1.history, &mut |_| {})?;
        Ok((t1, t2))
    };
    let mut growing = load(None)?;
    let (t1, t2) = two_turns(&mut growing)?;
    assert!(t2.prompt_ids.len() > 256, "turn 2 needs a larger context than turn 1's");
    // Turn 1's prompt and answer are kept: only the new turn is prefilled.
    assert!(t2.reused_tokens >= t1.prompt_ids.len(), "reused {} of turn 1's {} prompt positions", t2.reused_tokens, t1.prompt_ids.len());
    let mut big = load(Some(4096))?;
    let (b1, b2) = two_turns(&mut big)?;
    assert_eq!(t1.tokens, b1.tokens);
    assert_eq!((t2.tokens.clone(), t2.reused_tokens), (b2.tokens.clone(), b2.reused_tokens));
    assert!(t2.step_logits == b2.step_logits, "the moved cache computes what a large context computes, bit for bit");
    Ok(())
}

/// Page by page (`each`): with room for one page a group, three pages are three groups, each
/// answered alone, and the answers are combined by a text-only turn that lists them; with room
/// for two, the groups are two pages + one.
#[test]
fn each_reads_page_groups_and_combines_with_a_text_only_turn() -> Result<()> {
    use h2ovl_runtime::llm::prompt::IMG_CONTEXT_ID;
    use h2ovl_runtime::llm::PageProgress;
    let m = tiny_f32();
    let paths: Vec<PathBuf> = ["tall_300x900.png", "square_448x448.jpg", "tall_300x900.png"].map(img).to_vec();
    let images: Vec<ImageInput> = paths.iter().cloned().map(ImageInput::Path).collect();
    // tall = 4 tiles (1024 positions), square = 1 (256): 1280 + text + N fits alone, two do not.
    let mut p = Pipeline::load(&m.llm, Some(&m.vision), opts(1280))?;
    assert!(!p.fits(&images, "Describe.", N, true)?, "not even the floor fits all three");
    assert_eq!(p.page_groups(&images, "Describe.", N)?, vec![(0, 1), (1, 2), (2, 3)]);
    let mut events = Vec::new();
    let mut streamed = String::new();
    let out = p.answer_pages(&images, "Describe.", &GenerationConfig::greedy_fixed(N), &mut |e| events.push(e), &mut |s| streamed.push_str(s))?;
    assert_eq!(out.pages.len(), 3);
    assert_eq!(out.pages.iter().map(|g| g.tiles.clone()).collect::<Vec<_>>(), vec![vec![4], vec![1], vec![4]]);
    let c = out.combine.as_ref().expect("combined by a text turn");
    assert!(c.image_tiles.is_empty() && !c.prompt_ids.contains(&IMG_CONTEXT_ID), "the combining turn is text only");
    assert_eq!(streamed.trim_end(), out.answer);
    assert!(matches!(events.last(), Some(PageProgress::Combining)) && events.len() == 4, "{events:?}");
    // The same page answered on its own gives the same answer (each group is a fresh conversation).
    let alone = ask(&mut Pipeline::load(&m.llm, Some(&m.vision), opts(1280))?, &paths[2..])?;
    assert_eq!(out.pages[2].answer, alone.answer);

    let mut roomy = Pipeline::load(&m.llm, Some(&m.vision), opts(1600))?;
    assert_eq!(roomy.page_groups(&images, "Describe.", N)?, vec![(0, 2), (2, 3)]);
    Ok(())
}

/// Page by page with a JSON template: every group answers the template, the merged value parses,
/// has exactly the template's keys in its order, and says which pages each field came from.
#[test]
fn each_merges_json_answers_into_the_templates_shape() -> Result<()> {
    use h2ovl_runtime::json::ordered::OValue;
    let m = tiny_f32();
    let images: Vec<ImageInput> = ["tall_300x900.png", "tall_300x900.png"].map(img).into_iter().map(ImageInput::Path).collect();
    let q = r#"Extract as JSON: {"title": "", "items": [{"name": ""}], "date": ""}"#;
    let mut cfg = GenerationConfig::greedy_fixed(40);
    cfg.constraint = h2ovl_runtime::json::from_cli_flags(false, None, true, q)?;
    let mut p = Pipeline::load(&m.llm, Some(&m.vision), opts(1200))?;
    let out = p.answer_pages(&images, q, &cfg, &mut |_| {}, &mut |_| {})?;
    assert_eq!(out.pages.len(), 2);
    assert!(out.combine.is_none(), "JSON is merged, not re-asked");
    for g in &out.pages {
        OValue::parse(&g.answer).unwrap_or_else(|e| panic!("page answer {e}: {}", g.answer));
    }
    let v = OValue::parse(&out.answer).unwrap_or_else(|e| panic!("merged {e}: {}", out.answer));
    let OValue::Object(members) = &v else { panic!("not an object: {}", out.answer) };
    assert_eq!(members.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["title", "items", "date"]);
    assert!(matches!(v.get("items"), Some(OValue::Array(_))) && matches!(v.get("title"), Some(OValue::String(_))));
    assert_eq!(out.provenance.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["title", "items", "date"]);
    assert!(out.provenance.iter().all(|(_, pages)| pages.iter().all(|&pg| pg == 1 || pg == 2)));
    Ok(())
}
