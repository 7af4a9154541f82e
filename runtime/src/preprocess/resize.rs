//! PIL-exact bicubic resize (`Image.resize(size, BICUBIC)` on an RGB image, Pillow's
//! `src/libImaging/Resample.c`), bit for bit.
//!
//! What makes it exact, all as Pillow does it:
//! - kernel: Keys cubic with a = −0.5, support 2; when downscaling the support is
//!   widened by the scale factor ("antialiased"), evaluated in f64;
//! - per output pixel the window `[xmin, xmin + n)` comes from `center ± support`
//!   rounded by `(int)(v + 0.5)` and clamped to the image; weights are normalised to
//!   sum 1 in f64, then turned into fixed point with `PRECISION_BITS = 22` (round half
//!   away from zero);
//! - two separable passes; each output = `(2^21 + Σ px·k) >> 22` clamped to 0..=255, so
//!   the first pass is rounded to u8 before the second. Horizontal first (only over the
//!   source rows the vertical pass will read), except where Pillow 13 runs the vertical
//!   pass first (see [`pillow13_pass_order`]) — the order changes pixels, so it matters.
//!
//! Integer sums are order-independent, so rayon row-parallelism and SIMD keep exactness.

use image::RgbImage;
use rayon::prelude::*;

use super::resize_kernels::{horizontal_row, vertical_row};

/// Fixed-point fraction bits of the coefficients (Pillow: 32 − 8 − 2).
pub const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Accumulator start value: one half, so the final shift rounds.
pub const HALF: i32 = 1 << (PRECISION_BITS - 1);
/// Support of the bicubic kernel at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Keys cubic convolution kernel with a = −0.5 (Pillow's `bicubic_filter`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point resampling weights for one axis (Pillow's `precompute_coeffs` followed by
/// `normalize_coeffs_8bpc`).
#[derive(Debug, Clone)]
pub struct Coeffs {
    /// Row stride of `k` (Pillow's `ksize`: `2·ceil(support) + 1`).
    pub ksize: usize,
    /// Per output index: first source index and number of taps.
    pub bounds: Vec<(usize, usize)>,
    /// `out_size × ksize` weights scaled by 2^22; entries past a window's length are 0.
    pub k: Vec<i32>,
}

impl Coeffs {
    /// Weights to map `in_size` source samples onto `out_size` outputs (box = whole axis).
    pub fn new(in_size: u32, out_size: u32) -> Coeffs {
        assert!(in_size > 0 && out_size > 0, "resize of an empty axis");
        // Pillow passes the box as C floats: `(double)(in1 - in0)` with in0 = 0.
        let in0 = 0.0f32;
        let in1 = in_size as f32;
        let scale = (in1 - in0) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;

        let mut bounds = Vec::with_capacity(out_size as usize);
        let mut k = vec![0i32; out_size as usize * ksize];
        let mut w = vec![0f64; ksize];
        for xx in 0..out_size as usize {
            let center = in0 as f64 + (xx as f64 + 0.5) * scale;
            // `(int)` casts truncate toward zero, as Rust's `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, wx) in w.iter_mut().enumerate().take(n) {
                *wx = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                ww += *wx;
            }
            let row = &mut k[xx * ksize..xx * ksize + n];
            for (kx, &wx) in row.iter_mut().zip(&w) {
                let wn = if ww != 0.0 { wx / ww } else { wx };
                let f = wn * (1u32 << PRECISION_BITS) as f64;
                *kx = if wn < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 };
            }
            bounds.push((xmin as usize, n));
        }
        Coeffs { ksize, bounds, k }
    }

    /// Weights of output index `i` (only its window's taps).
    #[inline]
    pub fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.k[i * self.ksize..i * self.ksize + n])
    }
}

/// Pillow's `clip8`: drop the fraction bits (arithmetic shift) and clamp to a byte.
#[inline(always)]
pub fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Which separable pass runs first. Results differ (the intermediate is rounded to u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOrder {
    /// Horizontal then vertical: Pillow ≤ 12 always, Pillow 13 in most cases.
    HorizontalFirst,
    /// Vertical then horizontal.
    VerticalFirst,
}

/// Pillow 13's choice (python-pillow/Pillow#9549, "if height is scaled down significantly
/// more than width, resize vertically first"): vertical first iff the height shrinks and
/// `in_h − out_h > 2·(in_w − out_w)`. The golden reference used Pillow 13.0.0. The rule
/// was read off Pillow 13.0.0's output: it classifies all 3970 size pairs (sources 30–200
/// px, outputs 3–250 px, up and down) where the two orders give different pixels, with
/// no exception; the boundary is strict (`>`).
pub fn pillow13_pass_order(in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> PassOrder {
    let shrink_h = in_h as i64 - out_h as i64;
    let shrink_w = in_w as i64 - out_w as i64;
    if out_h < in_h && shrink_h > 2 * shrink_w {
        PassOrder::VerticalFirst
    } else {
        PassOrder::HorizontalFirst
    }
}

/// Resize `src` to `out_w × out_h` exactly like Pillow 13's `Image.resize((out_w, out_h),
/// Image.BICUBIC)` on an RGB image. Same size returns a copy (as Pillow does).
pub fn resize_bicubic(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    resize_bicubic_ordered(src, out_w, out_h, pillow13_pass_order(in_w, in_h, out_w, out_h))
}

/// [`resize_bicubic`] with an explicit pass order (`HorizontalFirst` everywhere = Pillow ≤ 12).
pub fn resize_bicubic_ordered(src: &RgbImage, out_w: u32, out_h: u32, order: PassOrder) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    assert!(in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0, "resize to/from an empty image");
    if (in_w, in_h) == (out_w, out_h) {
        return src.clone();
    }
    let raw: &[u8] = src.as_raw();
    let out = match (out_w != in_w, out_h != in_h) {
        (true, false) => horizontal_pass(raw, in_w, 0..in_h as usize, &Coeffs::new(in_w, out_w)),
        (false, true) => vertical_pass(raw, in_w, 0, &Coeffs::new(in_h, out_h)),
        _ if order == PassOrder::VerticalFirst => {
            // Every source column is read by some output column, so no column box is needed.
            let tmp = vertical_pass(raw, in_w, 0, &Coeffs::new(in_h, out_h));
            horizontal_pass(&tmp, in_w, 0..out_h as usize, &Coeffs::new(in_w, out_w))
        }
        _ => {
            // Horizontal pass only over the source rows the vertical pass reads (Pillow's ybox).
            let vert = Coeffs::new(in_h, out_h);
            let first = vert.bounds[0].0;
            let (s, n) = vert.bounds[out_h as usize - 1];
            let tmp = horizontal_pass(raw, in_w, first..s + n, &Coeffs::new(in_w, out_w));
            vertical_pass(&tmp, out_w, first, &vert)
        }
    };
    RgbImage::from_raw(out_w, out_h, out).expect("buffer size matches dimensions")
}

/// Horizontal pass over source rows `rows` of an RGB buffer `width` pixels wide.
fn horizontal_pass(src: &[u8], width: u32, rows: std::ops::Range<usize>, c: &Coeffs) -> Vec<u8> {
    let in_stride = width as usize * 3;
    let out_stride = c.bounds.len() * 3;
    let mut out = vec![0u8; out_stride * rows.len()];
    out.par_chunks_mut(out_stride).enumerate().for_each(|(r, out_row)| {
        let y = rows.start + r;
        horizontal_row(&src[y * in_stride..(y + 1) * in_stride], out_row, c);
    });
    out
}

/// Vertical pass over an RGB buffer `width` pixels wide whose first row is source row
/// `row_offset` (the horizontal pass may have skipped rows nobody reads).
fn vertical_pass(src: &[u8], width: u32, row_offset: usize, c: &Coeffs) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut out = vec![0u8; stride * c.bounds.len()];
    out.par_chunks_mut(stride).enumerate().for_each_init(
        || vec![0i32; stride],
        |acc, (yy, out_row)| {
            let (ymin, k) = c.taps(yy);
            let first = ymin - row_offset;
            vertical_row(&src[first * stride..(first + k.len()) * stride], stride, k, acc, out_row);
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed-point weights of every window sum to 1.0 within the rounding of its taps.
    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(640, 1344), (640, 448), (900, 448), (4000, 1344), (7, 3), (3, 7), (1, 5)] {
            let c = Coeffs::new(i, o);
            for x in 0..o as usize {
                let (_, k) = c.taps(x);
                let s: i64 = k.iter().map(|&v| v as i64).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{i}->{o} at {x}: {s}");
            }
        }
    }

    /// Windows stay inside the source and their width matches the widened support.
    #[test]
    fn windows_are_clamped_and_widened_when_downscaling() {
        let c = Coeffs::new(4000, 448);
        assert_eq!(c.ksize, 2 * (2.0f64 * 4000.0 / 448.0).ceil() as usize + 1);
        for &(s, n) in &c.bounds {
            assert!(n > 0 && s + n <= 4000);
        }
        let up = Coeffs::new(640, 1344);
        assert_eq!(up.ksize, 5);
    }

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let img = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8 * 7, y as u8 * 11, (x ^ y) as u8]));
        assert_eq!(resize_bicubic(&img, 37, 23), img);
        let flat = RgbImage::from_pixel(301, 97, image::Rgb([200, 3, 128]));
        for (w, h) in [(448, 448), (1344, 896), (50, 400), (301, 5), (9, 97)] {
            let r = resize_bicubic(&flat, w, h);
            assert!(r.pixels().all(|p| p.0 == [200, 3, 128]), "{w}x{h}");
        }
    }

    #[test]
    fn pass_order_rule() {
        use PassOrder::*;
        assert_eq!(pillow13_pass_order(300, 900, 896, 896), VerticalFirst); // upscale w, shrink h by 4
        assert_eq!(pillow13_pass_order(640, 480, 1344, 896), HorizontalFirst);
        assert_eq!(pillow13_pass_order(40, 40, 24, 4), VerticalFirst); // 36 > 2·16
        assert_eq!(pillow13_pass_order(40, 40, 20, 4), HorizontalFirst); // 36 < 2·20
        assert_eq!(pillow13_pass_order(30, 60, 9, 18), HorizontalFirst); // 42 == 2·21: strict
        assert_eq!(pillow13_pass_order(40, 40, 96, 43), HorizontalFirst); // height grows
    }

    #[test]
    fn clip8_rounds_and_saturates() {
        assert_eq!(clip8(HALF), 0);
        assert_eq!(clip8(HALF + (3 << PRECISION_BITS)), 3);
        assert_eq!(clip8(-5), 0);
        assert_eq!(clip8(300 << PRECISION_BITS), 255);
    }
}
