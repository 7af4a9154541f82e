//! h2ovl-runtime: the H2OVL-Mississippi inference pipeline on CPU.
//!
//! [`preprocess`] (image -> 448 tiles) -> [`vision`] (InternViT + pixel shuffle + projector)
//! -> [`llm`] (prompt, embedding injection and generation through llama.cpp).
//! [`pdf`] turns PDF pages into images in front of that; [`json`] constrains answers to JSON;
//! [`serve`] is the OpenAI-compatible server and `batch`. The measuring tools (`h2ovl bench`,
//! `h2ovl eval`) are the `h2ovl-bench` crate over this one, and the GGUF format is
//! `h2ovl-format`.
pub mod interrupt;
pub mod json;
pub mod llm;
pub mod npy;
pub mod pdf;
pub mod preprocess;
pub mod serve;
pub mod vision;
