//! The language model through llama.cpp: prompt, image-embedding injection, sampling, chat.
//!
//! - [`ffi`]: the only `unsafe` code: RAII wrappers over llama-cpp-sys-2 (model, context, batch).
//! - [`prompt`]: h2ogpt2 template, `<image>` placeholders, token ids + slot layout.
//! - [`decode`]: prefill (token batches + embedding batches, chunked) and single-token steps.
//! - [`sampling`]: greedy / temperature / top-k / top-p / repeat penalty, seeded.
//! - [`detok`]: streaming UTF-8 assembly of generated pieces.
//! - [`images`]: image inputs, content keys, the [`ImageEncoder`] seam.
//! - [`vision_encoder`]: the encoder over `preprocess` + `vision`.
//! - [`session`]: [`Pipeline`]: load once, `chat` / `chat_stream` with history and KV reuse.
pub mod decode;
pub mod detok;
pub mod ffi;
pub mod images;
pub mod prompt;
pub mod sampling;
pub mod session;
pub mod vision_encoder;

pub use ffi::{KvType, Token};
pub use images::{ImageEncoder, ImageInput, PrecomputedEncoder, PreparedImage, TilingOptions};
pub use sampling::{GenerationConfig, Probe};
pub use session::{ChatOutput, History, Pipeline, PipelineOptions, StopReason, Timings, Turn};
