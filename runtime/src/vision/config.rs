//! Vision-tower and preprocessing settings, read from the vision GGUF's metadata (the keys the
//! converter writes: llama.cpp's `clip.vision.*` plus our `h2ovl.*`).
use anyhow::{bail, Context, Result};
use h2ovl_format::gguf::GgufFile;

/// Pixel-shuffle token order (`ps_version` in the HF config; H2OVL uses v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsVersion {
    /// Tokens column-major (j·16 + i): the reference skips the final transpose.
    V1,
    /// Tokens row-major (i·16 + j).
    V2,
}

/// Everything the encoder and the image preprocessing need to know about a vision GGUF.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    /// Tile side in pixels (448).
    pub image_size: usize,
    /// Patch side in pixels (14).
    pub patch_size: usize,
    /// ViT width D (1024).
    pub hidden: usize,
    /// ViT MLP width (4096).
    pub ffn: usize,
    /// Blocks in the file (24).
    pub n_layers: usize,
    pub n_heads: usize,
    /// ViT LayerNorm epsilon (1e-6).
    pub ln_eps: f32,
    /// Projector LayerNorm epsilon (PyTorch default 1e-5).
    pub proj_ln_eps: f32,
    /// LLM hidden size = projector output width.
    pub projection_dim: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// 0.5: 2×2 patches merged per image token.
    pub downsample_ratio: f32,
    pub ps_version: PsVersion,
    /// Hidden state fed to the projector: −1 = last block (HF `hidden_states[select_layer]`).
    pub select_layer: i32,
    pub use_msac: bool,
    pub use_thumbnail: bool,
    pub min_dynamic_patch: u32,
    pub max_dynamic_patch: u32,
}

impl VisionConfig {
    /// Patches per side (32).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// ViT tokens per tile including CLS (1025).
    pub fn n_tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
    /// Image tokens per tile after pixel shuffle (256).
    pub fn tokens_per_tile(&self) -> usize {
        let g = self.grid() / self.shuffle_factor();
        g * g
    }
    /// Patches merged per side by the pixel shuffle (2 for ratio 0.5).
    pub fn shuffle_factor(&self) -> usize {
        (1.0 / self.downsample_ratio).round() as usize
    }
    /// Number of blocks actually run for `select_layer` (HF: entry 0 of hidden_states = embeddings).
    pub fn layers_to_run(&self) -> Result<usize> {
        let l = self.n_layers as i64;
        let k = self.select_layer as i64;
        let n = if k < 0 { l + k + 1 } else { k };
        if !(0..=l).contains(&n) {
            bail!("select_layer {} is out of range for {} layers", self.select_layer, self.n_layers);
        }
        Ok(n as usize)
    }

    /// Checks the invariants the encoder relies on (one clear error, no panic later).
    pub fn validate(&self) -> Result<()> {
        if self.patch_size == 0 || self.image_size % self.patch_size != 0 {
            bail!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size);
        }
        if self.n_heads == 0 || self.hidden % self.n_heads != 0 {
            bail!("hidden size {} is not divisible by {} heads", self.hidden, self.n_heads);
        }
        let f = self.shuffle_factor();
        if f == 0 || (1.0 / f as f32 - self.downsample_ratio).abs() > 1e-6 || self.grid() % f != 0 {
            bail!("downsample_ratio {} does not divide the {}-patch grid", self.downsample_ratio, self.grid());
        }
        self.layers_to_run()?;
        Ok(())
    }

    /// Reads the keys from a vision GGUF (errors name the missing key).
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let u = |k: &str| -> Result<usize> { Ok(g.get_u32(k).with_context(|| format!("vision GGUF key {k}"))? as usize) };
        let f = |k: &str| g.get_f32(k).with_context(|| format!("vision GGUF key {k}"));
        let arr3 = |k: &str| -> Result<[f32; 3]> {
            let v = g.get_f32_array(k).with_context(|| format!("vision GGUF key {k}"))?;
            <[f32; 3]>::try_from(v.as_slice()).map_err(|_| anyhow::anyhow!("vision GGUF key {k}: {} values, expected 3", v.len()))
        };
        let ps = g.get_str("h2ovl.ps_version").unwrap_or("v2");
        let cfg = VisionConfig {
            image_size: u("clip.vision.image_size")?,
            patch_size: u("clip.vision.patch_size")?,
            hidden: u("clip.vision.embedding_length")?,
            ffn: u("clip.vision.feed_forward_length")?,
            n_layers: u("clip.vision.block_count")?,
            n_heads: u("clip.vision.attention.head_count")?,
            ln_eps: g
                .get_f32("h2ovl.vision.layer_norm_epsilon")
                .or_else(|_| f("clip.vision.attention.layer_norm_epsilon"))?,
            proj_ln_eps: g.get_f32("h2ovl.projector.layer_norm_epsilon").unwrap_or(1e-5),
            projection_dim: u("clip.vision.projection_dim")?,
            image_mean: arr3("clip.vision.image_mean")?,
            image_std: arr3("clip.vision.image_std")?,
            downsample_ratio: g
                .get_f32("h2ovl.downsample_ratio")
                .or_else(|_| g.get_u32("clip.vision.projector.scale_factor").map(|s| 1.0 / s as f32))
                .context("vision GGUF key h2ovl.downsample_ratio")?,
            ps_version: match ps {
                "v1" => PsVersion::V1,
                "v2" => PsVersion::V2,
                other => bail!("vision GGUF key h2ovl.ps_version: unknown value {other:?}"),
            },
            select_layer: g.get_i32("h2ovl.select_layer").unwrap_or(-1),
            use_msac: g.get_bool("h2ovl.use_msac").unwrap_or(false),
            use_thumbnail: g.get_bool("h2ovl.use_thumbnail").unwrap_or(true),
            min_dynamic_patch: g.get_u32("h2ovl.min_dynamic_patch").unwrap_or(1),
            max_dynamic_patch: g.get_u32("h2ovl.max_dynamic_patch").unwrap_or(6),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
