//! The real [`ImageEncoder`]: `preprocess` (decode, tiling, MSAC, normalization) + `vision`
//! (InternViT + pixel shuffle + projector) loaded from the mmproj GGUF.
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::images::{ImageEncoder, ImageInput, PreparedImage, TilingOptions};
use super::session::PipelineOptions;
use crate::preprocess::{self, PreprocessConfig};
use crate::vision::{EncodeOptions, VisionMath, VisionModel};

/// Vision GGUF + the preprocessing settings it carries + the arithmetic to encode with.
pub struct VisionEncoder {
    model: VisionModel,
    pre: PreprocessConfig,
    math: VisionMath,
}

/// Load the vision GGUF as an encoder.
pub fn load(mmproj: &Path, opts: &PipelineOptions) -> Result<Box<dyn ImageEncoder>> {
    let mut enc = VisionEncoder::load(mmproj)?;
    enc.pre.max_pixels = opts.max_pixels;
    enc.set_math(opts.vision_math)?;
    Ok(Box::new(enc))
}

impl VisionEncoder {
    pub fn load(mmproj: &Path) -> Result<Self> {
        let model = VisionModel::load(mmproj)?;
        let pre = preprocess_config(model.config());
        Ok(VisionEncoder { model, pre, math: VisionMath::Auto })
    }

    /// Chooses f32 or int8 linear layers; checked now (an int8 request on a non-Q8_0 file or a bad
    /// `H2OVL_VISION_MATH` fails at load, not at the first image).
    pub fn set_math(&mut self, math: VisionMath) -> Result<()> {
        self.model.resolve_math(math)?;
        self.math = math;
        Ok(())
    }
}

/// The preprocessing the vision GGUF asks for (tile size, tile range, thumbnail, MSAC, mean/std).
pub fn preprocess_config(c: &crate::vision::VisionConfig) -> PreprocessConfig {
    PreprocessConfig {
        image_size: c.image_size as u32,
        min_tiles: c.min_dynamic_patch,
        max_tiles: c.max_dynamic_patch,
        use_thumbnail: c.use_thumbnail,
        use_msac: c.use_msac,
        mean: c.image_mean,
        std: c.image_std,
        ..Default::default()
    }
}

impl ImageEncoder for VisionEncoder {
    fn prepare(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<PreparedImage> {
        let mut cfg = self.pre.clone();
        // `--max-tiles` replaces the model's max_dynamic_patch (the reference chat() passes 6).
        cfg.max_tiles = tiling.max_tiles as u32;
        if cfg.max_tiles < cfg.min_tiles {
            bail!("--max-tiles {} is below the model's minimum of {} tiles", cfg.max_tiles, cfg.min_tiles);
        }
        let rgb = match image {
            ImageInput::Path(p) => preprocess::load_image(p, cfg.max_pixels)?,
            ImageInput::Rgb(i) => {
                preprocess::decode::check_size(i.width(), i.height(), cfg.max_pixels)?;
                i.clone()
            }
        };
        let t = preprocess::tile_image(&rgb, &cfg, tiling.msac);
        if t.tiles.is_empty() {
            bail!("image {} is empty", image.label());
        }
        let pixels = preprocess::normalize_tiles(&t.tiles, &cfg);
        let description = match t.pass1_grid {
            Some(p1) => format!(
                "{}x{}: MSAC grids {}x{} + {}x{}, {} tiles",
                rgb.width(),
                rgb.height(),
                t.grid.0,
                t.grid.1,
                p1.0,
                p1.1,
                t.tiles.len()
            ),
            None => format!("{}x{}: grid {}x{}, {} tiles", rgb.width(), rgb.height(), t.grid.0, t.grid.1, t.tiles.len()),
        };
        Ok(PreparedImage { n_tiles: t.tiles.len(), pixels, description, tag: 0 })
    }

    fn tile_count(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<usize> {
        let cfg = PreprocessConfig { max_tiles: tiling.max_tiles as u32, ..self.pre.clone() };
        let (w, h) = match image {
            ImageInput::Path(p) => {
                let bytes = std::fs::read(p).with_context(|| format!("cannot read image {}", p.display()))?;
                preprocess::decode::image_dims(&bytes, cfg.max_pixels).with_context(|| format!("cannot load image {}", p.display()))?
            }
            ImageInput::Rgb(i) => i.dimensions(),
        };
        Ok(preprocess::tile_count(w, h, &cfg, tiling.msac))
    }

    fn encode(&self, prepared: &PreparedImage, threads: usize) -> Result<Vec<f32>> {
        self.model
            .encode_opts(&prepared.pixels, prepared.n_tiles, &EncodeOptions { threads, math: self.math })
            .with_context(|| format!("encoding image ({})", prepared.description))
    }

    fn n_embd(&self) -> usize {
        self.model.config().projection_dim
    }

    fn uses_msac(&self) -> bool {
        self.model.config().use_msac
    }
}
