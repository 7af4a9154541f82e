//! Int8 GEMM for the linear layers: `C[m,n] = A[m,k] · Wᵀ (+ bias, + GELU)` with A f32 activations
//! quantized per token and W a Q8_0 weight requantized per output row ([`super::qpack`]), int32
//! accumulation over the full depth, then `c = s_a[i]·s_w[j]·Σ` (+ bias, GELU) in f32.
//!
//! Why int8: `vpdpbusd` (AVX-512 VNNI) does 64 multiply-adds per instruction against 16 for a
//! zmm FMA (32 on ymm, AVX-VNNI or AVX-512 VL: `qvnni256`), `sdot` 16 against 4; AVX2's
//! `maddubs` + `madd` still halves the instructions per MAC.
//!
//! Exactness contract: every ISA computes the *same* int32 sums `Σ_p a'[i,p]·w'[j,p]` (VNNI
//! computes `Σ (a'+128)·w'` and the packing supplies `128·Σ w'` to subtract; AVX2's `maddubs`
//! cannot saturate since |a'|, |w'| ≤ 127), and the f32 epilogue is shared, so the SIMD kernels
//! equal the scalar twin bit for bit. No k blocking: k ≤ 4096 keeps `255·127·k` within i32, and a
//! panel (`16·k` bytes ≤ 64 KB) plus an `MR`-row strip of A stay in L1/L2.
//!
//! Work split: tasks of [`QNC`] columns (each packs its B block once, then sweeps its rows of A),
//! split further over rows only when there are too few to keep every thread busy.
use super::gemm::{check_operands, for_each_tile, CPtr, Epilogue, WType, Weight};
use super::qpack::{pack_b, quantize_a, QPackedB, QNR};
use super::{gelu, Isa, QIsa};
use std::cell::RefCell;

/// Columns of C per task (a multiple of [`QNR`]). Re-measured on an Intel Xeon (Sapphire Rapids
/// class, 2 MB L2) for every int8 ISA on the QKV/fc1/fc2 shapes with 32–256 columns: within ±3%
/// of each other (B block `64·k` bytes ≤ 256 KB fits every L2 from 1 MB up), so 64 stays.
pub const QNC: usize = 64;
/// Rows of the quantized A are padded to a multiple of this (every kernel's MR divides it: 4, 6,
/// 8, 12), so kernels always run full strips and only the epilogue knows about the ragged end.
pub const ROW_PAD: usize = 24;
/// Largest depth the int32 sums are guaranteed for (`255·127·k < 2³¹`).
pub const MAX_K: usize = 65_536;

/// Microkernel contract (all ISAs): `out[r*QNR + j] = Σ_{t<kq} Σ_{u<4} A(r, 4t+u)·B(t, j, u)` for
/// r < MR, j < QNR, with A(r, p) the byte at `a[r*lda + p]` (i8, or u8 for [`QIsa::offset_a`]) and
/// B the packed panel, byte `(t, j, u)` at `b[t*4*QNR + j*4 + u]` (i8).
pub type QKernelFn = unsafe fn(usize, *const u8, usize, *const u8, *mut i32);

/// Rows of the scalar kernel's tile.
pub const MR_SCALAR: usize = 8;

/// The scalar microkernel (reference twin; signed A).
///
/// # Safety
/// `a` readable for `MR_SCALAR` rows of `4·kq` bytes at stride `lda`, `b` for `4·QNR·kq` bytes,
/// `out` writable for `MR_SCALAR·QNR` values.
pub unsafe fn qkernel_scalar(kq: usize, a: *const u8, lda: usize, b: *const u8, out: *mut i32) {
    let mut t = [[0i32; QNR]; MR_SCALAR];
    for p in 0..kq {
        let bp = std::slice::from_raw_parts(b.add(p * 4 * QNR), 4 * QNR);
        for (r, tr) in t.iter_mut().enumerate() {
            let ap = std::slice::from_raw_parts(a.add(r * lda + 4 * p), 4);
            for (j, acc) in tr.iter_mut().enumerate() {
                for u in 0..4 {
                    *acc += (ap[u] as i8 as i32) * (bp[j * 4 + u] as i8 as i32);
                }
            }
        }
    }
    for (r, tr) in t.iter().enumerate() {
        std::ptr::copy_nonoverlapping(tr.as_ptr(), out.add(r * QNR), QNR);
    }
}

/// The kernel and its tile height for an ISA.
pub fn qkernel(q: QIsa) -> (QKernelFn, usize) {
    match q {
        #[cfg(target_arch = "x86_64")]
        QIsa::Avx2 => (super::qavx::qkernel_avx2, super::qavx::MR_AVX2),
        #[cfg(target_arch = "x86_64")]
        QIsa::AvxVnni => (super::qvnni256::qkernel_avxvnni, super::qvnni256::MR_AVXVNNI),
        #[cfg(target_arch = "x86_64")]
        QIsa::Avx512Vnni256 => (super::qvnni256::qkernel_vnni256, super::qvnni256::MR_VNNI256),
        #[cfg(target_arch = "x86_64")]
        QIsa::Avx512Vnni => (super::qavx::qkernel_vnni, super::qavx::MR_VNNI),
        #[cfg(target_arch = "aarch64")]
        QIsa::NeonDot => (super::qneon::qkernel_sdot, super::qneon::MR_NEON),
        #[cfg(target_arch = "aarch64")]
        QIsa::Neon => (super::qneon::qkernel_smull, super::qneon::MR_NEON),
        _ => (qkernel_scalar, MR_SCALAR),
    }
}

thread_local! {
    /// Quantized A (bytes, row scales) of the GEMM this thread drives.
    static QA: RefCell<(Vec<u8>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Packed B block + the int32 tile, per worker thread.
    static QB: RefCell<(QPackedB, Vec<i32>)> = RefCell::new((QPackedB::default(), Vec::new()));
}

/// Whether [`qgemm`] takes this weight (Q8_0, depth a multiple of 4 within [`MAX_K`]).
pub fn supports(w: &Weight) -> bool {
    w.ty == WType::Q8_0 && w.k % 4 == 0 && w.k <= MAX_K
}

/// `C[i, j] = s_a[i]·s_w[j]·Σ_p a'[i,p]·w'[j,p]` (+ epilogue) for i < m, j < w.n. `isa` is the f32
/// ISA of the GELU epilogue; `parallel` splits the work over the current rayon pool.
///
/// # Panics
/// If `w` is not [`supports`]-ed or the slices are too short (callers check shapes at load time).
#[allow(clippy::too_many_arguments)]
pub fn qgemm(q: QIsa, isa: Isa, a: &[f32], lda: usize, m: usize, w: &Weight, c: &mut [f32], ldc: usize, epi: Epilogue, parallel: bool) {
    qgemm_blocked(q, isa, QNC, a, lda, m, w, c, ldc, epi, parallel)
}

/// [`qgemm`] with `qnc` columns per task (a multiple of [`QNR`]; for the blocking measurements).
#[allow(clippy::too_many_arguments)]
pub fn qgemm_blocked(q: QIsa, isa: Isa, qnc: usize, a: &[f32], lda: usize, m: usize, w: &Weight, c: &mut [f32], ldc: usize, epi: Epilogue, parallel: bool) {
    assert!(supports(w), "qgemm: weight must be Q8_0 with k % 4 == 0");
    assert!(qnc > 0 && qnc % QNR == 0, "qgemm: {qnc} columns per task is not a multiple of {QNR}");
    let (n, k) = (w.n, w.k);
    if m == 0 || n == 0 {
        return;
    }
    check_operands("qgemm", a, lda, m, k, c, ldc, n, &epi);
    let mpad = m.div_ceil(ROW_PAD) * ROW_PAD;
    let cp = CPtr(c.as_mut_ptr());
    let run_all = |qa: &mut Vec<u8>, sa: &mut Vec<f32>| {
        qa.resize(mpad * k, 0);
        sa.resize(mpad, 0.0);
        quantize_a(q, a, lda, m, k, &mut qa[..mpad * k], &mut sa[..mpad], parallel);
        let (qa, sa): (&[u8], &[f32]) = (qa, sa);
        for_each_tile(m, n, qnc, ROW_PAD, parallel, |i0, mb, j0, nb| {
            QB.with(|cell| {
                let (pb, tile) = &mut *cell.borrow_mut();
                pack_b(q, w, j0, nb, pb);
                // SAFETY: this task writes rows i0..i0+mb, columns j0..j0+nb of C only; qa holds
                // mpad ≥ i0+mb rounded up to the kernel's MR rows.
                unsafe { task(q, isa, qa, sa, k, pb, tile, cp, ldc, i0, mb, j0, nb, epi) };
            });
        });
    };
    QA.with(|cell| match cell.try_borrow_mut() {
        Ok(mut g) => {
            let (qa, sa) = &mut *g;
            run_all(qa, sa)
        }
        Err(_) => run_all(&mut Vec::new(), &mut Vec::new()),
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn task(
    q: QIsa,
    isa: Isa,
    qa: &[u8],
    sa: &[f32],
    k: usize,
    pb: &QPackedB,
    tile: &mut Vec<i32>,
    c: CPtr,
    ldc: usize,
    i0: usize,
    mb: usize,
    j0: usize,
    nb: usize,
    epi: Epilogue,
) {
    let (kern, mr_max) = qkernel(q);
    debug_assert!(ROW_PAD % mr_max == 0);
    tile.resize(mr_max * QNR, 0);
    let panels = nb.div_ceil(QNR);
    let pbytes = QPackedB::panel_bytes(k);
    let bias = match epi {
        Epilogue::None => None,
        Epilogue::Bias(b) | Epilogue::BiasGelu(b) => Some(&b[j0..j0 + nb]),
    };
    let mut i = i0;
    while i < i0 + mb {
        let mr = mr_max.min(i0 + mb - i);
        assert!((i + mr_max) * k <= qa.len());
        for pn in 0..panels {
            let nr = QNR.min(nb - pn * QNR);
            kern(k / 4, qa.as_ptr().add(i * k), k, pb.data.as_ptr().add(pn * pbytes), tile.as_mut_ptr());
            let (sw, corr) = (&pb.scale[pn * QNR..], &pb.corr[pn * QNR..]);
            for r in 0..mr {
                let s = sa[i + r];
                let crow = std::slice::from_raw_parts_mut(c.0.add((i + r) * ldc + j0 + pn * QNR), nr);
                let acc = &tile[r * QNR..r * QNR + nr];
                for jj in 0..nr {
                    let v = (s * sw[jj]) * (acc[jj] - corr[jj]) as f32;
                    crow[jj] = match bias {
                        Some(b) => v + b[pn * QNR + jj],
                        None => v,
                    };
                }
            }
        }
        if let Epilogue::BiasGelu(_) = epi {
            for r in 0..mr {
                gelu::gelu_inplace(isa, std::slice::from_raw_parts_mut(c.0.add((i + r) * ldc + j0), nb));
            }
        }
        i += mr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::kernels::gemm::{gemm_reference, BMat};
    use crate::vision::kernels::qsimd_isas;
    use h2ovl_format::quant::{quantize, GgmlType};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        crate::vision::kernels::test_data(n, seed, 777)
    }

    fn run(q: QIsa, m: usize, n: usize, k: usize, epi_kind: u8, par: bool) -> (Vec<f32>, Vec<f32>, usize) {
        let (lda, ldc) = (k + 3, n + 5);
        let a = data(m * lda, (m * 7 + k) as u32);
        let wf = data(n * k, (n * 5 + k) as u32);
        let bytes = quantize(GgmlType::Q8_0, &wf, k);
        let w = Weight::new("t", WType::Q8_0, n, k, &bytes).unwrap();
        let bias = data(n, 3);
        let epi = match epi_kind {
            0 => Epilogue::None,
            1 => Epilogue::Bias(&bias),
            _ => Epilogue::BiasGelu(&bias),
        };
        let mut got = vec![f32::NAN; m * ldc];
        let isa = crate::vision::kernels::isa();
        qgemm(q, isa, &a, lda, m, &w, &mut got, ldc, epi, par);
        let mut want = vec![0f32; m * ldc];
        gemm_reference(&a, lda, m, &BMat::Weight(w), &mut want, ldc);
        for i in 0..m {
            for j in 0..n {
                want[i * ldc + j] += match epi_kind {
                    0 => 0.0,
                    _ => bias[j],
                };
                if epi_kind == 2 {
                    want[i * ldc + j] = crate::vision::kernels::gelu::gelu_scalar(want[i * ldc + j]);
                }
            }
        }
        (got, want, ldc)
    }

    /// The scalar int8 GEMM is close to the f64 reference of the Q8_0 weights: the error of
    /// per-token 8-bit activations and per-row 8-bit weights, well under 2% of the row's output scale.
    #[test]
    fn scalar_qgemm_close_to_reference() {
        for (m, n, k, e) in [(1, 1, 32, 0u8), (7, 33, 64, 1), (37, 70, 288, 2), (17, 16, 1024, 1)] {
            let (got, want, ldc) = run(QIsa::Scalar, m, n, k, e, true);
            for i in 0..m {
                let row = &want[i * ldc..i * ldc + n];
                let scale = row.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-3);
                let num: f64 = row.iter().zip(&got[i * ldc..]).map(|(w, g)| (*w as f64 - *g as f64).powi(2)).sum();
                let den: f64 = row.iter().map(|w| (*w as f64).powi(2)).sum();
                assert!(num <= 1e-3 * den.max(1e-12), "m{m} n{n} k{k} row {i}: rel err² {}", num / den);
                for j in 0..n {
                    assert!((got[i * ldc + j] - row[j]).abs() <= 0.02 * scale, "({i},{j}) {} vs {}", got[i * ldc + j], row[j]);
                }
                // Padding columns of C untouched.
                assert!(got[i * ldc + n..(i * ldc + ldc).min(got.len())].iter().all(|v| v.is_nan()));
            }
        }
    }

    /// Every SIMD int8 ISA equals the scalar twin bit for bit (same int32 sums, same epilogue), on
    /// shapes that are not multiples of any blocking (MR, QNR, QNC), serial and parallel.
    #[test]
    fn simd_qgemm_equals_scalar() {
        let isas = qsimd_isas();
        if isas.is_empty() {
            eprintln!("no int8 SIMD ISA on this host: only the scalar int8 GEMM is tested");
        }
        for (m, n, k) in [(1, 1, 32), (5, 17, 64), (13, 65, 96), (33, 100, 544), (101, 130, 1024)] {
            for e in 0..3u8 {
                let (want, _, _) = run(QIsa::Scalar, m, n, k, e, false);
                for &q in &isas {
                    for par in [false, true] {
                        let (got, _, _) = run(q, m, n, k, e, par);
                        let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
                        assert!(same, "{q:?} m{m} n{n} k{k} epi{e} par {par}");
                    }
                }
            }
        }
    }

    /// The microkernels directly, including u8-offset activations with the sum correction.
    #[test]
    fn simd_kernels_equal_scalar_kernel() {
        let kq = 37;
        let (k, rows) = (4 * kq, ROW_PAD);
        let a: Vec<u8> = (0..rows * k).map(|i| ((i * 73 + 11) % 255) as u8 ^ 0x80).map(|v| if v == 0x80 { 0x81 } else { v }).collect();
        let b: Vec<u8> = (0..QNR * k).map(|i| ((i * 151 + 7) % 255) as u8).map(|v| if v == 0x80 { 0x7f } else { v }).collect();
        let mut want = vec![0i32; rows * QNR];
        for r0 in (0..rows).step_by(MR_SCALAR) {
            unsafe { qkernel_scalar(kq, a.as_ptr().add(r0 * k), k, b.as_ptr(), want.as_mut_ptr().add(r0 * QNR)) };
        }
        for q in qsimd_isas() {
            let (kern, mr) = qkernel(q);
            let aq: Vec<u8> = if q.offset_a() { a.iter().map(|v| v ^ 0x80).collect() } else { a.clone() };
            let corr: Vec<i32> = (0..QNR).map(|j| if q.offset_a() { 128 * (0..k).map(|p| b[(p / 4) * 4 * QNR + j * 4 + p % 4] as i8 as i32).sum::<i32>() } else { 0 }).collect();
            let mut got = vec![0i32; rows * QNR];
            for r0 in (0..rows).step_by(mr) {
                unsafe { kern(kq, aq.as_ptr().add(r0 * k), k, b.as_ptr(), got.as_mut_ptr().add(r0 * QNR)) };
            }
            for (i, g) in got.iter_mut().enumerate() {
                *g -= corr[i % QNR];
            }
            assert_eq!(got, want, "{q:?}");
        }
    }
}
