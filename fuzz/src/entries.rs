//! The fuzz targets' bodies, one function per parser. They are shared by two callers: the
//! libFuzzer binaries in `fuzz_targets/` (nightly, `cargo fuzz run <target>`) and the stable
//! replay test `tests/fuzz_replay.rs`, which feeds every file of `fuzz/seeds/<target>/`,
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same function in
//! `make test`, so a crash that was fixed stays fixed without a nightly toolchain.
//!
//! Every function takes untrusted bytes and must return (an `Err` is fine) without panicking,
//! aborting, hanging or allocating without bound. Where a parser's output has a property
//! worth asserting (a completed JSON prefix parses, a tiled image has square tiles), the
//! function asserts it: a failed assertion is a finding like a crash.
use std::path::Path;
use std::time::Duration;

use h2ovl_runtime::json::{scanner::Scanner, Constraint, Limits, OValue};
use h2ovl_runtime::pdf::{Dpi, PdfLimits, PdfOptions, TilingHint};
use h2ovl_runtime::preprocess::{decode_image, tile_image, PreprocessConfig};

/// Every target by name, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("spm", spm),
    ("tokenizer_json", tokenizer_json),
    ("json_schema", json_schema),
    ("prompt_template", prompt_template),
    ("image", image),
    ("pdf", pdf),
    ("chat_request", chat_request),
];

/// GGUF bytes → our reader (magic, version, counts, alignment, offsets, types), then, when the
/// file parses, what `h2ovl run` does with an mmproj: the vision config from its keys and the
/// shape check of every tensor the encoder uses.
pub fn gguf(data: &[u8]) {
    let Ok(g) = h2ovl_format::gguf::GgufFile::from_bytes(Path::new("fuzz.gguf"), data.to_vec()) else { return };
    for t in g.tensors() {
        let v = g.tensor(&t.name).expect("a listed tensor is readable");
        assert_eq!(v.ne, &t.ne[..]);
    }
    for (k, _) in g.metadata() {
        assert!(g.get(k).is_some());
    }
    let Ok(cfg) = h2ovl_runtime::vision::config::VisionConfig::from_gguf(&g) else { return };
    let _ = h2ovl_runtime::vision::weights::VisionWeights::load(&cfg, &h2ovl_runtime::vision::weights::GgufSource(&g));
}

/// A safetensors file (8-byte length + JSON header + data) and, read as text, a sharded
/// checkpoint's `model.safetensors.index.json`.
pub fn safetensors(data: &[u8]) {
    if let Ok(tensors) = h2ovl_convert::safetensors::parse_shard_bytes(data) {
        for t in &tensors {
            let bytes = t.numel() as u64 * t.dtype.size() as u64;
            assert!(bytes <= data.len() as u64, "{}: a validated tensor lies inside the file", t.name);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(map) = h2ovl_convert::safetensors::parse_index(text) {
            for (_, file) in map {
                assert!(!file.contains('/') && !file.contains('\\') && file != "..", "shard {file:?} escapes the folder");
            }
        }
    }
}

/// A SentencePiece `tokenizer.model` (protobuf).
pub fn spm(data: &[u8]) {
    let _ = h2ovl_convert::vocab::parse_spm(data);
}

/// A HF `tokenizer.json` (the vocab source when a checkpoint has no `tokenizer.model`).
pub fn tokenizer_json(data: &[u8]) {
    if let Ok((tokens, scores, types)) = h2ovl_convert::vocab::parse_tokenizer_json(data) {
        assert!(tokens.len() == scores.len() && tokens.len() == types.len());
    }
}

/// Splits `data` at its first newline: (first line, the rest).
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Scans `answer` with the constraint's scanner and, while it tracks, checks the promise of
/// JSON mode: the answer's prefix followed by the scanner's completion is valid JSON, for a
/// prefix cut at any byte of an answer that is itself valid JSON.
fn scan(c: &Constraint, answer: &[u8]) {
    let mut s = Scanner::new();
    s.push(&c.shape, answer);
    let _ = s.completion(&c.shape);
    let valid = serde_json::from_slice::<serde_json::Value>(answer).is_ok_and(|v| v.is_object());
    if !valid || answer.len() > 256 {
        return;
    }
    for cut in 0..=answer.len() {
        let mut s = Scanner::new();
        s.push(&c.shape, &answer[..cut]);
        if let Some(rest) = s.completion(&c.shape) {
            let mut full = answer[..cut].to_vec();
            full.extend_from_slice(&rest);
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&full) {
                panic!("prefix {:?} + completion {:?} does not parse: {e}", String::from_utf8_lossy(&answer[..cut]), String::from_utf8_lossy(&rest));
            }
        }
    }
}

/// A JSON Schema (first line) → GBNF grammar + the shape the budget closer uses; the rest of
/// the input is scanned as an answer.
pub fn json_schema(data: &[u8]) {
    let (schema, answer) = split_line(data);
    let Ok(schema) = std::str::from_utf8(schema) else { return };
    if let Ok(c) = Constraint::from_schema_text(schema, &Limits::default()) {
        assert!(!c.gbnf.is_empty());
        scan(&c, answer);
    }
}

/// A prompt (first line) searched for the JSON template the model card's prompt guide embeds,
/// turned into a constraint; the rest is scanned as an answer.
pub fn prompt_template(data: &[u8]) {
    let (prompt, answer) = split_line(data);
    let Ok(prompt) = std::str::from_utf8(prompt) else { return };
    if let Some((t, range)) = h2ovl_runtime::json::template::find_template(prompt) {
        assert!(prompt.get(range.clone()).is_some(), "template range {range:?} is not on char boundaries");
        assert_eq!(OValue::parse(&prompt[range]).ok().as_ref(), Some(&t));
    }
    if let Ok(c) = Constraint::from_prompt_template(prompt, &Limits::default()) {
        scan(&c, answer);
    }
}

/// Image bytes → decoder with the pixel limit checked from the header, then the tiling on a
/// small tile size (the grid choice and crops for any aspect ratio, cheaply).
pub fn image(data: &[u8]) {
    let Ok(img) = decode_image(data, 1 << 22) else { return };
    assert!(img.width() > 0 && img.height() > 0 && img.width() as u64 * img.height() as u64 <= 1 << 22);
    let flags = data.last().copied().unwrap_or(0);
    let cfg = PreprocessConfig { image_size: 16, max_tiles: 1 + (flags % 12) as u32, use_msac: flags & 16 != 0, ..Default::default() };
    let t = tile_image(&img, &cfg, true);
    assert!(!t.tiles.is_empty() && t.tiles.iter().all(|t| t.dimensions() == (16, 16)));
}

/// The server's PDF guards at fuzzing size: 4 pages, 1 MP per page, 5 s, 18 dpi (the pages are
/// only rendered to be dropped; a low DPI keeps an execution in milliseconds).
fn small_pdf_options() -> PdfOptions {
    let limits = PdfLimits { max_pages: 4, max_page_pixels: 1 << 20, timeout: Duration::from_secs(5) };
    PdfOptions { pages: None, dpi: Dpi::Fixed(18.0), tiling: TilingHint::default(), limits }
}

/// PDF bytes → page count and rendering at a low DPI, under the server's guards (the render
/// thread's panic guard turns a renderer panic into an error: only an escaping panic counts).
pub fn pdf(data: &[u8]) {
    let opts = small_pdf_options();
    let _ = h2ovl_runtime::pdf::page_count(data, &opts.limits);
    if let Ok(pages) = h2ovl_runtime::pdf::render_pages(data, &opts) {
        assert!(pages.len() <= 4);
    }
}

/// A `POST /v1/chat/completions` body → the job the model thread would run (validation,
/// messages → turns, data-URL images and PDFs decoded, `response_format` → grammar).
pub fn chat_request(data: &[u8]) {
    let Ok((req, ordered)) = h2ovl_runtime::serve::api::ChatRequest::parse(data) else { return };
    if let Err(e) = req.into_job_with(&ordered, None, &small_pdf_options()) {
        let body = e.body();
        assert!(body["error"]["message"].is_string(), "an API error has an OpenAI error body");
    }
}
