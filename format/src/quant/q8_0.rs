//! Q8_0: blocks of 32 values as `d` (f16) + 32 × i8, y = d·q. Port of ggml's
//! `quantize_row_q8_0_ref` / `dequantize_row_q8_0`.
//!
//! Rounding is C `roundf` (half away from zero, Rust `f32::round`), not the K-quants' ties-to-even.

use super::f16::{read_f16, write_f16};
use super::q4_0::c_f32_to_i8;

/// Elements per block (`QK8_0`).
pub const QK: usize = 32;
/// Bytes per block: f16 scale + 32 quants.
pub const BLOCK_BYTES: usize = 2 + QK;

/// Quantize whole blocks: `x.len()` is a multiple of 32, `y.len()` = blocks × 34.
pub fn quantize_row(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q8_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb.try_into().unwrap(), yb);
    }
}

fn quantize_block(x: &[f32; QK], y: &mut [u8]) {
    // ggml uses MAX(amax, fabsf(v)), i.e. `amax > |v| ? amax : |v|`, which f32::max equals on non-NaN.
    let amax = x.iter().fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(y, 0, d);
    for (q, &v) in y[2..].iter_mut().zip(x) {
        // C converts the float to int8_t: within ±127 for normal input, x86 semantics otherwise.
        *q = c_f32_to_i8((v * id).round()) as u8;
    }
}

/// Dequantize whole blocks: `x.len()` = blocks × 34, `y.len()` = blocks × 32.
pub fn dequantize_row(x: &[u8], y: &mut [f32]) {
    assert!(y.len() % QK == 0 && x.len() == y.len() / QK * BLOCK_BYTES, "Q8_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let d = read_f16(xb, 0);
        for (o, &q) in yb.iter_mut().zip(&xb[2..]) {
            *o = (q as i8) as f32 * d;
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
        assert_zero_block_is_all_zero_bytes(GgmlType::Q8_0, quantize_row);
    }

    #[test]
    fn ties_round_away_from_zero() {
        // amax = 127 gives d = 1 exactly, so x·id = x and 2.5 → 3, -2.5 → -3 (roundf), not 2/-2.
        let mut x = [0.0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = -127.0;
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut y);
        assert_eq!(u16::from_le_bytes([y[0], y[1]]), 0x3C00, "d = 1.0");
        assert_eq!(y[2] as i8, 127);
        assert_eq!(y[3] as i8, 3);
        assert_eq!(y[4] as i8, -3);
        assert_eq!(y[5] as i8, -127);
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x: Vec<f32> = (0..4 * QK).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.021).collect();
        let y = round_trip(GgmlType::Q8_0, quantize_row, &x);
        // Half a quant step, plus the f16 rounding of d (rel. 2^-11) over up to 127 steps.
        assert_close_per_group(&x, &y, QK, |xb| amax(xb) / 127.0 * 0.5 + amax(xb) * 2f32.powi(-11) * 1.01);
    }
}
