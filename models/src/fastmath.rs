//! Branch-free f32 `ln` and `sin/cos` for the Gaussian generator.
//!
//! Why not `f32::ln`/`sin_cos`: those are libm calls (one at a time, ~10 ns/value, and their last
//! bit differs between platforms' libms). These are plain IEEE add/mul/div/sqrt polynomials, so a
//! loop over them auto-vectorises and a seed gives the same bytes on every platform. Accuracy
//! (≈1e-7, tested against f64 std) is far below the bf16 output resolution (2^-9 relative).

use std::f32::consts::{LN_2, SQRT_2, TAU};

/// Natural log of a positive normal f32 (the generator passes values in [2^-24, 1]).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    // x = 2^e · m with m in [1, 2); recentre m into [√½, √2) so |s| below stays ≤ 0.172.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = e + big as i32;
    // ln m = 2·atanh(s), s = (m−1)/(m+1) = 2(s + s³/3 + s⁵/5 + …); truncation error < 1e-9.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let p = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f32 * LN_2 + 2.0 * s * p
}

/// (sin, cos) of 2π·u for u in [0, 1) ("turns").
#[inline(always)]
pub fn sincos_turns(u: f32) -> (f32, f32) {
    // Nearest quarter turn k (0..=4); the remainder f in [-1/8, 1/8] is exact in f32.
    let k = (4.0 * u + 0.5) as i32;
    let f = u - 0.25 * k as f32;
    let a = TAU * f; // |a| ≤ π/4: Taylor to a^11 / a^12 is exact to < 1e-10
    let a2 = a * a;
    let s = a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0 * (1.0 - a2 / 110.0)))));
    let c = 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0 * (1.0 - a2 / 56.0 * (1.0 - a2 / 90.0 * (1.0 - a2 / 132.0)))));
    // Rotate by k quarter turns: (s, c) → (c, −s) per quarter.
    let odd = k & 1 != 0;
    let (s, c) = if odd { (c, -s) } else { (s, c) };
    let flip = k & 2 != 0;
    if flip {
        (-s, -c)
    } else {
        (s, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_matches_f64() {
        let mut worst = 0f64;
        // Every 24-bit uniform the generator can feed (1 − k·2^-24), subsampled, plus edges.
        for k in (0..(1u32 << 24)).step_by(997).chain([1, (1 << 24) - 1]) {
            let x = 1.0 - k as f32 / (1u32 << 24) as f32;
            let x = if x == 0.0 { 1.0 / (1u32 << 24) as f32 } else { x };
            let want = (x as f64).ln();
            worst = worst.max((ln(x) as f64 - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 1e-6, "ln worst relative error {worst}");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn sincos_matches_f64() {
        let mut worst = 0f64;
        for k in (0..(1u32 << 24)).step_by(991).chain([(1 << 22) - 1, 1 << 22, (1 << 23) + 1, (1 << 24) - 1]) {
            let u = k as f32 / (1u32 << 24) as f32;
            let (s, c) = sincos_turns(u);
            let (ws, wc) = (std::f64::consts::TAU * u as f64).sin_cos();
            worst = worst.max((s as f64 - ws).abs()).max((c as f64 - wc).abs());
        }
        assert!(worst < 1e-6, "sincos worst abs error {worst}");
    }
}
