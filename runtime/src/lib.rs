//! h2ovl-runtime: the H2OVL-Mississippi inference pipeline on CPU.
//!
//! preprocess (image -> tiles) -> vision (InternViT + pixel shuffle + projector) -> llm (llama.cpp).
