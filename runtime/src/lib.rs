//! h2ovl-runtime: the H2OVL-Mississippi inference pipeline on CPU.
//!
//! [`preprocess`] (image -> 448 tiles) -> [`vision`] (InternViT + pixel shuffle + projector)
//! -> [`llm`] (prompt, embedding injection and generation through llama.cpp).
//! [`pdf`] turns PDF pages into images in front of that.
pub mod bench;
pub mod eval;
pub mod interrupt;
pub mod json;
pub mod llm;
pub mod npy;
pub mod pdf;
pub mod preprocess;
pub mod serve;
pub mod vision;
