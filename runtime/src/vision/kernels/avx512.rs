//! x86-64 AVX-512F f32 GEMM microkernel (14×32 tile) and its A-strip packing. Everything else
//! of the f32 path (dequantization, B transposes, softmax, GELU, LayerNorm) runs the AVX2 code
//! under `Isa::Avx512`: those are O(n·k) or O(N·D) and memory-bound, zmm would not pay there.
//!
//! Why 14×32: 28 zmm accumulators + 2 B vectors + 1 broadcast fill 31 of the 32 zmm registers,
//! so each k step issues 28 FMAs against 2 B loads and 14 embedded broadcasts of A (the
//! broadcasts fold into the FMAs' memory operand). Against 6×16 AVX2 this is 4× the FMAs per
//! instruction fetched, and B micro-panels are reused by 14 rows instead of 6.
//!
//! Callers reach these only through [`super::isa`] returning `Isa::Avx512`, which checked
//! AVX-512F (+VL for the masked 256-bit stores) and AVX2/FMA/F16C at run time.
use super::avx2::transpose8;
use super::gemm::Blocking;
use std::arch::x86_64::*;

/// Rows of the register tile.
pub const MR: usize = 14;
/// Columns of the register tile (two zmm; the packed B panel width under AVX-512).
pub const NR: usize = 32;

/// Cache blocking of the 14×32 kernel, measured on an Intel Xeon (Sapphire Rapids class, 2 MB
/// L2/core, 48 KB L1D), 1 thread, Q8_0 weights, `examples/gemm_blocking.rs` (kc 256–512, mc 8–32
/// strips, nc 8–16 panels, interleaved, best of 4): against the first guess (256, 196, 256) this
/// one gains 6% on QKV (158 → 168 GFLOP per core-second) and 5% on fc1 (152 → 160); fc2 (k 4096)
/// measured best at nc 512 (145, +9%), which would make the packed B block 768 KB — too close to
/// Zen 4's 1 MB L2, so nc stays 256. Why it holds on smaller L2s: the packed B block
/// (`kc·nc·4` = 384 KB) plus the A sub-block (`mc·kc·4` = 172 KB) stay under 1 MB (Zen 4) and
/// 1.25 MB (Ice Lake-SP); the B micro-panel (`kc·32·4` = 48 KB) streams from L2 on 32 KB L1Ds,
/// which 28 FMAs per 2 B loads tolerate (kc 512, a 64 KB panel, measured as fast as 384 here).
pub const BLOCKING: Blocking = Blocking { kc: 384, mc: 112, nc: 256 };

/// GEMM microkernel (twin: `gemm::kernel_scalar_tile::<14, 32>`), contract of `gemm::kernel_scalar`
/// with MR = 14, NR = 32.
///
/// # Safety
/// AVX-512F available; pointer contract of `gemm::kernel_scalar` for the 14×32 tile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel_14x32(
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
    // As in the AVX2 kernel: pull the C tile's rows (`ldc` apart, no hardware prefetch) into L1.
    for r in 0..mr {
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + 16) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + NR - 1) as *const i8);
    }
    if rs == 1 && cs == MR {
        kernel_packed(kb, a, b, c, ldc, mr, nr, accumulate);
        return;
    }
    // A in place: full strips run the 14-row body; a ragged strip is split into 8/4/2/1-row
    // bodies (each re-reads the B panel from L1; only the last strip of a block is ragged).
    let mut r0 = 0;
    while r0 < mr {
        let (ar, cr) = (a.add(r0 * rs), c.add(r0 * ldc));
        let left = mr - r0;
        r0 += match left {
            MR.. => kernel_strided::<MR>(kb, ar, rs, b, cr, ldc, nr, accumulate),
            8.. => kernel_strided::<8>(kb, ar, rs, b, cr, ldc, nr, accumulate),
            4.. => kernel_strided::<4>(kb, ar, rs, b, cr, ldc, nr, accumulate),
            2.. => kernel_strided::<2>(kb, ar, rs, b, cr, ldc, nr, accumulate),
            _ => kernel_strided::<1>(kb, ar, rs, b, cr, ldc, nr, accumulate),
        };
    }
}

/// `M` rows of A in place (stride `lda`, unit stride along k); returns `M`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel_strided<const M: usize>(kb: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, nr: usize, accumulate: bool) -> usize {
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    let rows: [*const f32; M] = std::array::from_fn(|r| a.add(r * lda));
    let mut bp = b;
    for p in 0..kb {
        let b0 = _mm512_loadu_ps(bp);
        let b1 = _mm512_loadu_ps(bp.add(16));
        for r in 0..M {
            let av = _mm512_set1_ps(*rows[r].add(p));
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
        bp = bp.add(NR);
    }
    store(&acc, c, ldc, M, nr, accumulate);
    M
}

/// A packed (`[p][MR]`): one k step is 2 loads of B, 14 broadcasts of A, 28 FMAs.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel_packed(kb: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (mut ap, mut bp) = (a, b);
    macro_rules! step {
        ($o:expr) => {{
            let b0 = _mm512_loadu_ps(bp.add($o * NR));
            let b1 = _mm512_loadu_ps(bp.add($o * NR + 16));
            for r in 0..MR {
                let av = _mm512_set1_ps(*ap.add($o * MR + r));
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }};
    }
    // Unrolled by 2: amortizes the pointer bumps without the register pressure of holding two
    // k steps' B vectors (28 + 4 would spill).
    for _ in 0..kb / 2 {
        step!(0);
        step!(1);
        ap = ap.add(2 * MR);
        bp = bp.add(2 * NR);
    }
    if kb % 2 == 1 {
        step!(0);
    }
    store(&acc, c, ldc, mr, nr, accumulate);
}

/// Writes (or adds) the first `mr` rows, `nr` columns of the register tile to C; partial
/// columns with masked loads/stores (nothing outside the `mr×nr` tile is touched).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const M: usize>(acc: &[[__m512; 2]; M], c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    let lanes = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
    let (m0, m1) = (lanes(nr), lanes(nr.saturating_sub(16)));
    for (r, ar) in acc.iter().enumerate().take(mr) {
        let cp = c.add(r * ldc);
        let (mut x0, mut x1) = (ar[0], ar[1]);
        if nr == NR {
            if accumulate {
                x0 = _mm512_add_ps(_mm512_loadu_ps(cp), x0);
                x1 = _mm512_add_ps(_mm512_loadu_ps(cp.add(16)), x1);
            }
            _mm512_storeu_ps(cp, x0);
            _mm512_storeu_ps(cp.add(16), x1);
        } else {
            if accumulate {
                x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cp), x0);
                x1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cp.add(16)), x1);
            }
            _mm512_mask_storeu_ps(cp, m0, x0);
            _mm512_mask_storeu_ps(cp.add(16), m1, x1);
        }
    }
}

/// Packs one full 14-row strip of A (twin: `pack::pack_a_strip_scalar` with mr = rows = 14):
/// `strip[p*14 + r] = a[r*lda + p]`. Rows 0–7 and 8–13 are transposed 8×8 in registers, each
/// column written with a masked 256-bit store (6 lanes for the second group).
///
/// # Safety
/// AVX-512F/VL available; `a` holds 14 rows of `kb` values at stride `lda`; `strip.len() == kb * 14`.
#[target_feature(enable = "avx512f,avx512vl")]
pub unsafe fn pack_a_strip(a: &[f32], lda: usize, kb: usize, strip: &mut [f32]) {
    assert!(strip.len() == kb * MR && a.len() >= (MR - 1) * lda + kb);
    let kb8 = kb / 8 * 8;
    let (src, dst) = (a.as_ptr(), strip.as_mut_ptr());
    for (r0, rows) in [(0usize, 8usize), (8, MR - 8)] {
        let mask = ((1u32 << rows) - 1) as __mmask8;
        let mut p = 0;
        while p < kb8 {
            let regs = std::array::from_fn(|i| if i < rows { _mm256_loadu_ps(src.add((r0 + i) * lda + p)) } else { _mm256_setzero_ps() });
            for (t, col) in transpose8(regs).iter().enumerate() {
                _mm256_mask_storeu_ps(dst.add((p + t) * MR + r0), mask, *col);
            }
            p += 8;
        }
    }
    for p in kb8..kb {
        for r in 0..MR {
            strip[p * MR + r] = a[r * lda + p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::kernel_scalar_tile;
    use super::super::{simd_isas, Isa};
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        super::super::test_data(n, seed, 4242).into_iter().map(|v| v * 0.5).collect()
    }

    /// The 14×32 kernel against its scalar twin: both A layouts, every ragged row count, partial
    /// columns, accumulation, odd depths; nothing outside the `mr×nr` tile may be written.
    #[test]
    fn kernel_14x32_equals_scalar_twin() {
        if !simd_isas().contains(&Isa::Avx512) {
            eprintln!("no AVX-512F on this host: the 14×32 kernel is not tested");
            return;
        }
        for &kb in &[1usize, 2, 7, 64, 255] {
            let b = data(kb * NR, kb as u32);
            let packed = data(kb * MR, 7 + kb as u32);
            let lda = kb + 3;
            let inplace = data(MR * lda, 11 + kb as u32);
            for mr in 1..=MR {
                for nr in [NR, 1, 15, 16, 17, 31] {
                    for accumulate in [false, true] {
                        for (a, rs, cs) in [(&packed, 1, MR), (&inplace, lda, 1)] {
                            let ldc = NR + 3;
                            let c0 = data(MR * ldc, 99);
                            let (mut want, mut got) = (c0.clone(), c0.clone());
                            // SAFETY: buffers sized for kb×MR / kb×NR / MR×ldc; AVX-512F detected.
                            unsafe {
                                let (ap, bp) = (a.as_ptr(), b.as_ptr());
                                kernel_scalar_tile::<MR, NR>(kb, ap, rs, cs, bp, want.as_mut_ptr(), ldc, mr, nr, accumulate);
                                kernel_14x32(kb, ap, rs, cs, bp, got.as_mut_ptr(), ldc, mr, nr, accumulate);
                            }
                            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                                let (r, j) = (i / ldc, i % ldc);
                                if r < mr && j < nr {
                                    // FMA vs separate multiply-add: a few ulps of the sum (as the AVX2/NEON twins).
                                    let tol = 1e-5 * (kb as f32).sqrt().max(1.0);
                                    assert!((w - g).abs() <= tol, "kb {kb} mr {mr} nr {nr} acc {accumulate} rs {rs} ({r},{j}): {w} vs {g}");
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
}
