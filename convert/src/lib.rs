//! h2ovl-convert: everything between a HuggingFace H2OVL checkpoint folder and the two GGUF files.
//!
//! Stages, each a module: [`config`] (config.json) → [`safetensors`] (mmap, validated headers,
//! streaming f32 reads) and [`vocab`] (SentencePiece protobuf / tokenizer.json → GGUF vocab) →
//! [`llm`] and [`vision`] (name maps, shape checks, metadata) with [`preset`] (llama-quantize type
//! choice) and [`job`] (rope permute / qkv split) → the GGUF writer via [`pipeline`]
//! (`convert()`, progress, atomic [`atomic`] outputs).
//!
//! The file format itself (GGUF reader/writer, ggml types, the byte-exact quantizers) is
//! `h2ovl-format`, shared with the runtime: this crate is only the conversion.
pub mod atomic;
pub mod config;
pub mod job;
pub mod llm;
pub mod pipeline;
pub mod preset;
pub mod safetensors;
pub mod vision;
pub mod vocab;

pub use pipeline::{convert, convert_cancellable, CancelCheck, ConvertOptions, ConvertOutput};
pub use preset::{LlmQuant, VisionQuant};
