//! x86-64 256-bit VNNI int8 microkernels of [`super::qgemm`] (twin: `qgemm::qkernel_scalar`).
//!
//! Why: Intel laptops since Alder Lake have AVX-VNNI (VEX `vpdpbusd` on ymm) but no AVX-512, and
//! there `vpdpbusd` does 32 multiply-adds per instruction against AVX2's three-instruction
//! `maddubs` + `madd` + `add` chain. One generic body ([`body`]) is compiled twice:
//! - [`qkernel_avxvnni`]: the VEX form (`_mm256_dpbusd_avx_epi32`, target feature `avxvnni`),
//!   16 ymm registers, so a 6-row tile (12 accumulators + 2 B + 1 broadcast);
//! - [`qkernel_vnni256`]: the EVEX form (`_mm256_dpbusd_epi32`, AVX-512 VNNI + VL), which can
//!   use ymm16–31, so a 12-row tile (24 accumulators); it is also what lets the VEX kernel's
//!   arithmetic be checked on an AVX-512 machine without AVX-VNNI.
//!
//! Both use the u8-offset activations of the zmm VNNI kernel (`a + 128`, corrected by
//! `128·Σw` in the epilogue), so their int32 sums equal the scalar twin's exactly.
use super::qpack::QNR;
use std::arch::x86_64::*;

/// Rows of the VEX (AVX-VNNI) tile: 12 ymm accumulators + 2 B + 1 broadcast of the 16 registers.
pub const MR_AVXVNNI: usize = 6;
/// Rows of the EVEX ymm tile: 24 accumulators of the 32 registers.
pub const MR_VNNI256: usize = 12;

/// One `vpdpbusd` on ymm: `acc + Σ_{u<4} a.u8[4l+u]·b.i8[4l+u]` per i32 lane l.
trait Dpbusd {
    unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// VEX encoding (AVX-VNNI).
struct Vex;
/// EVEX encoding (AVX-512 VNNI + VL).
struct Evex;

impl Dpbusd for Vex {
    #[inline(always)]
    unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, a, b)
    }
}

impl Dpbusd for Evex {
    #[inline(always)]
    unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, a, b)
    }
}

/// The shared body: `M` rows × [`QNR`] (two ymm of i32) columns; per k-quad two B loads, `M`
/// broadcasts of four A bytes, `2M` dot products.
#[inline(always)]
unsafe fn body<D: Dpbusd, const M: usize>(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let mut acc = [[_mm256_setzero_si256(); 2]; M];
    for p in 0..kq {
        let b0 = _mm256_loadu_si256(b.add(p * 4 * QNR) as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(p * 4 * QNR + 32) as *const __m256i);
        for (r, ar) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32((a.add(r * lda + 4 * p) as *const i32).read_unaligned());
            ar[0] = D::dp(ar[0], av, b0);
            ar[1] = D::dp(ar[1], av, b1);
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        _mm256_storeu_si256(out.add(r * QNR) as *mut __m256i, ar[0]);
        _mm256_storeu_si256(out.add(r * QNR + 8) as *mut __m256i, ar[1]);
    }
}

/// AVX-VNNI (VEX) kernel.
///
/// # Safety
/// AVX2 + AVX-VNNI available; pointers as in [`super::qgemm::QKernelFn`] with MR =
/// [`MR_AVXVNNI`], u8-offset A.
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn qkernel_avxvnni(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    body::<Vex, MR_AVXVNNI>(kq, a, lda, b, out)
}

/// AVX-512 VNNI kernel on ymm (EVEX).
///
/// # Safety
/// AVX-512F/VL/VNNI available; pointers as in [`super::qgemm::QKernelFn`] with MR =
/// [`MR_VNNI256`], u8-offset A.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
pub unsafe fn qkernel_vnni256(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    body::<Evex, MR_VNNI256>(kq, a, lda, b, out)
}
