//! Q4_0: blocks of 32 values as `d` (f16) + 16 bytes of nibbles, y = (q − 8)·d. Port of ggml's
//! `quantize_row_q4_0_ref` / `dequantize_row_q4_0`.
//!
//! Byte j holds element j in its low nibble and element j+16 in its high nibble. d = max/−8 where
//! `max` is the signed value of largest magnitude, so that value maps exactly to nibble 0.

use super::f16::{read_f16, write_f16};

/// Elements per block (`QK4_0`).
pub const QK: usize = 32;
/// Bytes per block: f16 scale + 16 nibble pairs.
pub const BLOCK_BYTES: usize = 2 + QK / 2;

/// Signed value of largest |x| (first one wins ties) and that |x|, scanning like ggml.
#[inline]
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// C's `(int8_t)(float)` as GCC/Clang compile it on x86-64: `cvttss2si` to i32 (truncation; NaN
/// and out-of-range give the "integer indefinite" `i32::MIN`), then the low byte. Finite blocks
/// only ever produce 0..=32 here; the emulation matters for degenerate blocks (subnormal maxima
/// make `id = 1/d` infinite), where ggml's bytes come from exactly this instruction.
#[inline]
pub(crate) fn trunc_i8(v: f32) -> i32 {
    c_f32_to_i8(v) as i32
}

/// See [`trunc_i8`]; also used for Q8_0's `(int8_t)roundf(x)`.
#[inline]
pub(crate) fn c_f32_to_i8(v: f32) -> i8 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE is part of the x86-64 baseline. This is the very instruction C emits.
        unsafe {
            use std::arch::x86_64::{_mm_cvttss_si32, _mm_set_ss};
            _mm_cvttss_si32(_mm_set_ss(v)) as i8
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        c_f32_to_i8_emulated(v)
    }
}

/// Portable spelling of x86's `cvttss2si` semantics (the scalar twin of [`c_f32_to_i8`]).
/// On x86-64 only the twin test uses it.
#[inline]
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
pub(crate) fn c_f32_to_i8_emulated(v: f32) -> i8 {
    let i = if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) { i32::MIN } else { v as i32 };
    i as i8
}

/// Quantize whole blocks: `x.len()` is a multiple of 32, `y.len()` = blocks × 18.
pub fn quantize_row(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q4_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        let d = signed_absmax(xb) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        write_f16(yb, 0, d);
        for j in 0..QK / 2 {
            let xi0 = trunc_i8(xb[j] * id + 8.5).min(15) as u8;
            let xi1 = trunc_i8(xb[j + QK / 2] * id + 8.5).min(15) as u8;
            yb[2 + j] = xi0 | (xi1 << 4);
        }
    }
}

/// Dequantize whole blocks: `x.len()` = blocks × 18, `y.len()` = blocks × 32.
pub fn dequantize_row(x: &[u8], y: &mut [f32]) {
    assert!(y.len() % QK == 0 && x.len() == y.len() / QK * BLOCK_BYTES, "Q4_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let d = read_f16(xb, 0);
        for j in 0..QK / 2 {
            let q = xb[2 + j];
            yb[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            yb[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::*;
    use crate::quant::GgmlType;

    #[test]
    fn zero_block_has_negative_zero_scale_and_0x88_nibbles() {
        // max = +0 so d = 0/-8 = -0.0, stored as f16 0x8000; id = 0 so every nibble is 8.
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&[0.0; QK], &mut y);
        assert_eq!(u16::from_le_bytes([y[0], y[1]]), 0x8000);
        assert!(y[2..].iter().all(|&b| b == 0x88), "{y:?}");
    }

    #[test]
    fn element_j_is_low_nibble_and_j_plus_16_high() {
        let mut x = [0.0f32; QK];
        x[0] = -8.0; // the signed max: d = 1, maps to nibble 0
        x[16] = 7.0; // -> 15
        x[1] = 3.0; // -> 11
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut y);
        assert_eq!(u16::from_le_bytes([y[0], y[1]]), 0x3C00, "d = +1.0");
        assert_eq!(y[2], 15 << 4, "element 0 -> nibble 0, element 16 -> 15");
        assert_eq!(y[3], 11 | (8 << 4));
        let mut back = [0f32; QK];
        dequantize_row(&y, &mut back);
        assert_eq!((back[0], back[16], back[1], back[17]), (-8.0, 7.0, 3.0, 0.0));
    }

    #[test]
    fn opposite_extreme_clamps_to_15() {
        let mut x = [0.0f32; QK];
        x[3] = 1.0; // max: d = -1/8
        x[4] = -1.0; // would be nibble 16, clamped to 15
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut y);
        assert_eq!(y[2 + 3] & 0xF, 0);
        assert_eq!(y[2 + 4] & 0xF, 15);
    }

    #[test]
    fn float_to_i8_matches_its_emulation() {
        let specials = [0.0, -0.0, 0.5, -0.5, 127.9, -128.9, 255.0, 1e10, -1e10, 2147483520.0, -2147483648.0];
        let mut x = 0x2545_f491u32;
        let randoms = (0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from_bits(x)
        });
        let all = specials.into_iter().chain([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX]).chain(randoms);
        for v in all {
            assert_eq!(c_f32_to_i8(v), c_f32_to_i8_emulated(v), "{v:e} ({:#010x})", v.to_bits());
        }
    }

    #[test]
    fn round_trip_error_is_within_one_step() {
        let x: Vec<f32> = (0..4 * QK).map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.003).collect();
        let y = round_trip(GgmlType::Q4_0, quantize_row, &x);
        // Half a step (amax/8) inside the range, a whole step at the clamped end, + f16 rounding.
        assert_close_per_group(&x, &y, QK, |xb| amax(xb) / 8.0 * 1.001 + amax(xb) * 2f32.powi(-10));
    }
}
