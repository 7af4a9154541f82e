//! aarch64 Advanced SIMD (NEON) kernels of the vision encoder, each the twin of a scalar one:
//! - GEMM microkernel (twin: `gemm::kernel_scalar`): 6×16 tile in 24 q-register accumulators;
//! - `exp`/softmax (twin: `softmax::softmax_row_scalar`), exact-erf GELU (twin:
//!   `gelu::gelu_scalar`) and LayerNorm (twin: `layernorm::layernorm_row_scalar`), 4 lanes at a
//!   time. `exp` and `erf` do the scalar twin's operations in the same order with separate
//!   multiplies and adds (no FMA), so they round as the twin does; the erfc interval's
//!   coefficients are picked per lane with a byte table lookup (`tbl`), NEON's in-register permute.
use super::gelu::{table, NCOEF, NINT};
use super::gemm::{MR, NR};
use super::softmax::{EXP_C, EXP_HI, EXP_LO, LN2_HI, LN2_LO, LOG2E};
use std::arch::aarch64::*;

/// # Safety
/// NEON available; pointer contract of `gemm::kernel_scalar` (A and B packed).
// Row/lane indices address both the accumulators and memory offsets: explicit loops read clearer.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[target_feature(enable = "neon")]
pub unsafe fn kernel_6x16(
    kb: usize,
    a: *const f32,
    rs: usize,
    cs: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    if !(rs == 1 && cs == MR) {
        // A in place (attention's narrow P·V): rare enough to use the scalar twin's loop shape
        // with NEON FMAs per row.
        let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
        let mut bp = b;
        for p in 0..kb {
            let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8)), vld1q_f32(bp.add(12))];
            for r in 0..mr {
                let av = *a.add(r * rs + p * cs);
                for q in 0..4 {
                    acc[r][q] = vfmaq_n_f32(acc[r][q], bv[q], av);
                }
            }
            bp = bp.add(NR);
        }
        store(&acc, c, ldc, mr, nr, accumulate);
        return;
    }
    const { assert!(MR == 6 && NR == 16) };
    let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kb {
        let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8)), vld1q_f32(bp.add(12))];
        let a0 = vld1q_f32(ap); // rows 0..4
        let a1 = [*ap.add(4), *ap.add(5)];
        for q in 0..4 {
            acc[0][q] = vfmaq_laneq_f32::<0>(acc[0][q], bv[q], a0);
            acc[1][q] = vfmaq_laneq_f32::<1>(acc[1][q], bv[q], a0);
            acc[2][q] = vfmaq_laneq_f32::<2>(acc[2][q], bv[q], a0);
            acc[3][q] = vfmaq_laneq_f32::<3>(acc[3][q], bv[q], a0);
            acc[4][q] = vfmaq_n_f32(acc[4][q], bv[q], a1[0]);
            acc[5][q] = vfmaq_n_f32(acc[5][q], bv[q], a1[1]);
        }
        ap = ap.add(MR);
        bp = bp.add(NR);
    }
    store(&acc, c, ldc, mr, nr, accumulate);
}

#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "neon")]
#[inline]
unsafe fn store(acc: &[[float32x4_t; 4]; MR], c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    let mut t = [0f32; NR];
    for r in 0..mr {
        for q in 0..4 {
            vst1q_f32(t.as_mut_ptr().add(4 * q), acc[r][q]);
        }
        let cp = c.add(r * ldc);
        for (j, tv) in t.iter().enumerate().take(nr) {
            *cp.add(j) = if accumulate { *cp.add(j) + tv } else { *tv };
        }
    }
}

/// 4-lane exp (twin: `softmax::exp_scalar`, same operations in the same order).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_LO)), vdupq_n_f32(EXP_HI));
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    let r = vsubq_f32(vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(LN2_HI))), vmulq_f32(n, vdupq_n_f32(LN2_LO)));
    let mut p = vdupq_n_f32(EXP_C[7]);
    for k in (0..7).rev() {
        p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(EXP_C[k]));
    }
    let e = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
    vmulq_f32(p, vreinterpretq_f32_s32(e))
}

/// In-place softmax of `row · scale` (twin: `softmax::softmax_row_scalar`). `maxNum` semantics
/// (`fmaxnm`) for the row maximum, as `f32::max` in the twin.
///
/// # Safety
/// NEON available.
#[target_feature(enable = "neon")]
pub unsafe fn softmax_row(row: &mut [f32], scale: f32) {
    let n = row.len();
    let n4 = n / 4 * 4;
    let p = row.as_mut_ptr();
    let mut vmax = vdupq_n_f32(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n4 {
        vmax = vmaxnmq_f32(vmax, vld1q_f32(p.add(i)));
        i += 4;
    }
    let mut max = vmaxnmvq_f32(vmax);
    for v in &row[n4..] {
        max = max.max(*v);
    }
    let (vm, vs) = (vdupq_n_f32(max), vdupq_n_f32(scale));
    let mut vsum = vdupq_n_f32(0.0);
    i = 0;
    while i < n4 {
        let e = exp4(vmulq_f32(vsubq_f32(vld1q_f32(p.add(i)), vm), vs));
        vst1q_f32(p.add(i), e);
        vsum = vaddq_f32(vsum, e);
        i += 4;
    }
    let mut sum = vaddvq_f32(vsum);
    for v in &mut row[n4..] {
        *v = super::softmax::exp_scalar((*v - max) * scale);
        sum += *v;
    }
    let inv = 1.0 / sum;
    let vinv = vdupq_n_f32(inv);
    i = 0;
    while i < n4 {
        vst1q_f32(p.add(i), vmulq_f32(vld1q_f32(p.add(i)), vinv));
        i += 4;
    }
    for v in &mut row[n4..] {
        *v *= inv;
    }
}

/// 4-lane erf (twin: `gelu::erf_scalar`): both branches computed, selected by |x|; each lane's
/// erfc-interval coefficient comes from a two-register byte table lookup over `big_t[k]`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn erf4(x: float32x4_t) -> float32x4_t {
    let t = table();
    let one = vdupq_n_f32(1.0);
    let ax = vabsq_f32(x);
    let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
    let with_sign = |v: float32x4_t| vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(v), sign));
    // |x| < 1: x · P(2x² − 1)
    let u = vsubq_f32(vmulq_f32(vdupq_n_f32(2.0), vmulq_f32(x, x)), one);
    let mut p = vdupq_n_f32(t.small[NCOEF - 1]);
    for k in (0..NCOEF - 1).rev() {
        p = vaddq_f32(vmulq_f32(p, u), vdupq_n_f32(t.small[k]));
    }
    let small = vmulq_f32(x, p);
    // 1 ≤ |x| < 4: ±(1 − Q_i(u)), i = trunc(2(|x| − 1)) clamped to [0, NINT − 1].
    let fi = vmulq_f32(vsubq_f32(ax, one), vdupq_n_f32(2.0));
    let fi = vminq_f32(vmaxq_f32(fi, vdupq_n_f32(0.0)), vdupq_n_f32((NINT - 1) as f32));
    let idx = vcvtq_u32_f32(fi);
    let centre = vaddq_f32(vdupq_n_f32(1.25), vmulq_f32(vdupq_n_f32(0.5), vcvtq_f32_u32(idx)));
    let ub = vmulq_f32(vsubq_f32(ax, centre), vdupq_n_f32(4.0));
    // Byte indices 4i..4i+3 of each lane's f32 in the 8-float row big_t[k].
    let bytes = vreinterpretq_u8_u32(vmlaq_u32(vdupq_n_u32(0x0302_0100), idx, vdupq_n_u32(0x0404_0404)));
    const { assert!(NINT <= 8) };
    let coef = |k: usize| {
        let row = t.big_t[k].as_ptr() as *const u8;
        let tab = uint8x16x2_t(vld1q_u8(row), vld1q_u8(row.add(16)));
        vreinterpretq_f32_u8(vqtbl2q_u8(tab, bytes))
    };
    let mut q = coef(NCOEF - 1);
    for k in (0..NCOEF - 1).rev() {
        q = vaddq_f32(vmulq_f32(q, ub), coef(k));
    }
    let big = with_sign(vsubq_f32(one, q));
    let sat = with_sign(one);
    let r = vbslq_f32(vcltq_f32(ax, vdupq_n_f32(4.0)), big, sat);
    let r = vbslq_f32(vcltq_f32(ax, one), small, r);
    vbslq_f32(vceqq_f32(x, x), r, x) // NaN stays NaN
}

/// In-place exact GELU (twin: `gelu::gelu_scalar`).
///
/// # Safety
/// NEON available.
#[target_feature(enable = "neon")]
pub unsafe fn gelu_inplace(v: &mut [f32]) {
    let n4 = v.len() / 4 * 4;
    let p = v.as_mut_ptr();
    let (half, one, rs2) = (vdupq_n_f32(0.5), vdupq_n_f32(1.0), vdupq_n_f32(std::f32::consts::FRAC_1_SQRT_2));
    let mut i = 0;
    while i < n4 {
        let x = vld1q_f32(p.add(i));
        let e = erf4(vmulq_f32(x, rs2));
        vst1q_f32(p.add(i), vmulq_f32(vmulq_f32(half, x), vaddq_f32(one, e)));
        i += 4;
    }
    for x in &mut v[n4..] {
        *x = super::gelu::gelu_scalar(*x);
    }
}

/// LayerNorm of one row (twin: `layernorm::layernorm_row_scalar`): the same two passes, with
/// FMAs for the centred squares and the affine output (as the AVX2 twin).
///
/// # Safety
/// NEON available; all slices of equal length.
#[target_feature(enable = "neon")]
pub unsafe fn layernorm_row(x: &[f32], y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len();
    let n4 = n / 4 * 4;
    let xp = x.as_ptr();
    let mut s = vdupq_n_f32(0.0);
    let mut i = 0;
    while i < n4 {
        s = vaddq_f32(s, vld1q_f32(xp.add(i)));
        i += 4;
    }
    let sum = vaddvq_f32(s) + x[n4..].iter().sum::<f32>();
    let mean = sum / n as f32;
    let vm = vdupq_n_f32(mean);
    let mut s2 = vdupq_n_f32(0.0);
    i = 0;
    while i < n4 {
        let d = vsubq_f32(vld1q_f32(xp.add(i)), vm);
        s2 = vfmaq_f32(s2, d, d);
        i += 4;
    }
    let ss = vaddvq_f32(s2) + x[n4..].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>();
    let rstd = 1.0 / (ss / n as f32 + eps).sqrt();
    let vr = vdupq_n_f32(rstd);
    i = 0;
    while i < n4 {
        let d = vmulq_f32(vsubq_f32(vld1q_f32(xp.add(i)), vm), vr);
        let o = vfmaq_f32(vld1q_f32(b.as_ptr().add(i)), d, vld1q_f32(w.as_ptr().add(i)));
        vst1q_f32(y.as_mut_ptr().add(i), o);
        i += 4;
    }
    for j in n4..n {
        y[j] = (x[j] - mean) * rstd * w[j] + b[j];
    }
}

#[cfg(test)]
mod tests {
    // Also exercised end to end by `gemm::tests::simd_gemm_equals_scalar` through `simd_isa()`;
    // this test pins that the NEON kernel (not a scalar fallback) is what runs, and compares the
    // microkernel with its scalar twin directly on both A layouts, partial tiles and accumulation.
    use super::super::gemm::{kernel_scalar, MR, NR};
    use super::super::{isa, simd_isa, Isa};
    use std::arch::aarch64::*;

    /// Values in [-0.5, 0.5): the shared stream halved (exactly).
    fn data(n: usize, seed: u32) -> Vec<f32> {
        super::super::test_data(n, seed, 12345).into_iter().map(|v| v * 0.5).collect()
    }

    #[test]
    fn neon_is_selected_at_run_time() {
        // NEON is mandatory on aarch64 Linux; qemu-user reports it through HWCAP too.
        eprintln!("vision ISA on this aarch64 host: {:?} (simd: {:?})", isa(), simd_isa());
        assert_eq!(simd_isa(), Some(Isa::Neon));
        if std::env::var("H2OVL_VISION_ISA").is_err() {
            assert_eq!(isa(), Isa::Neon);
        }
    }

    #[test]
    fn kernel_6x16_equals_scalar_twin() {
        assert!(std::arch::is_aarch64_feature_detected!("neon"));
        for &kb in &[1usize, 7, 64, 256] {
            let b = data(kb * NR, kb as u32);
            let packed = data(kb * MR, 7 + kb as u32);
            let lda = kb + 3;
            let inplace = data(MR * lda, 11 + kb as u32);
            for &(mr, nr) in &[(MR, NR), (1, 1), (4, 9), (MR, 5), (2, NR)] {
                for accumulate in [false, true] {
                    // (A, rs, cs): packed strip, then A in place with row stride lda.
                    for (a, rs, cs) in [(&packed, 1, MR), (&inplace, lda, 1)] {
                        let ldc = NR + 2;
                        let c0 = data(MR * ldc, 99);
                        let (mut want, mut got) = (c0.clone(), c0.clone());
                        // SAFETY: buffers sized for kb×MR / kb×NR / MR×ldc; NEON asserted above.
                        unsafe {
                            let (ap, bp) = (a.as_ptr(), b.as_ptr());
                            kernel_scalar(kb, ap, rs, cs, bp, want.as_mut_ptr(), ldc, mr, nr, accumulate);
                            super::kernel_6x16(kb, ap, rs, cs, bp, got.as_mut_ptr(), ldc, mr, nr, accumulate);
                        }
                        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                            let (r, j) = (i / ldc, i % ldc);
                            if r < mr && j < nr {
                                // FMA vs separate multiply-add: rounding differs by a few ulps of the sum.
                                let tol = 1e-5 * (kb as f32).sqrt().max(1.0);
                                assert!(
                                    (w - g).abs() <= tol,
                                    "kb {kb} mr {mr} nr {nr} acc {accumulate} rs {rs} ({r},{j}): {w} vs {g}"
                                );
                            } else {
                                assert_eq!(w.to_bits(), g.to_bits(), "wrote outside the mr×nr tile at ({r},{j})");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Values that hit every erf branch and edge: interval borders, ±0, ±4, saturation, ±inf, NaN.
    fn erf_probe() -> Vec<f32> {
        let mut v: Vec<f32> = (0..20_011).map(|i| (i as f32 - 10_005.0) * 6.1e-4 * (1.0 + (i % 5) as f32)).collect();
        for b in [0.0f32, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0] {
            for x in [b, f32::from_bits(b.to_bits().wrapping_sub(1)), f32::from_bits(b.to_bits() + 1)] {
                v.extend([x, -x]);
            }
        }
        v.extend([1e-30, -1e-30, 7.0, -7.0, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        v
    }

    #[test]
    fn erf4_and_exp4_round_as_their_scalar_twins() {
        // Same operations in the same order, no FMA: every lane must be bit-identical.
        use super::super::{gelu::erf_scalar, softmax::exp_scalar};
        let xs = erf_probe();
        for (name, f4, f1) in [
            ("erf", super::erf4 as unsafe fn(float32x4_t) -> float32x4_t, erf_scalar as fn(f32) -> f32),
            ("exp", super::exp4, exp_scalar),
        ] {
            for chunk in xs.chunks_exact(4) {
                let mut got = [0f32; 4];
                // SAFETY: NEON is baseline on aarch64; 4-element buffers.
                unsafe { vst1q_f32(got.as_mut_ptr(), f4(vld1q_f32(chunk.as_ptr()))) };
                for (x, g) in chunk.iter().zip(got) {
                    let w = f1(*x);
                    assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{name}({x:e}): {g:e} vs {w:e}");
                }
            }
        }
    }

    #[test]
    fn gelu_equals_scalar_twin() {
        use super::super::gelu::gelu_scalar;
        // Odd length: the scalar tail is exercised too. Tolerance of `gelu::tests::gelu_simd_equals_scalar`.
        let xs: Vec<f32> = erf_probe().iter().map(|x| x * std::f32::consts::SQRT_2).chain([0.3]).collect();
        let mut got = xs.clone();
        // SAFETY: NEON is baseline on aarch64.
        unsafe { super::gelu_inplace(&mut got) };
        for (x, g) in xs.iter().zip(&got) {
            let w = gelu_scalar(*x);
            if w.is_nan() {
                assert!(g.is_nan(), "gelu({x}) = {g}, want NaN");
            } else {
                assert!(*g == w || (g - w).abs() <= 1e-6 * w.abs().max(1.0), "gelu({x}): {g} vs {w}");
            }
        }
    }

    #[test]
    fn softmax_equals_scalar_twin() {
        use super::super::softmax::softmax_row_scalar;
        // Tolerance of `softmax::tests::softmax_simd_equals_scalar`; lengths cover the tail paths.
        for len in [1usize, 3, 4, 5, 33, 1025] {
            let row: Vec<f32> = data(len, len as u32).iter().map(|v| v * 40.0).collect();
            let (mut want, mut got) = (row.clone(), row.clone());
            softmax_row_scalar(&mut want, 0.125);
            // SAFETY: NEON is baseline on aarch64.
            unsafe { super::softmax_row(&mut got, 0.125) };
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() <= 1e-6 * w.abs().max(1e-30) + 1e-9, "len {len}: {g} vs {w}");
            }
            assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn layernorm_equals_scalar_twin() {
        use super::super::layernorm::layernorm_row_scalar;
        // Tolerance of `layernorm::tests::layernorm_simd_equals_scalar`; one large outlier per row.
        for d in [1usize, 3, 4, 7, 33, 1024, 4099] {
            let mut x = data(d, 3 + d as u32);
            x[d / 2] += 60.0;
            let w: Vec<f32> = data(d, 5).iter().map(|v| 1.0 + v).collect();
            let b = data(d, 9);
            let (mut want, mut got) = (vec![0f32; d], vec![0f32; d]);
            layernorm_row_scalar(&x, &mut want, &w, &b, 1e-6);
            // SAFETY: NEON is baseline on aarch64; all slices of length d.
            unsafe { super::layernorm_row(&x, &mut got, &w, &b, 1e-6) };
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() <= 1e-5 * w.abs().max(1.0), "d {d}: {g} vs {w}");
            }
        }
    }
}
