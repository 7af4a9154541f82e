//! Images as the chat API sees them: inputs, their content keys, and the encoder seam.
//!
//! [`ImageEncoder`] separates the cheap step (decode + tile, which fixes the number of prompt
//! positions) from the expensive one (ViT + projector), so a prompt that cannot fit the context
//! is refused before any compute. The real implementation wraps `preprocess` + `vision`; tests
//! can plug in precomputed embeddings.
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// An image given to [`super::Pipeline::chat`].
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// A file (PNG, JPEG, WebP…), decoded by the preprocessing stage.
    Path(PathBuf),
    /// Already decoded 8-bit RGB.
    Rgb(image::RgbImage),
}

impl From<PathBuf> for ImageInput {
    fn from(p: PathBuf) -> Self {
        ImageInput::Path(p)
    }
}

impl From<&Path> for ImageInput {
    fn from(p: &Path) -> Self {
        ImageInput::Path(p.to_path_buf())
    }
}

impl From<image::RgbImage> for ImageInput {
    fn from(i: image::RgbImage) -> Self {
        ImageInput::Rgb(i)
    }
}

impl ImageInput {
    /// Decoded pixels, row-major RGB8 (`w·h·3` bytes), without depending on the image crate.
    pub fn from_rgb8(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        let n = pixels.len();
        image::RgbImage::from_raw(width, height, pixels)
            .map(ImageInput::Rgb)
            .with_context(|| format!("{n} bytes are not a {width}x{height} RGB image"))
    }

    /// A short name for messages.
    pub fn label(&self) -> String {
        match self {
            ImageInput::Path(p) => p.display().to_string(),
            ImageInput::Rgb(i) => format!("<{}x{} RGB image>", i.width(), i.height()),
        }
    }

    /// Key of the image content plus the tiling settings that shape its embeddings: the same
    /// picture attached twice in a conversation is encoded once.
    pub fn content_key(&self, tiling: &TilingOptions) -> Result<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            ImageInput::Path(p) => {
                let bytes = std::fs::read(p).with_context(|| format!("reading image {}", p.display()))?;
                0u8.hash(&mut h);
                bytes.hash(&mut h);
            }
            ImageInput::Rgb(i) => {
                1u8.hash(&mut h);
                (i.width(), i.height()).hash(&mut h);
                i.as_raw().hash(&mut h);
            }
        }
        tiling.hash(&mut h);
        Ok(h.finish())
    }
}

/// Tiling choices that change an image's embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TilingOptions {
    /// Upper bound on tiles of the dynamic grid (the reference uses 6).
    pub max_tiles: usize,
    /// MSAC allowed: only for a single image in the conversation, and only if the model uses it.
    pub msac: bool,
}

/// An image after decoding and tiling, ready for the vision tower.
#[derive(Clone, Debug, Default)]
pub struct PreparedImage {
    pub n_tiles: usize,
    /// Normalized pixels, [n_tiles, 3, 448, 448] (empty for encoders that do not need them).
    pub pixels: Vec<f32>,
    /// Human-readable tiling summary (grid, MSAC) for logs and `--output json`.
    pub description: String,
    /// Encoder-private index (e.g. which precomputed image this is).
    pub tag: usize,
}

/// Everything between an image and its LLM embedding rows.
pub trait ImageEncoder: Send {
    /// Decode and tile (cheap).
    fn prepare(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<PreparedImage>;
    /// Run ViT + pixel shuffle + projector: [n_tiles·256, n_embd] row-major.
    fn encode(&self, prepared: &PreparedImage, threads: usize) -> Result<Vec<f32>>;
    /// Tiles `prepare` would make with `tiling`, as cheaply as the encoder can tell (fitting a
    /// document tries several tilings before any is prepared). Default: prepare and count.
    fn tile_count(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<usize> {
        Ok(self.prepare(image, tiling)?.n_tiles)
    }
    /// Width of the output rows (must equal the LLM hidden size).
    fn n_embd(&self) -> usize;
    /// Whether this model uses MSAC for single images (2b: yes, 800m: no).
    fn uses_msac(&self) -> bool;
}

/// An encoder serving precomputed embeddings by file name (parity tests, debugging: feed the
/// reference `image_embeds.npy` to isolate the LLM side).
pub struct PrecomputedEncoder {
    /// (file path, n_tiles, rows [n_tiles·256·n_embd])
    pub images: Vec<(PathBuf, usize, Vec<f32>)>,
    pub n_embd: usize,
}

impl ImageEncoder for PrecomputedEncoder {
    fn prepare(&self, image: &ImageInput, _: &TilingOptions) -> Result<PreparedImage> {
        let ImageInput::Path(p) = image else {
            anyhow::bail!("precomputed embeddings are looked up by path");
        };
        let tag = self
            .images
            .iter()
            .position(|(q, _, _)| q == p)
            .with_context(|| format!("no precomputed embeddings for {}", p.display()))?;
        let n_tiles = self.images[tag].1;
        Ok(PreparedImage { n_tiles, pixels: Vec::new(), description: format!("precomputed, {n_tiles} tiles"), tag })
    }

    fn encode(&self, prepared: &PreparedImage, _threads: usize) -> Result<Vec<f32>> {
        let (_, _, rows) = self.images.get(prepared.tag).context("unknown precomputed image")?;
        Ok(rows.clone())
    }

    fn n_embd(&self) -> usize {
        self.n_embd
    }

    fn uses_msac(&self) -> bool {
        false
    }
}
