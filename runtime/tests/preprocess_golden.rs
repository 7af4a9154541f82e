//! Preprocessing against the golden reference (PIL + H2OVL `image_process.py`):
//! grids, candidate order, tile count/order, tile pixels (exact), normalised pixels
//! (≤ 1e-6), and bad-input handling. Tolerances are the golden README's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use h2ovl_runtime::npy;
use h2ovl_runtime::preprocess::{
    self, decode_image, grid, load_image, msac, normalize_tiles, resize_bicubic, tile_image, PreprocessConfig,
};
use image::RgbImage;
use serde_json::Value;

mod common;
use common::golden;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pair(v: &Value) -> (u32, u32) {
    let a = v.as_array().expect("[a, b]");
    (a[0].as_u64().unwrap() as u32, a[1].as_u64().unwrap() as u32)
}

fn pairs(v: &Value) -> Vec<(u32, u32)> {
    v.as_array().expect("list").iter().map(pair).collect()
}

fn png(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

/// Reference tiles `tiles_img{k}/tile_XX.png` of a case, in order.
fn reference_tiles(case: &str, k: usize) -> Vec<RgbImage> {
    let dir = golden().join("cases").join(case).join(format!("tiles_img{k}"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    names.sort();
    names.iter().map(|p| png(p)).collect()
}

fn image_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(golden().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|c| golden().join("cases").join(c).join("tiles_img0").is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "expected the three image cases, found {cases:?}");
    cases
}

/// Max |a − b| over two equally sized u8 buffers, and how many bytes differ.
fn u8_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0, 0), |(m, n), (&x, &y)| (m.max(x.abs_diff(y)), n + (x != y) as usize))
}

fn assert_tiles_equal(got: &[RgbImage], want: &[RgbImage], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: tile count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.dimensions(), w.dimensions(), "{what}: tile {i} size");
        let (max, n) = u8_diff(g.as_raw(), w.as_raw());
        assert!(n == 0, "{what}: tile {i} differs in {n} bytes (max {max} LSB)");
    }
}

/// grids.json: grid without MSAC, both MSAC passes, fallback flag and tile counts.
#[test]
fn grids_match_reference() {
    let grids = json(&golden().join("grids.json"));
    let plain = PreprocessConfig::default();
    let with_msac = PreprocessConfig { use_msac: true, ..plain.clone() };
    for (file, g) in grids.as_object().unwrap() {
        let img = load_image(&golden().join("images").join(file), plain.max_pixels).unwrap();
        assert_eq!(img.dimensions(), pair(&g["image_size"]), "{file}");

        let t = tile_image(&img, &plain, true);
        assert_eq!(t.grid, pair(&g["no_msac"]["grid"]), "{file} no-MSAC grid");
        assert_eq!(t.tiles.len() as u64, g["no_msac"]["n_tiles"].as_u64().unwrap(), "{file} no-MSAC tiles");
        assert!(!t.msac && t.pass1_grid.is_none());

        let m = &g["msac"];
        let t = tile_image(&img, &with_msac, true);
        assert!(t.msac);
        assert_eq!(t.pass1_grid, Some(pair(&m["pass1_grid"])), "{file} pass-1 grid");
        assert_eq!(t.grid, pair(&m["pass2_grid"]), "{file} pass-2 grid");
        assert_eq!(t.pass2_fallback, m["pass2_candidates_empty"].as_bool().unwrap(), "{file} fallback");
        assert_eq!(t.tiles.len() as u64, m["n_tiles"].as_u64().unwrap(), "{file} MSAC tiles");
        // |P2| - 1 + |P1| - 1 + 1
        let p1 = m["pass1_images"].as_u64().unwrap();
        let p2 = m["pass2_images"].as_u64().unwrap();
        assert_eq!(t.tiles.len() as u64, p2 - 1 + p1 - 1 + 1);
    }
}

/// summary.json: the candidate lists (CPython set order) of every pass and the chosen grids.
#[test]
fn candidate_lists_match_reference() {
    for case in image_cases() {
        let s = json(&golden().join("cases").join(&case).join("summary.json"));
        for im in s["images"].as_array().unwrap() {
            let (w, h) = pair(&im["image_size"]);
            let p1 = &im["pass1"];
            let (min, max) = (p1["min_num"].as_u64().unwrap() as u32, p1["max_num"].as_u64().unwrap() as u32);
            let cands = grid::candidate_grids(min, max);
            assert_eq!(cands, pairs(&p1["candidates"]), "{case} pass-1 candidates");
            let g1 = grid::closest_grid(w, h, &cands, 448);
            assert_eq!(g1, pair(&p1["grid"]), "{case} pass-1 grid");
            if im["msac"].as_bool().unwrap() {
                let p2 = &im["pass2"];
                assert_eq!(p2["min_num"].as_u64().unwrap() as u32, msac::PASS2_MIN_TILES);
                let c2 = msac::pass2_candidates(g1, p2["max_num"].as_u64().unwrap() as u32);
                assert_eq!(c2, pairs(&p2["candidates"]), "{case} pass-2 candidates");
                assert_eq!(grid::closest_grid(w, h, &c2, 448), pair(&p2["grid"]), "{case} pass-2 grid");
            }
        }
    }
}

/// Every PNG image of every case: tiles bit-identical to the reference, in order.
#[test]
fn png_tiles_match_reference_exactly() {
    let mut checked = 0;
    for case in image_cases() {
        let s = json(&golden().join("cases").join(&case).join("summary.json"));
        let images = s["images"].as_array().unwrap();
        for (k, im) in images.iter().enumerate() {
            if im["file_format"] != "PNG" {
                continue;
            }
            let cfg = PreprocessConfig { use_msac: im["msac"].as_bool().unwrap(), ..Default::default() };
            let img = load_image(&golden().join("images").join(im["file"].as_str().unwrap()), cfg.max_pixels).unwrap();
            let t = tile_image(&img, &cfg, images.len() == 1);
            assert_eq!(t.msac, im["msac"].as_bool().unwrap(), "{case} img{k}: MSAC applied");
            assert_eq!(t.tiles.len() as u64, im["n_tiles"].as_u64().unwrap(), "{case} img{k}");
            assert_tiles_equal(&t.tiles, &reference_tiles(&case, k), &format!("{case} img{k}"));
            checked += t.tiles.len();
        }
    }
    assert!(checked >= 7 + 8 + 7, "only {checked} tiles checked");
}

/// The JPEG: our decoder (libjpeg-turbo's, via mozjpeg) against PIL's
/// `decoded_rgb_img1.npy` — exact. Resize/crop/normalise are then tested exactly from the
/// reference decode, independently of the decoder (golden README).
#[test]
fn jpeg_decode_then_tiles_and_pixel_values() {
    let case = golden().join("cases/tiny_multi_640x480_448x448");
    let (shape, rgb) = npy::read_u8(&case.join("decoded_rgb_img1.npy")).unwrap();
    assert_eq!(shape, [448, 448, 3]);
    let reference = RgbImage::from_raw(448, 448, rgb).unwrap();

    let ours = load_image(&golden().join("images/square_448x448.jpg"), preprocess::PIL_MAX_PIXELS).unwrap();
    assert_eq!(ours.dimensions(), reference.dimensions());
    let (max, n) = u8_diff(ours.as_raw(), reference.as_raw());
    eprintln!("JPEG decoder vs PIL/libjpeg-turbo: max {max} LSB, {n} of {} bytes differ", ours.as_raw().len());
    assert_eq!(n, 0, "JPEG decode differs from PIL in {n} bytes (max {max} LSB)");

    // The image crate's zune-jpeg, for the record (not used for JPEG any more).
    let zune = image::load_from_memory(&std::fs::read(golden().join("images/square_448x448.jpg")).unwrap())
        .unwrap()
        .to_rgb8();
    let (zmax, zn) = u8_diff(zune.as_raw(), reference.as_raw());
    eprintln!("(zune-jpeg vs PIL: max {zmax} LSB, {zn} bytes differ)");

    let cfg = PreprocessConfig::default();
    // Image 1 of a two-image prompt: no MSAC.
    let t = tile_image(&reference, &cfg, false);
    assert_eq!(t.grid, (1, 1));
    assert_tiles_equal(&t.tiles, &reference_tiles("tiny_multi_640x480_448x448", 1), "JPEG from reference decode");

    let (shape, want) = npy::read_f32(&case.join("pixel_values_img1.npy")).unwrap();
    assert_eq!(shape, [1, 3, 448, 448]);
    let got = normalize_tiles(&t.tiles, &cfg);
    assert_eq!(got.len(), want.len());
    let max_abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("pixel_values_img1: max abs diff {max_abs:e}");
    assert!(max_abs <= 1e-6, "pixel values differ by {max_abs}");
}

/// Minimal PNG writer for crafted headers (CRC-32 as the PNG spec defines it).
fn png_with_header(w: u32, h: u32, idat: &[u8]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter method, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn bomb_header_is_refused_before_decoding() {
    // Valid 50000×50000 header, a few bytes of data: decoding would need 7.5 GB.
    let bytes = png_with_header(50_000, 50_000, &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    let t = Instant::now();
    let err = decode_image(&bytes, preprocess::PIL_MAX_PIXELS).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("50000x50000") && msg.contains("over the limit"), "{msg}");
    assert!(t.elapsed().as_millis() < 500, "refusal took {:?}", t.elapsed());
    // Same for a JPEG whose SOF0 claims 50000×50000 (read by libjpeg's header parser).
    let mut jpeg = std::fs::read(golden().join("images/square_448x448.jpg")).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline JPEG has SOF0");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xC3, 0x50, 0xC3, 0x50]); // height, width = 50000
    let t = Instant::now();
    let msg = format!("{:#}", decode_image(&jpeg, preprocess::PIL_MAX_PIXELS).unwrap_err());
    assert!(msg.contains("50000x50000") && msg.contains("over the limit"), "{msg}");
    assert!(t.elapsed().as_millis() < 500, "refusal took {:?}", t.elapsed());
    // The limit is configurable: a small limit refuses a real fixture too.
    let err = load_image(&golden().join("images/tall_300x900.png"), 1000).unwrap_err();
    assert!(format!("{err:#}").contains("tall_300x900.png"), "{err:#}");
}

#[test]
fn corrupt_truncated_and_empty_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let max = preprocess::PIL_MAX_PIXELS;
    let good = std::fs::read(golden().join("images/gradient_640x480.png")).unwrap();
    let jpeg = std::fs::read(golden().join("images/square_448x448.jpg")).unwrap();

    let mut flipped = good.clone();
    for b in &mut flipped[200..2000] {
        *b ^= 0x5a;
    }
    // A JPEG whose Huffman tables are wiped (still has its EOI): libjpeg's fatal error
    // must come back as an error, not a panic or an abort.
    let mut bad_dht = jpeg.clone();
    let dht = bad_dht.windows(2).position(|w| w == [0xFF, 0xC4]).expect("golden JPEG has a DHT");
    bad_dht[dht + 4..dht + 40].fill(0xEE);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad_huffman.jpg", bad_dht, "corrupt or truncated JPEG"),
        ("empty.png", Vec::new(), "empty"),
        ("text.png", b"hello, not an image".to_vec(), "unrecognised image format"),
        ("truncated.png", good[..good.len() / 3].to_vec(), "corrupt or truncated"),
        ("header_only.png", good[..20].to_vec(), "corrupt or truncated"),
        ("flipped.png", flipped, "corrupt or truncated"),
        ("truncated.jpg", jpeg[..jpeg.len() / 4].to_vec(), "corrupt or truncated"),
        ("zero_width.png", png_with_header(0, 10, &[]), ""),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = load_image(&path, max).expect_err(name);
        let msg = format!("{err:#}");
        assert!(msg.contains(name) && msg.contains(want), "{name}: {msg}");
    }
    let err = load_image(&dir.path().join("missing.png"), max).unwrap_err();
    assert!(format!("{err:#}").contains("missing.png"));
}

/// Opt-in cross-check against Pillow on arbitrary sizes: set `H2OVL_PIL_XCHECK` to a
/// directory holding `src.png` and `out_{W}x{H}.png` files written by
/// `Image.open("src.png").resize((W, H), Image.BICUBIC)`. Skipped when unset.
#[test]
fn pil_resize_crosscheck_if_available() {
    let Some(dir) = std::env::var_os("H2OVL_PIL_XCHECK") else { return };
    let dir = PathBuf::from(dir);
    let (mut n, mut bad) = (0, Vec::new());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("out_").and_then(|r| r.strip_suffix(".png")) else { continue };
        let (src_name, dims) = rest.split_once("__").unwrap_or(("src", rest));
        let (w, h) = dims.split_once('x').unwrap();
        let src = png(&dir.join(format!("{src_name}.png")));
        let got = resize_bicubic(&src, w.parse().unwrap(), h.parse().unwrap());
        let (max, diff) = u8_diff(got.as_raw(), png(&p).as_raw());
        if diff != 0 {
            bad.push(format!("{name}: {diff} bytes differ (max {max})"));
        }
        n += 1;
    }
    assert!(bad.is_empty(), "{} of {n} resizes differ from Pillow:\n{}", bad.len(), bad.join("\n"));
    eprintln!("PIL cross-check: {n} resizes identical");
}

/// Benchmark, not a test: `cargo test --release -p h2ovl-runtime --test preprocess_golden
/// -- --ignored --nocapture bench_`.
#[test]
#[ignore]
fn bench_resize_and_tile_4000x3000() {
    let img = RgbImage::from_fn(4000, 3000, |x, y| image::Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (y * 3) as u8]));
    for (w, h) in [(1344, 896), (448, 448), (896, 1344)] {
        let _ = resize_bicubic(&img, w, h);
        let t = Instant::now();
        let reps = 5;
        for _ in 0..reps {
            std::hint::black_box(resize_bicubic(&img, w, h));
        }
        eprintln!("resize 4000x3000 -> {w}x{h}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
    }
    let msac = PreprocessConfig { use_msac: true, ..Default::default() };
    for (name, cfg) in [("single-pass", PreprocessConfig::default()), ("MSAC", msac)] {
        let t = Instant::now();
        let tiling = tile_image(&img, &cfg, true);
        let px = normalize_tiles(&tiling.tiles, &cfg);
        eprintln!(
            "tile+normalize 4000x3000 {name}: {} tiles, {:.1} ms",
            tiling.tiles.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        std::hint::black_box(px);
    }
}

/// Opt-in cross-check of decoding against Pillow: set `H2OVL_PIL_DECODE_XCHECK` to a
/// directory of images, each `NAME` beside `NAME.rgb` = the raw bytes of
/// `numpy.array(Image.open(NAME).convert("RGB"))`. Reports every format that differs.
#[test]
fn pil_decode_crosscheck_if_available() {
    let Some(dir) = std::env::var_os("H2OVL_PIL_DECODE_XCHECK") else { return };
    let (mut n, mut bad) = (0, Vec::new());
    for entry in std::fs::read_dir(PathBuf::from(dir)).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rgb") {
            continue;
        }
        let want = std::fs::read(p.with_file_name(format!("{}.rgb", p.file_name().unwrap().to_string_lossy()))).unwrap();
        n += 1;
        match load_image(&p, preprocess::PIL_MAX_PIXELS) {
            Err(e) => bad.push(format!("{}: {e:#}", p.display())),
            Ok(img) if img.as_raw().len() != want.len() => bad.push(format!("{}: size differs", p.display())),
            Ok(img) => {
                let (max, d) = u8_diff(img.as_raw(), &want);
                if d != 0 {
                    bad.push(format!("{}: {d} bytes differ (max {max})", p.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} of {n} decodes differ from Pillow:\n{}", bad.len(), bad.join("\n"));
    eprintln!("PIL decode cross-check: {n} files identical");
}

/// Opt-in cross-check of the emulated CPython set order: set `H2OVL_PY_SET_ORDER` to a JSON
/// file `{"min,max": [[i, j], ...]}` written by CPython with the reference's expression
/// `sorted(set(...), key=lambda x: x[0] * x[1])`. Skipped when unset.
#[test]
fn cpython_set_order_crosscheck_if_available() {
    let Some(path) = std::env::var_os("H2OVL_PY_SET_ORDER") else { return };
    let all = json(Path::new(&path));
    for (key, want) in all.as_object().unwrap() {
        let (min, max) = key.split_once(',').unwrap();
        let got = grid::candidate_grids(min.parse().unwrap(), max.parse().unwrap());
        assert_eq!(got, pairs(want), "candidates for (min, max) = ({key})");
    }
    eprintln!("CPython set order: {} (min, max) ranges identical", all.as_object().unwrap().len());
}
