//! aarch64 Advanced SIMD (NEON) GEMM microkernel (twin: `gemm::kernel_scalar`): 6×16 tile in
//! 24 q-register accumulators. The element-wise kernels (GELU, softmax, LayerNorm) use their
//! scalar twins on aarch64 for now; the GEMM is where the time goes.
use super::gemm::{MR, NR};
use std::arch::aarch64::*;

/// # Safety
/// NEON available; pointer contract of `gemm::kernel_scalar` (A and B packed).
#[allow(clippy::too_many_arguments)]
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

#[cfg(test)]
mod tests {
    // Also exercised end to end by `gemm::tests::simd_gemm_equals_scalar` through `simd_isa()`;
    // this test pins that the NEON kernel (not a scalar fallback) is what runs, and compares the
    // microkernel with its scalar twin directly on both A layouts, partial tiles and accumulation.
    use super::super::gemm::{kernel_scalar, MR, NR};
    use super::super::{isa, simd_isa, Isa};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
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
}
