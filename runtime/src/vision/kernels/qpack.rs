//! Operand preparation of the int8 GEMM ([`super::qgemm`]).
//!
//! - A (f32 activations): quantized per token (row): `s = max|a|/127`, `a' = round(a/s)` in
//!   [−127, 127] (ties to even, the rounding of `cvtps2dq`, so SIMD and scalar agree). Stored row-major,
//!   one byte per value, as `i8` — or as `u8 = a' + 128` for VNNI's u8×s8 dot product.
//! - B (Q8_0 weights, `n` rows of `k`): requantized per output row *while packing*, so no s8 copy of
//!   the model ever exists: row scale `d_max = max_b |d_b|` over the row's blocks, and
//!   `w' = round(q·d_b/d_max)` clamped to ±127 (exact for the blocks whose scale is the maximum).
//!   Packed into panels of [`QNR`] columns over the full depth, `[k/4][QNR][4]` bytes, the layout
//!   `vpdpbusd` / `sdot` consume (4 consecutive k of one column in one 32-bit lane).
//!
//! Scalar twins here; the AVX2 versions are in `qavx` (NEON uses the scalar twins: packing is
//! O(n·k) against the kernel's O(m·n·k)).
use super::gemm::{Weight, Q8_0_BYTES, Q8_0_QK};
use super::QIsa;
use half::f16;
use rayon::prelude::*;

/// Columns of one packed B panel (one zmm / two ymm / four q registers of i32 sums).
pub const QNR: usize = 16;

// ---------------------------------------------------------------------------------------------
// A: per-token quantization.

/// `127 / max|row|` (0 for an all-zero row) and the row's scale `max|row| / 127`.
pub(crate) fn row_scales(amax: f32) -> (f32, f32) {
    if amax > 0.0 {
        (127.0 / amax, amax / 127.0)
    } else {
        (0.0, 0.0)
    }
}

/// Scalar twin: quantizes one row into `out` (same length), returns its scale.
pub fn quantize_row_scalar(row: &[f32], out: &mut [u8], offset: bool) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (id, s) = row_scales(amax);
    let flip = if offset { 0x80u8 } else { 0 };
    for (o, v) in out.iter_mut().zip(row) {
        *o = ((v * id).round_ties_even() as i32 as i8 as u8) ^ flip;
    }
    s
}

/// Quantizes one row with the ISA's version.
pub(crate) fn quantize_row(q: QIsa, row: &[f32], out: &mut [u8]) -> f32 {
    match q {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these ISAs are only selected when AVX2 was detected (AVX-512 implies it; AVX-VNNI is only listed with AVX2).
        QIsa::Avx2 | QIsa::AvxVnni | QIsa::Avx512Vnni256 | QIsa::Avx512Vnni => unsafe { super::qavx::quantize_row(row, out, q.offset_a()) },
        _ => quantize_row_scalar(row, out, q.offset_a()),
    }
}

/// Quantizes rows `0..m` of A (`lda` ≥ k) into `dst` (`mpad` rows of `k` bytes; rows ≥ m are set
/// to zero activations with scale 0) and their scales into `scales` (`mpad`).
#[allow(clippy::too_many_arguments)]
pub fn quantize_a(q: QIsa, a: &[f32], lda: usize, m: usize, k: usize, dst: &mut [u8], scales: &mut [f32], parallel: bool) {
    let mpad = scales.len();
    assert!(mpad >= m && dst.len() == mpad * k, "quantize_a: buffer sizes");
    let zero = if q.offset_a() { 0x80u8 } else { 0 };
    let job = |(i, (out, s)): (usize, (&mut [u8], &mut f32))| {
        if i < m {
            *s = quantize_row(q, &a[i * lda..i * lda + k], out);
        } else {
            out.fill(zero);
            *s = 0.0;
        }
    };
    if parallel {
        dst.par_chunks_mut(k).zip(scales.par_iter_mut()).enumerate().with_min_len(16).for_each(job);
    } else {
        dst.chunks_mut(k).zip(scales.iter_mut()).enumerate().for_each(job);
    }
}

// ---------------------------------------------------------------------------------------------
// B: requantization of Q8_0 rows and packing.

fn block_d(blk: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32()
}

/// Largest |d| over the blocks of a Q8_0 row (the row's int8 scale); 0 if none is positive/finite.
pub(crate) fn row_dmax(row: &[u8]) -> f32 {
    row.chunks_exact(Q8_0_BYTES).map(|b| block_d(b).abs()).filter(|d| d.is_finite()).fold(0f32, f32::max)
}

/// Factor from a block's values to row-scale units (`d_b / d_max`, 0 for an all-zero row).
pub(crate) fn block_ratio(d: f32, dmax: f32) -> f32 {
    if dmax > 0.0 && d.is_finite() {
        d / dmax
    } else {
        0.0
    }
}

/// Scalar twin: requantizes a Q8_0 row of `out.len()` values to s8 in row-scale units; returns
/// (row scale, Σ w').
pub fn requant_row_scalar(row: &[u8], out: &mut [i8]) -> (f32, i32) {
    let dmax = row_dmax(row);
    let mut sum = 0i32;
    for (blk, o) in row.chunks_exact(Q8_0_BYTES).zip(out.chunks_exact_mut(Q8_0_QK)) {
        let r = block_ratio(block_d(blk), dmax);
        for (w, qv) in o.iter_mut().zip(&blk[2..]) {
            let v = ((*qv as i8) as f32 * r).round_ties_even().clamp(-127.0, 127.0) as i32;
            *w = v as i8;
            sum += v;
        }
    }
    (dmax, sum)
}

fn requant_row(q: QIsa, row: &[u8], out: &mut [i8]) -> (f32, i32) {
    match q {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 detected for these ISAs.
        QIsa::Avx2 | QIsa::AvxVnni | QIsa::Avx512Vnni256 | QIsa::Avx512Vnni => unsafe { super::qavx::requant_row(row, out) },
        _ => requant_row_scalar(row, out),
    }
}

/// A packed block of B: `ceil(nb/QNR)` panels of `[k/4][QNR][4]` bytes, plus per column the row
/// scale and the sum correction the kernel's int32 sums need (`128·Σw'` with u8 activations, else 0).
#[derive(Default)]
pub struct QPackedB {
    pub data: Vec<u8>,
    pub scale: Vec<f32>,
    pub corr: Vec<i32>,
    row: Vec<i8>,
}

impl QPackedB {
    /// Bytes of one panel of depth `k`.
    pub fn panel_bytes(k: usize) -> usize {
        QNR * k
    }
}

/// Packs weight rows (= C columns) `j0..j0+nb` of a Q8_0 weight into `dst` (columns past `nb`
/// in the last panel are zero with scale 0).
pub fn pack_b(q: QIsa, w: &Weight, j0: usize, nb: usize, dst: &mut QPackedB) {
    let k = w.k;
    assert!(k % 4 == 0, "pack_b: depth {k} is not a multiple of 4");
    let panels = nb.div_ceil(QNR);
    let pb = QPackedB::panel_bytes(k);
    dst.data.resize(panels * pb, 0);
    dst.scale.resize(panels * QNR, 0.0);
    dst.corr.resize(panels * QNR, 0);
    dst.row.resize(k, 0);
    for c in 0..panels * QNR {
        let panel = &mut dst.data[(c / QNR) * pb..(c / QNR + 1) * pb];
        let jj = c % QNR;
        let (s, sum) = if c < nb {
            requant_row(q, w.row(j0 + c), &mut dst.row)
        } else {
            dst.row.fill(0);
            (0.0, 0)
        };
        dst.scale[c] = s;
        dst.corr[c] = if q.offset_a() { 128 * sum } else { 0 };
        for (t, quad) in dst.row.chunks_exact(4).enumerate() {
            let o = t * 4 * QNR + jj * 4;
            panel[o..o + 4].copy_from_slice(&[quad[0] as u8, quad[1] as u8, quad[2] as u8, quad[3] as u8]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::kernels::gemm::WType;
    use crate::vision::kernels::qsimd_isas;
    use h2ovl_format::quant::{quantize, GgmlType};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        crate::vision::kernels::test_data(n, seed, 12345)
    }

    #[test]
    fn simd_quantize_a_equals_scalar() {
        for q in qsimd_isas() {
            for (m, k, lda) in [(1usize, 4usize, 4usize), (7, 36, 41), (19, 100, 100), (33, 1024, 1030)] {
                let mut a = data(m * lda, (m + k) as u32);
                a[0] = 0.5 * 127.0 / 127.0; // a tie case after scaling is likely somewhere; exact equality is the check
                if m > 3 {
                    a[3 * lda..3 * lda + k].fill(0.0); // an all-zero row
                }
                let mpad = m.div_ceil(16) * 16;
                let (mut x, mut y) = (vec![1u8; mpad * k], vec![2u8; mpad * k]);
                let (mut sx, mut sy) = (vec![1f32; mpad], vec![2f32; mpad]);
                // The scalar twin in the same storage form as the SIMD ISA.
                let zero = if q.offset_a() { 0x80 } else { 0 };
                for i in 0..mpad {
                    if i < m {
                        sx[i] = quantize_row_scalar(&a[i * lda..i * lda + k], &mut x[i * k..(i + 1) * k], q.offset_a());
                    } else {
                        x[i * k..(i + 1) * k].fill(zero);
                        sx[i] = 0.0;
                    }
                }
                quantize_a(q, &a, lda, m, k, &mut y, &mut sy, true);
                assert_eq!(x, y, "{q:?} m {m} k {k}");
                assert_eq!(sx, sy, "{q:?} m {m} k {k}");
            }
        }
    }

    #[test]
    fn quantize_a_round_trips_within_half_a_step() {
        let (k, row) = (64, data(64, 9));
        let mut out = vec![0u8; k];
        let s = quantize_row_scalar(&row, &mut out, false);
        for (v, q) in row.iter().zip(&out) {
            assert!((v - s * (*q as i8) as f32).abs() <= 0.5 * s * 1.0001, "{v} vs {}", s * (*q as i8) as f32);
        }
        assert!(out.iter().any(|q| (*q as i8).abs() == 127));
    }

    #[test]
    fn simd_pack_b_equals_scalar_and_requant_is_close() {
        for (n, k) in [(1usize, 32usize), (17, 64), (40, 96), (33, 1024)] {
            let wf = data(n * k, (n * 3 + k) as u32);
            let bytes = quantize(GgmlType::Q8_0, &wf, k);
            let w = Weight::new("t", WType::Q8_0, n, k, &bytes).unwrap();
            let mut want = QPackedB::default();
            pack_b(QIsa::Scalar, &w, 0, n, &mut want);
            // Requantized values stay within half a row-scale step of the Q8_0 values.
            for j in 0..n {
                let mut deq = vec![0f32; k];
                crate::vision::kernels::pack::dequant_q8_0_scalar(w.row(j), 0, &mut deq);
                for (p, d) in deq.iter().enumerate() {
                    let o = (j / QNR) * QPackedB::panel_bytes(k) + (p / 4) * 4 * QNR + (j % QNR) * 4 + p % 4;
                    let got = want.scale[j] * want.data[o] as i8 as f32;
                    assert!((got - d).abs() <= 0.5 * want.scale[j] * 1.0001, "n{n} k{k} ({j},{p}): {got} vs {d}");
                }
            }
            for q in qsimd_isas() {
                let mut got = QPackedB::default();
                pack_b(q, &w, 0, n, &mut got);
                assert_eq!(got.data, want.data, "{q:?} n {n} k {k}");
                assert_eq!(got.scale, want.scale, "{q:?}");
                let corr: Vec<i32> = if q.offset_a() {
                    (0..got.corr.len())
                        .map(|c| {
                            let (pn, jj) = (c / QNR, c % QNR);
                            let panel = &want.data[pn * QPackedB::panel_bytes(k)..];
                            128 * (0..k).map(|p| panel[(p / 4) * 4 * QNR + jj * 4 + p % 4] as i8 as i32).sum::<i32>()
                        })
                        .collect()
                } else {
                    vec![0; got.corr.len()]
                };
                assert_eq!(got.corr, corr, "{q:?}");
            }
        }
    }
}
