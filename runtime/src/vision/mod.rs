//! InternViT-300M encoder, pixel shuffle and MLP projector, on rayon + SIMD kernels.
//!
//! Stages, one module each: [`config`] (GGUF keys) → [`weights`] (name/shape-checked views of the
//! memory-mapped tensors) → [`vit`] (patch embed, CLS, positions, pre-norm blocks; [`attention`])
//! → [`pixel_shuffle`] → [`projector`]. All arithmetic is in [`kernels`] (scalar twins + AVX2/AVX-512/NEON).
//!
//! Weights stay F32/F16/Q8_0 in the map and are dequantized inside the GEMM's packing step.
//! [`math`] selects the linear layers' arithmetic: f32, or int8 with per-token activation scales
//! (so a token's outliers only coarsen that token's own steps) for Q8_0 weights.
// `x % n == 0`: the workspace rust-version (1.85) predates `is_multiple_of`.
#![allow(clippy::manual_is_multiple_of)]

pub mod attention;
pub mod config;
pub mod kernels;
pub mod math;
pub mod pixel_shuffle;
pub mod projector;
pub mod vit;
pub mod weights;

pub use config::{PsVersion, VisionConfig};
pub use math::{Math, VisionMath};
pub use weights::{GgufSource, TensorSource, VisionWeights};

use anyhow::{bail, Context, Result};
use h2ovl_format::gguf::GgufFile;
use std::path::Path;

/// A loaded vision GGUF (memory map + parsed config), ready to encode tiles.
pub struct VisionModel {
    gguf: GgufFile,
    cfg: VisionConfig,
}

impl VisionModel {
    /// Opens the vision GGUF and checks every tensor's presence, type and shape (the first
    /// problem is reported with the tensor's name).
    pub fn load(mmproj: &Path) -> Result<Self> {
        let gguf = GgufFile::open(mmproj).with_context(|| format!("opening vision GGUF {}", mmproj.display()))?;
        let cfg = VisionConfig::from_gguf(&gguf).with_context(|| format!("reading {}", mmproj.display()))?;
        VisionWeights::load(&cfg, &GgufSource(&gguf)).with_context(|| format!("checking {}", mmproj.display()))?;
        Ok(VisionModel { gguf, cfg })
    }

    /// Sizes and preprocessing keys (use_msac, tile limits, mean/std, …).
    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    fn weights(&self) -> Result<VisionWeights<'_>> {
        VisionWeights::load(&self.cfg, &GgufSource(&self.gguf))
    }

    /// `pixels`: `[n_tiles, 3, S, S]` normalized f32 (from `preprocess::normalize_tiles`).
    /// Returns the image embeddings `[n_tiles·256, llm_hidden]`, tiles in order. The arithmetic
    /// is [`VisionMath::Auto`] (which honours `H2OVL_VISION_MATH`); see [`VisionModel::encode_opts`].
    pub fn encode(&self, pixels: &[f32], n_tiles: usize, threads: usize) -> Result<Vec<f32>> {
        self.encode_opts(pixels, n_tiles, &EncodeOptions { threads, math: VisionMath::Auto })
    }

    /// [`VisionModel::encode`] with explicit options.
    pub fn encode_opts(&self, pixels: &[f32], n_tiles: usize, o: &EncodeOptions) -> Result<Vec<f32>> {
        let w = self.weights()?;
        let mx = Math::resolve(o.math, &w)?;
        encode_math(&w, &self.cfg, mx, pixels, n_tiles, o.threads)
    }

    /// [`VisionModel::encode`] with explicit kernels (the bench runs every ISA in one process);
    /// an int8 `mx` on weights that are not Q8_0 falls back to f32 layer by layer, as [`Math::linear`].
    pub fn encode_with_math(&self, pixels: &[f32], n_tiles: usize, mx: Math, threads: usize) -> Result<Vec<f32>> {
        encode_math(&self.weights()?, &self.cfg, mx, pixels, n_tiles, threads)
    }

    /// What a choice resolves to for this file on this CPU (f32 or int8 and the ISA).
    pub fn resolve_math(&self, choice: VisionMath) -> Result<Math> {
        Math::resolve(choice, &self.weights()?)
    }

    /// Last (select_layer) ViT hidden states `[n_tokens, D]` of one tile, CLS first (for tests).
    pub fn vit_hidden(&self, pixels_one_tile: &[f32]) -> Result<Vec<f32>> {
        vit_hidden_with(&self.weights()?, &self.cfg, pixels_one_tile, 0)
    }
}

/// Options of [`VisionModel::encode_opts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EncodeOptions {
    /// Encoder threads (0 = rayon's default).
    pub threads: usize,
    pub math: VisionMath,
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        b = b.num_threads(threads);
    }
    b.build().context("creating the vision thread pool")
}

fn tile_len(cfg: &VisionConfig) -> usize {
    3 * cfg.image_size * cfg.image_size
}

/// [`VisionModel::encode`] on any weight source (`threads` = 0: rayon's default), f32 arithmetic.
pub fn encode_with(w: &VisionWeights, cfg: &VisionConfig, pixels: &[f32], n_tiles: usize, threads: usize) -> Result<Vec<f32>> {
    encode_math(w, cfg, Math { isa: kernels::isa(), q: None }, pixels, n_tiles, threads)
}

/// [`encode_with`] with the given arithmetic.
pub fn encode_math(w: &VisionWeights, cfg: &VisionConfig, mx: Math, pixels: &[f32], n_tiles: usize, threads: usize) -> Result<Vec<f32>> {
    let tl = tile_len(cfg);
    if pixels.len() != n_tiles * tl {
        bail!("encode: {} pixel values for {n_tiles} tiles of 3×{s}×{s} (expected {})", pixels.len(), n_tiles * tl, s = cfg.image_size);
    }
    let n_layers = cfg.layers_to_run()?;
    let f = cfg.shuffle_factor();
    pool(threads)?.install(|| {
        let mut feats = Vec::with_capacity(n_tiles * cfg.tokens_per_tile() * f * f * cfg.hidden);
        for tile in pixels.chunks_exact(tl) {
            let x = vit::forward(mx, cfg, w, tile, n_layers);
            feats.extend(pixel_shuffle::pixel_shuffle(&x, cfg.grid(), cfg.hidden, f, cfg.ps_version));
        }
        Ok(projector::project(mx, cfg, w, &feats))
    })
}

/// [`VisionModel::vit_hidden`] on any weight source.
pub fn vit_hidden_with(w: &VisionWeights, cfg: &VisionConfig, pixels_one_tile: &[f32], threads: usize) -> Result<Vec<f32>> {
    if pixels_one_tile.len() != tile_len(cfg) {
        bail!("vit_hidden: {} pixel values, expected {}", pixels_one_tile.len(), tile_len(cfg));
    }
    let n_layers = cfg.layers_to_run()?;
    pool(threads)?.install(|| Ok(vit::forward(Math { isa: kernels::isa(), q: None }, cfg, w, pixels_one_tile, n_layers)))
}
