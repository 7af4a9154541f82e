//! Packing for the GEMM: weights (F32/F16/Q8_0) are dequantized row segment by row segment and
//! transposed into `kc×NR` B panels; A (f32 activations) is interleaved into `MR`-row strips.
//! `MR`, `NR` and `kc` are the selected ISA's ([`Isa::tile`], [`Isa::blocking`]): 6×16 for
//! scalar/AVX2/NEON, 14×32 for AVX-512. Scalar twins here, AVX2 versions (dequantization, 8×8
//! register transposes) in `avx2` (AVX-512 reuses them: packing is O(n·k) against the kernel's
//! O(m·n·k)), AVX-512's 14-row A strips in `avx512`.
use super::gemm::{BMat, WType, Q8_0_BYTES, Q8_0_QK};
use super::Isa;
use half::f16;
use rayon::prelude::*;
use std::cell::RefCell;

// ---------------------------------------------------------------------------------------------
// Dequantization of one row segment (the packing primitive); scalar twins here, SIMD in avx2/neon.

/// Scalar: values `p0..p0+out.len()` of an F16 row.
pub fn dequant_f16_scalar(row: &[u8], p0: usize, out: &mut [f32]) {
    let src = &row[2 * p0..2 * (p0 + out.len())];
    for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
        *o = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// Scalar: values `p0..p0+out.len()` of a Q8_0 row (`p0` and `out.len()` multiples of 32).
pub fn dequant_q8_0_scalar(row: &[u8], p0: usize, out: &mut [f32]) {
    let b0 = p0 / Q8_0_QK;
    for (bi, o) in out.chunks_exact_mut(Q8_0_QK).enumerate() {
        let blk = &row[(b0 + bi) * Q8_0_BYTES..(b0 + bi + 1) * Q8_0_BYTES];
        let d = f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
        for (v, q) in o.iter_mut().zip(&blk[2..]) {
            *v = d * (*q as i8) as f32;
        }
    }
}

pub(crate) fn dequant(isa: Isa, ty: WType, row: &[u8], p0: usize, out: &mut [f32]) {
    match ty {
        WType::F32 => {
            for (o, b) in out.iter_mut().zip(row[4 * p0..].chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WType::F16 => match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx2/Avx512 are only chosen when AVX2/FMA/F16C were detected.
            Isa::Avx2 | Isa::Avx512 => unsafe { super::avx2::dequant_f16(row, p0, out) },
            _ => dequant_f16_scalar(row, p0, out),
        },
        WType::Q8_0 => match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 | Isa::Avx512 => unsafe { super::avx2::dequant_q8_0(row, p0, out) },
            _ => dequant_q8_0_scalar(row, p0, out),
        },
    }
}

/// Packs columns `j0..j0+nb` and depth `p0..p0+kb` of B into `ceil(nb/nr)` panels of `kb×nr`
/// (panel-major, then k, then the nr columns), zero-padding the last panel. `rows` is scratch for
/// nr dequantized rows of `kc` values (`kb ≤ kc`), transposed into the panel with the ISA's 8×8
/// transpose.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b(isa: Isa, b: &BMat, j0: usize, nb: usize, p0: usize, kb: usize, nr: usize, kc: usize, dst: &mut [f32], rows: &mut [f32]) {
    let panels = nb.div_ceil(nr);
    let dst = &mut dst[..panels * kb * nr];
    for q in 0..panels {
        let panel = &mut dst[q * kb * nr..(q + 1) * kb * nr];
        let cols = nr.min(nb - q * nr);
        let jq = j0 + q * nr;
        if let BMat::F32Kn { data, ld, .. } = b {
            // Already k-major: each k step is a contiguous run of columns.
            for (p, dst) in panel.chunks_exact_mut(nr).enumerate() {
                let off = (p0 + p) * ld + jq;
                if cols == nr {
                    copy_run(&data[off..off + nr], dst);
                } else {
                    dst[..cols].copy_from_slice(&data[off..off + cols]);
                    dst[cols..].fill(0.0);
                }
            }
            continue;
        }
        for jj in 0..nr {
            let row = &mut rows[jj * kc..jj * kc + kb];
            if jj >= cols {
                row.fill(0.0);
                continue;
            }
            let j = jq + jj;
            match b {
                BMat::Weight(w) => dequant(isa, w.ty, w.row(j), p0, row),
                BMat::F32Nk { data, ld, .. } => row.copy_from_slice(&data[j * ld + p0..j * ld + p0 + kb]),
                BMat::F32Kn { .. } => unreachable!(),
            }
        }
        transpose_panel(isa, rows, kc, nr, kb, panel);
    }
}

/// Copies one full run of a k-major panel row; the two panel widths get fixed-size copies
/// (inlined vector moves instead of a memmove call per k step).
#[inline]
fn copy_run(src: &[f32], dst: &mut [f32]) {
    match dst.len() {
        16 => dst.copy_from_slice(<&[f32; 16]>::try_from(src).unwrap()),
        32 => dst.copy_from_slice(<&[f32; 32]>::try_from(src).unwrap()),
        _ => dst.copy_from_slice(src),
    }
}

/// Scalar twin of the panel transpose: `panel[p*nr + j] = rows[j*ld + p]` for j < nr, p < kb.
pub fn transpose_panel_scalar(rows: &[f32], ld: usize, nr: usize, kb: usize, panel: &mut [f32]) {
    for j in 0..nr {
        for p in 0..kb {
            panel[p * nr + j] = rows[j * ld + p];
        }
    }
}

fn transpose_panel(isa: Isa, rows: &[f32], ld: usize, nr: usize, kb: usize, panel: &mut [f32]) {
    assert!(rows.len() >= nr * ld && panel.len() >= kb * nr && kb <= ld);
    match (isa, nr) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 detected (AVX-512 implies it); bounds asserted above.
        (Isa::Avx2 | Isa::Avx512, 16) => unsafe { super::avx2::transpose_panel::<16>(rows, ld, kb, panel) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx2 | Isa::Avx512, 32) => unsafe { super::avx2::transpose_panel::<32>(rows, ld, kb, panel) },
        _ => transpose_panel_scalar(rows, ld, nr, kb, panel),
    }
}

/// Packs rows `i0..i1`, depth `p0..p0+kb` of A into strips of the ISA's MR rows (`[strip][p][MR]`),
/// zero-padding the last strip, so the microkernel reads A as one contiguous stream.
#[allow(clippy::too_many_arguments)]
pub fn pack_a(isa: Isa, a: &[f32], lda: usize, i0: usize, i1: usize, p0: usize, kb: usize, dst: &mut [f32]) {
    let (mr, _) = isa.tile();
    let strips = (i1 - i0).div_ceil(mr);
    for s in 0..strips {
        let strip = &mut dst[s * kb * mr..(s + 1) * kb * mr];
        #[cfg(target_arch = "x86_64")]
        if i0 + (s + 1) * mr <= i1 {
            let first = (i0 + s * mr) * lda + p0;
            match isa {
                // SAFETY: AVX2 detected; 6 full rows of kb values start at `first`.
                Isa::Avx2 => unsafe { super::avx2::pack_a_strip(&a[first..], lda, kb, strip) },
                // SAFETY: AVX-512 detected; 14 full rows of kb values start at `first`.
                Isa::Avx512 => unsafe { super::avx512::pack_a_strip(&a[first..], lda, kb, strip) },
                _ => pack_a_strip_scalar(&a[first..], lda, mr, mr, kb, strip),
            }
            continue;
        }
        let (r0, r1) = (i0 + s * mr, i1.min(i0 + (s + 1) * mr));
        pack_a_strip_scalar(&a[r0 * lda + p0..], lda, mr, r1 - r0, kb, strip);
    }
}

/// Scalar twin of the strip packing: `strip[p*mr + r] = a[r*lda + p]` for r < rows, zero for
/// `rows ≤ r < mr`.
pub fn pack_a_strip_scalar(a: &[f32], lda: usize, mr: usize, rows: usize, kb: usize, strip: &mut [f32]) {
    for r in 0..mr {
        if r < rows {
            for (p, v) in a[r * lda..r * lda + kb].iter().enumerate() {
                strip[p * mr + r] = *v;
            }
        } else {
            for p in 0..kb {
                strip[p * mr + r] = 0.0;
            }
        }
    }
}

/// Runs `f` on a scratch buffer of `len` floats (the calling thread's cached one when free).
pub(crate) fn with_apack<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static APACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    APACK.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// Packs all of A (m × k) into `[k-block][strip][kb][MR]` (the layout `gemm` reads: k-block `p0` at `p0·mpad`, strip s at `+ s·kb·MR`), k-blocks of `kc`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a_all(isa: Isa, a: &[f32], lda: usize, m: usize, k: usize, kc: usize, dst: &mut [f32], parallel: bool) {
    let mr = isa.tile().0;
    let mpad = m.div_ceil(mr) * mr;
    // One job per k-block: contiguous, disjoint destination regions.
    let blocks: Vec<(usize, &mut [f32])> = {
        let mut v = Vec::new();
        let mut rest = dst;
        let mut p0 = 0;
        while p0 < k {
            let kb = kc.min(k - p0);
            let (head, tail) = rest.split_at_mut(mpad * kb);
            v.push((p0, head));
            rest = tail;
            p0 += kb;
        }
        v
    };
    let job = |(p0, d): (usize, &mut [f32])| {
        let kb = kc.min(k - p0);
        pack_a(isa, a, lda, 0, m, p0, kb, d);
    };
    if parallel && blocks.len() > 1 {
        blocks.into_par_iter().for_each(job);
    } else {
        blocks.into_iter().for_each(job);
    }
}

#[cfg(test)]
mod transpose_tests {
    use super::*;

    #[test]
    fn simd_transpose_equals_scalar() {
        let isas = crate::vision::kernels::simd_isas();
        if isas.is_empty() {
            eprintln!("no SIMD ISA on this host: only the scalar transpose is tested");
        }
        for isa in isas {
            let (_, nr) = isa.tile();
            let kc = isa.blocking().kc;
            let rows: Vec<f32> = (0..nr * kc).map(|i| i as f32).collect();
            for kb in [1usize, 7, 8, 33, kc] {
                let (mut a, mut b) = (vec![0f32; kb * nr], vec![0f32; kb * nr]);
                transpose_panel_scalar(&rows, kc, nr, kb, &mut a);
                transpose_panel(isa, &rows, kc, nr, kb, &mut b);
                assert_eq!(a, b, "{isa:?} kb {kb}");
            }
        }
    }
}

#[cfg(test)]
mod dequant_tests {
    use super::*;
    use h2ovl_format::quant::{dequantize_row, quantize, GgmlType};

    /// Our in-kernel dequantizers agree bit for bit with the converter's (ggml's) block format,
    /// on the scalar twin and the SIMD version, including segments that start mid-row.
    #[test]
    fn dequant_matches_ggml_reference() {
        let k = 256;
        let x: Vec<f32> = (0..k).map(|i| ((i * 37 % 113) as f32 - 56.0) * 0.013).collect();
        for (gt, wt) in [(GgmlType::F16, WType::F16), (GgmlType::Q8_0, WType::Q8_0)] {
            let bytes = quantize(gt, &x, k);
            let mut want = vec![0f32; k];
            dequantize_row(gt, &bytes, &mut want);
            for isa in std::iter::once(Isa::Scalar).chain(crate::vision::kernels::simd_isas()) {
                for (p0, len) in [(0, k), (64, 128), (224, 32)] {
                    let mut got = vec![0f32; len];
                    dequant(isa, wt, &bytes, p0, &mut got);
                    assert_eq!(got, want[p0..p0 + len], "{isa:?} {wt:?} p0 {p0}");
                }
            }
        }
    }
}

#[cfg(test)]
mod pack_a_tests {
    use super::*;

    /// The SIMD strip packers equal the scalar twin with the same MR (full and ragged strips).
    #[test]
    fn simd_pack_a_equals_scalar() {
        let isas = crate::vision::kernels::simd_isas();
        if isas.is_empty() {
            eprintln!("no SIMD ISA on this host: only the scalar A packing is tested");
        }
        for isa in isas {
            let mr = isa.tile().0;
            for (m, k, lda) in [(1usize, 1usize, 1usize), (6, 8, 9), (13, 37, 40), (14, 9, 9), (25, 256, 260), (31, 33, 35)] {
                let a: Vec<f32> = (0..m * lda).map(|i| i as f32 * 0.5).collect();
                let strips = m.div_ceil(mr);
                let mut x = vec![-1f32; strips * mr * k];
                for s in 0..strips {
                    let (r0, r1) = (s * mr, m.min((s + 1) * mr));
                    pack_a_strip_scalar(&a[r0 * lda..], lda, mr, r1 - r0, k, &mut x[s * k * mr..(s + 1) * k * mr]);
                }
                let mut y = vec![-2f32; x.len()];
                pack_a(isa, &a, lda, 0, m, 0, k, &mut y);
                assert_eq!(x, y, "{isa:?} m {m} k {k}");
            }
        }
    }
}
