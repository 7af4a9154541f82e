//! Fitting a request's images to the context (`--pages-mode`): a document of many pages must get
//! an answer, not an arithmetic lesson. When the images do not fit together with the answer
//! budget, the tile budget is lowered uniformly over every image, MSAC first, then `max_num`
//! step by step down to a floor, and the largest budget that fits is used. Each image is then
//! tiled by the reference preprocessing with that `max_num` (the same tiling code, never a
//! resize of our own), so what the model sees is what the reference would give it at that setting.
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::images::TilingOptions;
use super::prompt::TOKENS_PER_TILE;

/// What to do when a request's images do not fit the context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PagesMode {
    /// Fit (lower the tile budget down to the floor); when even the floor does not fit, the
    /// caller reads page by page (`Each`; a plain [`super::Pipeline::chat`] returns the error).
    #[default]
    Auto,
    /// Fit, as `Auto` (named for scripts that want to say so).
    Fit,
    /// Read page by page and combine ([`super::pages`]); on a single request the whole-request
    /// path fits as `Fit` does.
    Each,
    /// Today's error: the prompt must fit at the requested tiling.
    Off,
}

impl FromStr for PagesMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(PagesMode::Auto),
            "fit" => Ok(PagesMode::Fit),
            "each" => Ok(PagesMode::Each),
            "off" => Ok(PagesMode::Off),
            other => bail!("pages mode '{other}': expected auto, fit, each or off"),
        }
    }
}

impl fmt::Display for PagesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PagesMode::Auto => "auto",
            PagesMode::Fit => "fit",
            PagesMode::Each => "each",
            PagesMode::Off => "off",
        })
    }
}

/// The default floor of `max_num` (`--min-tiles`): 2. An A4 page (aspect 0.71) then still gets a
/// 1×2 grid plus the thumbnail: the page at 448×896 (≈ 54 dpi), where at `max_num` 1 it would be
/// squeezed into one 448×448 tile (≈ 38 dpi, 10-pt text ~5 px tall). It costs 3 tiles = 768
/// image positions a page, so an 8192-token context holds 10 pages at the floor.
pub const DEFAULT_MIN_TILES: usize = 2;

/// The tilings to try, best first: the request's own (`max_tiles`, MSAC if it applies), then
/// MSAC off, then `max_num` one lower at a time down to `floor`.
pub fn levels(max_tiles: usize, floor: usize, msac: bool) -> Vec<TilingOptions> {
    let mut v = Vec::new();
    if msac {
        v.push(TilingOptions { max_tiles, msac: true });
    }
    let floor = floor.clamp(1, max_tiles.max(1));
    v.extend((floor..=max_tiles).rev().map(|m| TilingOptions { max_tiles: m, msac: false }));
    v
}

/// The tiling a request was fitted to, for the one line that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitChoice {
    pub images: usize,
    /// The requested tiling and the one used.
    pub requested: TilingOptions,
    pub used: TilingOptions,
    /// Tiles of the request at the requested tiling and at the one used.
    pub tiles_requested: usize,
    pub tiles: usize,
    /// Context size the prompt + answer budget had to fit.
    pub limit: usize,
}

impl FitChoice {
    pub fn positions(&self) -> usize {
        self.tiles * TOKENS_PER_TILE
    }
}

impl fmt::Display for FitChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msac = if self.requested.msac { ", MSAC off" } else { "" };
        write!(
            f,
            "{} image{} at max {} tiles each{msac} ({} tiles instead of {}): {} image positions of a {}-token context",
            self.images,
            if self.images == 1 { "" } else { "s" },
            self.used.max_tiles,
            self.tiles,
            self.tiles_requested,
            self.positions(),
            self.limit
        )
    }
}

/// The first of `levels` whose images fit: `fixed` = prompt tokens besides the image positions
/// plus the answer budget, `tiles(level)` = the request's tile count at that level. `None` when
/// even the last level (the floor) does not fit; index 0 when no lowering is needed.
pub fn choose(levels: &[TilingOptions], fixed: usize, limit: usize, mut tiles: impl FnMut(&TilingOptions) -> Result<usize>) -> Result<Option<(usize, usize)>> {
    for (i, lv) in levels.iter().enumerate() {
        let t = tiles(lv)?;
        if fixed + t * TOKENS_PER_TILE <= limit {
            return Ok(Some((i, t)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_drop_msac_first_then_max_num_down_to_the_floor() {
        let t = |m, msac| TilingOptions { max_tiles: m, msac };
        assert_eq!(levels(6, 2, true), vec![t(6, true), t(6, false), t(5, false), t(4, false), t(3, false), t(2, false)]);
        assert_eq!(levels(3, 1, false), vec![t(3, false), t(2, false), t(1, false)]);
        // A floor above the maximum is the maximum (the CLI refuses it before this).
        assert_eq!(levels(2, 5, false), vec![t(2, false)]);
    }

    #[test]
    fn choose_takes_the_largest_budget_that_fits() {
        let lv = levels(6, 2, false);
        // 7 tiles at 6, 3 below 6 (an A4 page): 100 fixed tokens, limit 1000 → 3 tiles fit.
        let tiles = |l: &TilingOptions| Ok(if l.max_tiles >= 6 { 7 } else { 3 });
        assert_eq!(choose(&lv, 100, 1000, tiles).unwrap(), Some((1, 3)));
        assert_eq!(choose(&lv, 100, 2000, tiles).unwrap(), Some((0, 7)));
        assert_eq!(choose(&lv, 100, 800, tiles).unwrap(), None);
    }

    #[test]
    fn parses_and_says_what_was_chosen() {
        for m in [PagesMode::Auto, PagesMode::Fit, PagesMode::Each, PagesMode::Off] {
            assert_eq!(m.to_string().parse::<PagesMode>().unwrap(), m);
        }
        assert!("pages".parse::<PagesMode>().is_err());
        let c = FitChoice {
            images: 6,
            requested: TilingOptions { max_tiles: 6, msac: false },
            used: TilingOptions { max_tiles: 3, msac: false },
            tiles_requested: 42,
            tiles: 18,
            limit: 8192,
        };
        assert_eq!(c.to_string(), "6 images at max 3 tiles each (18 tiles instead of 42): 4608 image positions of a 8192-token context");
    }
}
