//! PDFs through `h2ovl serve` on the tiny golden checkpoint: a 2-page PDF as an OpenAI `file`
//! part and as a `data:application/pdf` image URL gives the same prompt (2 images) and the same
//! greedy answer as the library fed the two rendered pages; bad PDFs are HTTP 400 with an
//! OpenAI error body.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use h2ovl_runtime::llm::{GenerationConfig, History, ImageInput, KvType, Pipeline, PipelineOptions};
use h2ovl_runtime::pdf::{render_pages, PdfOptions, TilingHint};
use h2ovl_runtime::serve::ServeOptions;
use serde_json::{json, Value};

fn pipeline() -> Pipeline {
    // One tile per page keeps the tiny model's work small; the server reads max_tiles from here.
    let o = PipelineOptions { threads: 1, kv_type: KvType::F32, flash_attn: Some(false), max_tiles: 1, ..Default::default() };
    Pipeline::load(&tiny_f32().llm, Some(&tiny_f32().vision), o).expect("loading the tiny model")
}

fn start() -> SocketAddr {
    let pipe = pipeline();
    start_server(pipe, ServeOptions::default())
}

fn post(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // Connection: close without chunking in axum's JSON answers.
    (status, serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn pdf_b64(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf").join(name);
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())
}

fn ask(part: Value) -> Value {
    json!({"model": "h2ovl", "max_tokens": 6, "temperature": 0,
           "messages": [{"role": "user", "content": [{"type": "text", "text": "What is on these pages?"}, part]}]})
}

#[test]
fn a_two_page_pdf_is_two_images_as_file_part_and_as_image_url() {
    let addr = start();
    let b64 = pdf_b64("two_pages.pdf");
    let (st, file_ans) = post(addr, &ask(json!({"type": "file", "file": {"filename": "two_pages.pdf", "file_data": format!("data:application/pdf;base64,{b64}")}})));
    assert_eq!(st, 200, "{file_ans}");
    let (st, url_ans) = post(addr, &ask(json!({"type": "image_url", "image_url": {"url": format!("data:application/pdf;base64,{b64}")}})));
    assert_eq!(st, 200, "{url_ans}");
    // Bare base64 in file_data is accepted too.
    let (st, bare_ans) = post(addr, &ask(json!({"type": "file", "file": {"file_data": b64}})));
    assert_eq!(st, 200, "{bare_ans}");

    // The library with the two pages rendered the same way (1 tile, no MSAC).
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf/two_pages.pdf")).unwrap();
    let opts = PdfOptions { tiling: TilingHint { max_tiles: 1, msac: false }, ..Default::default() };
    let pages: Vec<ImageInput> = render_pages(&bytes, &opts).unwrap().into_iter().map(|p| ImageInput::Rgb(p.image)).collect();
    assert_eq!(pages.len(), 2);
    let mut pipe = pipeline();
    let cfg = GenerationConfig { max_new_tokens: 6, ..Default::default() };
    let lib = pipe.chat_stream(&pages, "What is on these pages?", &cfg, &History::new(), &mut |_| {}).unwrap();
    assert_eq!(lib.image_tiles, [1, 1]);
    let one = pipe.chat_stream(&pages[..1], "What is on these pages?", &cfg, &History::new(), &mut |_| {}).unwrap();
    assert!(one.prompt_ids.len() < lib.prompt_ids.len());
    for ans in [&file_ans, &url_ans, &bare_ans] {
        assert_eq!(ans["usage"]["prompt_tokens"].as_u64(), Some(lib.prompt_ids.len() as u64), "{ans}");
        assert_eq!(ans["choices"][0]["message"]["content"].as_str(), Some(lib.answer.trim_end()), "{ans}");
    }

    // Bad PDFs: 400 with an OpenAI error body naming the problem.
    for (name, part, want) in [
        ("encrypted", json!({"type": "file", "file": {"file_data": format!("data:application/pdf;base64,{}", pdf_b64("encrypted.pdf"))}}), "encrypted"),
        ("truncated", json!({"type": "image_url", "image_url": {"url": format!("data:application/pdf;base64,{}", pdf_b64("truncated.pdf"))}}), "truncated"),
        ("zero pages", json!({"type": "file", "file": {"file_data": pdf_b64("zero_pages.pdf")}}), "no pages"),
        ("too many pages", json!({"type": "file", "file": {"file_data": pdf_b64("many_pages.pdf")}}), "limit of 32"),
        ("file_id", json!({"type": "file", "file": {"file_id": "file-abc"}}), "file_id"),
        ("bad base64", json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,@@@"}}), "base64"),
    ] {
        let (st, body) = post(addr, &ask(part));
        assert_eq!(st, 400, "{name}: {body}");
        let msg = body["error"]["message"].as_str().unwrap_or_else(|| panic!("{name}: {body}"));
        assert!(msg.contains(want), "{name}: {msg}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

/// Issue 23: a 3-page PDF that does not fit a 3072-token context at max 6 tiles a page is fitted
/// by default (200, what was chosen in `timings.fit`); the request field `pages_mode: "off"`
/// gets today's refusal as a 400; a bad value is a 400 naming the field.
#[test]
fn a_many_page_file_part_is_fitted_unless_the_request_says_off() {
    let o = PipelineOptions { threads: 1, kv_type: KvType::F32, flash_attn: Some(false), n_ctx: Some(3072), ..Default::default() };
    let addr = start_server(Pipeline::load(&tiny_f32().llm, Some(&tiny_f32().vision), o).unwrap(), ServeOptions::default());
    let part = json!({"type": "file", "file": {"filename": "three_pages.pdf", "file_data": format!("data:application/pdf;base64,{}", pdf_b64("three_pages.pdf"))}});
    let (st, ans) = post(addr, &ask(part.clone()));
    assert_eq!(st, 200, "{ans}");
    let fit = ans["timings"]["fit"].as_str().unwrap_or_else(|| panic!("no timings.fit: {ans}"));
    assert!(fit.contains("3 images at max"), "{fit}");
    assert_eq!(ans["timings"]["image_tiles"].as_array().unwrap().len(), 3);
    let mut off = ask(part.clone());
    off["pages_mode"] = json!("off");
    let (st, err) = post(addr, &off);
    assert_eq!(st, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("more than the context size 3072"), "{err}");
    let mut bad = ask(part);
    bad["pages_mode"] = json!("sometimes");
    let (st, err) = post(addr, &bad);
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["param"], "pages_mode", "{err}");
}

/// Page by page on the server: three A4 pages that do not fit a 2048-token context even at the
/// floor are answered group by group and combined (200, `timings.fit` says so, every page's
/// tiles listed); streamed, each group is announced by an SSE comment before the answer's chunks.
#[test]
fn pages_that_cannot_be_fitted_are_read_one_by_one_on_the_server() {
    let o = PipelineOptions { threads: 1, kv_type: KvType::F32, flash_attn: Some(false), n_ctx: Some(2048), ..Default::default() };
    let addr = start_server(Pipeline::load(&tiny_f32().llm, Some(&tiny_f32().vision), o).unwrap(), ServeOptions::default());
    let part = json!({"type": "file", "file": {"filename": "three_pages.pdf", "file_data": format!("data:application/pdf;base64,{}", pdf_b64("three_pages.pdf"))}});
    let (st, ans) = post(addr, &ask(part.clone()));
    assert_eq!(st, 200, "{ans}");
    let fit = ans["timings"]["fit"].as_str().unwrap_or_else(|| panic!("no timings.fit: {ans}"));
    assert!(fit.starts_with("read page by page: 3 groups"), "{fit}");
    assert_eq!(ans["timings"]["image_tiles"].as_array().unwrap().len(), 3, "{ans}");
    assert!(ans["choices"][0]["message"]["content"].is_string());

    let mut req = ask(part);
    req["stream"] = json!(true);
    let body = req.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let (g1, g3, done) = (text.find(": page group 1 of 3"), text.find(": page group 3 of 3"), text.find("data: [DONE]"));
    assert!(g1.is_some() && g3 > g1 && done > g3, "{text}");
    assert!(text.contains(": combining the page answers"), "{text}");
}
