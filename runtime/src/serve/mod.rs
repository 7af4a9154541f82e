//! `h2ovl serve`: an OpenAI-compatible HTTP server (axum on tokio) over one [`Pipeline`].
//!
//! - `GET /health` (with `jobs`: queued + running), `GET /v1/models`, `POST /v1/chat/completions` (OpenAI message format,
//!   `stream: true` → SSE chunks ending with `data: [DONE]`; the last choice chunk and the
//!   non-streaming response carry llama-server-style `timings`).
//! - [`props`]: `GET /props`, what the model and this build are (feeds the web page).
//! - [`webui`]: the built-in chat page at `/` (off with `--no-webui`).
//! - [`api`]: request → chat job (messages, sampling parameters, `response_format`), OpenAI errors.
//! - [`images`]: `data:` / `file://` image URLs and their safety rules; PDFs (`file` parts or
//!   `data:application/pdf` URLs) become one image per page.
//! - [`batch`]: the offline counterpart, `h2ovl batch` over a folder of images → JSONL.
//! - [`worker`]: the model thread and its bounded queue (full → 503), stop strings, cancellation.
//!
//! Every bad input is a 4xx with an OpenAI error body; a client that disconnects stops its
//! generation at the next token.
pub mod api;
pub mod batch;
pub mod images;
pub mod props;
pub mod webui;
pub mod worker;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt as _;

use crate::llm::Pipeline;
use crate::pdf::{PdfLimits, PdfOptions, TilingHint};
use api::{ApiError, ChatRequest};
use worker::{Event, Queued, Rejected, Worker};

/// Server settings (the CLI flags).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Name reported by `/v1/models` and in responses.
    pub model_id: String,
    /// Required `Authorization: Bearer` key for `/v1/*` (none = open).
    pub api_key: Option<String>,
    /// Root for `file://` image URLs (none = refused).
    pub allowed_image_dir: Option<PathBuf>,
    /// Requests waiting for the model beyond the running one; more → 503.
    pub queue: usize,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Serve the chat page at `/` (`--no-webui` turns it off).
    pub webui: bool,
    /// Build line for `/props` (the binary's `--version`; the library's version by default).
    pub version: String,
    /// Page, pixel and time limits for PDFs in requests (all pages are used, up to the limit).
    pub pdf: PdfLimits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model_id: "h2ovl".into(),
            api_key: None,
            allowed_image_dir: None,
            queue: 16,
            body_limit: 20 << 20,
            webui: true,
            version: env!("CARGO_PKG_VERSION").into(),
            pdf: PdfLimits::default(),
        }
    }
}

struct AppState {
    opts: ServeOptions,
    worker: Worker,
    /// The `/props` body, computed once before the pipeline moves to the model thread.
    props: Value,
    /// PDF render options: the limits plus the model's tiling (read before the pipeline moves
    /// to the model thread).
    pdf: PdfOptions,
}

type Shared = Arc<AppState>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

fn err(status: u16, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> ApiError {
    ApiError { status, kind, code, param: None, message: message.into() }
}

/// The router over a model thread running `pipeline`.
pub fn router(pipeline: Pipeline, opts: ServeOptions) -> Router {
    let props = props::props(&pipeline, &opts);
    let pdf = PdfOptions {
        tiling: TilingHint { max_tiles: pipeline.options().max_tiles.min(u32::MAX as usize) as u32, msac: pipeline.uses_msac() },
        limits: opts.pdf.clone(),
        ..Default::default()
    };
    let worker = Worker::start(pipeline, opts.queue);
    let limit = opts.body_limit;
    let with_page = opts.webui;
    let state = Arc::new(AppState { opts, worker, pdf, props });
    let mut r = Router::new();
    if with_page {
        r = webui::routes(r);
    }
    r.route("/health", get(health))
        .route("/props", get(get_props))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .fallback(|| async { err(404, "invalid_request_error", Some("not_found"), "unknown endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serve on an already-bound listener until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, pipeline: Pipeline, opts: ServeOptions) -> Result<()> {
    let app = router(pipeline, opts);
    axum::serve(listener, app).await.context("HTTP server failed")
}

/// Bind `addr` and serve (blocking; builds its own tokio runtime). Ctrl-C stops it.
pub fn run_blocking(addr: SocketAddr, pipeline: Pipeline, opts: ServeOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build().context("starting tokio")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("h2ovl serve: listening on http://{}", listener.local_addr()?);
        if opts.webui {
            eprintln!("h2ovl serve: chat page at http://{}/ (--no-webui turns it off)", listener.local_addr()?);
        }
        let app = router(pipeline, opts);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("HTTP server failed")
    })
}

/// Liveness, plus the jobs queued or running (`jobs`: 0 when idle), so a load test or a
/// balancer can see the queue drain.
async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "jobs": s.worker.in_flight()}))
}

fn check_key(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &s.opts.api_key else { return Ok(()) };
    let got = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if got == Some(key.as_str()) {
        Ok(())
    } else {
        Err(err(401, "invalid_request_error", Some("invalid_api_key"), "missing or wrong API key (Authorization: Bearer …)"))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `/props` needs the key like `/v1/*`: it tells which model and CPU this is. The page itself
/// (`/`) is public, so it can load and then ask for the key.
async fn get_props(State(s): State<Shared>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    check_key(&s, &headers)?;
    Ok(Json(s.props.clone()))
}

async fn models(State(s): State<Shared>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    check_key(&s, &headers)?;
    Ok(Json(json!({"object": "list", "data": [{"id": s.opts.model_id, "object": "model", "created": 0, "owned_by": "h2ovl"}]})))
}

async fn chat(State(s): State<Shared>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    check_key(&s, &headers)?;
    let body = body.map_err(|e| {
        let status = e.status().as_u16();
        err(status, "invalid_request_error", None, format!("cannot read the request body: {e}"))
    })?;
    let (req, ordered) = ChatRequest::parse(&body)?;
    let stream = req.stream;
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let model = req.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| s.opts.model_id.clone());
    // Image decoding is CPU work: off the async threads.
    let dir = s.opts.allowed_image_dir.clone();
    let pdf = s.pdf.clone();
    let job = tokio::task::spawn_blocking(move || req.into_job_with(&ordered, dir.as_deref(), &pdf))
        .await
        .map_err(|e| err(500, "server_error", None, format!("request task failed: {e}")))??;

    let (tx, mut rx) = unbounded_channel();
    s.worker.submit(Queued { job, events: tx }).map_err(|r| match r {
        Rejected::Full => err(503, "server_error", Some("queue_full"), "the server is busy (request queue full); retry later"),
        Rejected::Gone => err(500, "server_error", None, "the model thread has stopped"),
    })?;
    let id = format!("chatcmpl-{:016x}", rand_id());
    let created = now();

    if !stream {
        let mut text = String::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Delta(d) => text.push_str(&d),
                Event::Progress(_) => {}
                Event::Failed(m) => return Err(ApiError::bad_request(m)),
                Event::Done { finish_reason, prompt_tokens, completion_tokens, timings, reused_tokens, image_tiles, fit } => {
                    return Ok(Json(json!({
                        "id": id, "object": "chat.completion", "created": created, "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text.trim_end()},
                                     "finish_reason": finish_reason, "logprobs": null}],
                        "usage": usage(prompt_tokens, completion_tokens),
                        "timings": timings_json(&timings, reused_tokens, &image_tiles, fit.as_deref()),
                    }))
                    .into_response());
                }
            }
        }
        return Err(err(500, "server_error", None, "generation ended without a result"));
    }

    // Streaming: the first event decides between an SSE stream and a plain 400 (a request the
    // pipeline refuses before generating, e.g. context overflow, is still an HTTP error).
    let first = rx.recv().await;
    if let Some(Event::Failed(m)) = &first {
        return Err(ApiError::bad_request(m.clone()));
    }
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Value>, timings: Option<Value>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
        if let Some(u) = usage {
            c["choices"] = json!([]);
            c["usage"] = u;
        }
        if let Some(t) = timings {
            c["timings"] = t;
        }
        SseEvent::default().data(c.to_string())
    };
    // A relay task turns model events into SSE events; when the client goes away the SSE
    // stream is dropped, the relay's send fails, it drops `rx`, and the worker cancels.
    let (sse_tx, sse_rx) = unbounded_channel::<SseEvent>();
    tokio::spawn(async move {
        let mut next = first;
        let _ = sse_tx.send(chunk(json!({"role": "assistant", "content": ""}), None, None, None));
        while let Some(ev) = next {
            let out: Vec<SseEvent> = match ev {
                Event::Delta(d) => vec![chunk(json!({"content": d}), None, None, None)],
                // An SSE comment: OpenAI clients skip it, a page or curl sees the progress.
                Event::Progress(p) => vec![SseEvent::default().comment(p)],
                Event::Failed(m) => vec![SseEvent::default().data(ApiError::bad_request(m).body().to_string())],
                Event::Done { finish_reason, prompt_tokens, completion_tokens, timings, reused_tokens, image_tiles, fit } => {
                    let t = timings_json(&timings, reused_tokens, &image_tiles, fit.as_deref());
                    let mut v = vec![chunk(json!({}), Some(finish_reason), None, Some(t))];
                    if include_usage {
                        v.push(chunk(json!({}), None, Some(usage(prompt_tokens, completion_tokens)), None));
                    }
                    v
                }
            };
            for e in out {
                if sse_tx.send(e).is_err() {
                    return;
                }
            }
            next = tokio::select! {
                ev = rx.recv() => ev,
                _ = sse_tx.closed() => return,
            };
        }
        let _ = sse_tx.send(SseEvent::default().data("[DONE]"));
    });
    let all = UnboundedReceiverStream::new(sse_rx);
    Ok(Sse::new(all.map(Ok::<_, Infallible>)).into_response())
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// llama-server's `timings` keys (prompt = the prefill of this turn's new positions, predicted =
/// decode), plus `cache_n` (positions reused from the KV cache: why follow-ups are fast) and the
/// vision side (`image_encode_ms` for the images not cached yet, tiles per image), and `fit` when
/// the images were fitted to the context with a lower tile budget (what was chosen, in words).
fn timings_json(t: &crate::llm::Timings, reused: usize, tiles: &[usize], fit: Option<&str>) -> Value {
    let per_token = |s: f64, n: usize| if n > 0 { s * 1e3 / n as f64 } else { 0.0 };
    let mut v = json!({
        "cache_n": reused,
        "prompt_n": t.prefill_tokens,
        "prompt_ms": t.prefill_s * 1e3,
        "prompt_per_token_ms": per_token(t.prefill_s, t.prefill_tokens),
        "prompt_per_second": t.prefill_tok_s(),
        "predicted_n": t.decode_tokens,
        "predicted_ms": t.decode_s * 1e3,
        "predicted_per_token_ms": per_token(t.decode_s, t.decode_tokens),
        "predicted_per_second": t.decode_tok_s(),
        "image_encode_ms": t.image_encode_s * 1e3,
        "images_encoded": t.images_encoded,
        "image_tiles": tiles,
    });
    if let Some(f) = fit {
        v["fit"] = json!(f);
    }
    v
}

/// A per-process unique id (time + counter), enough for response ids.
fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
