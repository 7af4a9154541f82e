//! Per-channel normalisation to f32 CHW, bit-identical to torchvision
//! `ToTensor()` + `Normalize(mean, std)`: `((u8 as f32 / 255) - mean) / std` in f32.
//! (A real division: multiplying by 1/std differs by up to 1 ulp.)

use image::RgbImage;
use rayon::prelude::*;

/// Normalise one tile into `out` (`3·H·W` floats, channel-major).
pub fn normalize_tile(tile: &RgbImage, mean: [f32; 3], std: [f32; 3], out: &mut [f32]) {
    let plane = tile.width() as usize * tile.height() as usize;
    assert_eq!(out.len(), 3 * plane, "output slice must hold 3 planes");
    let raw = tile.as_raw();
    for c in 0..3 {
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (d, px) in dst.iter_mut().zip(raw.chunks_exact(3)) {
            *d = (px[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
}

/// Normalise equally sized square tiles into one `[T, 3, S, S]` C-order buffer.
pub fn normalize_all(tiles: &[RgbImage], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let Some(first) = tiles.first() else { return Vec::new() };
    let per = 3 * first.width() as usize * first.height() as usize;
    let mut out = vec![0f32; per * tiles.len()];
    out.par_chunks_mut(per).zip(tiles).for_each(|(dst, t)| {
        assert_eq!(t.dimensions(), first.dimensions(), "tiles must share one size");
        normalize_tile(t, mean, std, dst)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_chw_and_formula_divides() {
        let mean = [0.485, 0.456, 0.406];
        let std = [0.229, 0.224, 0.225];
        let t = RgbImage::from_fn(2, 2, |x, y| image::Rgb([x as u8 * 255, y as u8 * 17, 3]));
        let v = normalize_all(&[t.clone(), t], mean, std);
        assert_eq!(v.len(), 2 * 3 * 4);
        assert_eq!(v[1], (1.0f32 - 0.485) / 0.229); // R plane, x=1,y=0
        assert_eq!(v[4 + 2], (17.0f32 / 255.0 - 0.456) / 0.224); // G plane, x=0,y=1
        assert_eq!(v[8], (3.0f32 / 255.0 - 0.406) / 0.225); // B plane
        assert_eq!(v[..12], v[12..]);
    }
}
