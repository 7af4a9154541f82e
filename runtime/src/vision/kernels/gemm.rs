//! Blocked, packed GEMM: `C[m,n] = A[m,k] · Bᵀ (+ bias, + GELU)`, A f32 row-major activations,
//! B a weight matrix stored as GGUF keeps it (`n` rows of `k` values: F32, F16 or Q8_0) or an f32
//! activation matrix in either orientation (attention's `QKᵀ` and `PV`).
//!
//! Why this shape (the classic Goto/BLIS layout, as in matrixmultiply/gemm):
//! - B is dequantized *while packing* into `KC×NR` column panels, so F16/Q8_0 weights are never
//!   expanded to an f32 copy of the model; a packed block (`KC×NC` floats) stays in L2 and is reused
//!   by every `MR`-row strip of A, which amortizes the dequantization over up to `MC` rows.
//! - The microkernel keeps an `MR×NR` (6×16) tile of C in registers (12 ymm accumulators on AVX2,
//!   24 q-registers on NEON) and streams one broadcast of A and two/four vectors of B per k step.
//! - Work is split into independent `MC×NC` tiles of C (rayon), each with its own packing buffer,
//!   so threads never share writes and small-M shapes still expose parallelism over N.
use super::pack::{dequant, pack_a_all, pack_b, with_apack};
use super::{gelu, Isa};
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows of the register tile.
pub const MR: usize = 6;
/// Columns of the register tile (= one packed panel's width).
pub const NR: usize = 16;
/// Depth of one packed block.
pub const KC: usize = 256;
/// Rows of A per task (a multiple of MR).
pub const MC: usize = 192;
/// Columns of B per task (a multiple of NR).
pub const NC: usize = 256;

/// Storage type of a weight matrix (the subset of ggml types the vision GGUF uses for 2-D weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WType {
    F32,
    F16,
    /// ggml Q8_0: blocks of 32 values = f16 scale `d` + 32 × i8, value = d·q (34 bytes).
    Q8_0,
}

/// Q8_0 values per block.
pub const Q8_0_QK: usize = 32;
/// Q8_0 bytes per block.
pub const Q8_0_BYTES: usize = 34;

impl WType {
    /// Bytes of a row of `k` values (k must be a multiple of the block size, see [`Weight::new`]).
    pub fn row_bytes(self, k: usize) -> usize {
        match self {
            WType::F32 => 4 * k,
            WType::F16 => 2 * k,
            WType::Q8_0 => k / Q8_0_QK * Q8_0_BYTES,
        }
    }
}

/// A 2-D weight as GGUF stores it: `n` rows (output features) of `k` values (ggml `ne = [k, n]`).
#[derive(Clone, Copy, Debug)]
pub struct Weight<'a> {
    pub ty: WType,
    pub n: usize,
    pub k: usize,
    pub data: &'a [u8],
}

impl<'a> Weight<'a> {
    /// Checks that `data` holds exactly `n` rows of `k` values of `ty` (error names the tensor).
    pub fn new(name: &str, ty: WType, n: usize, k: usize, data: &'a [u8]) -> Result<Self> {
        if ty == WType::Q8_0 && k % Q8_0_QK != 0 {
            bail!("tensor {name}: Q8_0 row length {k} is not a multiple of {Q8_0_QK}");
        }
        let want = ty.row_bytes(k) * n;
        if data.len() != want {
            bail!("tensor {name}: {} bytes for {ty:?} [{k}, {n}] (expected {want})", data.len());
        }
        Ok(Weight { ty, n, k, data })
    }

    /// Bytes of row `j`.
    pub(crate) fn row(&self, j: usize) -> &'a [u8] {
        let rb = self.ty.row_bytes(self.k);
        &self.data[j * rb..(j + 1) * rb]
    }
}

/// The right-hand operand of [`gemm`].
#[derive(Clone, Copy, Debug)]
pub enum BMat<'a> {
    /// A weight in GGUF layout (`n` rows of `k`).
    Weight(Weight<'a>),
    /// f32, element (j, p) at `data[j*ld + p]` (e.g. K for `QKᵀ`).
    F32Nk { data: &'a [f32], ld: usize, n: usize, k: usize },
    /// f32, element (j, p) at `data[p*ld + j]` (e.g. V for `PV`).
    F32Kn { data: &'a [f32], ld: usize, n: usize, k: usize },
}

impl BMat<'_> {
    pub fn n(&self) -> usize {
        match self {
            BMat::Weight(w) => w.n,
            BMat::F32Nk { n, .. } | BMat::F32Kn { n, .. } => *n,
        }
    }
    pub fn k(&self) -> usize {
        match self {
            BMat::Weight(w) => w.k,
            BMat::F32Nk { k, .. } | BMat::F32Kn { k, .. } => *k,
        }
    }
}

/// What to do to a finished tile of C (applied while it is still in cache).
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    None,
    /// `c[i][j] += bias[j]`.
    Bias(&'a [f32]),
    /// `c[i][j] = gelu(c[i][j] + bias[j])` (exact erf GELU).
    BiasGelu(&'a [f32]),
}

// ---------------------------------------------------------------------------------------------
// Microkernels. Contract (all ISAs): A element (r, p) at `a[r*rs + p*cs]` — a packed MR-row strip
// (rs = 1, cs = MR, rows ≥ mr zero-padded) or A in place (rs = lda, cs = 1, only r < mr read);
// B a packed panel, element (p, j) at `b[p*NR + j]`;
// C[r][j] (+)= Σ_p A(r,p)·B(p,j) for r < mr ≤ MR, j < nr ≤ NR; `accumulate` = false overwrites C.

/// The scalar microkernel (the reference twin).
///
/// # Safety
/// `a` valid for the reads of rows `r < mr` (packed: `kb*MR`), `b` for `kb*NR` reads, `c` for `mr`
/// rows of `nr` writes with stride `ldc`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub unsafe fn kernel_scalar(
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
    let mut t = [[0f32; NR]; MR];
    for p in 0..kb {
        let bp = std::slice::from_raw_parts(b.add(p * NR), NR);
        for r in 0..mr {
            let av = *a.add(r * rs + p * cs);
            for j in 0..NR {
                t[r][j] += av * bp[j];
            }
        }
    }
    for r in 0..mr {
        for j in 0..nr {
            let cp = c.add(r * ldc + j);
            *cp = if accumulate { *cp + t[r][j] } else { t[r][j] };
        }
    }
}

type KernelFn = unsafe fn(usize, *const f32, usize, usize, *const f32, *mut f32, usize, usize, usize, bool);

fn kernel_for(isa: Isa) -> KernelFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => super::avx2::kernel_6x16,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => super::neon::kernel_6x16,
        _ => kernel_scalar,
    }
}

/// Raw pointer to C shared by tasks that write disjoint tiles (f32 and int8 GEMMs).
#[derive(Clone, Copy)]
pub(crate) struct CPtr(pub(crate) *mut f32);
// SAFETY: tasks write pairwise-disjoint element sets of C (distinct tiles from `for_each_tile`).
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

/// Panics unless A (`m` rows of `k` at stride `lda`), C (`m` rows of `n` at stride `ldc`) and the
/// epilogue's bias fit the product; `what` names the caller. Shapes are checked at load time, so
/// a failure here is a bug, not bad input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_operands(what: &str, a: &[f32], lda: usize, m: usize, k: usize, c: &[f32], ldc: usize, n: usize, epi: &Epilogue) {
    assert!(lda >= k && ldc >= n, "{what}: bad leading dimensions");
    assert!(a.len() >= (m - 1) * lda + k, "{what}: A too short");
    assert!(c.len() >= (m - 1) * ldc + n, "{what}: C too short");
    if let Epilogue::Bias(bias) | Epilogue::BiasGelu(bias) = epi {
        assert_eq!(bias.len(), n, "{what}: bias length");
    }
}

/// Splits an `m × n` C into tasks of `nc` columns and as many row blocks (multiples of
/// `row_align`) as it takes to give every thread two tasks, and calls `task(i0, mb, j0, nb)` for
/// each — on the current rayon pool when `parallel`. N is split first: each task packs its B
/// block once for all its rows.
pub(crate) fn for_each_tile(m: usize, n: usize, nc: usize, row_align: usize, parallel: bool, task: impl Fn(usize, usize, usize, usize) + Sync) {
    let tiles_n = n.div_ceil(nc);
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let row_splits = if parallel { (2 * threads).div_ceil(tiles_n).max(1) } else { 1 };
    let mc = m.div_ceil(row_splits).div_ceil(row_align) * row_align;
    let tiles_m = m.div_ceil(mc);
    let run = |t: usize| {
        let (i0, j0) = (t / tiles_n * mc, t % tiles_n * nc);
        task(i0, mc.min(m - i0), j0, nc.min(n - j0));
    };
    let tasks = tiles_m * tiles_n;
    if parallel && tasks > 1 {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
}

thread_local! {
    /// (packed B block, NR dequantized rows) per worker thread.
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Rows of A swept per packed B block inside a task (A sub-block ≈ 200 KB stays in L2).
const MC_INNER: usize = MC;
/// Pack A only when a task has at least this many B panels to reuse it over.
const PACK_A_MIN_PANELS: usize = 8;

/// `C[i, j] = Σ_p A[i*lda + p] · B(j, p)` for i < m, j < b.n(), then the epilogue.
/// `parallel` splits the tiles over the current rayon pool; otherwise runs on this thread
/// (used inside already-parallel loops such as attention heads).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &BMat,
    c: &mut [f32],
    ldc: usize,
    epi: Epilogue,
    parallel: bool,
) {
    let (n, k) = (b.n(), b.k());
    if m == 0 || n == 0 {
        return;
    }
    check_operands("gemm", a, lda, m, k, c, ldc, n, &epi);
    // Packing A pays off only when each strip is reused by many B panels (not for the narrow
    // `P V` product of attention, N = head_dim). A is packed once, before the tiles, and shared.
    let packed = NC.min(n).div_ceil(NR) >= PACK_A_MIN_PANELS;
    let strips = m.div_ceil(MR);
    let alen = if packed { strips * MR * k } else { 0 };
    with_apack(alen, |apack| {
        if packed {
            pack_a_all(isa, a, lda, m, k, apack, parallel);
        }
        let apack: &[f32] = apack;
        let cp = CPtr(c.as_mut_ptr());
        for_each_tile(m, n, NC, MR, parallel, |i0, mb, j0, nb| {
            PACK.with(|buf| {
                let (pack, rows) = &mut *buf.borrow_mut();
                pack.resize(KC * NC, 0.0);
                rows.resize(KC * NR, 0.0);
                let a_op = if packed { AOperand::Packed { data: apack, mpad: strips * MR } } else { AOperand::InPlace { data: a, lda } };
                // SAFETY: this task touches only rows i0..i0+mb, columns j0..j0+nb of C.
                unsafe { tile(isa, a_op, b, cp, ldc, i0, mb, j0, nb, k, pack, rows, epi) };
            });
        });
    });
}

/// How the microkernel reads A.
#[derive(Clone, Copy)]
enum AOperand<'a> {
    /// Packed by `pack::pack_a_all`: k-block `p0` starts at `p0·mpad`, strip s at `+ s·kb·MR`.
    Packed { data: &'a [f32], mpad: usize },
    InPlace { data: &'a [f32], lda: usize },
}

#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    isa: Isa,
    a: AOperand,
    b: &BMat,
    c: CPtr,
    ldc: usize,
    i0: usize,
    mb: usize,
    j0: usize,
    nb: usize,
    k: usize,
    pack: &mut [f32],
    rows: &mut [f32],
    epi: Epilogue,
) {
    let kern = kernel_for(isa);
    let panels = nb.div_ceil(NR);
    let mut p0 = 0;
    while p0 < k {
        let kb = KC.min(k - p0);
        pack_b(isa, b, j0, nb, p0, kb, pack, rows);
        let acc = p0 > 0;
        // BLIS order: one B micro-panel (KC×NR, 16 KB) stays in L1 while the MR-row strips of an
        // A sub-block stream past it from L2.
        for ic in (i0..i0 + mb).step_by(MC_INNER) {
            let ie = (ic + MC_INNER).min(i0 + mb);
            for q in 0..panels {
                let nr = NR.min(nb - q * NR);
                let bp = pack.as_ptr().add(q * kb * NR);
                let mut i = ic;
                while i < ie {
                    let mr = MR.min(ie - i);
                    let cptr = c.0.add(i * ldc + j0 + q * NR);
                    match a {
                        AOperand::Packed { data, mpad } => {
                            // i is a multiple of MR (i0 and MC_INNER are).
                            let ap = data.as_ptr().add(p0 * mpad + (i / MR) * kb * MR);
                            kern(kb, ap, 1, MR, bp, cptr, ldc, mr, nr, acc)
                        }
                        AOperand::InPlace { data, lda } => kern(kb, data.as_ptr().add(i * lda + p0), lda, 1, bp, cptr, ldc, mr, nr, acc),
                    }
                    i += mr;
                }
            }
        }
        p0 += kb;
    }
    match epi {
        Epilogue::None => {}
        Epilogue::Bias(bias) | Epilogue::BiasGelu(bias) => {
            let bias = &bias[j0..j0 + nb];
            for i in i0..i0 + mb {
                let row = std::slice::from_raw_parts_mut(c.0.add(i * ldc + j0), nb);
                for (v, bv) in row.iter_mut().zip(bias) {
                    *v += bv;
                }
                if let Epilogue::BiasGelu(_) = epi {
                    gelu::gelu_inplace(isa, row);
                }
            }
        }
    }
}

/// Plain triple loop in f64, the test oracle for [`gemm`] (not used at run time).
pub fn gemm_reference(a: &[f32], lda: usize, m: usize, b: &BMat, c: &mut [f32], ldc: usize) {
    let (n, k) = (b.n(), b.k());
    let mut col = vec![0f32; k];
    for j in 0..n {
        match b {
            BMat::Weight(w) => dequant(Isa::Scalar, w.ty, w.row(j), 0, &mut col),
            BMat::F32Nk { data, ld, .. } => col.copy_from_slice(&data[j * ld..j * ld + k]),
            BMat::F32Kn { data, ld, .. } => (0..k).for_each(|p| col[p] = data[p * ld + j]),
        }
        for i in 0..m {
            let s: f64 = (0..k).map(|p| a[i * lda + p] as f64 * col[p] as f64).sum();
            c[i * ldc + j] = s as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        crate::vision::kernels::test_data(n, seed, 1)
    }

    fn to_bytes(ty: WType, w: &[f32], k: usize) -> Vec<u8> {
        match ty {
            WType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WType::F16 => w.iter().flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes()).collect(),
            WType::Q8_0 => {
                assert_eq!(k % Q8_0_QK, 0);
                let mut out = Vec::new();
                for blk in w.chunks(Q8_0_QK) {
                    let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    out.extend(f16::from_f32(d).to_bits().to_le_bytes());
                    out.extend(blk.iter().map(|v| (v * id).round() as i8 as u8));
                }
                out
            }
        }
    }

    fn check(isa: Isa, ty: WType, m: usize, n: usize, k: usize, epi_bias: bool) {
        let lda = k + 3;
        let ldc = n + 5;
        let a = data(m * lda, 1 + m as u32);
        let wf = data(n * k, 7 + n as u32);
        let bytes = to_bytes(ty, &wf, k);
        let w = Weight::new("t", ty, n, k, &bytes).unwrap();
        let b = BMat::Weight(w);
        let bias = data(n, 99);
        let mut want = vec![0f32; m * ldc];
        gemm_reference(&a, lda, m, &b, &mut want, ldc);
        if epi_bias {
            for i in 0..m {
                for j in 0..n {
                    want[i * ldc + j] += bias[j];
                }
            }
        }
        for par in [false, true] {
            let mut got = vec![0f32; m * ldc];
            let epi = if epi_bias { Epilogue::Bias(&bias) } else { Epilogue::None };
            gemm(isa, &a, lda, m, &b, &mut got, ldc, epi, par);
            for i in 0..m {
                for j in 0..n {
                    let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
                    assert!((g - w).abs() <= 2e-6 * (k as f32).sqrt() * 4.0, "{isa:?} {ty:?} m{m} n{n} k{k} ({i},{j}): {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn scalar_gemm_matches_reference() {
        for (m, n, k) in [(1, 1, 1), (7, 7, 7), (33, 17, 65), (13, 300, 588)] {
            check(Isa::Scalar, WType::F32, m, n, k, true);
            check(Isa::Scalar, WType::F16, m, n, k, false);
        }
        for (m, n, k) in [(1, 1, 32), (7, 33, 64), (200, 40, 288)] {
            check(Isa::Scalar, WType::Q8_0, m, n, k, true);
        }
    }

    #[test]
    fn simd_gemm_equals_scalar() {
        let Some(isa) = crate::vision::kernels::simd_isa() else {
            eprintln!("no SIMD ISA on this host: only the scalar GEMM is tested");
            return;
        };
        for (m, n, k) in [(1, 1, 1), (7, 7, 7), (33, 33, 33), (1025, 7, 64), (5, 1025, 64), (197, 270, 600)] {
            for ty in [WType::F32, WType::F16] {
                check(isa, ty, m, n, k, true);
            }
        }
        for (m, n, k) in [(1, 1, 32), (7, 33, 64), (33, 7, 96), (200, 300, 544)] {
            check(isa, WType::Q8_0, m, n, k, true);
        }
        // SIMD vs scalar twin directly, on the same packed data.
        let (m, n, k) = (37, 41, 300);
        let a = data(m * k, 3);
        let wv = data(n * k, 4);
        let bytes = to_bytes(WType::F16, &wv, k);
        let b = BMat::Weight(Weight::new("t", WType::F16, n, k, &bytes).unwrap());
        let (mut c0, mut c1) = (vec![0f32; m * n], vec![0f32; m * n]);
        gemm(Isa::Scalar, &a, k, m, &b, &mut c0, n, Epilogue::None, false);
        gemm(isa, &a, k, m, &b, &mut c1, n, Epilogue::None, false);
        for (x, y) in c0.iter().zip(&c1) {
            assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn f32_activation_operands() {
        let isa = crate::vision::kernels::isa();
        let (m, n, k, ld) = (19, 1025, 16, 48);
        let a = data(m * k, 5);
        let kmat = data(n * ld, 6);
        let b = BMat::F32Nk { data: &kmat, ld, n, k };
        let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
        gemm(isa, &a, k, m, &b, &mut got, n, Epilogue::None, false);
        gemm_reference(&a, k, m, &b, &mut want, n);
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5));
        // PV: A [m, 1025] times V stored [1025 tokens, ld] -> [m, 16]
        let (kk, nn) = (1025, 16);
        let p = data(m * kk, 8);
        let v = data(kk * ld, 9);
        let b = BMat::F32Kn { data: &v, ld, n: nn, k: kk };
        let (mut got, mut want) = (vec![0f32; m * nn], vec![0f32; m * nn]);
        gemm(isa, &p, kk, m, &b, &mut got, nn, Epilogue::None, true);
        gemm_reference(&p, kk, m, &b, &mut want, nn);
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-4));
    }
}
