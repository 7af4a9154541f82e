//! The language model through llama.cpp: prompt, image-embedding injection, sampling, chat.
//!
//! - [`ffi`]: RAII wrappers over llama-cpp-sys-2 (model, context, batch).
//! - [`cpu_backend`]: picks and loads llama.cpp's CPU backend variant for this CPU (dlopen; the only
//!   other `unsafe` code of the LLM side).
//! - [`prompt`]: h2ogpt2 template, `<image>` placeholders, token ids + slot layout.
//! - [`decode`]: prefill (token batches + embedding batches, chunked) and single-token steps.
//! - [`sampling`]: greedy / temperature / top-k / top-p / repeat penalty, seeded.
//! - [`grammar`]: a JSON constraint (from [`crate::json`]) applied to the logits: llama.cpp's
//!   grammar as a mask, the model's vocabulary for closing the answer within the budget.
//! - [`detok`]: streaming UTF-8 assembly of generated pieces.
//! - [`fit`]: fitting a request's images (a many-page document) to the context.
//! - [`pages`]: reading a document page by page, then combining the answers.
//! - [`images`]: image inputs, content keys, the [`ImageEncoder`] seam.
//! - [`vision_encoder`]: the encoder over `preprocess` + `vision`.
//! - [`session`]: [`Pipeline`]: load once, `chat` / `chat_stream` with history and KV reuse.
//!
//! ```no_run
//! use h2ovl_runtime::llm::{GenerationConfig, History, ImageInput, Pipeline, PipelineOptions};
//! # fn main() -> anyhow::Result<()> {
//! let mut pipe = Pipeline::load(
//!     "gguf/h2ovl-mississippi-2b-Q4_K_M.gguf".as_ref(),
//!     Some("gguf/mmproj-h2ovl-mississippi-2b-Q8_0.gguf".as_ref()),
//!     PipelineOptions::default(),
//! )?;
//! let cfg = GenerationConfig::default(); // greedy, up to 1024 tokens, stops at <|end|>
//! let img = [ImageInput::Path("receipt.jpg".into())];
//! let (answer, history) = pipe.chat(&img, "Extract the total and the date.", &cfg, &History::new())?;
//! println!("{answer}");
//! // Second turn: only the new tokens are decoded; the image is not encoded again.
//! let out = pipe.chat_stream(&[], "And the shop name?", &cfg, &history, &mut |piece| print!("{piece}"))?;
//! eprintln!("{:.1} tok/s", out.timings.decode_tok_s());
//! # Ok(()) }
//! ```
pub mod cpu_backend;
pub mod decode;
pub mod detok;
pub mod ffi;
pub mod fit;
pub mod grammar;
pub mod images;
pub mod pages;
pub mod prompt;
pub mod sampling;
pub mod session;
pub mod vision_encoder;

pub use ffi::{KvType, Token};
pub use fit::{FitChoice, PagesMode};
pub use pages::{PageAnswer, PageProgress, PagesOutput};
pub use grammar::{GrammarMask, ModelVocab};
pub use images::{ImageEncoder, ImageInput, PrecomputedEncoder, PreparedImage, TilingOptions};
pub use sampling::{GenerationConfig, Probe};
pub use session::{ChatOutput, History, Pipeline, PipelineOptions, StopReason, Timings, Turn};
