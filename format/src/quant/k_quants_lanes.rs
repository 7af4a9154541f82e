//! Lane-parallel twins of [`k_quants::make_qkx2_quants`] (Q4_K) and [`k_quants::make_qx_quants`]
//! (Q6_K): the sub-blocks of one super-block are searched side by side, one per SIMD lane.
//!
//! Why this is still byte-exact: each lane performs exactly the scalar routine's f32 operations in
//! the scalar order (sums stay sequential *within* a lane; only independent sub-blocks run
//! together), and data-dependent branches become per-lane selects. The searches are long chains of
//! dependent additions, so running 8 or 16 chains at once is where the speed comes from.
//!
//! One body per routine, written over `[f32; N]` lane arrays, compiled twice: a portable build
//! (SSE2 / NEON auto-vectorisation) and, on x86-64, an AVX2 build chosen at run time with
//! `is_x86_feature_detected!`. AVX2 only widens the vectors; Rust never contracts `a*b + c` into
//! an FMA, so both builds give identical bits. Tests below hold both equal to the scalar routines.
//!
//! Data layout: transposed, `x[i][lane]` = element i of sub-block `lane`.
//!
//! [`k_quants::make_qkx2_quants`]: super::k_quants::make_qkx2_quants
//! [`k_quants::make_qx_quants`]: super::k_quants::make_qx_quants

use super::k_quants::GROUP_MAX_EPS;

/// Q4_K: 8 sub-blocks of 32 per super-block.
pub const QKX2_LANES: usize = 8;
/// Q6_K: 16 sub-blocks of 16 per super-block.
pub const QX_LANES: usize = 16;

type V8 = [f32; QKX2_LANES];
type V16 = [f32; QX_LANES];

/// The one dispatch point: AVX2 when the CPU has it, unless `H2OVL_QUANT_ISA=portable` (read
/// once) pins the portable build — handy when bisecting a parity problem; bytes never change.
#[cfg(target_arch = "x86_64")]
fn use_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        let pinned = std::env::var("H2OVL_QUANT_ISA").is_ok_and(|v| v.eq_ignore_ascii_case("portable"));
        !pinned && std::is_x86_feature_detected!("avx2")
    })
}

/// `nearest_int` on a lane, as f32 (the value is an integer; callers clamp it).
#[inline(always)]
fn nearest_int_i(f: f32) -> i32 {
    let val = f + 12_582_912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Q4_K's search (nmax 15, rmin −1, rdelta 0.1, nstep 20, squared error) for 8 sub-blocks of 32
/// at once. Writes the quants to `l[i][lane]` and returns per-lane `(scale, -min)`.
pub fn make_qkx2_quants_q4k(x: &[V8; 32], w: &[V8; 32], l: &mut [[u8; QKX2_LANES]; 32]) -> (V8, V8) {
    #[cfg(target_arch = "x86_64")]
    {
        if use_avx2() {
            // SAFETY: use_avx2() only returns true when the CPU supports AVX2.
            return unsafe { qkx2_avx2(x, w, l) };
        }
    }
    qkx2_body(x, w, l)
}

/// Portable build of the Q4_K lane search (public so tests can pin each build).
pub fn make_qkx2_quants_q4k_portable(x: &[V8; 32], w: &[V8; 32], l: &mut [[u8; QKX2_LANES]; 32]) -> (V8, V8) {
    qkx2_body(x, w, l)
}

/// AVX2 twin of [`qkx2_body`] with explicit intrinsics (one `__m256` = the 8 sub-blocks):
/// the auto-vectoriser left the portable body mostly scalar. Every `if` of the scalar routine is a
/// compare + blend with the same NaN behaviour (ordered, non-signalling compares), and min/max use
/// blends rather than `vminps`/`vmaxps`, whose operand-order NaN rules differ from C's `<`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn qkx2_avx2(x: &[V8; 32], w: &[V8; 32], l: &mut [[u8; QKX2_LANES]; 32]) -> (V8, V8) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn ld(v: &V8) -> __m256 {
        _mm256_loadu_ps(v.as_ptr())
    }
    /// clamp(nearest_int(iscale·(x − min)), 0, 15) as f32.
    #[inline(always)]
    unsafe fn quant(iscale: __m256, x: __m256, min: __m256) -> __m256 {
        let val = _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_sub_ps(x, min)), _mm256_set1_ps(12_582_912.0));
        let bits = _mm256_and_si256(_mm256_castps_si256(val), _mm256_set1_epi32(0x007f_ffff));
        let q = _mm256_sub_epi32(bits, _mm256_set1_epi32(0x0040_0000));
        let q = _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(15)), _mm256_setzero_si256());
        _mm256_cvtepi32_ps(q)
    }
    let zero = _mm256_setzero_ps();
    let mut min = ld(&x[0]);
    let mut max = min;
    let mut sum_w = ld(&w[0]);
    let mut sum_x = _mm256_mul_ps(sum_w, min);
    for i in 1..32 {
        let (v, wi) = (ld(&x[i]), ld(&w[i]));
        min = _mm256_blendv_ps(min, v, _mm256_cmp_ps::<_CMP_LT_OQ>(v, min));
        max = _mm256_blendv_ps(max, v, _mm256_cmp_ps::<_CMP_GT_OQ>(v, max));
        sum_w = _mm256_add_ps(sum_w, wi);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wi, v));
    }
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps::<_CMP_GT_OQ>(min, zero));
    let flat = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
    let iscale = _mm256_div_ps(_mm256_set1_ps(15.0), _mm256_sub_ps(max, min));
    let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
    let mut lf = [zero; 32];
    let mut best = zero;
    for i in 0..32 {
        let (v, wi) = (ld(&x[i]), ld(&w[i]));
        let q = quant(iscale, v, min);
        lf[i] = q;
        let diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, q), min), v);
        best = _mm256_add_ps(best, _mm256_mul_ps(wi, _mm256_mul_ps(diff, diff)));
    }
    let mut laux = [zero; 32];
    for is in 0..=20 {
        // Same scalar f32 expression as ggml: (rmin + rdelta·is) + nmax.
        let num = -1.0f32 + 0.1f32 * is as f32 + 15.0;
        let iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..32 {
            let (v, wi) = (ld(&x[i]), ld(&w[i]));
            let q = quant(iscale, v, min);
            laux[i] = q;
            let wq = _mm256_mul_ps(wi, q);
            sum_l = _mm256_add_ps(sum_l, wq);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wq, q));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wq, v));
        }
        let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        let ok = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
        let s = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), d);
        let m = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), d);
        let clamp_min = _mm256_cmp_ps::<_CMP_GT_OQ>(m, zero);
        let this_min = _mm256_blendv_ps(m, zero, clamp_min);
        let this_scale = _mm256_blendv_ps(s, _mm256_div_ps(sum_xl, sum_l2), clamp_min);
        let mut cur = zero;
        for i in 0..32 {
            let (v, wi) = (ld(&x[i]), ld(&w[i]));
            let diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, laux[i]), this_min), v);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(wi, _mm256_mul_ps(diff, diff)));
        }
        // Flat lanes returned early in the scalar routine: they never take a step.
        let win = _mm256_andnot_ps(flat, _mm256_and_ps(ok, _mm256_cmp_ps::<_CMP_LT_OQ>(cur, best)));
        if _mm256_movemask_ps(win) != 0 {
            best = _mm256_blendv_ps(best, cur, win);
            scale = _mm256_blendv_ps(scale, this_scale, win);
            min = _mm256_blendv_ps(min, this_min, win);
            for i in 0..32 {
                lf[i] = _mm256_blendv_ps(lf[i], laux[i], win);
            }
        }
    }
    scale = _mm256_blendv_ps(scale, zero, flat);
    let neg_min = _mm256_xor_ps(min, _mm256_set1_ps(-0.0)); // C's unary minus: a sign flip
    let (mut scale_out, mut neg_min_out) = ([0f32; 8], [0f32; 8]);
    _mm256_storeu_ps(scale_out.as_mut_ptr(), scale);
    _mm256_storeu_ps(neg_min_out.as_mut_ptr(), neg_min);
    for i in 0..32 {
        let q = _mm256_cvtps_epi32(_mm256_blendv_ps(lf[i], zero, flat));
        let mut lanes = [0i32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), q);
        for k in 0..8 {
            l[i][k] = lanes[k] as u8;
        }
    }
    (scale_out, neg_min_out)
}

#[inline(always)]
fn qkx2_body(x: &[V8; 32], w: &[V8; 32], l: &mut [[u8; QKX2_LANES]; 32]) -> (V8, V8) {
    const NMAX: f32 = 15.0;
    const N: usize = QKX2_LANES;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = w[0];
    let mut sum_x = [0f32; N];
    for k in 0..N {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..32 {
        for k in 0..N {
            let v = x[i][k];
            min[k] = if v < min[k] { v } else { min[k] };
            max[k] = if v > max[k] { v } else { max[k] };
            sum_w[k] += w[i][k];
            sum_x[k] += w[i][k] * v;
        }
    }
    let mut flat = [false; N];
    let mut iscale = [0f32; N];
    let mut scale = [0f32; N];
    for k in 0..N {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        flat[k] = max[k] == min[k];
        iscale[k] = NMAX / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    // Initial guess and its error; quants kept as f32 (exact small integers).
    let mut lf = [[0f32; N]; 32];
    let mut best = [0f32; N];
    for i in 0..32 {
        for k in 0..N {
            let q = nearest_int_i(iscale[k] * (x[i][k] - min[k])).clamp(0, 15) as f32;
            lf[i][k] = q;
            let diff = scale[k] * q + min[k] - x[i][k];
            best[k] += w[i][k] * (diff * diff);
        }
    }
    let mut laux = [[0f32; N]; 32];
    for is in 0..=20 {
        let mut sum_l = [0f32; N];
        let mut sum_l2 = [0f32; N];
        let mut sum_xl = [0f32; N];
        for k in 0..N {
            iscale[k] = (-1.0f32 + 0.1f32 * is as f32 + NMAX) / (max[k] - min[k]);
        }
        for i in 0..32 {
            for k in 0..N {
                let q = nearest_int_i(iscale[k] * (x[i][k] - min[k])).clamp(0, 15) as f32;
                laux[i][k] = q;
                let wq = w[i][k] * q;
                sum_l[k] += wq;
                sum_l2[k] += wq * q;
                sum_xl[k] += wq * x[i][k];
            }
        }
        let mut ok = [false; N];
        let mut this_scale = [0f32; N];
        let mut this_min = [0f32; N];
        for k in 0..N {
            let d = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            ok[k] = d > 0.0;
            let s = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / d;
            let m = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / d;
            let clamp_min = m > 0.0;
            this_min[k] = if clamp_min { 0.0 } else { m };
            this_scale[k] = if clamp_min { sum_xl[k] / sum_l2[k] } else { s };
        }
        let mut cur = [0f32; N];
        for i in 0..32 {
            for k in 0..N {
                let diff = this_scale[k] * laux[i][k] + this_min[k] - x[i][k];
                cur[k] += w[i][k] * (diff * diff);
            }
        }
        let mut win = [false; N];
        for k in 0..N {
            // Flat lanes returned early in the scalar routine: they never take a step.
            win[k] = ok[k] && cur[k] < best[k] && !flat[k];
            if win[k] {
                best[k] = cur[k];
                scale[k] = this_scale[k];
                min[k] = this_min[k];
            }
        }
        for i in 0..32 {
            for k in 0..N {
                lf[i][k] = if win[k] { laux[i][k] } else { lf[i][k] };
            }
        }
    }
    let mut neg_min = [0f32; N];
    for k in 0..N {
        if flat[k] {
            scale[k] = 0.0;
        }
        neg_min[k] = -min[k];
    }
    for i in 0..32 {
        for k in 0..N {
            l[i][k] = if flat[k] { 0 } else { lf[i][k] as u8 };
        }
    }
    (scale, neg_min)
}

/// Q6_K's search (`make_qx_quants`, nmax 32, rmse_type 1) for 16 sub-blocks of 16 at once.
/// Writes `L` (biased by 32) to `l[i][lane]` and returns the per-lane scales.
pub fn make_qx_quants_q6k(x: &[V16; 16], l: &mut [[i8; QX_LANES]; 16]) -> V16 {
    #[cfg(target_arch = "x86_64")]
    {
        if use_avx2() {
            // SAFETY: use_avx2() only returns true when the CPU supports AVX2.
            return unsafe { qx_avx2(x, l) };
        }
    }
    qx_body(x, l)
}

/// Portable build of the Q6_K lane search (public so tests can pin each build).
pub fn make_qx_quants_q6k_portable(x: &[V16; 16], l: &mut [[i8; QX_LANES]; 16]) -> V16 {
    qx_body(x, l)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn qx_avx2(x: &[V16; 16], l: &mut [[i8; QX_LANES]; 16]) -> V16 {
    qx_body(x, l)
}

/// Σ (w·x)·q and Σ (w·q)·q with w = x², q = clamp(nearest_int(iscale·x), −32, 31), per lane.
#[inline(always)]
fn qx_sums(x: &[V16; 16], iscale: &V16) -> (V16, V16) {
    let mut sumlx = [0f32; QX_LANES];
    let mut suml2 = [0f32; QX_LANES];
    for xi in x {
        for k in 0..QX_LANES {
            let v = xi[k];
            let q = nearest_int_i(iscale[k] * v).clamp(-32, 31) as f32;
            let wv = v * v;
            sumlx[k] += wv * v * q;
            suml2[k] += wv * q * q;
        }
    }
    (sumlx, suml2)
}

#[inline(always)]
fn qx_body(x: &[V16; 16], l: &mut [[i8; QX_LANES]; 16]) -> V16 {
    const N: usize = QX_LANES;
    const NMAX: f32 = 32.0;
    let mut max = [0f32; N];
    let mut amax = [0f32; N];
    for xi in x {
        for k in 0..N {
            let ax = xi[k].abs();
            let take = ax > amax[k];
            amax[k] = if take { ax } else { amax[k] };
            max[k] = if take { xi[k] } else { max[k] };
        }
    }
    let mut iscale = [0f32; N];
    for k in 0..N {
        iscale[k] = -NMAX / max[k];
    }
    let mut best_iscale = iscale;
    let (sumlx, suml2) = qx_sums(x, &iscale);
    let mut scale = [0f32; N];
    let mut best = [0f32; N];
    for k in 0..N {
        scale[k] = if suml2[k] != 0.0 { sumlx[k] / suml2[k] } else { 0.0 };
        best[k] = scale[k] * sumlx[k];
    }
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        for k in 0..N {
            iscale[k] = -(NMAX + 0.1f32 * is as f32) / max[k];
        }
        let (sumlx, suml2) = qx_sums(x, &iscale);
        for k in 0..N {
            if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best[k] * suml2[k] {
                best_iscale[k] = iscale[k];
                scale[k] = sumlx[k] / suml2[k];
                best[k] = scale[k] * sumlx[k];
            }
        }
    }
    // L depends only on the winning iscale, so it is computed once at the end.
    let zero: [bool; N] = std::array::from_fn(|k| amax[k] < GROUP_MAX_EPS);
    for (xi, li) in x.iter().zip(l.iter_mut()) {
        for k in 0..N {
            let q = nearest_int_i(best_iscale[k] * xi[k]).clamp(-32, 31) + 32;
            li[k] = if zero[k] { 0 } else { q as i8 };
        }
    }
    for k in 0..N {
        if zero[k] {
            scale[k] = 0.0;
        }
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::super::k_quants::{make_qkx2_quants, make_qx_quants, Qkx2Params};
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// Sub-block generators covering the branches: mixed signs, all positive (min clamps to 0),
    /// constant (flat), zeros, tiny (below GROUP_MAX_EPS), one spike, subnormals, and the
    /// non-finite inputs (inf, NaN) whose compares must behave like C's.
    fn sub_block(kind: usize, n: usize, seed: &mut u64) -> Vec<f32> {
        let s = 10f32.powi((kind % 7) as i32 - 4);
        (0..n)
            .map(|i| match kind % 9 {
                0 => lcg(seed) * s,
                1 => (lcg(seed) + 0.5) * s,
                2 => -0.37 * s,
                3 => 0.0,
                4 => lcg(seed) * 1e-16,
                5 => if i == 3 { s } else { lcg(seed) * s * 1e-3 },
                6 => lcg(seed) * 1e-39,
                7 => if i % 5 == 1 { f32::INFINITY } else { lcg(seed) * s },
                _ => if i % 7 == 2 { f32::NAN } else { lcg(seed) * s },
            })
            .collect()
    }

    #[test]
    fn qkx2_lanes_equal_scalar() {
        let p = Qkx2Params { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
        let mut seed = 1u64;
        for round in 0..300 {
            let subs: Vec<Vec<f32>> = (0..8).map(|k| sub_block(round * 8 + k, 32, &mut seed)).collect();
            let mut x = [[0f32; 8]; 32];
            let mut w = [[0f32; 8]; 32];
            for (k, sb) in subs.iter().enumerate() {
                let av = (sb.iter().fold(0f32, |a, v| a + v * v) / 32.0).sqrt();
                for i in 0..32 {
                    x[i][k] = sb[i];
                    w[i][k] = av + sb[i].abs();
                }
            }
            let mut l_fast = [[0u8; 8]; 32];
            let mut l_port = [[0u8; 8]; 32];
            let (s_fast, m_fast) = make_qkx2_quants_q4k(&x, &w, &mut l_fast);
            let (s_port, m_port) = make_qkx2_quants_q4k_portable(&x, &w, &mut l_port);
            for k in 0..8 {
                let wk: Vec<f32> = (0..32).map(|i| w[i][k]).collect();
                let (mut l, mut laux) = ([0u8; 32], [0u8; 32]);
                let (s, m) = make_qkx2_quants(&subs[k], &wk, &mut l, &mut laux, &p);
                for (name, sv, mv, lv) in [("dispatch", s_fast, m_fast, &l_fast), ("portable", s_port, m_port, &l_port)] {
                    assert_eq!((sv[k].to_bits(), mv[k].to_bits()), (s.to_bits(), m.to_bits()), "{name} round {round} lane {k}");
                    assert!((0..32).all(|i| lv[i][k] == l[i]), "{name} round {round} lane {k}: quants");
                }
            }
        }
    }

    #[test]
    fn qx_lanes_equal_scalar() {
        let mut seed = 2u64;
        for round in 0..300 {
            let subs: Vec<Vec<f32>> = (0..16).map(|k| sub_block(round * 16 + k, 16, &mut seed)).collect();
            let mut x = [[0f32; 16]; 16];
            for (k, sb) in subs.iter().enumerate() {
                for i in 0..16 {
                    x[i][k] = sb[i];
                }
            }
            let mut l_fast = [[0i8; 16]; 16];
            let mut l_port = [[0i8; 16]; 16];
            let s_fast = make_qx_quants_q6k(&x, &mut l_fast);
            let s_port = make_qx_quants_q6k_portable(&x, &mut l_port);
            for k in 0..16 {
                let mut l = [0i8; 16];
                let s = make_qx_quants(32, &subs[k], &mut l);
                for (name, sv, lv) in [("dispatch", s_fast, &l_fast), ("portable", s_port, &l_port)] {
                    assert_eq!(sv[k].to_bits(), s.to_bits(), "{name} round {round} lane {k}");
                    assert!((0..16).all(|i| lv[i][k] == l[i]), "{name} round {round} lane {k}: quants");
                }
            }
        }
    }
}
