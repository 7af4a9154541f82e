//! Blocked, packed GEMM: `C[m,n] = A[m,k] · Bᵀ (+ bias, + GELU)`, A f32 row-major activations,
//! B a weight matrix stored as GGUF keeps it (`n` rows of `k` values: F32, F16 or Q8_0) or an f32
//! activation matrix in either orientation (attention's `QKᵀ` and `PV`).
//!
//! Why this shape (the classic Goto/BLIS layout, as in matrixmultiply/gemm):
//! - B is dequantized *while packing* into `KC×NR` column panels, so F16/Q8_0 weights are never
//!   expanded to an f32 copy of the model; a packed block (`KC×NC` floats) stays in L2 and is reused
//!   by every `MR`-row strip of A, which amortizes the dequantization over up to `MC` rows.
//! - The microkernel keeps an `MR×NR` tile of C in registers and streams one broadcast of A and
//!   `NR/lanes` vectors of B per k step: 6×16 on AVX2 (12 ymm accumulators) and NEON (24
//!   q-registers), 14×32 on AVX-512 (28 zmm, `avx512`). The tile and the cache blocking belong to
//!   the ISA ([`Isa::tile`], [`Isa::blocking`]); packing follows them, so the blocked loop below
//!   never names an ISA's sizes.
//! - Work is split into independent `MC×NC` tiles of C (rayon), each with its own packing buffer,
//!   so threads never share writes and small-M shapes still expose parallelism over N.
use super::pack::{dequant, pack_a_all, pack_b, with_apack};
use super::{gelu, Isa};
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows of the 6×16 register tile (scalar, AVX2, NEON).
pub const MR: usize = 6;
/// Columns of the 6×16 register tile (= one packed panel's width).
pub const NR: usize = 16;
/// Depth of one packed block (6×16 kernels).
pub const KC: usize = 256;
/// Rows of A swept per packed B block (a multiple of MR; 6×16 kernels).
pub const MC: usize = 192;
/// Columns of B per task (a multiple of NR; 6×16 kernels).
pub const NC: usize = 256;

/// Cache blocking of the blocked loop: `kc` deep blocks, `nc` columns of B per task (packed B
/// block `kc×nc` floats in L2), `mc` rows of A swept per packed block (A sub-block `mc×kc` in L2),
/// while one `kc×NR` B micro-panel stays in L1.
///
/// The 6×16 values (256/192/256): B block 256 KB + A sub-block 192 KB, B micro-panel 16 KB —
/// within a 1 MB L2 (Zen 4) and a 32 KB L1 with room for C and the A strip being streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

impl Isa {
    /// `(MR, NR)` of this ISA's microkernel (the packed A strip height and B panel width).
    pub fn tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (super::avx512::MR, super::avx512::NR),
            _ => (MR, NR),
        }
    }

    /// Cache blocking of this ISA's GEMM (see [`Blocking`]; AVX-512's in `avx512`).
    pub fn blocking(self) -> Blocking {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => super::avx512::BLOCKING,
            _ => Blocking { kc: KC, mc: MC, nc: NC },
        }
    }
}

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

/// The scalar microkernel of the 6×16 tile (the reference twin of the AVX2 and NEON kernels).
///
/// # Safety
/// `a` valid for the reads of rows `r < mr` (packed: `kb*MR`), `b` for `kb*NR` reads, `c` for `mr`
/// rows of `nr` writes with stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel_scalar(kb: usize, a: *const f32, rs: usize, cs: usize, b: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, accumulate: bool) {
    kernel_scalar_tile::<MR, NR>(kb, a, rs, cs, b, c, ldc, mr, nr, accumulate)
}

/// The scalar microkernel for any `TM×TN` tile (`TN` = the packed panel's width); the twin of
/// every SIMD microkernel with that tile.
///
/// # Safety
/// As [`kernel_scalar`] with `TM`, `TN` for `MR`, `NR`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub unsafe fn kernel_scalar_tile<const TM: usize, const TN: usize>(
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
    let mut t = [[0f32; TN]; TM];
    for p in 0..kb {
        let bp = std::slice::from_raw_parts(b.add(p * TN), TN);
        for r in 0..mr {
            let av = *a.add(r * rs + p * cs);
            for j in 0..TN {
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

/// Microkernel signature (contract above).
pub type KernelFn = unsafe fn(usize, *const f32, usize, usize, *const f32, *mut f32, usize, usize, usize, bool);

/// The microkernel of an ISA (its tile is [`Isa::tile`]).
pub fn kernel_for(isa: Isa) -> KernelFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => super::avx2::kernel_6x16,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => super::avx512::kernel_14x32,
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
    gemm_blocked(isa, isa.blocking(), a, lda, m, b, c, ldc, epi, parallel)
}

/// [`gemm`] with explicit cache blocking (for the blocking measurements; `bl.mc` must be a
/// multiple of the ISA's MR and `bl.nc` of its NR).
#[allow(clippy::too_many_arguments)]
pub fn gemm_blocked(isa: Isa, bl: Blocking, a: &[f32], lda: usize, m: usize, b: &BMat, c: &mut [f32], ldc: usize, epi: Epilogue, parallel: bool) {
    let (n, k) = (b.n(), b.k());
    if m == 0 || n == 0 {
        return;
    }
    check_operands("gemm", a, lda, m, k, c, ldc, n, &epi);
    let (mr, nr) = isa.tile();
    assert!(bl.kc > 0 && bl.mc % mr == 0 && bl.nc % nr == 0 && bl.mc > 0 && bl.nc > 0, "gemm: blocking {bl:?} does not fit the {mr}×{nr} tile");
    // Packing A pays off only when each strip is reused by many B panels (not for the narrow
    // `P V` product of attention, N = head_dim). A is packed once, before the tiles, and shared.
    let packed = bl.nc.min(n).div_ceil(nr) >= PACK_A_MIN_PANELS;
    let strips = m.div_ceil(mr);
    let alen = if packed { strips * mr * k } else { 0 };
    with_apack(alen, |apack| {
        if packed {
            pack_a_all(isa, a, lda, m, k, bl.kc, apack, parallel);
        }
        let apack: &[f32] = apack;
        let cp = CPtr(c.as_mut_ptr());
        for_each_tile(m, n, bl.nc, mr, parallel, |i0, mb, j0, nb| {
            PACK.with(|buf| {
                let (pack, rows) = &mut *buf.borrow_mut();
                pack.resize(bl.kc * bl.nc, 0.0);
                rows.resize(bl.kc * nr, 0.0);
                let a_op = if packed { AOperand::Packed { data: apack, mpad: strips * mr } } else { AOperand::InPlace { data: a, lda } };
                // SAFETY: this task touches only rows i0..i0+mb, columns j0..j0+nb of C.
                unsafe { tile(isa, bl, a_op, b, cp, ldc, i0, mb, j0, nb, k, pack, rows, epi) };
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
    bl: Blocking,
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
    let (tm, tn) = isa.tile();
    let panels = nb.div_ceil(tn);
    let mut p0 = 0;
    while p0 < k {
        let kb = bl.kc.min(k - p0);
        pack_b(isa, b, j0, nb, p0, kb, tn, bl.kc, pack, rows);
        let acc = p0 > 0;
        // BLIS order: one B micro-panel (kc×NR) stays in L1 while the MR-row strips of an
        // A sub-block stream past it from L2.
        for ic in (i0..i0 + mb).step_by(bl.mc) {
            let ie = (ic + bl.mc).min(i0 + mb);
            for q in 0..panels {
                let nr = tn.min(nb - q * tn);
                let bp = pack.as_ptr().add(q * kb * tn);
                let mut i = ic;
                while i < ie {
                    let mr = tm.min(ie - i);
                    let cptr = c.0.add(i * ldc + j0 + q * tn);
                    match a {
                        AOperand::Packed { data, mpad } => {
                            // i is a multiple of MR (i0 and mc are).
                            let ap = data.as_ptr().add(p0 * mpad + (i / tm) * kb * tm);
                            kern(kb, ap, 1, tm, bp, cptr, ldc, mr, nr, acc)
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

    /// Every SIMD ISA (6×16 AVX2/NEON, 14×32 AVX-512) against the f64 reference and its scalar
    /// twin, F32/F16/Q8_0 weights (dequantized while packing), odd shapes and partial tiles, packed
    /// and in-place A (narrow N), serial and parallel.
    #[test]
    fn simd_gemm_equals_scalar() {
        let isas = crate::vision::kernels::simd_isas();
        if isas.is_empty() {
            eprintln!("no SIMD ISA on this host: only the scalar GEMM is tested");
        }
        for isa in isas {
            for (m, n, k) in [(1, 1, 1), (7, 7, 7), (33, 33, 33), (1025, 7, 64), (5, 1025, 64), (197, 270, 600), (29, 95, 513)] {
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
                assert!((x - y).abs() <= 1e-5, "{isa:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn f32_activation_operands() {
        for isa in std::iter::once(Isa::Scalar).chain(crate::vision::kernels::simd_isas()) {
            f32_activation_operands_on(isa);
        }
    }

    fn f32_activation_operands_on(isa: Isa) {
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
