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
    // The NEON kernel is exercised by `gemm::tests::simd_gemm_equals_scalar` through `simd_isa()`.
}
