//! Shared pieces of ggml's K-quants (ggml-quants.c "2-6 bit quantization in super-blocks"):
//! `nearest_int`, the weighted min/scale search `make_qkx2_quants` (Q4_K) and the symmetric
//! scale search `make_qx_quants` (Q6_K), plus Q4_K's 6-bit scale/min packing.
//!
//! Every float expression keeps ggml's operand order and is evaluated as separate f32 operations
//! (no FMA), so the chosen scales — and therefore the bytes — match ggml-base on x86-64.

/// Elements per K-quant super-block (`QK_K`).
pub const QK_K: usize = 256;

/// Below this max |x| a group counts as all-zero (`GROUP_MAX_EPS`).
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adds 1.5·2^23 so the FPU rounds (ties to even) into the low mantissa
/// bits, then reads them back. Exact for |f| < 2^22; outside that ggml only `assert`s (compiled
/// out in release builds), so we reproduce the same bit arithmetic rather than saturating.
#[inline]
pub fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Working buffers and tuning knobs of [`make_qkx2_quants`], as Q4_K passes them.
pub struct Qkx2Params {
    /// Largest quant value (15 for 4 bits).
    pub nmax: i32,
    /// First offset tried on `nmax` for the scale search (`rmin`).
    pub rmin: f32,
    /// Step of that offset (`rdelta`).
    pub rdelta: f32,
    /// Number of extra steps (`nstep`), tried for is = 0..=nstep.
    pub nstep: i32,
    /// Absolute instead of squared error (`use_mad`).
    pub use_mad: bool,
}

/// ggml's `make_qkx2_quants`: find `scale` and `min ≤ 0` so that `x ≈ scale·L + min` with
/// `L ∈ [0, nmax]`, minimising the `weights`-weighted error. Writes the quants to `l` and returns
/// `(scale, -min)`. `laux` is scratch of the same length as `x`.
pub fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    p: &Qkx2Params,
) -> (f32, f32) {
    let n = x.len();
    let nmax_f = p.nmax as f32;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
        l[i] = q as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        let diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if p.use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (the only form Q6_K's
/// reference quantizer uses): symmetric quants `L - nmax ∈ [-nmax, nmax-1]` with weights x²,
/// trying 19 scales around `-nmax/max`. Writes `L` (biased by `nmax`) and returns the scale.
pub fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Σ (w·x)·l and Σ (w·l)·l with w = x², in ggml's order.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let q = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let fill = |l: &mut [i8], iscale: f32| {
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (quant(iscale, v) + nmax) as i8;
        }
    };

    let iscale = -(nmax as f32) / max;
    fill(l, iscale);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(l, iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `get_scale_min_k4`: the 6-bit (scale, min) of sub-block `j` from Q4_K's 12 packed bytes.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Inverse of [`get_scale_min_k4`]: packs eight 6-bit scales and mins into 12 bytes.
pub fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(3.49), 3);
        assert_eq!(nearest_int(-31.7), -32);
        for i in -1000..1000 {
            let f = i as f32 * 0.37;
            assert_eq!(nearest_int(f), f.round_ties_even() as i32, "{f}");
        }
    }

    #[test]
    fn scale_min_packing_round_trips() {
        let ls = [0, 1, 17, 63, 32, 15, 48, 63];
        let lm = [63, 2, 33, 0, 16, 47, 1, 62];
        let packed = pack_scale_min_k4(&ls, &lm);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &packed), (ls[j], lm[j]), "sub-block {j}");
        }
    }

    #[test]
    fn qkx2_fits_an_affine_ramp_exactly() {
        // x = 0.5·i - 3 on 0..16 is exactly representable as scale·L + min with L = i.
        let x: Vec<f32> = (0..16).map(|i| 0.5 * i as f32 - 3.0).collect();
        let w = vec![1.0f32; 16];
        let (mut l, mut laux) = ([0u8; 16], [0u8; 16]);
        let p = Qkx2Params { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
        let (scale, neg_min) = make_qkx2_quants(&x, &w, &mut l, &mut laux, &p);
        assert!((scale - 0.5).abs() < 1e-6, "scale {scale}");
        assert!((neg_min - 3.0).abs() < 1e-5, "min {neg_min}");
        for (i, &q) in l.iter().enumerate() {
            assert_eq!(q as usize, i);
        }
    }

    #[test]
    fn qx_quants_reconstructs_within_one_step() {
        let x: Vec<f32> = (0..16).map(|i| ((i * 7 % 16) as f32 - 7.5) * 0.013).collect();
        let mut l = [0i8; 16];
        let scale = make_qx_quants(32, &x, &mut l);
        assert!(scale != 0.0);
        for (&v, &q) in x.iter().zip(&l) {
            assert!((0..64).contains(&q));
            let err = (scale * (q as i32 - 32) as f32 - v).abs();
            // Half a step inside the range; the +nmax end is clamped to nmax-1, costing one step.
            assert!(err <= scale.abs() * 1.0001, "x={v} q={q} scale={scale}");
        }
        assert_eq!(make_qx_quants(32, &[0.0; 16], &mut l), 0.0);
        assert!(l.iter().all(|&q| q == 0));
    }
}
