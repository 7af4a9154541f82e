//! Q4_K: super-blocks of 256 values = 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min
//! relative to two f16 super-scales; y = d·sc·q − dmin·m with 4-bit q. Port of ggml's
//! `quantize_row_q4_K_ref` / `dequantize_row_q4_K`.
//!
//! Block layout (144 bytes): `d` f16, `dmin` f16, `scales[12]` (see
//! [`k_quants::pack_scale_min_k4`]), `qs[128]` where 64-element chunk c stores sub-block 2c in the
//! low nibbles and 2c+1 in the high nibbles.

use super::f16::{read_f16, read_u16, write_f16};
use super::k_quants::{self, get_scale_min_k4, make_qkx2_quants, nearest_int, Qkx2Params, QK_K};
use super::k_quants_lanes;

/// Elements per super-block (`QK_K`).
pub const QK: usize = QK_K;
/// Bytes per super-block: d + dmin + 12 scale bytes + 128 nibble bytes.
pub const BLOCK_BYTES: usize = 2 + 2 + 12 + QK / 2;

const OFF_SCALES: usize = 4;
const OFF_QS: usize = 16;

/// The search ggml runs per sub-block: nmax 15, offsets −1 + 0.1·is for is in 0..=20, squared error.
const SEARCH: Qkx2Params = Qkx2Params { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };

/// Quantize whole super-blocks: `x.len()` is a multiple of 256, `y.len()` = blocks × 144.
/// Searches the 8 sub-blocks side by side ([`k_quants_lanes`]); same bytes as
/// [`quantize_row_scalar`].
pub fn quantize_row(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q4_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, yb, search_lanes);
    }
}

/// The readable reference: ggml's loop, one sub-block search at a time.
pub fn quantize_row_scalar(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q4_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, yb, search_scalar);
    }
}

/// Per sub-block weights: rms(sub-block) + |x| (ggml: `av_x + fabsf(x)`).
fn weights(xs: &[f32], w: &mut [f32]) {
    let mut sum_x2 = 0.0f32;
    for &v in xs {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    for (wi, &v) in w.iter_mut().zip(xs) {
        *wi = av_x + v.abs();
    }
}

/// Step 1, scalar: (scale, min) per sub-block and the first-guess quants.
fn search_scalar(x: &[f32], l: &mut [u8; QK]) -> ([f32; 8], [f32; 8]) {
    let mut laux = [0u8; 32];
    let mut w = [0f32; 32];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        weights(xs, &mut w);
        (scales[j], mins[j]) = make_qkx2_quants(xs, &w, &mut l[32 * j..32 * j + 32], &mut laux, &SEARCH);
    }
    (scales, mins)
}

/// Step 1, lane-parallel: the same searches on a transposed copy, 8 sub-blocks at once.
fn search_lanes(x: &[f32], l: &mut [u8; QK]) -> ([f32; 8], [f32; 8]) {
    let mut xt = [[0f32; 8]; 32];
    let mut wt = [[0f32; 8]; 32];
    let mut w = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        weights(xs, &mut w);
        for i in 0..32 {
            xt[i][j] = xs[i];
            wt[i][j] = w[i];
        }
    }
    let mut lt = [[0u8; 8]; 32];
    let res = k_quants_lanes::make_qkx2_quants_q4k(&xt, &wt, &mut lt);
    for j in 0..8 {
        for i in 0..32 {
            l[32 * j + i] = lt[i][j];
        }
    }
    res
}

/// Step 1 of the quantizer: fills the first-guess quants, returns (scales, mins) per sub-block.
type SubBlockSearch = fn(&[f32], &mut [u8; QK]) -> ([f32; 8], [f32; 8]);

fn quantize_block(x: &[f32], y: &mut [u8], search: SubBlockSearch) {
    let mut l = [0u8; QK];

    // 1. Per sub-block (scale, min) search, weighting each value by rms(sub-block) + |x|.
    let (scales, mins) = search(x, &mut l);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    // 2. Quantize the scales and mins to 6 bits against the two super-scales.
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        // C stores the int in a uint8_t (mod 256) before clamping to 63.
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = k_quants::pack_scale_min_k4(&ls, &lm);
    y[OFF_SCALES..OFF_QS].copy_from_slice(&packed);
    let d16 = write_f16(y, 0, max_scale / 63.0);
    let dmin16 = write_f16(y, 2, max_min / 63.0);

    // 3. Re-quantize each value against the rounded scales actually stored.
    let (d_all, dmin_all) = (super::f16::fp16_to_fp32(d16), super::f16::fp16_to_fp32(dmin16));
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, 15) as u8;
        }
    }

    // 4. Pack: chunk c of 64 values → 32 bytes, low nibble = first 32, high nibble = next 32.
    for (c, qs) in y[OFF_QS..].chunks_exact_mut(32).enumerate() {
        for (i, q) in qs.iter_mut().enumerate() {
            *q = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
}

/// Dequantize whole super-blocks: `x.len()` = blocks × 144, `y.len()` = blocks × 256.
pub fn dequantize_row(x: &[u8], y: &mut [f32]) {
    assert!(y.len() % QK == 0 && x.len() == y.len() / QK * BLOCK_BYTES, "Q4_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let d = read_f16(xb, 0);
        let min = super::f16::fp16_to_fp32(read_u16(xb, 2));
        let scales = &xb[OFF_SCALES..OFF_QS];
        for (c, (qs, out)) in xb[OFF_QS..].chunks_exact(32).zip(yb.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = get_scale_min_k4(2 * c, scales);
            let (sc2, m2) = get_scale_min_k4(2 * c + 1, scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for (i, &q) in qs.iter().enumerate() {
                out[i] = d1 * (q & 0xF) as f32 - m1;
                out[32 + i] = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::*;
    use crate::quant::GgmlType;

    #[test]
    fn zero_block_is_all_zero_bytes() {
        assert_zero_block_is_all_zero_bytes(GgmlType::Q4_K, quantize_row);
    }

    #[test]
    fn round_trip_error_is_small_relative_to_the_range() {
        let x: Vec<f32> = (0..2 * QK).map(|i| (((i * 7919) % 1013) as f32 / 1013.0 - 0.4) * 0.2).collect();
        let y = round_trip(GgmlType::Q4_K, quantize_row, &x);
        // 15 steps span each 32-value sub-block's range; allow one step (search + 6-bit scale rounding).
        assert_close_per_group(&x, &y, 32, |xs| {
            let lo = xs.iter().fold(0f32, |a, &v| a.min(v));
            let hi = xs.iter().fold(0f32, |a, &v| a.max(v));
            (hi - lo) / 15.0 * 1.05
        });
    }

    #[test]
    fn lane_search_equals_scalar_reference() {
        let mut x = wide_range_rows(9, 64, QK, 0.3);
        x[5 * QK..5 * QK + 64].fill(0.0); // flat sub-blocks inside a live super-block
        x[6 * QK..6 * QK + 32].fill(-2.0);
        let (mut a, mut b) = (vec![0u8; 64 * BLOCK_BYTES], vec![0u8; 64 * BLOCK_BYTES]);
        quantize_row(&x, &mut a);
        quantize_row_scalar(&x, &mut b);
        assert!(a == b);
    }

    #[test]
    fn positive_constant_block_is_reproduced() {
        // min clamps to 0, every value maps to L = 15 with scale c/15.
        let mut q = [0u8; BLOCK_BYTES];
        quantize_row(&[0.75; QK], &mut q);
        let mut y = [0f32; QK];
        dequantize_row(&q, &mut y);
        for v in y {
            assert!((v - 0.75).abs() < 0.75 * 2f32.powi(-9), "{v}");
        }
    }
}
