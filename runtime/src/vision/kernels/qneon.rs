//! aarch64 int8 microkernels of [`super::qgemm`] (signed A and B): `sdot` when the CPU has the
//! dot-product extension (Pi 5, Apple, Graviton), else `smull` + pairwise adds. Both give the
//! exact int32 sums of the scalar twin (tests in `qgemm`). A quantization and B packing use the
//! scalar twins of `qpack` on aarch64.
//!
//! `sdot` is emitted with `asm!`: the `vdotq_s32` intrinsic is still unstable in Rust.
use super::qpack::QNR;
use std::arch::aarch64::*;

/// Rows of the NEON tile (4 rows × 4 q-registers = 16 accumulators, + 4 B + 1 A of 32).
pub const MR_NEON: usize = 4;

#[inline(always)]
unsafe fn bcast4(p: *const u8) -> int8x16_t {
    vreinterpretq_s8_s32(vdupq_n_s32((p as *const i32).read_unaligned()))
}

/// `acc[lane j] += Σ_u a[4j'+u]·b[4j+u]` with `a` the same 4 bytes in every lane (`sdot`).
#[inline(always)]
unsafe fn sdot(mut acc: int32x4_t, b: int8x16_t, a: int8x16_t) -> int32x4_t {
    std::arch::asm!(
        "sdot {acc:v}.4s, {b:v}.16b, {a:v}.16b",
        acc = inout(vreg) acc,
        b = in(vreg) b,
        a = in(vreg) a,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// NEON + dotprod microkernel.
///
/// # Safety
/// NEON and dotprod available; pointers as in [`super::qgemm::QKernelFn`] with MR = [`MR_NEON`].
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn qkernel_sdot(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let mut acc = [[vdupq_n_s32(0); 4]; MR_NEON];
    for p in 0..kq {
        let bp = b.add(p * 4 * QNR) as *const i8;
        let bv = [vld1q_s8(bp), vld1q_s8(bp.add(16)), vld1q_s8(bp.add(32)), vld1q_s8(bp.add(48))];
        for (r, ar) in acc.iter_mut().enumerate() {
            let av = bcast4(a.add(r * lda + 4 * p));
            for c in 0..4 {
                ar[c] = sdot(ar[c], bv[c], av);
            }
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        for (c, v) in ar.iter().enumerate() {
            vst1q_s32(out.add(r * QNR + 4 * c), *v);
        }
    }
}

/// Plain NEON microkernel: `smull` of 8 bytes (2 columns × 4 k) gives 8 i16 products, a pairwise
/// widening add and a pairwise add fold them into one i32 per column.
///
/// # Safety
/// NEON available; pointers as in [`super::qgemm::QKernelFn`] with MR = [`MR_NEON`].
#[target_feature(enable = "neon")]
pub unsafe fn qkernel_smull(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let mut acc = [[vdupq_n_s32(0); 4]; MR_NEON];
    for p in 0..kq {
        let bp = b.add(p * 4 * QNR) as *const i8;
        let bv = [vld1q_s8(bp), vld1q_s8(bp.add(16)), vld1q_s8(bp.add(32)), vld1q_s8(bp.add(48))];
        for (r, ar) in acc.iter_mut().enumerate() {
            let av = vget_low_s8(bcast4(a.add(r * lda + 4 * p)));
            for c in 0..4 {
                let lo = vpaddlq_s16(vmull_s8(vget_low_s8(bv[c]), av)); // [c0 k01, c0 k23, c1 k01, c1 k23]
                let hi = vpaddlq_s16(vmull_s8(vget_high_s8(bv[c]), av)); // same for c2, c3
                ar[c] = vaddq_s32(ar[c], vpaddq_s32(lo, hi));
            }
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        for (c, v) in ar.iter().enumerate() {
            vst1q_s32(out.add(r * QNR + 4 * c), *v);
        }
    }
}
