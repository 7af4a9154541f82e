//! MSAC (Multi-Scale Adaptive Cropping) grid choice, as H2OVL's `load_image_msac`
//! (spec §5.4): pass 1 over `min..=max` tiles, pass 2 over `3..=max` tiles keeping only
//! grids whose width does not divide the pass-1 columns **and** whose height does not
//! divide the pass-1 rows (H2OVL and vLLM use AND; MiniMonkey used OR).
//! The tile order `P2[:-1] + P1[:-1] + P2[-1:]` is assembled in [`super::tiles`].

use super::grid::{candidate_grids, closest_grid, Grid};

/// Minimum tile count of the second pass (hard-coded `min_num=3` in the reference).
pub const PASS2_MIN_TILES: u32 = 3;

/// The two grids of an MSAC split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsacGrids {
    pub pass1: Grid,
    /// `(1, 1)` when no pass-2 candidate survives the filter (see `pass2_fallback`).
    pub pass2: Grid,
    /// True when the filtered pass-2 candidate list was empty. The reference does not
    /// raise: the closest-ratio search returns its `(1, 1)` default.
    pub pass2_fallback: bool,
}

/// Pass-2 candidates: `candidate_grids(3, max)` filtered by the AND-of-non-divisors rule.
// `%` as in the reference (`prior[0] % i != 0`); `is_multiple_of` needs Rust 1.87 > MSRV 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn pass2_candidates(pass1: Grid, max_tiles: u32) -> Vec<Grid> {
    candidate_grids(PASS2_MIN_TILES, max_tiles)
        .into_iter()
        .filter(|&(i, j)| pass1.0 % i != 0 && pass1.1 % j != 0)
        .collect()
}

/// Both MSAC grids for an image of `width × height`.
pub fn msac_grids(width: u32, height: u32, min_tiles: u32, max_tiles: u32, image_size: u32) -> MsacGrids {
    let pass1 = closest_grid(width, height, &candidate_grids(min_tiles, max_tiles), image_size);
    let cands = pass2_candidates(pass1, max_tiles);
    let pass2 = closest_grid(width, height, &cands, image_size);
    MsacGrids { pass1, pass2, pass2_fallback: cands.is_empty() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §5.4 worked-example table (pass-1 and pass-2 grids).
    #[test]
    fn worked_examples() {
        for (w, h, p1, p2, fallback) in [
            (606, 1000, (2, 3), (3, 2), false),
            (1000, 606, (3, 2), (2, 3), false),
            (448, 448, (1, 1), (2, 2), false),
            (2000, 500, (4, 1), (3, 2), false),
            (800, 800, (2, 2), (1, 1), true),
            (1024, 768, (3, 2), (2, 3), false),
        ] {
            let g = msac_grids(w, h, 1, 6, 448);
            assert_eq!(g, MsacGrids { pass1: p1, pass2: p2, pass2_fallback: fallback }, "{w}x{h}");
        }
    }

    /// AND, not OR: for pass 1 = (1, 3), (2, 1)-shaped grids are dropped because 1 % 1 == 0.
    #[test]
    fn filter_is_and_of_non_divisors() {
        let c = pass2_candidates((1, 3), 6);
        assert_eq!(c, vec![(2, 2), (3, 2)]);
        assert!(pass2_candidates((2, 2), 6).is_empty());
    }
}
