//! What the built-in chat page relies on, over plain HTTP on the tiny golden checkpoint: the page
//! and its assets (no key, strict CSP), `/props` (key required, defaults equal to what a request
//! without settings gets), `timings` in responses and in the last stream chunk (a follow-up reuses
//! the KV cache: `cache_n` > 0, fewer positions prefilled), `top_k`, the `json_template`
//! response format, and `--no-webui` (`webui: false` → no page). The page itself is tested in a
//! real browser by scripts/test-webui.sh.
mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use h2ovl_runtime::llm::{GenerationConfig, KvType, Pipeline, PipelineOptions};
use h2ovl_runtime::serve::ServeOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "webui-key";

fn start(opts: ServeOptions) -> SocketAddr {
    let o = PipelineOptions { threads: 1, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() };
    let pipe = Pipeline::load(&tiny_f32().llm, Some(&tiny_f32().vision), o).expect("loading the tiny model");
    start_server(pipe, opts)
}

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start(ServeOptions { api_key: Some(KEY.into()), version: "test-build".into(), ..Default::default() }))
}

/// (status, head, body) of one HTTP/1.1 request.
async fn raw(addr: SocketAddr, method: &str, path: &str, auth: bool, body: &[u8]) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = if auth { format!("Authorization: Bearer {KEY}\r\n") } else { String::new() };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or_default();
    (status, head.to_ascii_lowercase(), body)
}

async fn chat(addr: SocketAddr, req: Value) -> (u16, Value) {
    let (st, _, body) = raw(addr, "POST", "/v1/chat/completions", true, req.to_string().as_bytes()).await;
    (st, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_public_with_a_strict_csp_and_props_needs_the_key() {
    let addr = server();
    for (path, ty) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/markdown.js", "text/javascript"), ("/style.css", "text/css")] {
        let (st, head, body) = raw(addr, "GET", path, false, b"").await;
        assert_eq!(st, 200, "{path}");
        assert!(head.contains(&format!("content-type: {ty}")), "{path}: {head}");
        assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{path}: {head}");
        assert!(!body.is_empty());
    }
    let (_, _, html) = raw(addr, "GET", "/", false, b"").await;
    // Self-contained: nothing loaded from another origin, no inline script for the CSP to block.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>"), "{html}");
    assert!(html.contains(r#"<script src="/app.js""#));

    let (st, _, body) = raw(addr, "GET", "/props", false, b"").await;
    assert_eq!(st, 401, "{body}");
    let (st, _, body) = raw(addr, "GET", "/props", true, b"").await;
    assert_eq!(st, 200, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["modalities"]["vision"], json!(true));
    assert_eq!(p["build_info"]["version"], json!("test-build"));
    assert!(p["build_info"]["cpu"].as_str().unwrap().contains("llm: ggml-cpu"), "{p}");
    assert!(p["n_ctx"].as_u64().unwrap() > 0);
    let d = &p["default_generation_settings"];
    let g = GenerationConfig::default();
    assert_eq!(d["temperature"].as_f64().unwrap() as f32, g.temperature);
    assert_eq!(d["top_k"].as_u64().unwrap() as usize, g.top_k);
    assert_eq!(d["max_tokens"].as_u64().unwrap() as usize, h2ovl_runtime::serve::api::DEFAULT_MAX_TOKENS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timings_show_the_kv_cache_reuse_of_a_follow_up() {
    // Its own server: another test's request in between would replace the cached conversation.
    let addr = start(ServeOptions { api_key: Some(KEY.into()), ..Default::default() });
    let first = json!([{"role": "user", "content": "Tell me about the weather today, please."}]);
    let (st, a) = chat(addr, json!({"messages": first, "max_tokens": 6, "top_k": 5})).await;
    assert_eq!(st, 200, "{a}");
    let t = &a["timings"];
    let answer = a["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert_eq!(t["predicted_n"], a["usage"]["completion_tokens"], "{a}");
    assert!(t["prompt_n"].as_u64().unwrap() > 0 && t["prompt_ms"].as_f64().unwrap() > 0.0, "{a}");

    // The follow-up sends the whole history; the server keeps the common prefix in its KV cache.
    let follow = json!([{"role": "user", "content": "Tell me about the weather today, please."},
                        {"role": "assistant", "content": answer},
                        {"role": "user", "content": "And tomorrow?"}]);
    let body = json!({"messages": follow, "max_tokens": 4, "stream": true});
    let (st, head, sse) = raw(addr, "POST", "/v1/chat/completions", true, body.to_string().as_bytes()).await;
    assert_eq!(st, 200, "{sse}");
    assert!(head.contains("text/event-stream"), "{head}");
    let chunks: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad chunk ({e}): {d}")))
        .collect();
    let last = chunks.iter().find(|c| c["choices"][0]["finish_reason"].is_string()).expect("a finish chunk");
    let t2 = &last["timings"];
    let prompt_total = t2["cache_n"].as_u64().unwrap() + t2["prompt_n"].as_u64().unwrap();
    assert!(t2["cache_n"].as_u64().unwrap() > t["prompt_n"].as_u64().unwrap() / 2, "follow-up did not reuse the cache: {t2} after {t}");
    assert!(t2["prompt_n"].as_u64().unwrap() < prompt_total, "{t2}");
    assert!(chunks.iter().filter(|c| c.get("timings").is_some()).count() == 1, "timings only on the last chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_template_from_the_prompt_and_bad_settings() {
    let addr = server();
    let q = r#"Read the card and fill {"name": "", "age": 0} please."#;
    let (st, a) = chat(addr, json!({"messages": [{"role": "user", "content": q}], "max_tokens": 60,
                                    "response_format": {"type": "json_template"}})).await;
    assert_eq!(st, 200, "{a}");
    assert!(a["choices"][0]["message"]["content"].as_str().unwrap().trim_start().starts_with('{'), "{a}");
    if a["choices"][0]["finish_reason"] == json!("stop") {
        let v: Value = serde_json::from_str(a["choices"][0]["message"]["content"].as_str().unwrap()).expect("JSON answer");
        assert!(v["name"].is_string() && v["age"].is_number(), "{v}");
    }
    let (st, e) = chat(addr, json!({"messages": [{"role": "user", "content": "no template here"}],
                                    "response_format": {"type": "json_template"}})).await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("response_format")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("no JSON template"), "{e}");
    let (st, e) = chat(addr, json!({"messages": [{"role": "user", "content": "x"}], "top_k": -1})).await;
    assert_eq!(st, 400, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_webui_serves_the_api_only() {
    let addr = start(ServeOptions { webui: false, ..Default::default() });
    let (st, _, body) = raw(addr, "GET", "/", false, b"").await;
    assert_eq!(st, 404, "{body}");
    let (st, _, body) = raw(addr, "GET", "/props", false, b"").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["webui"], json!(false));
}
