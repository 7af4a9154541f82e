//! h2ovl-convert: everything between a HuggingFace H2OVL checkpoint folder and the two GGUF files.
//!
//! - [`quant`]: ggml's reference quantizers, byte-identical (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K, F16).
pub mod quant;
