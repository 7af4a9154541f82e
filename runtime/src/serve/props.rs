//! `GET /props`: what this server runs, in llama-server's spirit: model names, context size,
//! modalities, the generation defaults a request gets when it leaves a field out, and the build /
//! CPU line of `h2ovl --version`. The web page fills its settings panel and header from it.
//!
//! Computed once in [`super::router`], before the pipeline moves to the model thread (nothing in
//! it changes while the server runs).
use serde_json::{json, Value};

use super::api::{DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT};
use super::ServeOptions;
use crate::llm::{GenerationConfig, Pipeline};

/// The `/props` body.
pub fn props(pipe: &Pipeline, opts: &ServeOptions) -> Value {
    let model = pipe.model();
    let po = pipe.options();
    let train = model.n_ctx_train();
    let d = GenerationConfig::default();
    json!({
        "model": opts.model_id,
        // The GGUF's own name (general.name), e.g. "h2ovl-mississippi-2b".
        "model_name": model.meta_str("general.name"),
        "n_ctx": po.n_ctx.unwrap_or(train),
        "n_ctx_train": train,
        // PDF pages become images, so PDFs are accepted wherever images are.
        "modalities": {"vision": pipe.has_vision(), "pdf": pipe.has_vision()},
        "default_generation_settings": {
            "temperature": d.temperature,
            "top_p": d.top_p,
            "top_k": d.top_k,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "max_tokens_limit": MAX_TOKENS_LIMIT,
            "seed": d.seed,
            "repeat_penalty": d.repeat_penalty,
        },
        "limits": {
            "max_tiles": po.max_tiles,
            "msac": po.msac,
            "body_limit_bytes": opts.body_limit,
            "max_image_pixels": super::images::MAX_PIXELS,
            "queue": opts.queue,
            "pdf_max_pages": opts.pdf.max_pages,
            "pdf_max_page_pixels": opts.pdf.max_page_pixels,
        },
        "build_info": {
            "version": opts.version,
            // "llm: ggml-cpu icelake; vision: f32 avx512, int8 avx512vnni"
            "cpu": crate::llm::cpu_backend::describe(),
            "threads": po.n_threads(),
            "vision_math": format!("{:?}", po.vision_math).to_ascii_lowercase(),
        },
        "webui": opts.webui,
    })
}
