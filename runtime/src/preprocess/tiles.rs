//! Cutting an image into 448 tiles (`dynamic_preprocess`, spec §5.2 steps 3–4) and the
//! MSAC combination `P2[:-1] + P1[:-1] + P2[-1:]` (spec §5.4).

use image::RgbImage;

use super::grid::Grid;
use super::resize::resize_bicubic;

/// Resize the whole image to `(S·cols) × (S·rows)` (PIL bicubic, aspect not kept) and crop
/// the tiles left→right, top→bottom: tile k sits at column `k % cols`, row `k / cols`.
/// A `(1, 1)` grid is the image resized to `S × S`.
pub fn grid_tiles(img: &RgbImage, grid: Grid, image_size: u32) -> Vec<RgbImage> {
    let (cols, rows) = grid;
    let resized = resize_bicubic(img, image_size * cols, image_size * rows);
    if grid == (1, 1) {
        return vec![resized];
    }
    (0..cols * rows)
        .map(|k| crop(&resized, (k % cols) * image_size, (k / cols) * image_size, image_size))
        .collect()
}

/// One `size × size` crop (a plain row copy; the box is always inside the image).
pub fn crop(img: &RgbImage, x0: u32, y0: u32, size: u32) -> RgbImage {
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    let mut out = Vec::with_capacity(size as usize * size as usize * 3);
    for y in y0..y0 + size {
        let start = y as usize * stride + x0 as usize * 3;
        out.extend_from_slice(&raw[start..start + size as usize * 3]);
    }
    RgbImage::from_raw(size, size, out).expect("crop buffer size")
}

/// `dynamic_preprocess` output: the grid tiles, plus the thumbnail (the whole image at
/// `S × S`) when requested and the grid has more than one tile.
pub fn pass_tiles(img: &RgbImage, grid: Grid, image_size: u32, use_thumbnail: bool, thumb: &dyn Fn() -> RgbImage) -> Vec<RgbImage> {
    let mut tiles = grid_tiles(img, grid, image_size);
    if use_thumbnail && tiles.len() != 1 {
        tiles.push(thumb());
    }
    tiles
}

/// MSAC order: pass-2 list without its last element, pass-1 list without its last
/// element, then the last element of pass 2 (`images_2[:-1] + images[:-1] + images_2[-1:]`).
pub fn combine_msac(mut p1: Vec<RgbImage>, mut p2: Vec<RgbImage>) -> Vec<RgbImage> {
    let last = p2.pop();
    p1.pop();
    p2.extend(p1);
    p2.extend(last);
    p2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(n: u8) -> RgbImage {
        RgbImage::from_pixel(1, 1, image::Rgb([n, 0, 0]))
    }

    #[test]
    fn msac_combination_order() {
        let tags = |v: &[RgbImage]| v.iter().map(|t| t.get_pixel(0, 0).0[0]).collect::<Vec<_>>();
        // P1 = 3 tiles + thumb(13), P2 = 4 tiles + thumb(24)
        let p1 = vec![tagged(10), tagged(11), tagged(12), tagged(13)];
        let p2 = vec![tagged(20), tagged(21), tagged(22), tagged(23), tagged(24)];
        assert_eq!(tags(&combine_msac(p1, p2)), [20, 21, 22, 23, 10, 11, 12, 24]);
        // Single-tile passes lose that tile when "without its last element".
        assert_eq!(tags(&combine_msac(vec![tagged(1)], vec![tagged(2), tagged(3), tagged(4)])), [2, 3, 4]);
        assert_eq!(tags(&combine_msac(vec![tagged(1), tagged(5), tagged(6)], vec![tagged(2)])), [1, 5, 2]);
    }

    #[test]
    fn crops_are_row_major() {
        let img = RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = crop(&img, 2, 2, 2);
        assert_eq!(c.get_pixel(0, 0).0, [2, 2, 0]);
        assert_eq!(c.get_pixel(1, 1).0, [3, 3, 0]);
    }
}
