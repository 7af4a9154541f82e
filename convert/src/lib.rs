//! h2ovl-convert: everything between a HuggingFace H2OVL checkpoint folder and the two GGUF files.
//!
//! Stages, each a module: [`config`] (config.json) → [`safetensors`] (mmap, validated headers,
//! streaming f32 reads) and [`vocab`] (SentencePiece protobuf / tokenizer.json → GGUF vocab) →
//! [`llm`] and [`vision`] (name maps, shape checks, metadata) with [`preset`] (llama-quantize type
//! choice) and [`job`] (rope permute / qkv split) → [`gguf`] (writer and reader) via [`pipeline`]
//! (`convert()`, progress, atomic [`atomic`] outputs).
//!
//! - [`quant`]: ggml's reference quantizers, byte-identical (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K, F16).
pub mod atomic;
pub mod config;
pub mod gguf;
pub mod interrupt;
pub mod job;
pub mod llm;
pub mod pipeline;
pub mod preset;
pub mod quant;
pub mod safetensors;
pub mod vision;
pub mod vocab;

pub use pipeline::{convert, ConvertOptions, ConvertOutput};
pub use preset::{LlmQuant, VisionQuant};
