//! h2ovl-format: the file format both sides of the project stand on.
//!
//! The converter writes GGUF files and the runtime reads them; what they share is the format,
//! not the conversion. So, as candle keeps `gguf_file`/`k_quants` in its core crate and llama.cpp
//! keeps `gguf` in ggml, this crate holds:
//! - [`gguf`]: the GGUF v3 container, a streaming writer and a memory-mapped reader.
//! - [`quant`]: the ggml tensor types ([`quant::GgmlType`]) and ggml's reference quantizers and
//!   dequantizers, byte-identical to `ggml-quants.c` (proved in `quant-tests`).
pub mod gguf;
pub mod quant;
