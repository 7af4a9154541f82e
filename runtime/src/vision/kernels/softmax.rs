//! Row softmax with a vector `exp`: attention evaluates 1025² exponentials per head and layer
//! (~400 M per tile), so libm's scalar `expf` would cost more than the attention GEMMs.
//!
//! `exp` by Cody–Waite range reduction `x = n·ln2 + r`, |r| ≤ ln2/2, and the degree-7 Taylor
//! polynomial of `e^r` (truncation < 2e-9 relative), then `2^n` from the exponent bits.
//! Inputs are clamped to [−87.3, 88] (softmax only ever feeds x − max ≤ 0).
use super::Isa;

pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that n·LN2_HI is exact for |n| < 2^9.
pub(crate) const LN2_HI: f32 = 0.693_359_4; // = 0.693359375 exactly in f32
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
pub(crate) const EXP_LO: f32 = -87.3;
pub(crate) const EXP_HI: f32 = 88.0;
/// 1/k! for k = 0..=7 (Taylor coefficients of e^r).
pub(crate) const EXP_C: [f32; 8] = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];

/// Scalar exp (the twin of the SIMD versions: same operations, same order).
#[inline]
pub fn exp_scalar(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = EXP_C[7];
    for c in EXP_C[..7].iter().rev() {
        p = p * r + c;
    }
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// Scalar in-place softmax of `row · scale`.
pub fn softmax_row_scalar(row: &mut [f32], scale: f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = exp_scalar((*v - max) * scale);
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// In-place softmax of `row · scale` (scale > 0) on the given ISA.
pub fn softmax_row(isa: Isa, row: &mut [f32], scale: f32) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2/Avx512 are only chosen when AVX2/FMA were detected.
        Isa::Avx2 | Isa::Avx512 => unsafe { super::avx2::softmax_row(row, scale) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: Isa::Neon is only chosen when NEON was detected.
        Isa::Neon => unsafe { super::neon::softmax_row(row, scale) },
        _ => softmax_row_scalar(row, scale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_relative_error_small() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let got = exp_scalar(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst:e}");
    }

    #[test]
    fn softmax_simd_equals_scalar() {
        let Some(isa) = crate::vision::kernels::simd_isa() else {
            eprintln!("no SIMD ISA on this host: only the scalar softmax is tested");
            return;
        };
        for len in [1usize, 7, 8, 33, 1025] {
            let row: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect();
            let mut a = row.clone();
            let mut b = row.clone();
            softmax_row_scalar(&mut a, 0.125);
            softmax_row(isa, &mut b, 0.125);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-30) + 1e-9, "len {len}: {x} vs {y}");
            }
            assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}
