//! llama.cpp's own clip encoder (libmtmd) loads our mmproj and encodes one 448×448 tile.
//!
//! Needs the optional `mtmd` feature (llama.cpp rebuilt with libmtmd), so it does not run in the
//! default CI. Run it in a separate target dir, which keeps the shared build untouched:
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-mtmd cargo test --release -p h2ovl-bench --features mtmd --test clip_mtmd
//! ```
//!
//! Reference: the golden `tiny_multi_640x480_448x448` case, whose second image (448×448 JPEG) is
//! one tile (`tiles_img1/tile_00.png`, the last 256 rows of `image_embeds.npy`).
#![cfg(feature = "mtmd")]

// The runtime tests' helpers (golden fixture paths, the tiny checkpoint converted once).
#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use h2ovl_bench::clip::{agreement, write_position_control, ClipEncoder};
use h2ovl_runtime::npy;

const CASE: &str = "cases/tiny_multi_640x480_448x448";

#[test]
fn tiny_mmproj_loads_in_clip_and_matches_the_reference_once_positions_are_rotated() {
    let out = common::tiny_f32();
    let tile = image::open(common::golden().join(CASE).join("tiles_img1/tile_00.png")).unwrap().to_rgb8();
    let (shape, all) = npy::read_f32(&common::golden().join(CASE).join("image_embeds.npy")).unwrap();
    let h = shape[1];
    let reference = &all[all.len() - 256 * h..];

    // Loads, one tile (no slicing), 256 finite embeddings of the LLM's width.
    let mut clip = ClipEncoder::load(&out.vision, &out.llm, 2, true, false).unwrap();
    assert_eq!(clip.n_embd, h);
    let img = clip.prepare(&tile).unwrap();
    assert_eq!(img.n_tokens, 256);
    clip.encode(&img).unwrap();
    let plain = clip.output(&img).unwrap();
    assert_eq!(plain.len(), 256 * h);
    assert!(plain.iter().all(|v| v.is_finite()));
    let a_plain = agreement(&plain, reference, h).unwrap();
    drop(clip);

    // Clip appends CLS after the patches but adds position rows in HF order; on a copy whose
    // rows are rotated by one it computes HF's function (attention is order-free).
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("mmproj-poscontrol.gguf");
    write_position_control(&out.vision, &ctl).unwrap();
    let mut clip = ClipEncoder::load(&ctl, &out.llm, 2, true, false).unwrap();
    let img = clip.prepare(&tile).unwrap();
    clip.encode(&img).unwrap();
    let a_ctl = agreement(&clip.output(&img).unwrap(), reference, h).unwrap();
    println!("clip (flash attn {}) vs reference: as stored {a_plain:?}\n  position-rotated control {a_ctl:?}", clip.flash_attn);

    // Clip computes GELU/attention in reduced precision (f16 tables, f16 flash attention), so the
    // README's reduced-precision criterion applies: per-token cosine ≥ 0.999.
    assert!(a_ctl.cosine_min >= 0.999, "{a_ctl:?}");
    assert!(a_ctl.cosine_mean > a_plain.cosine_mean, "rotation did not help: {a_plain:?} vs {a_ctl:?}");
}

/// A text model whose width differs from the projector output is one clear error from mtmd.
#[test]
fn wrong_width_text_model_is_one_clear_error() {
    let out = common::tiny_f32();
    let dir = tempfile::tempdir().unwrap();
    let other = common::convert_f32("tiny-2b", dir.path());
    let e = ClipEncoder::load(&out.vision, &other.llm, 2, true, false).err().expect("width 96 vs 64 must fail");
    let msg = format!("{e:#}");
    assert!(msg.contains("rejected") && msg.contains(&out.vision.display().to_string()), "{msg}");
    let e = ClipEncoder::load(&dir.path().join("nope.gguf"), &out.llm, 2, true, false).err().unwrap();
    assert!(format!("{e:#}").contains("nope.gguf"));
}
