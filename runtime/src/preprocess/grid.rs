//! Tile-grid selection, exactly as the reference `dynamic_preprocess` /
//! `find_closest_aspect_ratio` (spec §5.2).
//!
//! The reference builds the candidate grids as a Python `set` and then sorts them by
//! `i * j` with a *stable* sort, so within one product the order is CPython's set
//! iteration order. That order decides exact float ties, so we reproduce it by
//! emulating CPython's tuple hash (xxHash-style, CPython ≥ 3.8) and its set table
//! (open addressing, 9 linear probes then perturbation, resize at 3/5 fill).

/// A grid as `(cols, rows)`.
pub type Grid = (u32, u32);

/// Candidate grids `(i, j)` with `min_num <= i*j <= max_num`, in the reference's order:
/// CPython set-iteration order of the generator, then stably sorted by `i*j`.
pub fn candidate_grids(min_num: u32, max_num: u32) -> Vec<Grid> {
    let mut set = PySet::new();
    // Same generator order as the reference:
    // for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
    for n in min_num.max(1)..=max_num {
        for i in 1..=n {
            for j in 1..=n {
                let p = i as u64 * j as u64;
                if p <= max_num as u64 && p >= min_num as u64 {
                    set.add((i, j));
                }
            }
        }
    }
    let mut grids = set.iter_order();
    grids.sort_by_key(|&(i, j)| i as u64 * j as u64); // stable, like Python's sorted
    grids
}

/// `find_closest_aspect_ratio`: the candidate whose `i/j` is closest to `width/height`.
/// On an exact tie the later candidate wins only if the image has more than half the
/// pixels of that grid. Starts from (and returns, for an empty list) `(1, 1)`.
pub fn closest_grid(width: u32, height: u32, candidates: &[Grid], image_size: u32) -> Grid {
    let aspect = width as f64 / height as f64;
    let area = width as f64 * height as f64; // exact: < 2^53
    let s = image_size as f64;
    let mut best_diff = f64::INFINITY;
    let mut best = (1, 1);
    for &(i, j) in candidates {
        let diff = (aspect - i as f64 / j as f64).abs();
        if diff < best_diff {
            best_diff = diff;
            best = (i, j);
        } else if diff == best_diff && area > 0.5 * s * s * i as f64 * j as f64 {
            best = (i, j);
        }
    }
    best
}

/// Minimal model of a CPython `set` of `(int, int)` tuples: only what decides iteration order.
struct PySet {
    /// Slots: `None` = never used. No deletions happen, so there are no dummies.
    table: Vec<Option<(Grid, u64)>>,
    used: usize,
}

/// CPython `setobject.c` constants.
const PYSET_MINSIZE: usize = 8;
const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;

impl PySet {
    fn new() -> Self {
        PySet { table: vec![None; PYSET_MINSIZE], used: 0 }
    }

    /// `set_add_entry`: probe for the key or the first empty slot, then resize when
    /// `fill * 5 >= mask * 3`.
    fn add(&mut self, key: Grid) {
        let hash = tuple_hash(key);
        let mask = self.table.len() - 1;
        let mut i = hash as usize & mask;
        let mut perturb = hash;
        loop {
            let probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            for p in 0..=probes {
                match self.table[i + p] {
                    None => {
                        self.table[i + p] = Some((key, hash));
                        self.used += 1;
                        // fill == used: nothing is ever deleted.
                        if self.used * 5 >= mask * 3 {
                            let minused = if self.used > 50_000 { self.used * 2 } else { self.used * 4 };
                            self.resize(minused);
                        }
                        return;
                    }
                    Some((k, h)) if h == hash && k == key => return,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        }
    }

    /// `set_table_resize`: smallest power of two > `minused` (at least 8), entries
    /// reinserted in old slot order with `set_insert_clean`.
    fn resize(&mut self, minused: usize) {
        let mut newsize = PYSET_MINSIZE;
        while newsize <= minused {
            newsize <<= 1;
        }
        let old = std::mem::replace(&mut self.table, vec![None; newsize]);
        let mask = newsize - 1;
        for (key, hash) in old.into_iter().flatten() {
            let mut i = hash as usize & mask;
            let mut perturb = hash;
            'probe: loop {
                if self.table[i].is_none() {
                    self.table[i] = Some((key, hash));
                    break 'probe;
                }
                if i + LINEAR_PROBES <= mask {
                    for j in 1..=LINEAR_PROBES {
                        if self.table[i + j].is_none() {
                            self.table[i + j] = Some((key, hash));
                            break 'probe;
                        }
                    }
                }
                perturb >>= PERTURB_SHIFT;
                i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
            }
        }
    }

    fn iter_order(&self) -> Vec<Grid> {
        self.table.iter().flatten().map(|&(k, _)| k).collect()
    }
}

/// CPython (≥ 3.8) `tuplehash` for a 2-tuple of small non-negative ints (`hash(n) == n`).
fn tuple_hash((a, b): Grid) -> u64 {
    const XXPRIME_1: u64 = 11400714785074694791;
    const XXPRIME_2: u64 = 14029467366897019727;
    const XXPRIME_5: u64 = 2870177450012600261;
    let mut acc = XXPRIME_5;
    for lane in [a as u64, b as u64] {
        acc = acc.wrapping_add(lane.wrapping_mul(XXPRIME_2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(XXPRIME_1);
    }
    acc = acc.wrapping_add(2u64 ^ (XXPRIME_5 ^ 3527539));
    if acc == u64::MAX {
        return 1546275796;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order the spec (§5.2) transcribed from CPython for `(1, 6)`.
    #[test]
    fn candidate_order_matches_cpython_for_1_to_6() {
        let want = [
            (1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1),
            (6, 1), (2, 3), (1, 6), (3, 2),
        ];
        assert_eq!(candidate_grids(1, 6), want);
    }

    #[test]
    fn candidate_order_for_3_to_6_is_the_tail() {
        let all = candidate_grids(1, 6);
        assert_eq!(candidate_grids(3, 6), all[3..]);
    }

    #[test]
    fn empty_candidates_give_1x1() {
        assert!(candidate_grids(7, 6).is_empty());
        assert_eq!(closest_grid(2000, 500, &[], 448), (1, 1));
    }

    #[test]
    fn candidates_cover_exactly_the_products_in_range() {
        let c = candidate_grids(2, 12);
        let mut want: Vec<Grid> = Vec::new();
        for i in 1..=12u32 {
            for j in 1..=12u32 {
                if (2..=12).contains(&(i * j)) {
                    want.push((i, j));
                }
            }
        }
        assert_eq!(c.len(), want.len());
        for g in &want {
            assert!(c.contains(g), "{g:?} missing");
        }
        assert!(c.windows(2).all(|w| w[0].0 * w[0].1 <= w[1].0 * w[1].1));
    }

    /// Spec §5.4 worked examples, single-pass column.
    #[test]
    fn single_pass_worked_examples() {
        let c = candidate_grids(1, 6);
        for (w, h, want) in [
            (606, 1000, (2, 3)),
            (1000, 606, (3, 2)),
            (448, 448, (1, 1)),
            (2000, 500, (4, 1)),
            (800, 800, (2, 2)),
            (1024, 768, (3, 2)),
        ] {
            assert_eq!(closest_grid(w, h, &c, 448), want, "{w}x{h}");
        }
    }

    /// 800×800 reaches (2,2) only through the tie rule; a smaller square stays (1,1).
    #[test]
    fn tie_rule_needs_more_than_half_the_grid_pixels() {
        let c = candidate_grids(1, 6);
        // 0.5 * 448² * 4 = 401408 -> 633² = 400689 is below, 634² = 401956 above.
        assert_eq!(closest_grid(633, 633, &c, 448), (1, 1));
        assert_eq!(closest_grid(634, 634, &c, 448), (2, 2));
    }
}
