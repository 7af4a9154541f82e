//! Image preprocessing: decode, PIL-exact resize, dynamic tiling, MSAC, normalization.
//!
//! Reproduces the H2OVL reference (`image_process.py`: `Image.open(f).convert("RGB")`,
//! `dynamic_preprocess`, `load_image_msac`, torchvision `ToTensor` + `Normalize`) so that
//! tiles are bit-identical to the Python ones (spec §5). Stages, one module each:
//! [`decode`] → [`grid`] / [`msac`] (which grid) → [`resize`] (PIL bicubic) →
//! [`tiles`] (crops, thumbnail, MSAC order) → [`normalize`] (f32 CHW).

pub mod decode;
pub mod grid;
pub mod jpeg;
pub mod msac;
pub mod normalize;
pub mod resize;
mod resize_kernels;
pub mod tiles;

use std::cell::OnceCell;
use std::path::Path;

pub use decode::{decode_image, load_image, PIL_MAX_PIXELS};
pub use grid::Grid;
pub use resize::resize_bicubic;

/// ImageNet statistics used by InternViT/H2OVL (`IMAGENET_MEAN`, `IMAGENET_STD`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Preprocessing knobs. Defaults = the reference for both checkpoints except `use_msac`
/// (800m: false; 2b: true — take it from `config.json` via [`PreprocessConfig::from_hf_config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Tile side S (448).
    pub image_size: u32,
    /// Smallest tile count of the (first) grid pass (`min_dynamic_patch`, 1).
    pub min_tiles: u32,
    /// Largest tile count of each grid pass (`max_dynamic_patch`, 6; `--max-tiles`).
    pub max_tiles: u32,
    /// Append the whole image at S×S after a multi-tile grid. MSAC always uses
    /// thumbnails, as the reference hard-codes `use_thumbnail=True` there.
    pub use_thumbnail: bool,
    /// Two-pass MSAC for single-image prompts (2b).
    pub use_msac: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Refuse images with more pixels than this before decoding (PIL's bomb limit).
    pub max_pixels: u64,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            image_size: 448,
            min_tiles: 1,
            max_tiles: 6,
            use_thumbnail: true,
            use_msac: false,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            max_pixels: PIL_MAX_PIXELS,
        }
    }
}

impl PreprocessConfig {
    /// Values from an H2OVL `config.json` (`force_image_size` or `vision_config.image_size`,
    /// `min/max_dynamic_patch`, `use_thumbnail`, `use_msac`); missing keys keep defaults.
    pub fn from_hf_config(cfg: &serde_json::Value) -> anyhow::Result<Self> {
        let mut out = PreprocessConfig::default();
        let uint = |v: &serde_json::Value, key: &str| -> anyhow::Result<Option<u32>> {
            match v.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or_else(|| anyhow::anyhow!("config.json: `{key}` must be a positive integer, got {x}")),
            }
        };
        let flag = |key: &str| -> anyhow::Result<Option<bool>> {
            match cfg.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
                Some(x) => anyhow::bail!("config.json: `{key}` must be a boolean, got {x}"),
            }
        };
        if let Some(s) = uint(cfg, "force_image_size")? {
            out.image_size = s;
        } else if let Some(s) = cfg.get("vision_config").map(|v| uint(v, "image_size")).transpose()?.flatten() {
            out.image_size = s;
        }
        if let Some(n) = uint(cfg, "min_dynamic_patch")? {
            out.min_tiles = n;
        }
        if let Some(n) = uint(cfg, "max_dynamic_patch")? {
            out.max_tiles = n;
        }
        if let Some(b) = flag("use_thumbnail")? {
            out.use_thumbnail = b;
        }
        if let Some(b) = flag("use_msac")? {
            out.use_msac = b;
        }
        Ok(out)
    }
}

/// The tiles of one image and how they were chosen.
#[derive(Debug, Clone)]
pub struct Tiling {
    /// `(cols, rows)` of the main grid (the pass-2 grid when MSAC).
    pub grid: (u32, u32),
    /// The pass-1 grid when MSAC was applied.
    pub pass1_grid: Option<(u32, u32)>,
    pub msac: bool,
    /// MSAC only: no pass-2 candidate survived the filter, so pass 2 fell back to the
    /// reference's `(1, 1)` default (one full-image tile, placed last).
    pub pass2_fallback: bool,
    /// `image_size × image_size` tiles in prompt order.
    pub tiles: Vec<image::RgbImage>,
}

/// Tile an RGB image as the reference does. MSAC runs when `cfg.use_msac && allow_msac`
/// (`allow_msac` is false for multi-image prompts). An image with a zero dimension
/// (never produced by [`decode_image`]) yields no tiles.
pub fn tile_image(img: &image::RgbImage, cfg: &PreprocessConfig, allow_msac: bool) -> Tiling {
    let s = cfg.image_size;
    let (w, h) = img.dimensions();
    let msac = cfg.use_msac && allow_msac;
    if w == 0 || h == 0 {
        return Tiling { grid: (1, 1), pass1_grid: None, msac, pass2_fallback: false, tiles: Vec::new() };
    }
    // The thumbnail (whole image at S×S) is shared by both MSAC passes: compute it once.
    let thumb_cell = OnceCell::new();
    let thumb = || thumb_cell.get_or_init(|| resize_bicubic(img, s, s)).clone();

    if !msac {
        let g = grid::closest_grid(w, h, &grid::candidate_grids(cfg.min_tiles, cfg.max_tiles), s);
        let tiles = tiles::pass_tiles(img, g, s, cfg.use_thumbnail, &thumb);
        return Tiling { grid: g, pass1_grid: None, msac: false, pass2_fallback: false, tiles };
    }
    let g = msac::msac_grids(w, h, cfg.min_tiles, cfg.max_tiles, s);
    let p1 = tiles::pass_tiles(img, g.pass1, s, true, &thumb);
    let p2 = if g.pass2 == (1, 1) { vec![thumb()] } else { tiles::pass_tiles(img, g.pass2, s, true, &thumb) };
    Tiling {
        grid: g.pass2,
        pass1_grid: Some(g.pass1),
        msac: true,
        pass2_fallback: g.pass2_fallback,
        tiles: tiles::combine_msac(p1, p2),
    }
}

/// How many tiles [`tile_image`] makes of a `w × h` image, from the grid rule alone (no pixels):
/// what fitting a document to the context compares across tile budgets before any decoding.
pub fn tile_count(w: u32, h: u32, cfg: &PreprocessConfig, allow_msac: bool) -> usize {
    if w == 0 || h == 0 {
        return 0;
    }
    let s = cfg.image_size;
    // `pass_tiles`: the grid, plus the thumbnail when asked for and the grid is not one tile.
    let pass = |g: grid::Grid, thumb: bool| {
        let n = (g.0 * g.1) as usize;
        n + usize::from(thumb && n != 1)
    };
    if !(cfg.use_msac && allow_msac) {
        return pass(grid::closest_grid(w, h, &grid::candidate_grids(cfg.min_tiles, cfg.max_tiles), s), cfg.use_thumbnail);
    }
    let g = msac::msac_grids(w, h, cfg.min_tiles, cfg.max_tiles, s);
    let p2 = if g.pass2 == (1, 1) { 1 } else { pass(g.pass2, true) };
    // `combine_msac` drops the last tile of each pass and appends pass 2's last.
    pass(g.pass1, true) + p2 - 1
}

/// Normalise tiles into one `[T, 3, S, S]` f32 buffer (C order) with `cfg.mean`/`cfg.std`.
pub fn normalize_tiles(tiles: &[image::RgbImage], cfg: &PreprocessConfig) -> Vec<f32> {
    normalize::normalize_all(tiles, cfg.mean, cfg.std)
}

/// Convenience: load, tile and normalise one image file.
pub fn preprocess_file(path: &Path, cfg: &PreprocessConfig, allow_msac: bool) -> anyhow::Result<(Tiling, Vec<f32>)> {
    let img = load_image(path, cfg.max_pixels)?;
    let tiling = tile_image(&img, cfg, allow_msac);
    let pixels = normalize_tiles(&tiling.tiles, cfg);
    Ok((tiling, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 9]))
    }

    /// Spec §5.4 table: tile counts with and without MSAC.
    #[test]
    fn worked_example_tile_counts() {
        let plain = PreprocessConfig::default();
        let with_msac = PreprocessConfig { use_msac: true, ..plain.clone() };
        for (w, h, single, msac_total) in
            [(606, 1000, 7, 13), (1000, 606, 7, 13), (448, 448, 1, 5), (2000, 500, 5, 11), (800, 800, 5, 5), (1024, 768, 7, 13)]
        {
            let img = blank(w, h);
            assert_eq!(tile_image(&img, &plain, true).tiles.len(), single, "{w}x{h}");
            let t = tile_image(&img, &with_msac, true);
            assert_eq!(t.tiles.len(), msac_total, "{w}x{h} msac");
            assert!(t.tiles.iter().all(|t| t.dimensions() == (448, 448)));
            // Multi-image prompts never use MSAC.
            assert!(!tile_image(&img, &with_msac, false).msac);
        }
    }

    /// `tile_count` (grid rule only) equals the tiles `tile_image` makes, for every tile budget a
    /// document fit may try (1..=12), MSAC on and off, portrait/landscape/square/extreme shapes
    /// (small images: the count does not depend on the pixels, only on the aspect and area).
    #[test]
    fn tile_count_equals_the_tiles_made() {
        for (w, h) in [(210, 297), (297, 210), (100, 100), (200, 50), (50, 300), (101, 67), (224, 224), (300, 900)] {
            for max in 1..=12 {
                for msac in [false, true] {
                    let cfg = PreprocessConfig { image_size: 28, max_tiles: max, use_msac: msac, ..Default::default() };
                    let img = blank(w, h);
                    assert_eq!(tile_count(w, h, &cfg, true), tile_image(&img, &cfg, true).tiles.len(), "{w}x{h} max {max} msac {msac}");
                }
            }
        }
        assert_eq!(tile_count(0, 10, &PreprocessConfig::default(), true), 0);
    }

    #[test]
    fn msac_fallback_puts_the_full_image_last() {
        let cfg = PreprocessConfig { use_msac: true, ..Default::default() };
        let img = blank(800, 800);
        let t = tile_image(&img, &cfg, true);
        assert_eq!((t.grid, t.pass1_grid, t.pass2_fallback), ((1, 1), Some((2, 2)), true));
        assert_eq!(t.tiles[4], resize_bicubic(&img, 448, 448));
    }

    #[test]
    fn hf_config_values_are_read() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/assets/h2ovl-800m-meta/config.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(PreprocessConfig::from_hf_config(&v).unwrap(), PreprocessConfig::default());
        let bad = serde_json::json!({"max_dynamic_patch": "six"});
        let err = PreprocessConfig::from_hf_config(&bad).unwrap_err().to_string();
        assert!(err.contains("max_dynamic_patch"), "{err}");
    }
}
