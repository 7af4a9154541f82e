//! The render resolution of a page: enough pixels for the tile grid the model will cut from
//! it, and no more.
//!
//! Preprocessing resizes a page to `448·cols × 448·rows` (the grid picked from its aspect
//! ratio, spec §5.2) and, with MSAC (2B, single image), also to its pass-2 grid. Rendering
//! below that size means the tiles are *upscaled* (blurry text); above it, the extra pixels are
//! thrown away by the resize. So the automatic DPI is, per page, the smallest DPI at which the
//! page covers every grid it may be resized to. For portrait A4 / Letter the grid is 2×3
//! (896×1344 px): 115 / 123 dpi; with MSAC the pass-2 grid is 3×2 (1344×896 px), which
//! needs 1344 px across the page width: 163 / 159 dpi.
use crate::preprocess::grid::{candidate_grids, closest_grid};
use crate::preprocess::msac::msac_grids;

/// PDF user-space units per inch.
pub const POINTS_PER_INCH: f64 = 72.0;
/// Tile side of the model.
const TILE: u32 = 448;
/// Bounds of the automatic DPI: a tiny page (a 1-inch label) is not rendered at 2000 dpi,
/// a poster not at 3 dpi.
pub const AUTO_DPI_MIN: f64 = 36.0;
pub const AUTO_DPI_MAX: f64 = 300.0;

/// How the render resolution is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Dpi {
    /// Per page, from the tile grid (see the module docs).
    #[default]
    Auto,
    /// This many pixels per inch for every page.
    Fixed(f64),
}

impl std::str::FromStr for Dpi {
    type Err = String;
    fn from_str(s: &str) -> Result<Dpi, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Dpi::Auto);
        }
        let v: f64 = s.trim().parse().map_err(|_| format!("--dpi must be a number or `auto`, got {s:?}"))?;
        if !(1.0..=2400.0).contains(&v) {
            return Err(format!("--dpi must be between 1 and 2400, got {s}"));
        }
        Ok(Dpi::Fixed(v))
    }
}

/// The tiling the rendered pages will go through (it decides the automatic DPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilingHint {
    /// `--max-tiles` (6 by default).
    pub max_tiles: u32,
    /// Whether a page may be tiled with MSAC (2B model, the page is the only image).
    pub msac: bool,
}

impl Default for TilingHint {
    fn default() -> Self {
        TilingHint { max_tiles: 6, msac: false }
    }
}

/// Pixel size `(w, h)` the tiling resizes a `w × h` image to, at most (both MSAC passes).
pub fn grid_target(w: u32, h: u32, t: &TilingHint) -> (u32, u32) {
    let max = t.max_tiles.max(1);
    let (mut cols, mut rows) = closest_grid(w, h, &candidate_grids(1, max), TILE);
    if t.msac {
        let g = msac_grids(w, h, 1, max, TILE);
        cols = cols.max(g.pass1.0).max(g.pass2.0);
        rows = rows.max(g.pass1.1).max(g.pass2.1);
    }
    // The thumbnail (448×448) is covered by any grid.
    (TILE * cols, TILE * rows)
}

/// The automatic DPI for a page of `w_pt × h_pt` points (rotation already applied).
pub fn auto_dpi(w_pt: f64, h_pt: f64, t: &TilingHint) -> f64 {
    // The grid depends on the aspect ratio; evaluate it on the page at 1 px per point
    // (at least 1 px per side).
    let (tw, th) = grid_target(w_pt.round().max(1.0) as u32, h_pt.round().max(1.0) as u32, t);
    let need = (tw as f64 / w_pt).max(th as f64 / h_pt) * POINTS_PER_INCH;
    need.ceil().clamp(AUTO_DPI_MIN, AUTO_DPI_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A4: (f64, f64) = (595.0, 842.0);
    const LETTER: (f64, f64) = (612.0, 792.0);

    #[test]
    fn auto_dpi_covers_the_grid_exactly() {
        let plain = TilingHint::default();
        let msac = TilingHint { msac: true, ..plain };
        for (w, h) in [A4, LETTER, (842.0, 595.0), (300.0, 2000.0)] {
            for t in [plain, msac] {
                let dpi = auto_dpi(w, h, &t);
                let (tw, th) = grid_target(w as u32, h as u32, &t);
                let px = |pt: f64, d: f64| (pt * d / POINTS_PER_INCH).floor() as u32;
                // Enough pixels at this DPI, not enough one DPI lower (unless clamped).
                assert!(px(w, dpi) >= tw && px(h, dpi) >= th, "{w}x{h} {t:?} at {dpi}");
                if dpi > AUTO_DPI_MIN {
                    assert!(px(w, dpi - 1.0) < tw || px(h, dpi - 1.0) < th, "{w}x{h} {t:?}: {dpi} is more than needed");
                }
            }
        }
        // The numbers the help text quotes.
        assert_eq!(grid_target(595, 842, &plain), (896, 1344));
        assert_eq!(auto_dpi(A4.0, A4.1, &plain), 115.0);
        assert_eq!(auto_dpi(LETTER.0, LETTER.1, &plain), 123.0);
        assert_eq!(auto_dpi(A4.0, A4.1, &msac), 163.0);
        assert_eq!(auto_dpi(LETTER.0, LETTER.1, &msac), 159.0);
    }

    #[test]
    fn dpi_flag_parses() {
        assert_eq!("auto".parse::<Dpi>(), Ok(Dpi::Auto));
        assert_eq!("150".parse::<Dpi>(), Ok(Dpi::Fixed(150.0)));
        assert!("0".parse::<Dpi>().is_err());
        assert!("lots".parse::<Dpi>().is_err());
    }
}
