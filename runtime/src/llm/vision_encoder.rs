//! The real [`ImageEncoder`]: `preprocess` (decode, tiling, MSAC, normalization) + `vision`
//! (InternViT + pixel shuffle + projector) loaded from the mmproj GGUF.
use std::path::Path;

use anyhow::{bail, Result};

use super::images::ImageEncoder;
use super::session::PipelineOptions;

/// Load the vision GGUF as an encoder.
pub fn load(mmproj: &Path, _opts: &PipelineOptions) -> Result<Box<dyn ImageEncoder>> {
    bail!("vision encoder for {} is not wired in yet (h2ovl_runtime::vision::VisionModel pending)", mmproj.display())
}
