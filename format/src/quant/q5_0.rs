//! Q5_0: blocks of 32 values as `d` (f16) + `qh` (u32, bit j = 5th bit of element j) + 16 bytes of
//! low nibbles laid out like Q4_0; y = (q − 16)·d. Port of ggml's `quantize_row_q5_0_ref` /
//! `dequantize_row_q5_0` (d = max/−16, xi = min(31, (int8)(x·id + 16.5))).

use super::f16::{read_f16, write_f16};
use super::q4_0::{signed_absmax, trunc_i8};

/// Elements per block (`QK5_0`).
pub const QK: usize = 32;
/// Bytes per block: f16 scale + 4 bytes of high bits + 16 nibble pairs.
pub const BLOCK_BYTES: usize = 2 + 4 + QK / 2;

/// Quantize whole blocks: `x.len()` is a multiple of 32, `y.len()` = blocks × 22.
pub fn quantize_row(x: &[f32], y: &mut [u8]) {
    assert!(x.len() % QK == 0 && y.len() == x.len() / QK * BLOCK_BYTES, "Q5_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(QK).zip(y.chunks_exact_mut(BLOCK_BYTES)) {
        let d = signed_absmax(xb) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        write_f16(yb, 0, d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let xi0 = trunc_i8(xb[j] * id + 16.5).min(31) as u8;
            let xi1 = trunc_i8(xb[j + QK / 2] * id + 16.5).min(31) as u8;
            yb[6 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        yb[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Dequantize whole blocks: `x.len()` = blocks × 22, `y.len()` = blocks × 32.
pub fn dequantize_row(x: &[u8], y: &mut [f32]) {
    assert!(y.len() % QK == 0 && x.len() == y.len() / QK * BLOCK_BYTES, "Q5_0: bad row sizes");
    for (xb, yb) in x.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let d = read_f16(xb, 0);
        let qh = u32::from_le_bytes([xb[2], xb[3], xb[4], xb[5]]);
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + QK / 2)) & 1) << 4;
            let q = xb[6 + j] as u32;
            yb[j] = (((q & 0x0F) | h0) as i32 - 16) as f32 * d;
            yb[j + QK / 2] = (((q >> 4) | h1) as i32 - 16) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::*;
    use crate::quant::GgmlType;

    #[test]
    fn zero_block_facts() {
        // d = 0/-16 = -0.0 (0x8000); every q = 16: low nibbles 0, every high bit set.
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&[0.0; QK], &mut y);
        assert_eq!(u16::from_le_bytes([y[0], y[1]]), 0x8000);
        assert_eq!(u32::from_le_bytes([y[2], y[3], y[4], y[5]]), u32::MAX);
        assert!(y[6..].iter().all(|&b| b == 0), "{y:?}");
    }

    #[test]
    fn high_bit_of_element_j_is_qh_bit_j() {
        let mut x = [0.0f32; QK];
        x[0] = -16.0; // max: d = 1, q = 0
        x[20] = 15.0; // q = 31: high bit set at bit 20, low nibble 15 in byte 4's high half
        x[5] = -1.0; // q = 15: high bit clear
        let mut y = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut y);
        assert_eq!(u16::from_le_bytes([y[0], y[1]]), 0x3C00);
        let qh = u32::from_le_bytes([y[2], y[3], y[4], y[5]]);
        assert_eq!(qh & 1, 0);
        assert_eq!((qh >> 20) & 1, 1);
        assert_eq!((qh >> 5) & 1, 0);
        assert_eq!(y[6 + 4] >> 4, 15);
        let mut back = [0f32; QK];
        dequantize_row(&y, &mut back);
        assert_eq!((back[0], back[20], back[5], back[7]), (-16.0, 15.0, -1.0, 0.0));
    }

    #[test]
    fn round_trip_error_is_within_one_step() {
        let x: Vec<f32> = (0..4 * QK).map(|i| ((i * 29 % 89) as f32 - 44.0) * 0.7).collect();
        let y = round_trip(GgmlType::Q5_0, quantize_row, &x);
        assert_close_per_group(&x, &y, QK, |xb| amax(xb) / 16.0 * 1.001 + amax(xb) * 2f32.powi(-10));
    }
}
