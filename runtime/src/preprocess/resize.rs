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
//! - two separable passes, horizontal first (only over the source rows the vertical pass
//!   will read), then vertical; each output = `(2^21 + Σ px·k) >> 22` clamped to 0..=255,
//!   so the horizontal result is rounded to u8 before the vertical pass.
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

/// Resize `src` to `out_w × out_h` exactly like Pillow's `Image.resize((out_w, out_h),
/// Image.BICUBIC)` on an RGB image. Same size returns a copy (as Pillow does).
pub fn resize_bicubic(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    assert!(in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0, "resize to/from an empty image");
    if (in_w, in_h) == (out_w, out_h) {
        return src.clone();
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let vert = Coeffs::new(in_h, out_h);

    // Horizontal pass over the source rows the vertical pass reads (Pillow's ybox).
    let (rows_first, rows_last) = if need_v {
        let first = vert.bounds[0].0;
        let (s, n) = vert.bounds[out_h as usize - 1];
        (first, s + n)
    } else {
        (0, in_h as usize)
    };
    let in_stride = in_w as usize * 3;
    let src_raw: &[u8] = src.as_raw();
    let (tmp, tmp_w, row_offset): (std::borrow::Cow<[u8]>, usize, usize) = if need_h {
        let horiz = Coeffs::new(in_w, out_w);
        let out_stride = out_w as usize * 3;
        let mut tmp = vec![0u8; out_stride * (rows_last - rows_first)];
        tmp.par_chunks_mut(out_stride).enumerate().for_each(|(r, out_row)| {
            let y = rows_first + r;
            horizontal_row(&src_raw[y * in_stride..(y + 1) * in_stride], out_row, &horiz);
        });
        (tmp.into(), out_w as usize, rows_first)
    } else {
        (src_raw.into(), in_w as usize, 0)
    };

    let out = if need_v {
        let stride = tmp_w * 3;
        let mut out = vec![0u8; stride * out_h as usize];
        out.par_chunks_mut(stride).enumerate().for_each_init(
            || vec![0i32; stride],
            |acc, (yy, out_row)| {
                let (ymin, k) = vert.taps(yy);
                let first = ymin - row_offset;
                let rows = &tmp[first * stride..(first + k.len()) * stride];
                vertical_row(rows, stride, k, acc, out_row);
            },
        );
        out
    } else {
        tmp.into_owned()
    };
    RgbImage::from_raw(out_w, out_h, out).expect("buffer size matches dimensions")
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
    fn clip8_rounds_and_saturates() {
        assert_eq!(clip8(HALF), 0);
        assert_eq!(clip8(HALF + (3 << PRECISION_BITS)), 3);
        assert_eq!(clip8(-5), 0);
        assert_eq!(clip8(300 << PRECISION_BITS), 255);
    }
}
