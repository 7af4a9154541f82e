//! Q6_K: super-blocks of 256 values = 16 sub-blocks of 16, each with an i8 scale relative to one
//! f16 super-scale; y = d·scale·(q − 32) with 6-bit q. Port of ggml's `quantize_row_q6_K_ref` /
//! `dequantize_row_q6_K`.
//!
//! Block layout (210 bytes): `ql[128]` (low 4 bits), `qh[64]` (high 2 bits), `scales[16]` (i8),
//! then `d` (f16) last. Each 128-value half h uses ql[64h..], qh[32h..]: for l < 32,
//! ql[l] = q[l] | q[l+64] << 4, ql[l+32] = q[l+32] | q[l+96] << 4, and qh[l] holds the top two bits
//! of q[l], q[l+32], q[l+64], q[l+96] at bit offsets 0, 2, 4, 6.

use super::f16::{fp16_to_fp32, read_f16, write_f16};
use super::k_quants::{make_qx_quants, nearest_int, GROUP_MAX_EPS, QK_K};
use super::k_quants_lanes;

/// Elements per super-block (`QK_K`).
pub const QK: usize = QK_K;
/// Bytes per super-block: 128 ql + 64 qh + 16 scales + f16 d.
pub const BLOCK_BYTES: usize = QK / 2 + QK / 4 + QK / 16 + 2;

const OFF_QH: usize = QK / 2;
const OFF_SCALES: usize = OFF_QH + QK / 4;
const OFF_D: usize = OFF_SCALES + QK / 16;

/// Quantize whole super-blocks: `x.len()` is a multiple of 256, `y.len()` = blocks × 210.
/// Searches the 16 sub-blocks side by side ([`k_quants_lanes`]); same bytes as
/// [`quantize_row_scalar`].
pub fn quantize_row(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q6_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, yb, search_lanes);
    }
}

/// The readable reference: ggml's loop, one sub-block search at a time.
pub fn quantize_row_scalar(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q6_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, yb, search_scalar);
    }
}

/// Step 1, scalar: one `make_qx_quants` per sub-block of 16.
fn search_scalar(x: &[f32], l: &mut [i8; QK]) -> [f32; 16] {
    std::array::from_fn(|ib| make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]))
}

/// Step 1, lane-parallel: the same searches on a transposed copy, 16 sub-blocks at once.
fn search_lanes(x: &[f32], l: &mut [i8; QK]) -> [f32; 16] {
    let mut xt = [[0f32; 16]; 16];
    for ib in 0..16 {
        for i in 0..16 {
            xt[i][ib] = x[16 * ib + i];
        }
    }
    let mut lt = [[0i8; 16]; 16];
    let scales = k_quants_lanes::make_qx_quants_q6k(&xt, &mut lt);
    for ib in 0..16 {
        for i in 0..16 {
            l[16 * ib + i] = lt[i][ib];
        }
    }
    scales
}

fn quantize_block(x: &[f32], y: &mut [u8], search: fn(&[f32], &mut [i8; QK]) -> [f32; 16]) {
    let mut l = [0i8; QK];

    // 1. Per sub-block symmetric scale search; keep the signed scale of largest magnitude.
    let scales = search(x, &mut l);
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for &scale in &scales {
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        y.fill(0); // ggml memsets the block and stores d = fp16(0) = 0
        return;
    }

    // 2. Scales to i8 against d = max_scale / -128 (so the largest maps to -128).
    let iscale = -128.0f32 / max_scale;
    let d16 = write_f16(y, OFF_D, 1.0 / iscale);
    for ib in 0..16 {
        // C assigns the int to an int8_t: values below -128 wrap, exactly as `as i8` does.
        y[OFF_SCALES + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }

    // 3. Re-quantize each value against the rounded scales actually stored.
    let d_all = fp16_to_fp32(d16);
    for j in 0..16 {
        let d = d_all * (y[OFF_SCALES + j] as i8) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }

    // 4. Pack 4 + 2 bits per value.
    for h in 0..2 {
        let lq = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            let q = |k: usize| lq[i + 32 * k] as u8;
            y[64 * h + i] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
            y[64 * h + i + 32] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
            y[OFF_QH + 32 * h + i] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
}

/// Dequantize whole super-blocks: `x.len()` = blocks × 210, `y.len()` = blocks × 256.
pub fn dequantize_row(x: &[u8], y: &mut [f32]) {
    assert!(y.len() % QK == 0 && x.len() == y.len() / QK * BLOCK_BYTES, "Q6_K: bad row sizes");
    for (xb, yb) in x.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let d = read_f16(xb, OFF_D);
        for h in 0..2 {
            let ql = &xb[64 * h..64 * h + 64];
            let qh = &xb[OFF_QH + 32 * h..OFF_QH + 32 * h + 32];
            let sc = &xb[OFF_SCALES + 8 * h..OFF_SCALES + 8 * h + 8];
            let out = &mut yb[128 * h..128 * h + 128];
            for i in 0..32 {
                let is = i / 16;
                let q1 = ((ql[i] & 0xF) | ((qh[i] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) as i32 - 32;
                let s = |k: usize| (sc[is + k] as i8) as f32;
                out[i] = d * s(0) * q1 as f32;
                out[i + 32] = d * s(2) * q2 as f32;
                out[i + 64] = d * s(4) * q3 as f32;
                out[i + 96] = d * s(6) * q4 as f32;
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
        assert_zero_block_is_all_zero_bytes(GgmlType::Q6_K, quantize_row);
    }

    #[test]
    fn round_trip_error_is_small_relative_to_each_sub_block() {
        let x: Vec<f32> = (0..2 * QK).map(|i| (((i * 4099) % 1009) as f32 / 1009.0 - 0.5) * 3.0).collect();
        let y = round_trip(GgmlType::Q6_K, quantize_row, &x);
        // 32 steps per amax of each 16-value sub-block; one step covers search, i8 scale rounding
        // and the clamp at +31.
        assert_close_per_group(&x, &y, 16, |xs| amax(xs) / 32.0 * 1.1);
    }

    #[test]
    fn lane_search_equals_scalar_reference() {
        let mut x = wide_range_rows(5, 64, QK, 0.5);
        x[5 * QK..5 * QK + 48].fill(0.0); // zero sub-blocks inside a live super-block
        x[6 * QK + 16..6 * QK + 32].fill(3e-16);
        let (mut a, mut b) = (vec![0u8; 64 * BLOCK_BYTES], vec![0u8; 64 * BLOCK_BYTES]);
        quantize_row(&x, &mut a);
        quantize_row_scalar(&x, &mut b);
        assert!(a == b);
    }

    #[test]
    fn largest_scale_maps_to_minus_128() {
        let x: Vec<f32> = (0..QK).map(|i| if i < 16 { (i as f32 - 8.0) * 0.5 } else { (i % 5) as f32 * 0.01 }).collect();
        let mut q = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut q);
        let sc: Vec<i8> = q[OFF_SCALES..OFF_D].iter().map(|&b| b as i8).collect();
        assert_eq!(sc[0], -128, "{sc:?}");
    }
}
