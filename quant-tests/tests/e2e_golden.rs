//! End-to-end parity against the golden reference (quant-tests/fixtures/golden, README there):
//! convert each tiny checkpoint, run the whole chat pipeline through llama.cpp, and compare the
//! prompt ids (exact), the 16 greedy ids (exact, no early stop), the logits of every generated
//! step and of the selected prompt positions (max abs ≤ 5e-3, the README's float32 criterion).
//!
//! The image side is fed two ways: the reference `image_embeds.npy` (isolates the LLM side) and
//! our own vision encoder from the mmproj GGUF. Q8_0 runs report the first divergence and the
//! per-step KL divergence to the reference (a measured figure, printed; see `--nocapture`).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};
use h2ovl_convert::{ConvertOptions, ConvertOutput, LlmQuant, VisionQuant};
use h2ovl_runtime::llm::sampling::{argmax, kl_divergence};
use h2ovl_runtime::llm::{
    ChatOutput, GenerationConfig, History, ImageInput, KvType, Pipeline, PipelineOptions, PrecomputedEncoder,
};
use h2ovl_runtime::npy;

/// Tolerance of the golden README for logits of a float32 port.
const LOGITS_TOL: f32 = 5e-3;
const N_GEN: usize = 16;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

/// One reference case, read from its summary.json.
struct Case {
    name: String,
    dir: PathBuf,
    checkpoint: PathBuf,
    question: String,
    images: Vec<PathBuf>,
    tiles: Vec<usize>,
}

fn case(name: &str) -> Result<Case> {
    let dir = golden().join("cases").join(name);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json"))?)?;
    let str_of = |k: &str| s[k].as_str().map(str::to_string).with_context(|| format!("{name}: summary.json lacks {k}"));
    let images = s["image_files"]
        .as_array()
        .context("image_files")?
        .iter()
        .map(|v| golden().join("images").join(v.as_str().unwrap_or_default()))
        .collect();
    let tiles = s["n_tiles_per_image"].as_array().context("n_tiles_per_image")?.iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect();
    Ok(Case {
        name: name.to_string(),
        checkpoint: golden().join(str_of("checkpoint")?),
        question: str_of("question")?,
        dir,
        images,
        tiles,
    })
}

/// Convert a checkpoint once per (checkpoint, quant) for the whole test process.
fn converted(ckpt: &Path, quant: LlmQuant, vq: VisionQuant) -> Result<ConvertOutput> {
    static DONE: OnceLock<Mutex<HashMap<String, ConvertOutput>>> = OnceLock::new();
    let map = DONE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{}|{:?}|{:?}", ckpt.display(), quant, vq);
    if let Some(o) = map.get(&key) {
        return Ok(o.clone());
    }
    // Kept for the life of the process (several tests share it).
    let outdir = tempfile::tempdir()?.keep();
    let o = h2ovl_convert::convert(&ConvertOptions {
        input: ckpt.to_path_buf(),
        outdir,
        quant,
        vision_quant: vq,
        quiet: true,
        threads: Some(2),
    })
    .with_context(|| format!("converting {}", ckpt.display()))?;
    map.insert(key, o.clone());
    Ok(o)
}

fn opts() -> PipelineOptions {
    // The comparison is against a float32 reference: f32 KV cache, and no flash attention
    // (llama.cpp's CPU flash attention rounds through f16: max|Δlogit| 1.8e-2 instead of 2.5e-5
    // on tiny_text_only).
    PipelineOptions { threads: 2, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() }
}

/// `h2ovl … --exact` (`PipelineOptions::exact`): the same f32 KV cache and flash attention off,
/// plus f32 vision arithmetic. The float32 parity tests below run with it, so they prove that
/// `--exact` with an F32 (or F16, see [`exact_f16_pair_reproduces_reference_greedy_ids`]) pair
/// reproduces the reference's greedy ids.
fn exact_opts() -> PipelineOptions {
    PipelineOptions { threads: 2, ..Default::default() }.exact()
}

/// The reference projector output, split per image.
fn reference_encoder(c: &Case, n_embd: usize) -> Result<PrecomputedEncoder> {
    let mut images = Vec::new();
    if !c.images.is_empty() {
        let (shape, data) = npy::read_f32(&c.dir.join("image_embeds.npy"))?;
        assert_eq!(shape, vec![c.tiles.iter().sum::<usize>() * 256, n_embd], "{}: image_embeds shape", c.name);
        let mut off = 0;
        for (p, &t) in c.images.iter().zip(&c.tiles) {
            let n = t * 256 * n_embd;
            images.push((p.clone(), t, data[off..off + n].to_vec()));
            off += n;
        }
    }
    Ok(PrecomputedEncoder { images, n_embd })
}

/// Positions with reference prompt logits and those logits ([n, vocab] flattened).
fn reference_prompt_logits(c: &Case) -> Result<(Vec<usize>, Vec<f32>)> {
    let sel = c.dir.join("logits_prompt_sel.npy");
    if sel.exists() {
        let (_, pos) = npy::read_i64(&c.dir.join("logits_prompt_pos.npy"))?;
        let (_, l) = npy::read_f32(&sel)?;
        Ok((pos.into_iter().map(|p| p as usize).collect(), l))
    } else {
        let (shape, l) = npy::read_f32(&c.dir.join("logits_prompt.npy"))?;
        Ok(((0..shape[0]).collect(), l))
    }
}

fn run_case(c: &Case, pipe: &mut Pipeline, prompt_positions: Vec<usize>) -> Result<ChatOutput> {
    let images: Vec<ImageInput> = c.images.iter().map(|p| ImageInput::Path(p.clone())).collect();
    run_case_with(c, pipe, &images, prompt_positions)
}

fn run_case_with(c: &Case, pipe: &mut Pipeline, images: &[ImageInput], prompt_positions: Vec<usize>) -> Result<ChatOutput> {
    let mut cfg = GenerationConfig::greedy_fixed(N_GEN);
    cfg.probe.step_logits = true;
    cfg.probe.prompt_positions = prompt_positions;
    pipe.chat_stream(images, &c.question, &cfg, &History::new(), &mut |_| {})
}

/// The case's images for our own decoder, except where the reference ships the decoded RGB
/// (`decoded_rgb_img{k}.npy`, the JPEG): the README makes JPEG tiles exact only with
/// libjpeg-turbo's decoder, so the pipeline below the decoder is checked from PIL's pixels.
fn own_inputs(c: &Case) -> Result<Vec<ImageInput>> {
    let mut out = Vec::new();
    for (k, p) in c.images.iter().enumerate() {
        let dec = c.dir.join(format!("decoded_rgb_img{k}.npy"));
        if dec.exists() {
            let (shape, px) = npy::read_u8(&dec)?;
            out.push(ImageInput::from_rgb8(shape[1] as u32, shape[0] as u32, px)?);
        } else {
            out.push(ImageInput::Path(p.clone()));
        }
    }
    Ok(out)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Asserts the float32 criteria of the README for one run.
fn check_f32(c: &Case, out: &ChatOutput, label: &str) -> Result<()> {
    let (_, ids) = npy::read_i64(&c.dir.join("input_ids.npy"))?;
    let ours: Vec<i64> = out.prompt_ids.iter().map(|&t| t as i64).collect();
    assert_eq!(ours.len(), ids.len(), "{}: prompt length", c.name);
    assert_eq!(ours, ids, "{}: prompt ids", c.name);

    let (_, gen) = npy::read_i64(&c.dir.join("gen_ids.npy"))?;
    let ours: Vec<i64> = out.tokens.iter().map(|&t| t as i64).collect();
    assert_eq!(ours, gen, "{} [{label}]: greedy ids", c.name);

    let (shape, gl) = npy::read_f32(&c.dir.join("gen_logits.npy"))?;
    let v = shape[1];
    assert_eq!(out.step_logits.len(), N_GEN);
    let mut worst = 0f32;
    for (k, row) in out.step_logits.iter().enumerate() {
        let d = max_abs_diff(row, &gl[k * v..(k + 1) * v]);
        worst = worst.max(d);
        assert!(d <= LOGITS_TOL, "{} [{label}]: step {k} logits max|Δ| {d} > {LOGITS_TOL}", c.name);
    }
    let (pos, pl) = reference_prompt_logits(c)?;
    assert_eq!(out.prompt_logits.len(), pos.len(), "{}: prompt logits returned", c.name);
    let mut worst_p = 0f32;
    for (i, p) in pos.iter().enumerate() {
        let (q, row) = &out.prompt_logits.iter().find(|(q, _)| q == p).context("missing prompt position")?;
        assert_eq!(q, p);
        let d = max_abs_diff(row, &pl[i * v..(i + 1) * v]);
        worst_p = worst_p.max(d);
        assert!(d <= LOGITS_TOL, "{} [{label}]: prompt position {p} logits max|Δ| {d} > {LOGITS_TOL}", c.name);
    }
    println!(
        "{} [{label}]: ids exact ({} prompt, {N_GEN} generated); max|Δlogit| generation {worst:.2e}, prompt {worst_p:.2e}",
        c.name,
        out.prompt_ids.len()
    );
    Ok(())
}

fn f32_with_reference_embeds(name: &str) -> Result<()> {
    let c = case(name)?;
    let conv = converted(&c.checkpoint, LlmQuant::F32, VisionQuant::F32)?;
    let probe = Pipeline::with_encoder(&conv.llm, None, exact_opts())?;
    let enc = reference_encoder(&c, probe.model().n_embd())?;
    drop(probe);
    let mut pipe = Pipeline::with_encoder(&conv.llm, Some(Box::new(enc)), exact_opts())?;
    let (pos, _) = reference_prompt_logits(&c)?;
    let out = run_case(&c, &mut pipe, pos)?;
    check_f32(&c, &out, "reference embeds")
}

#[test]
fn f32_text_only() -> Result<()> {
    f32_with_reference_embeds("tiny_text_only")
}

#[test]
fn f32_single_image_reference_embeds() -> Result<()> {
    f32_with_reference_embeds("tiny_single_640x480")
}

#[test]
fn f32_msac_2b_reference_embeds() -> Result<()> {
    f32_with_reference_embeds("tiny2b_msac_300x900")
}

#[test]
fn f32_multi_image_reference_embeds() -> Result<()> {
    f32_with_reference_embeds("tiny_multi_640x480_448x448")
}

/// Our own vision encoder (mmproj GGUF, F32) instead of the reference embeddings.
fn f32_with_own_vision(name: &str) -> Result<()> {
    let c = case(name)?;
    let conv = converted(&c.checkpoint, LlmQuant::F32, VisionQuant::F32)?;
    let mut pipe = Pipeline::load(&conv.llm, Some(&conv.vision), exact_opts())?;
    let (pos, _) = reference_prompt_logits(&c)?;
    let out = run_case_with(&c, &mut pipe, &own_inputs(&c)?, pos)?;
    assert_eq!(out.image_tiles, c.tiles, "{}: tiles per image", c.name);
    check_f32(&c, &out, "own vision F32")?;
    if c.dir.join("decoded_rgb_img1.npy").exists() {
        // Measured, not asserted (README: JPEG tiles are exact only with libjpeg-turbo): the
        // same case with our own JPEG decoder.
        let mut pipe = Pipeline::load(&conv.llm, Some(&conv.vision), opts())?;
        let out = run_case(&c, &mut pipe, Vec::new())?;
        let (_, gen) = npy::read_i64(&c.dir.join("gen_ids.npy"))?;
        let (shape, gl) = npy::read_f32(&c.dir.join("gen_logits.npy"))?;
        let v = shape[1];
        let same = out.tokens.iter().zip(&gen).filter(|(&a, &b)| a as i64 == b).count();
        let worst = out.step_logits.iter().enumerate().map(|(k, r)| max_abs_diff(r, &gl[k * v..(k + 1) * v])).fold(0.0, f32::max);
        println!("{} [own vision F32, JPEG decoded by us]: {same}/{N_GEN} ids equal, max|Δlogit| {worst:.2e}", c.name);
    }
    Ok(())
}

#[test]
fn f32_single_image_own_vision() -> Result<()> {
    f32_with_own_vision("tiny_single_640x480")
}

#[test]
fn f32_msac_2b_own_vision() -> Result<()> {
    f32_with_own_vision("tiny2b_msac_300x900")
}

#[test]
fn f32_multi_image_own_vision() -> Result<()> {
    f32_with_own_vision("tiny_multi_640x480_448x448")
}

const ALL_CASES: [&str; 4] = ["tiny_text_only", "tiny_single_640x480", "tiny2b_msac_300x900", "tiny_multi_640x480_448x448"];

/// `--exact` with an F16 LLM + F16 vision pair, our whole pipeline (own decoder, own vision
/// encoder): the 16 greedy ids equal the reference's in every case. The default settings on
/// the same files are run alongside and their agreement is printed (measured, not asserted:
/// they trade exactness for speed).
#[test]
fn exact_f16_pair_reproduces_reference_greedy_ids() -> Result<()> {
    for name in ALL_CASES {
        let c = case(name)?;
        let conv = converted(&c.checkpoint, LlmQuant::F16, VisionQuant::F16)?;
        let (_, gen) = npy::read_i64(&c.dir.join("gen_ids.npy"))?;
        let mut agree = Vec::new();
        for (label, o) in [("--exact", exact_opts()), ("defaults", PipelineOptions { threads: 2, ..Default::default() })] {
            let mut pipe = Pipeline::load(&conv.llm, Some(&conv.vision), o)?;
            let out = run_case_with(&c, &mut pipe, &own_inputs(&c)?, Vec::new())?;
            let ours: Vec<i64> = out.tokens.iter().map(|&t| t as i64).collect();
            let same = ours.iter().zip(&gen).take_while(|(a, b)| a == b).count();
            agree.push(format!("{label}: {same}/{N_GEN} ids before the first divergence"));
            if label == "--exact" {
                assert_eq!(ours, gen, "{} [F16 pair, --exact]: greedy ids", c.name);
            }
        }
        println!("{} [F16 LLM + F16 vision]: {}", c.name, agree.join("; "));
    }
    Ok(())
}

/// Q8_0 LLM + Q8_0 vision: report how far greedy decoding stays with the reference, and the
/// KL divergence per step teacher-forced along the reference ids. Measured figures, printed.
#[test]
fn q8_0_divergence_report() -> Result<()> {
    for name in ALL_CASES {
        let c = case(name)?;
        let conv = converted(&c.checkpoint, LlmQuant::Q8_0, VisionQuant::Q8_0)?;
        // (a) Reference embeddings: the LLM quantization alone.
        let probe = Pipeline::with_encoder(&conv.llm, None, opts())?;
        let enc = reference_encoder(&c, probe.model().n_embd())?;
        drop(probe);
        let mut pipe = Pipeline::with_encoder(&conv.llm, Some(Box::new(enc)), opts())?;
        report_quantized(&c, &mut pipe, "Q8_0 LLM, reference embeds")?;
        // (b) The whole quantized pipeline.
        if !c.images.is_empty() {
            let mut pipe = Pipeline::load(&conv.llm, Some(&conv.vision), opts())?;
            report_quantized(&c, &mut pipe, "Q8_0 LLM + Q8_0 vision")?;
        }
    }
    Ok(())
}

/// Prints the first free-running divergence, then the teacher-forced per-step KL(reference ||
/// ours) and top-1 agreement; asserts only what must hold regardless of quantization (same
/// prompt ids, 16 steps produced, finite KL).
fn report_quantized(c: &Case, pipe: &mut Pipeline, label: &str) -> Result<()> {
    let (_, ids) = npy::read_i64(&c.dir.join("input_ids.npy"))?;
    let (_, gen) = npy::read_i64(&c.dir.join("gen_ids.npy"))?;
    let (shape, gl) = npy::read_f32(&c.dir.join("gen_logits.npy"))?;
    let v = shape[1];

    let free = run_case(c, pipe, Vec::new())?;
    assert_eq!(free.prompt_ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), ids, "{}: prompt ids", c.name);
    assert_eq!(free.tokens.len(), N_GEN);
    let first_div = free.tokens.iter().zip(&gen).position(|(&a, &b)| a as i64 != b);

    pipe.reset();
    let mut cfg = GenerationConfig::greedy_fixed(N_GEN);
    cfg.probe.step_logits = true;
    cfg.probe.forced = gen.iter().map(|&t| t as i32).collect();
    let images: Vec<ImageInput> = c.images.iter().map(|p| ImageInput::Path(p.clone())).collect();
    let forced = pipe.chat_stream(&images, &c.question, &cfg, &History::new(), &mut |_| {})?;
    let kl: Vec<f64> = forced.step_logits.iter().enumerate().map(|(k, row)| kl_divergence(&gl[k * v..(k + 1) * v], row)).collect();
    assert!(kl.iter().all(|x| x.is_finite()));
    let top1 = forced.step_logits.iter().zip(&gen).filter(|(row, &g)| argmax(row) as i64 == g).count();
    let max_d = forced.step_logits.iter().enumerate().map(|(k, row)| max_abs_diff(row, &gl[k * v..(k + 1) * v])).fold(0.0, f32::max);
    let kl_s: Vec<String> = kl.iter().map(|x| format!("{x:.1e}")).collect();
    println!(
        "{} [{label}]: free-running first divergence {}; teacher-forced top-1 {top1}/{N_GEN}, max|Δlogit| {max_d:.3}, \
         KL(ref||ours) per step [{}] (max {:.1e})",
        c.name,
        first_div.map_or("none (16/16 ids equal)".to_string(), |k| format!("at step {k}")),
        kl_s.join(", "),
        kl.iter().cloned().fold(0.0, f64::max),
    );
    Ok(())
}
