//! Multi-head bidirectional self-attention over all tokens of a tile (1025 for a 448 tile).
//!
//! Blocked by query rows: each task takes one head and `QB` query rows, computes the `QB×T`
//! score block with the packed GEMM (`Q Kᵀ`), a vector softmax per row, and `P V` with the same
//! GEMM — so attention runs at GEMM speed and the score block (QB·T floats ≈ 860 KB) stays in L2.
//! Tasks (heads × query blocks) are spread over the rayon pool.
use super::kernels::gemm::{gemm, BMat, Epilogue};
use super::kernels::{softmax, Isa};
use rayon::prelude::*;
use std::cell::RefCell;

/// Query rows per task: a multiple of both GEMM tiles' MR (6 and 14). Each task packs its head's
/// K (1025×64) and V once for its QB rows, so QB sets how far that packing is amortized; the
/// score block (QB·T floats) must still sit in L2. See `attention_qb` for the measurement.
pub const QB: usize = 210;

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint (rows, head columns) block of the output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Method access, so closures capture the whole (Sync) wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `o = softmax(q kᵀ / √hd) v` per head; q, k, v, o are `[t, d]` row-major, head h = columns
/// `h·hd..(h+1)·hd`.
#[allow(clippy::too_many_arguments)]
pub fn attention(isa: Isa, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], t: usize, d: usize, heads: usize) {
    attention_qb(isa, QB, q, k, v, o, t, d, heads)
}

/// [`attention`] with `qb` query rows per task (for the measurement of [`QB`]).
#[allow(clippy::too_many_arguments)]
pub fn attention_qb(isa: Isa, qb: usize, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], t: usize, d: usize, heads: usize) {
    assert!(q.len() == t * d && k.len() == t * d && v.len() == t * d && o.len() == t * d);
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let qblocks = t.div_ceil(qb);
    let out = OutPtr(o.as_mut_ptr());
    (0..heads * qblocks).into_par_iter().for_each(|task| {
        let (h, blk) = (task / qblocks, task % qblocks);
        let i0 = blk * qb;
        let rows = qb.min(t - i0);
        SCRATCH.with(|s| {
            let (scores, ob) = &mut *s.borrow_mut();
            scores.resize(qb * t, 0.0);
            ob.resize(qb * hd, 0.0);
            let kmat = BMat::F32Nk { data: &k[h * hd..], ld: d, n: t, k: hd };
            gemm(isa, &q[i0 * d + h * hd..], d, rows, &kmat, scores, t, Epilogue::None, false);
            for r in 0..rows {
                softmax::softmax_row(isa, &mut scores[r * t..(r + 1) * t], scale);
            }
            let vmat = BMat::F32Kn { data: &v[h * hd..], ld: d, n: hd, k: t };
            gemm(isa, scores, t, rows, &vmat, ob, hd, Epilogue::None, false);
            for r in 0..rows {
                // SAFETY: row i0+r, columns h·hd..(h+1)·hd belong to this task only.
                unsafe {
                    std::ptr::copy_nonoverlapping(ob.as_ptr().add(r * hd), out.get().add((i0 + r) * d + h * hd), hd);
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_attention() {
        let (t, d, heads) = (101, 32, 2);
        let hd = d / heads;
        let gen = |s: usize| -> Vec<f32> { (0..t * d).map(|i| (((i * 7919 + s * 104729) % 1000) as f32 / 500.0 - 1.0) * 2.0).collect() };
        let (q, k, v) = (gen(1), gen(2), gen(3));
        let mut o = vec![0f32; t * d];
        for isa in std::iter::once(crate::vision::kernels::Isa::Scalar).chain(crate::vision::kernels::simd_isas()) {
        for qb in [QB, 42] {
        attention_qb(isa, qb, &q, &k, &v, &mut o, t, d, heads);
        for h in 0..heads {
            for i in 0..t {
                let s: Vec<f64> = (0..t)
                    .map(|j| (0..hd).map(|c| q[i * d + h * hd + c] as f64 * k[j * d + h * hd + c] as f64).sum::<f64>() / (hd as f64).sqrt())
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    let want: f64 = (0..t).map(|j| e[j] / z * v[j * d + h * hd + c] as f64).sum();
                    let got = o[i * d + h * hd + c] as f64;
                    assert!((got - want).abs() < 1e-5, "{isa:?} qb {qb} h{h} i{i} c{c}: {got} vs {want}");
                }
            }
        }
        }
        }
    }
}
