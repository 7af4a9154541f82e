//! x86-64 int8 kernels: the AVX2 and AVX-512 VNNI microkernels of [`super::qgemm`] and the AVX2
//! versions of [`super::qpack`]'s A quantization and Q8_0 requantization. Scalar twins live in
//! `qgemm` / `qpack`; the tests there hold these equal to them bit for bit.
use super::gemm::{Q8_0_BYTES, Q8_0_QK};
use super::qpack::{block_ratio, row_dmax, row_scales, QNR};
use std::arch::x86_64::*;

/// Rows of the AVX2 tile (4 rows × 2 ymm = 8 accumulators, + B, |a|, products, ones: 15 ymm).
pub const MR_AVX2: usize = 4;
/// Rows of the VNNI tile: 12 zmm accumulators (more than `vpdpbusd`'s latency × throughput, 5 × 2)
/// and each 64-byte B vector reused 12 times from a register. Measured against 8 rows on an Intel
/// Xeon (Sapphire Rapids class), 1 thread, the encoder's QKV/fc1/fc2 shapes, A/B/A: 12 rows
/// 390–418 GOP/s against 8 rows 320–370 (examples/gemm_blocking.rs).
pub const MR_VNNI: usize = 12;

#[inline(always)]
unsafe fn bcast4(p: *const u8) -> i32 {
    (p as *const i32).read_unaligned()
}

/// AVX2: per row, `maddubs(|a|, sign(b, a))` gives pairwise sums of `a·b` in i16 (≤ 2·127² —
/// no saturation), `madd` with ones adds the pairs into the i32 lanes (one lane = 4 k of a column).
///
/// # Safety
/// AVX2 available; pointers as in [`super::qgemm::QKernelFn`] with MR = [`MR_AVX2`], signed A.
#[target_feature(enable = "avx2")]
pub unsafe fn qkernel_avx2(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; MR_AVX2];
    for p in 0..kq {
        let b0 = _mm256_loadu_si256(b.add(p * 4 * QNR) as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(p * 4 * QNR + 32) as *const __m256i);
        for (r, ar) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(bcast4(a.add(r * lda + 4 * p)));
            let aa = _mm256_abs_epi8(av);
            let p0 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, av));
            let p1 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, av));
            ar[0] = _mm256_add_epi32(ar[0], _mm256_madd_epi16(p0, ones));
            ar[1] = _mm256_add_epi32(ar[1], _mm256_madd_epi16(p1, ones));
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        _mm256_storeu_si256(out.add(r * QNR) as *mut __m256i, ar[0]);
        _mm256_storeu_si256(out.add(r * QNR + 8) as *mut __m256i, ar[1]);
    }
}

/// AVX-512 VNNI: one `vpdpbusd` per row and k-quad (u8 `a+128` × s8 `w`, 4 products summed into
/// each i32 lane without intermediate saturation); the `128·Σw` offset is removed by the epilogue.
///
/// # Safety
/// AVX-512 F/BW/VNNI available; pointers as in [`super::qgemm::QKernelFn`] with MR = [`MR_VNNI`],
/// u8-offset A.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn qkernel_vnni(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let mut acc = [_mm512_setzero_si512(); MR_VNNI];
    for p in 0..kq {
        let bv = _mm512_loadu_si512(b.add(p * 4 * QNR) as *const _);
        for (r, ar) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(bcast4(a.add(r * lda + 4 * p)));
            *ar = _mm512_dpbusd_epi32(*ar, av, bv);
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        _mm512_storeu_si512(out.add(r * QNR) as *mut _, *ar);
    }
}

/// Horizontal max of 8 f32.
#[inline(always)]
unsafe fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    _mm_cvtss_f32(m)
}

/// Packs 32 i32 (four vectors, in order) to 32 i8 with saturation, in order.
#[inline(always)]
unsafe fn pack32(i0: __m256i, i1: __m256i, i2: __m256i, i3: __m256i) -> __m256i {
    // packs work per 128-bit lane: the result's dwords hold i0[0..4], i1[0..4], i2[0..4],
    // i3[0..4], i0[4..8], i1[4..8], i2[4..8], i3[4..8]; the permute restores the order.
    let w01 = _mm256_packs_epi32(i0, i1);
    let w23 = _mm256_packs_epi32(i2, i3);
    let b = _mm256_packs_epi16(w01, w23);
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// AVX2 twin of [`super::qpack::quantize_row_scalar`].
///
/// # Safety
/// AVX2 available; `out.len() == row.len()`.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize_row(row: &[f32], out: &mut [u8], offset: bool) -> f32 {
    let n = row.len();
    assert_eq!(out.len(), n);
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut vm = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        vm = _mm256_max_ps(vm, _mm256_and_ps(_mm256_loadu_ps(row.as_ptr().add(i)), absmask));
        i += 8;
    }
    let mut amax = hmax(vm);
    for v in &row[i..] {
        amax = amax.max(v.abs());
    }
    let (id, s) = row_scales(amax);
    let vid = _mm256_set1_ps(id);
    let flip = _mm256_set1_epi8(if offset { 0x80u8 as i8 } else { 0 });
    let mut i = 0;
    while i + 32 <= n {
        let p = row.as_ptr().add(i);
        let q = |o: usize| _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(o)), vid));
        let b = pack32(q(0), q(8), q(16), q(24));
        _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, _mm256_xor_si256(b, flip));
        i += 32;
    }
    let fl = if offset { 0x80u8 } else { 0 };
    for (o, v) in out[i..].iter_mut().zip(&row[i..]) {
        *o = ((v * id).round_ties_even() as i32 as i8 as u8) ^ fl;
    }
    s
}

/// AVX2 twin of [`super::qpack::requant_row_scalar`].
///
/// # Safety
/// AVX2 available; `row` holds `out.len()/32` Q8_0 blocks.
#[target_feature(enable = "avx2")]
pub unsafe fn requant_row(row: &[u8], out: &mut [i8]) -> (f32, i32) {
    let dmax = row_dmax(row);
    let lo = _mm256_set1_epi8(-127);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let mut vsum = _mm256_setzero_si256();
    for (blk, o) in row.chunks_exact(Q8_0_BYTES).zip(out.chunks_exact_mut(Q8_0_QK)) {
        let d = half::f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
        let r = _mm256_set1_ps(block_ratio(d, dmax));
        let q = blk.as_ptr().add(2);
        let cv = |o: usize| {
            let x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(q.add(o) as *const __m128i));
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_cvtepi32_ps(x), r))
        };
        let w = _mm256_max_epi8(pack32(cv(0), cv(8), cv(16), cv(24)), lo);
        _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, w);
        // Σ w: maddubs(1, w) sums byte pairs to i16, madd(·, 1) pairs to i32.
        vsum = _mm256_add_epi32(vsum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, w), ones16));
    }
    let s = _mm_add_epi32(_mm256_castsi256_si128(vsum), _mm256_extracti128_si256(vsum, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    (dmax, _mm_cvtsi128_si32(s))
}
