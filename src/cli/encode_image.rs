//! `h2ovl encode-image`: debug command running preprocessing + the Rust vision encoder on one
//! image and dumping the image embeddings (and optionally the normalized tiles) as `.npy`.
//! Prints the tiling as one JSON line: `{"grid":[cols,rows],"tiles":T,"msac":bool}`.
use anyhow::{ensure, Context, Result};
use h2ovl_runtime::npy;
use h2ovl_runtime::preprocess;
use h2ovl_runtime::vision::{EncodeOptions, VisionModel};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EncodeImageArgs {
    /// Vision GGUF (mmproj) written by `h2ovl convert`.
    #[arg(long)]
    pub mmproj: PathBuf,
    /// Input image (JPEG, PNG, WebP, GIF, BMP, TIFF).
    #[arg(long)]
    pub image: PathBuf,
    /// Largest tile count per grid pass (default: the GGUF's max_dynamic_patch, 6).
    #[arg(long)]
    pub max_tiles: Option<u32>,
    /// Disable MSAC even if the model uses it (2b).
    #[arg(long)]
    pub no_msac: bool,
    /// Refuse images with more pixels than this (checked from the file header, before decoding).
    #[arg(long = "max-pixels", default_value_t = preprocess::PIL_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Threads for the encoder (default: all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Vision encoder arithmetic: int8 linear layers (needs a Q8_0 mmproj), f32, or auto (int8
    /// where the CPU has a fast int8 dot product; honours H2OVL_VISION_MATH).
    #[arg(long = "vision-math", default_value = "auto", value_parser = ["auto", "f32", "int8"])]
    pub vision_math: String,
    /// Output: image embeddings, f32 [tiles·256, llm_hidden].
    #[arg(long)]
    pub out: PathBuf,
    /// Optional output: normalized tiles, f32 [tiles, 3, 448, 448].
    #[arg(long)]
    pub tiles_out: Option<PathBuf>,
}

pub fn run(a: EncodeImageArgs) -> Result<()> {
    let model = VisionModel::load(&a.mmproj)?;
    let math = a.vision_math.parse()?;
    model.resolve_math(math)?; // an int8 request on a non-Q8_0 file fails before any decoding
    let vc = model.config();
    let mut pc = h2ovl_runtime::llm::vision_encoder::preprocess_config(vc);
    pc.use_msac &= !a.no_msac;
    pc.max_pixels = a.max_pixels;
    if let Some(n) = a.max_tiles {
        ensure!(n >= 1, "--max-tiles must be at least 1");
        pc.max_tiles = n;
    }
    let img = preprocess::load_image(&a.image, pc.max_pixels).with_context(|| format!("loading {}", a.image.display()))?;
    let tiling = preprocess::tile_image(&img, &pc, true);
    let n = tiling.tiles.len();
    ensure!(n > 0, "{}: the image produced no tiles", a.image.display());
    let pixels = preprocess::normalize_tiles(&tiling.tiles, &pc);
    let s = vc.image_size;
    if let Some(p) = &a.tiles_out {
        npy::write_f32(p, &[n, 3, s, s], &pixels)?;
    }
    let emb = model.encode_opts(&pixels, n, &EncodeOptions { threads: a.threads, math })?;
    npy::write_f32(&a.out, &[n * vc.tokens_per_tile(), vc.projection_dim], &emb)?;
    // Key order as documented (serde_json's map would sort the keys).
    println!(r#"{{"grid":[{},{}],"tiles":{n},"msac":{}}}"#, tiling.grid.0, tiling.grid.1, tiling.msac);
    Ok(())
}
