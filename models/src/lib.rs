//! h2ovl-models: the shapes of the H2OVL family and synthetic checkpoints for tests and benchmarks.
//!
//! - [`family`]: the family as data — presets `h2ovl_800m()`, `h2ovl_2b()`, `small()`, `tiny()`,
//!   `tiny_2b()` ([`ModelSpec`]) and their parameter counts.
//! - [`inventory`]: every tensor name/shape of `model.safetensors` with its random init.
//! - [`config`]: the matching HF `config.json`.
//! - [`generate`]: writes a full HF checkpoint folder (streamed bf16 safetensors, real tokenizer
//!   and metadata files) atomically; [`rng`] makes it reproducible from a seed.
//! - [`safetensors`]: header writer/reader used by the generator and its tests.

pub mod config;
pub mod family;
mod fastmath;
pub mod generate;
pub mod inventory;
pub mod rng;
pub mod safetensors;

pub use family::{h2ovl_2b, h2ovl_800m, small, tiny, tiny_2b, LlmArch, LlmDims, ModelSpec, Preset, VisionDims, VOCAB_SIZE};
pub use generate::{generate, GenerateOptions, Generated};
pub use inventory::{tensors, Init, TensorSpec};
