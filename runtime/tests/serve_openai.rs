//! `h2ovl serve` against a real OpenAI client (async-openai) on an ephemeral loopback port, with
//! the tiny golden checkpoint converted in-process: non-streaming and streaming answers equal the
//! library's greedy answer, image data URLs, json_schema, stop strings, malformed requests (400
//! with an OpenAI error body), API key, body limit, 16 concurrent clients × 10 requests with
//! only explicit 503s as failures, and a client disconnect that stops generation.
mod common;
use common::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::CreateChatCompletionRequest;
use async_openai::Client;
use base64::Engine as _;
use h2ovl_runtime::llm::{GenerationConfig, History, KvType, Pipeline, PipelineOptions};
use h2ovl_runtime::serve::ServeOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt as _;

const KEY: &str = "test-key";



fn pipeline() -> Pipeline {
    let o = PipelineOptions { threads: 1, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() };
    Pipeline::load(&tiny_f32().llm, Some(&tiny_f32().vision), o).expect("loading the tiny model")
}

/// A server on its own thread + tokio runtime (lives for the whole test process).
fn start(opts: ServeOptions) -> SocketAddr {
    let pipe = pipeline();
    start_server(pipe, opts)
}

fn image_dir() -> PathBuf {
    golden().join("images")
}

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        start(ServeOptions {
            api_key: Some(KEY.into()),
            allowed_image_dir: Some(image_dir()),
            body_limit: 1 << 20,
            ..Default::default()
        })
    })
}

fn client(addr: SocketAddr) -> Client<OpenAIConfig> {
    Client::with_config(OpenAIConfig::new().with_api_base(format!("http://{addr}/v1")).with_api_key(KEY))
}

fn request(v: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(v).expect("a valid OpenAI request")
}

/// The library's own greedy answer (what the server must return).
fn library_answer(question: &str, n: usize) -> String {
    static PIPE: OnceLock<std::sync::Mutex<Pipeline>> = OnceLock::new();
    let p = PIPE.get_or_init(|| std::sync::Mutex::new(pipeline()));
    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = GenerationConfig { max_new_tokens: n, ..Default::default() };
    p.chat(&[], question, &cfg, &History::new()).expect("library chat").0
}

/// Minimal HTTP/1.1 client for requests async-openai cannot send (malformed on purpose).
async fn raw(addr: SocketAddr, method: &str, path: &str, auth: bool, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = if auth { format!("Authorization: Bearer {KEY}\r\n") } else { String::new() };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let _ = s.write_all(body).await; // the server may answer (413) before reading it all
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    v["error"]["message"].as_str().unwrap_or_else(|| panic!("no error.message: {body}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_and_streaming_equal_the_library() {
    let addr = server();
    let c = client(addr);
    let models = c.models().list().await.expect("models");
    assert_eq!(models.data[0].id, "h2ovl");

    let q = "Hello, who are you?";
    let want = library_answer(q, 12);
    let r = c
        .chat()
        .create(request(json!({"model": "h2ovl", "messages": [{"role": "user", "content": q}], "max_tokens": 12, "temperature": 0})))
        .await
        .expect("chat");
    let msg = r.choices[0].message.content.clone().unwrap_or_default();
    assert_eq!(msg, want);
    let u = r.usage.expect("usage");
    assert!(u.prompt_tokens > 5 && u.completion_tokens <= 12 && u.total_tokens == u.prompt_tokens + u.completion_tokens);

    let mut s = c
        .chat()
        .create_stream(request(json!({"model": "h2ovl", "messages": [{"role": "user", "content": q}], "max_tokens": 12,
                                       "stream": true, "stream_options": {"include_usage": true}})))
        .await
        .expect("stream");
    let (mut text, mut finish, mut usage) = (String::new(), None, None);
    while let Some(chunk) = s.next().await {
        let chunk = chunk.expect("chunk");
        for ch in &chunk.choices {
            text += ch.delta.content.as_deref().unwrap_or("");
            finish = finish.or(ch.finish_reason);
        }
        usage = usage.or(chunk.usage);
    }
    assert_eq!(text.trim_end(), want);
    assert!(finish.is_some());
    assert_eq!(usage.expect("usage chunk").completion_tokens, u.completion_tokens);

    // Raw SSE framing ends with [DONE].
    let body = json!({"messages": [{"role": "user", "content": q}], "max_tokens": 3, "stream": true}).to_string();
    let (st, sse) = raw(addr, "POST", "/v1/chat/completions", true, body.as_bytes()).await;
    assert_eq!(st, 200);
    let last = sse.lines().rfind(|l| l.starts_with("data: "));
    assert_eq!(last, Some("data: [DONE]"), "{sse}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_data_url_file_url_json_schema_and_stop() {
    let addr = server();
    let c = client(addr);
    let jpg = std::fs::read(image_dir().join("square_448x448.jpg")).expect("image");
    let url = format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(&jpg));
    let r = c
        .chat()
        .create(request(json!({"model": "h2ovl", "max_tokens": 4, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe the image."}, {"type": "image_url", "image_url": {"url": url}}]}]})))
        .await
        .expect("image chat");
    // 1 tile (448x448, no MSAC on tiny) = 256 image positions + text.
    let pt = r.usage.expect("usage").prompt_tokens;
    assert!(pt > 256 + 5, "prompt tokens {pt}");
    let file = format!("file://{}", image_dir().join("square_448x448.jpg").canonicalize().unwrap().display());
    let r2 = c
        .chat()
        .create(request(json!({"model": "h2ovl", "max_tokens": 4, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe the image."}, {"type": "image_url", "image_url": {"url": file}}]}]})))
        .await
        .expect("file:// chat");
    assert_eq!(r2.usage.expect("usage").prompt_tokens, pt);
    assert_eq!(r2.choices[0].message.content, r.choices[0].message.content);

    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
        "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}, "required": ["qty"]}, "maxItems": 2}},
        "required": ["name", "items"]});
    let r = c
        .chat()
        .create(request(json!({"model": "h2ovl", "max_tokens": 400, "messages": [{"role": "user", "content": "Fill the form."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "form", "schema": schema, "strict": true}}})))
        .await
        .expect("json_schema chat");
    let text = r.choices[0].message.content.clone().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v["name"].is_string() && v["items"].is_array() && v.as_object().unwrap().len() == 2, "{text}");

    // A stop string taken from the greedy answer cuts the answer just before it.
    let q = "Tell me a story.";
    let full = library_answer(q, 16);
    let chars: Vec<char> = full.chars().collect();
    if chars.len() >= 6 {
        let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
        let cut = &full[..full.find(&stop).expect("stop in answer")];
        let r = c
            .chat()
            .create(request(json!({"model": "h2ovl", "max_tokens": 16, "stop": [stop], "messages": [{"role": "user", "content": q}]})))
            .await
            .expect("stop chat");
        assert_eq!(r.choices[0].message.content.as_deref().unwrap_or(""), cut.trim_end());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_openai_errors() {
    let addr = server();
    let p = "/v1/chat/completions";
    let msg = |content: Value| json!({"messages": [{"role": "user", "content": content}], "max_tokens": 2}).to_string();
    let img = |url: &str| msg(json!([{"type": "image_url", "image_url": {"url": url}}]));
    let root = golden().canonicalize().expect("golden dir");
    let escape = format!("file://{}/images/../cases.json", root.display());
    let outside = format!("file://{}", root.join("cases.json").display());
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid request body"),
        (json!({"messages": 3}).to_string(), 400, "invalid request body"),
        (msg(json!("hi")).replace("\"user\"", "\"robot\""), 400, "unsupported role"),
        (img("data:image/png;base64,%%%"), 400, "base64"),
        (img(&format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(b"not an image"))), 400, "invalid image"),
        (img("https://example.com/cat.png"), 400, "offline"),
        (img(&escape), 400, ".."),
        (img(&outside), 400, "outside"),
        (json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9000}).to_string(), 400, "max_tokens"),
        (json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {"a": {"$ref": "#/x"}}}}}}).to_string(), 400, "$ref"),
    ];
    for (body, status, needle) in cases {
        let (st, b) = raw(addr, "POST", p, true, body.as_bytes()).await;
        assert_eq!(st, status, "{body} -> {b}");
        let m = error_message(&b);
        assert!(m.contains(needle), "{body}: {m:?} lacks {needle:?}");
    }
    // Too long a prompt for the context: a 400 before any compute, also when streaming.
    let long = "word ".repeat(9000);
    for stream in [false, true] {
        let body = json!({"messages": [{"role": "user", "content": long}], "max_tokens": 4, "stream": stream}).to_string();
        let (st, b) = raw(addr, "POST", p, true, body.as_bytes()).await;
        assert_eq!(st, 400, "{b}");
        assert!(error_message(&b).contains("context"), "{b}");
    }
    let (st, b) = raw(addr, "POST", p, false, msg(json!("hi")).as_bytes()).await;
    assert_eq!(st, 401, "{b}");
    error_message(&b);
    let (st, b) = raw(addr, "POST", p, true, &vec![b' '; 2 << 20]).await;
    assert_eq!(st, 413, "{b}");
    error_message(&b);
    let (st, b) = raw(addr, "GET", "/v1/nope", true, b"").await;
    assert_eq!(st, 404, "{b}");
    let (st, b) = raw(addr, "GET", "/health", false, b"").await;
    assert_eq!((st, b.contains("ok")), (200, true), "{b}");
    // The server is still fine.
    let r = client(addr).chat().create(request(json!({"model": "h2ovl", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_clients_ten_requests_only_explicit_503s() {
    // A small queue so the overload path is exercised too.
    let addr = start(ServeOptions { queue: 4, ..Default::default() });
    let mut tasks = Vec::new();
    for k in 0..16 {
        tasks.push(tokio::spawn(async move {
            let c = Client::with_config(OpenAIConfig::new().with_api_base(format!("http://{addr}/v1")).with_api_key("x"));
            let (mut ok, mut busy, mut other) = (0, 0, Vec::new());
            for i in 0..10 {
                let r = c
                    .chat()
                    .create(request(json!({"model": "h2ovl", "max_tokens": 3, "temperature": 0.7, "seed": k * 10 + i,
                                           "messages": [{"role": "user", "content": format!("Client {k} request {i}")}]})))
                    .await;
                match r {
                    Ok(r) if r.choices.len() == 1 => ok += 1,
                    Err(OpenAIError::ApiError(e)) if e.status_code.as_u16() == 503 => busy += 1,
                    other_r => other.push(format!("{other_r:?}")),
                }
            }
            (ok, busy, other)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (o, b, other) = t.await.expect("client task");
        assert!(other.is_empty(), "unexpected failures: {other:?}");
        ok += o;
        busy += b;
    }
    println!("16x10 requests: {ok} answered, {busy} explicit 503s");
    assert_eq!(ok + busy, 160);
    assert!(ok >= 16, "only {ok} answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_stops_generation() {
    let addr = start(ServeOptions::default());
    let c = client(addr);
    // How long a short request takes on an idle server.
    let t = Instant::now();
    c.chat().create(request(json!({"model": "h2ovl", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}))).await.expect("warm-up");
    let short = t.elapsed();
    // A long stream, 8000 tokens without stop (greedy noise); read one chunk and hang up.
    let long_req = json!({"model": "h2ovl", "max_tokens": 8000, "stream": true, "messages": [{"role": "user", "content": "Go"}]});
    let t = Instant::now();
    {
        let mut s = c.chat().create_stream(request(long_req)).await.expect("stream");
        let _ = s.next().await;
    }
    // The next request is served quickly: the abandoned generation was stopped.
    c.chat().create(request(json!({"model": "h2ovl", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}))).await.expect("after");
    let after = t.elapsed();
    println!("short request {short:?}; hang-up + next request {after:?}");
    assert!(after < short * 5 + Duration::from_secs(2), "generation went on after the client left ({after:?})");
}
