//! x86-64 AVX2 + FMA (+ F16C) versions of the vision kernels. Each function mirrors a scalar twin
//! in its sibling module (named in its doc) and is tested equal to it there.
//!
//! Every function is `unsafe` and `#[target_feature]`: callers reach them only through
//! [`super::isa`] returning `Isa::Avx2` (or `Isa::Avx512`, which implies AVX2/FMA/F16C and reuses
//! everything here but the GEMM microkernel and A packing), which checked the CPU features at run time.
use super::gelu::{table, NCOEF, NINT};
use super::gemm::{MR, NR, Q8_0_BYTES, Q8_0_QK};
use super::softmax::{EXP_C, EXP_HI, EXP_LO, LN2_HI, LN2_LO, LOG2E};
use std::arch::x86_64::*;

/// GEMM microkernel (twin: `gemm::kernel_scalar`): 6×16 tile, 12 ymm accumulators, A and B
/// both packed (one contiguous stream each).
///
/// # Safety
/// AVX2+FMA available; pointer contract of `gemm::kernel_scalar`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
    // Start pulling the C tile into L1 now: its rows are `ldc` apart (no hardware prefetch), and
    // when `accumulate` the loads at the end would otherwise miss to L3 (~10% of the run time).
    for r in 0..mr {
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + NR - 1) as *const i8);
    }
    if rs == 1 && cs == MR {
        kernel_packed(kb, a, b, c, ldc, mr, nr, accumulate)
    } else {
        match mr {
            6 => kernel_strided::<6>(kb, a, rs, b, c, ldc, nr, accumulate),
            5 => kernel_strided::<5>(kb, a, rs, b, c, ldc, nr, accumulate),
            4 => kernel_strided::<4>(kb, a, rs, b, c, ldc, nr, accumulate),
            3 => kernel_strided::<3>(kb, a, rs, b, c, ldc, nr, accumulate),
            2 => kernel_strided::<2>(kb, a, rs, b, c, ldc, nr, accumulate),
            1 => kernel_strided::<1>(kb, a, rs, b, c, ldc, nr, accumulate),
            _ => {}
        }
    }
}

/// A in place (`M` rows with stride `lda`, unit stride along k).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel_strided<const M: usize>(kb: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, nr: usize, accumulate: bool) {
    let mut lo = [_mm256_setzero_ps(); MR];
    let mut hi = [_mm256_setzero_ps(); MR];
    let rows: [*const f32; M] = std::array::from_fn(|r| a.add(r * lda));
    let mut bp = b;
    for p in 0..kb {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for r in 0..M {
            let av = _mm256_broadcast_ss(&*rows[r].add(p));
            lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
        }
        bp = bp.add(NR);
    }
    store(&lo, &hi, c, ldc, M, nr, accumulate);
}

/// A packed (`[p][MR]`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel_packed(kb: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    const { assert!(MR == 6 && NR == 16) };
    let mut lo = [_mm256_setzero_ps(); MR];
    let mut hi = [_mm256_setzero_ps(); MR];
    let (mut ap, mut bp) = (a, b);
    // One k step: 2 loads of B, 6 broadcasts of A, 12 FMAs.
    macro_rules! step {
        ($o:expr) => {{
            let b0 = _mm256_loadu_ps(bp.add($o * NR));
            let b1 = _mm256_loadu_ps(bp.add($o * NR + 8));
            for r in 0..MR {
                let av = _mm256_broadcast_ss(&*ap.add($o * MR + r));
                lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
            }
        }};
    }
    // Unrolled by 4 so loop overhead and pointer bumps are amortized.
    for _ in 0..kb / 4 {
        step!(0);
        step!(1);
        step!(2);
        step!(3);
        ap = ap.add(4 * MR);
        bp = bp.add(4 * NR);
    }
    for _ in 0..kb % 4 {
        step!(0);
        ap = ap.add(MR);
        bp = bp.add(NR);
    }
    store(&lo, &hi, c, ldc, mr, nr, accumulate);
}

/// Writes (or adds) the first `mr` rows, `nr` columns of the register tile to C.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store(lo: &[__m256; MR], hi: &[__m256; MR], c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    if nr == NR {
        for r in 0..mr {
            let cp = c.add(r * ldc);
            let (mut x0, mut x1) = (lo[r], hi[r]);
            if accumulate {
                x0 = _mm256_add_ps(_mm256_loadu_ps(cp), x0);
                x1 = _mm256_add_ps(_mm256_loadu_ps(cp.add(8)), x1);
            }
            _mm256_storeu_ps(cp, x0);
            _mm256_storeu_ps(cp.add(8), x1);
        }
    } else {
        let mut t = [0f32; NR];
        for r in 0..mr {
            _mm256_storeu_ps(t.as_mut_ptr(), lo[r]);
            _mm256_storeu_ps(t.as_mut_ptr().add(8), hi[r]);
            let cp = c.add(r * ldc);
            for (j, tv) in t.iter().enumerate().take(nr) {
                *cp.add(j) = if accumulate { *cp.add(j) + tv } else { *tv };
            }
        }
    }
}

/// F16 row segment to f32 (twin: `pack::dequant_f16_scalar`).
///
/// # Safety
/// F16C available.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn dequant_f16(row: &[u8], p0: usize, out: &mut [f32]) {
    let src = &row[2 * p0..2 * (p0 + out.len())];
    let n8 = out.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    super::pack::dequant_f16_scalar(&src[2 * n8..], 0, &mut out[n8..]);
}

/// Q8_0 row segment to f32 (twin: `pack::dequant_q8_0_scalar`); p0, out.len() multiples of 32.
///
/// # Safety
/// AVX2+F16C available.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn dequant_q8_0(row: &[u8], p0: usize, out: &mut [f32]) {
    let b0 = p0 / Q8_0_QK;
    for (bi, o) in out.chunks_exact_mut(Q8_0_QK).enumerate() {
        let blk = &row[(b0 + bi) * Q8_0_BYTES..(b0 + bi + 1) * Q8_0_BYTES];
        let d = _mm256_set1_ps(half::f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32());
        for g in 0..4 {
            let q = _mm_loadl_epi64(blk.as_ptr().add(2 + 8 * g) as *const __m128i);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            _mm256_storeu_ps(o.as_mut_ptr().add(8 * g), _mm256_mul_ps(d, f));
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// 8-lane exp (twin: `softmax::exp_scalar`, same operations in the same order).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    let r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(LN2_HI))), _mm256_mul_ps(n, _mm256_set1_ps(LN2_LO)));
    let mut p = _mm256_set1_ps(EXP_C[7]);
    for k in (0..7).rev() {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_C[k]));
    }
    let e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    _mm256_mul_ps(p, _mm256_castsi256_ps(e))
}

/// In-place softmax of `row · scale` (twin: `softmax::softmax_row_scalar`).
///
/// # Safety
/// AVX2+FMA available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn softmax_row(row: &mut [f32], scale: f32) {
    let n = row.len();
    let n8 = n / 8 * 8;
    let p = row.as_mut_ptr();
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n8 {
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(i)));
        i += 8;
    }
    let mut max = hmax(vmax);
    for v in &row[n8..] {
        max = max.max(*v);
    }
    let (vm, vs) = (_mm256_set1_ps(max), _mm256_set1_ps(scale));
    let mut vsum = _mm256_setzero_ps();
    i = 0;
    while i < n8 {
        let e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), vm), vs));
        _mm256_storeu_ps(p.add(i), e);
        vsum = _mm256_add_ps(vsum, e);
        i += 8;
    }
    let mut sum = hsum(vsum);
    for v in &mut row[n8..] {
        *v = super::softmax::exp_scalar((*v - max) * scale);
        sum += *v;
    }
    let inv = _mm256_set1_ps(1.0 / sum);
    i = 0;
    while i < n8 {
        _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), inv));
        i += 8;
    }
    let inv = 1.0 / sum;
    for v in &mut row[n8..] {
        *v *= inv;
    }
}

/// 8-lane erf (twin: `gelu::erf_scalar`): both branches computed, blended by |x|; the erfc
/// interval's coefficients are selected per lane with `vpermps` (no gathers).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn erf8(x: __m256) -> __m256 {
    let t = table();
    let sign = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    let ax = _mm256_andnot_ps(sign, x);
    let xs = _mm256_and_ps(sign, x);
    // |x| < 1: x · P(2x² − 1)
    let u = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0), _mm256_mul_ps(x, x)), one);
    let mut p = _mm256_set1_ps(t.small[NCOEF - 1]);
    for k in (0..NCOEF - 1).rev() {
        p = _mm256_add_ps(_mm256_mul_ps(p, u), _mm256_set1_ps(t.small[k]));
    }
    let small = _mm256_mul_ps(x, p);
    // 1 ≤ |x| < 4: ±(1 − Q_i(u)), coefficients gathered per lane.
    let fi = _mm256_mul_ps(_mm256_sub_ps(ax, one), _mm256_set1_ps(2.0));
    let fi = _mm256_min_ps(_mm256_max_ps(fi, _mm256_setzero_ps()), _mm256_set1_ps((NINT - 1) as f32));
    let idx = _mm256_cvttps_epi32(fi);
    let centre = _mm256_add_ps(_mm256_set1_ps(1.25), _mm256_mul_ps(_mm256_set1_ps(0.5), _mm256_cvtepi32_ps(idx)));
    let ub = _mm256_mul_ps(_mm256_sub_ps(ax, centre), _mm256_set1_ps(4.0));
    const { assert!(NINT <= 8) };
    let coef = |k: usize| _mm256_permutevar8x32_ps(_mm256_loadu_ps(t.big_t[k].as_ptr()), idx);
    let mut q = coef(NCOEF - 1);
    for k in (0..NCOEF - 1).rev() {
        q = _mm256_add_ps(_mm256_mul_ps(q, ub), coef(k));
    }
    let big = _mm256_or_ps(_mm256_sub_ps(one, q), xs);
    let sat = _mm256_or_ps(one, xs);
    let r = _mm256_blendv_ps(sat, big, _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(4.0)));
    let r = _mm256_blendv_ps(r, small, _mm256_cmp_ps::<_CMP_LT_OQ>(ax, one));
    _mm256_blendv_ps(r, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// In-place exact GELU (twin: `gelu::gelu_scalar`).
///
/// # Safety
/// AVX2+FMA available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_inplace(v: &mut [f32]) {
    let n8 = v.len() / 8 * 8;
    let p = v.as_mut_ptr();
    let (half, one, rs2) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0), _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let mut i = 0;
    while i < n8 {
        let x = _mm256_loadu_ps(p.add(i));
        let e = erf8(_mm256_mul_ps(x, rs2));
        _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e)));
        i += 8;
    }
    for x in &mut v[n8..] {
        *x = super::gelu::gelu_scalar(*x);
    }
}

/// LayerNorm of one row (twin: `layernorm::layernorm_row_scalar`).
///
/// # Safety
/// AVX2+FMA available; all slices of equal length.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn layernorm_row(x: &[f32], y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len();
    let n8 = n / 8 * 8;
    let xp = x.as_ptr();
    let mut s = _mm256_setzero_ps();
    let mut i = 0;
    while i < n8 {
        s = _mm256_add_ps(s, _mm256_loadu_ps(xp.add(i)));
        i += 8;
    }
    let mut sum = hsum(s);
    sum += x[n8..].iter().sum::<f32>();
    let mean = sum / n as f32;
    let vm = _mm256_set1_ps(mean);
    let mut s2 = _mm256_setzero_ps();
    i = 0;
    while i < n8 {
        let d = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), vm);
        s2 = _mm256_fmadd_ps(d, d, s2);
        i += 8;
    }
    let mut ss = hsum(s2);
    ss += x[n8..].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>();
    let rstd = 1.0 / (ss / n as f32 + eps).sqrt();
    let vr = _mm256_set1_ps(rstd);
    i = 0;
    while i < n8 {
        let d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), vm), vr);
        let o = _mm256_fmadd_ps(d, _mm256_loadu_ps(w.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)));
        _mm256_storeu_ps(y.as_mut_ptr().add(i), o);
        i += 8;
    }
    for j in n8..n {
        y[j] = (x[j] - mean) * rstd * w[j] + b[j];
    }
}

/// Panel transpose for GEMM packing (twin: `pack::transpose_panel_scalar`):
/// `panel[p*W + j] = rows[j*ld + p]` for j < W, p < kb, by 8×8 register transposes (W = 16 for
/// the 6×16 kernels, 32 for AVX-512's 14×32).
///
/// # Safety
/// AVX2 available; `rows.len() ≥ W·ld`, `panel.len() ≥ W·kb`, `kb ≤ ld`.
#[target_feature(enable = "avx2")]
pub unsafe fn transpose_panel<const W: usize>(rows: &[f32], ld: usize, kb: usize, panel: &mut [f32]) {
    const { assert!(W % 8 == 0) };
    let kb8 = kb / 8 * 8;
    let dst = panel.as_mut_ptr();
    for g in 0..W / 8 {
        let s = rows.as_ptr().add(g * 8 * ld);
        let mut p = 0;
        while p < kb8 {
            let cols = transpose8(std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * ld + p))));
            for (i, c) in cols.iter().enumerate() {
                _mm256_storeu_ps(dst.add((p + i) * W + g * 8), *c);
            }
            p += 8;
        }
        for p in kb8..kb {
            for j in 0..8 {
                *dst.add(p * W + g * 8 + j) = *s.add(j * ld + p);
            }
        }
    }
}

/// 8×8 transpose of rows `r` (returns the columns).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Packs one full MR-row strip of A (twin: the inner loop of `pack::pack_a`):
/// `strip[p*MR + r] = a[r*lda + p]` for r < 6, p < kb. Each group of 8 k values is transposed in
/// registers and written as 8 overlapping 8-wide stores (each keeps its first 6 lanes); the store
/// that would run past `strip` (the very last) is done lane by lane.
///
/// # Safety
/// AVX2 available; `a` holds 6 rows of `kb` values at stride `lda`; `strip.len() == kb * MR`.
#[target_feature(enable = "avx2")]
pub unsafe fn pack_a_strip(a: &[f32], lda: usize, kb: usize, strip: &mut [f32]) {
    assert!(MR == 6 && strip.len() == kb * MR && a.len() >= 5 * lda + kb);
    let kb8 = kb / 8 * 8;
    let src = a.as_ptr();
    let dst = strip.as_mut_ptr();
    let zero = _mm256_setzero_ps();
    let mut p = 0;
    while p < kb8 {
        let cols = transpose8([
            _mm256_loadu_ps(src.add(p)),
            _mm256_loadu_ps(src.add(lda + p)),
            _mm256_loadu_ps(src.add(2 * lda + p)),
            _mm256_loadu_ps(src.add(3 * lda + p)),
            _mm256_loadu_ps(src.add(4 * lda + p)),
            _mm256_loadu_ps(src.add(5 * lda + p)),
            zero,
            zero,
        ]);
        for (t, c) in cols.iter().enumerate() {
            let off = (p + t) * MR;
            if off + 8 <= strip.len() {
                _mm256_storeu_ps(dst.add(off), *c);
            } else {
                let mut tmp = [0f32; 8];
                _mm256_storeu_ps(tmp.as_mut_ptr(), *c);
                strip[off..off + MR].copy_from_slice(&tmp[..MR]);
            }
        }
        p += 8;
    }
    for p in kb8..kb {
        for r in 0..MR {
            strip[p * MR + r] = a[r * lda + p];
        }
    }
}
