//! aarch64 Advanced SIMD (NEON) GEMM microkernel (twin: `gemm::kernel_scalar`): 6×16 tile in
//! 24 q-register accumulators. The element-wise kernels (GELU, softmax, LayerNorm) use their
//! scalar twins on aarch64 for now; the GEMM is where the time goes.
use super::gemm::{MR, NR};
use std::arch::aarch64::*;

/// # Safety
/// NEON available; pointer contract of `gemm::kernel_scalar`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
pub unsafe fn kernel_6x16(
    kb: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    match mr {
        6 => tile::<6>(kb, a, lda, b, c, ldc, nr, accumulate),
        5 => tile::<5>(kb, a, lda, b, c, ldc, nr, accumulate),
        4 => tile::<4>(kb, a, lda, b, c, ldc, nr, accumulate),
        3 => tile::<3>(kb, a, lda, b, c, ldc, nr, accumulate),
        2 => tile::<2>(kb, a, lda, b, c, ldc, nr, accumulate),
        1 => tile::<1>(kb, a, lda, b, c, ldc, nr, accumulate),
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const M: usize>(
    kb: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    accumulate: bool,
) {
    const { assert!(M <= MR && NR == 16) };
    let mut acc = [[vdupq_n_f32(0.0); 4]; M];
    let mut bp = b;
    for p in 0..kb {
        let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8)), vld1q_f32(bp.add(12))];
        for r in 0..M {
            let av = vdupq_n_f32(*a.add(r * lda + p));
            for q in 0..4 {
                acc[r][q] = vfmaq_f32(acc[r][q], av, bv[q]);
            }
        }
        bp = bp.add(NR);
    }
    let mut t = [0f32; NR];
    for r in 0..M {
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
