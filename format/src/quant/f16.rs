//! f32 ↔ f16 / bf16 exactly as ggml-base converts them (`ggml_compute_fp32_to_fp16`,
//! `ggml_compute_fp32_to_bf16` in ggml-impl.h).
//!
//! Finite values: both are IEEE round-to-nearest-even, which the `half` crate implements too, so
//! we use it. NaN is the one place ggml differs from `half`: f16 NaN becomes `sign | 0x7E00`
//! (payload dropped), bf16 NaN keeps its top 16 bits and forces the quiet bit. Every block scale
//! in the quantizers goes through [`fp32_to_fp16`].

/// ggml's `GGML_FP32_TO_FP16`: round to nearest even, overflow to ±inf, NaN → sign | 0x7E00.
#[inline]
pub fn fp32_to_fp16(f: f32) -> u16 {
    if f.is_nan() {
        let sign = (f.to_bits() >> 16) as u16 & 0x8000;
        return sign | 0x7E00;
    }
    half::f16::from_f32(f).to_bits()
}

/// ggml's `GGML_FP16_TO_FP32` (exact widening).
#[inline]
pub fn fp16_to_fp32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// ggml's `GGML_FP32_TO_BF16`: round to nearest even; NaN keeps its top bits and is made quiet.
#[inline]
pub fn fp32_to_bf16(f: f32) -> u16 {
    let bits = f.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    // Adding 0x7fff plus the lowest kept bit rounds half-way cases to the even neighbour.
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// ggml's `GGML_BF16_TO_FP32` (exact widening).
#[inline]
pub fn bf16_to_fp32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Reads a little-endian u16 at `off` (block scales are stored LE).
#[inline]
pub(crate) fn read_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian f16 at `off` as f32.
#[inline]
pub(crate) fn read_f16(b: &[u8], off: usize) -> f32 {
    fp16_to_fp32(read_u16(b, off))
}

/// Writes `f` as a little-endian f16 at `off`, rounded like ggml; returns the stored bits.
#[inline]
pub(crate) fn write_f16(b: &mut [u8], off: usize, f: f32) -> u16 {
    let h = fp32_to_fp16(f);
    b[off..off + 2].copy_from_slice(&h.to_le_bytes());
    h
}

/// `ggml_fp32_to_fp16_row`: `dst` holds `2 * src.len()` bytes.
pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2, "F16: destination size");
    for (d, &v) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&fp32_to_fp16(v).to_le_bytes());
    }
}

/// `ggml_fp32_to_bf16_row_ref`: `dst` holds `2 * src.len()` bytes.
pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2, "BF16: destination size");
    for (d, &v) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&fp32_to_bf16(v).to_le_bytes());
    }
}

/// f16 bytes → f32 (`ggml_fp16_to_fp32_row`).
pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() * 2, "F16: source size");
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = fp16_to_fp32(u16::from_le_bytes([s[0], s[1]]));
    }
}

/// bf16 bytes → f32 (`ggml_bf16_to_fp32_row`).
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() * 2, "BF16: source size");
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = bf16_to_fp32(u16::from_le_bytes([s[0], s[1]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is exactly half-way between 1 and the next f16 (1 + 2^-10): ties go to even (1).
        assert_eq!(fp32_to_fp16(1.0 + 2f32.powi(-11)), 0x3C00);
        // 1 + 3·2^-11 is half-way between 1+2^-10 (odd mantissa) and 1+2^-9: goes up to even.
        assert_eq!(fp32_to_fp16(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
        assert_eq!(fp32_to_fp16(65504.0), 0x7BFF);
        assert_eq!(fp32_to_fp16(65520.0), 0x7C00, "half-way past f16::MAX rounds to inf");
        assert_eq!(fp32_to_fp16(-0.0), 0x8000);
        assert_eq!(fp32_to_fp16(f32::NAN), 0x7E00);
        assert_eq!(fp32_to_fp16(-f32::NAN), 0xFE00);
        assert_eq!(fp32_to_fp16(2f32.powi(-24)), 0x0001, "smallest f16 subnormal");
        assert_eq!(fp32_to_fp16(2f32.powi(-25)), 0x0000, "half of it ties to even zero");
    }

    #[test]
    fn f16_widening_is_exact_on_all_finite_values() {
        for h in 0..=u16::MAX {
            let f = fp16_to_fp32(h);
            if f.is_nan() {
                continue;
            }
            assert_eq!(fp32_to_fp16(f), h, "round trip of {h:#06x}");
        }
    }

    #[test]
    fn bf16_matches_half_on_finite_values_and_quiets_nan() {
        let mut x = 0x1234_5678u32;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let f = f32::from_bits(x);
            if f.is_nan() {
                assert_eq!(fp32_to_bf16(f) & 0x7fc0, 0x7fc0);
            } else {
                assert_eq!(fp32_to_bf16(f), half::bf16::from_f32(f).to_bits(), "{f:e}");
            }
        }
        assert_eq!(bf16_to_fp32(fp32_to_bf16(1.5)), 1.5);
    }
}
