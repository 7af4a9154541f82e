//! Inner loops of the PIL-exact resize: one output row per call, scalar reference and
//! AVX2 twins chosen at run time. All variants do the same exact i32 arithmetic (sums of
//! `u8 × i32` weights cannot overflow: |Σk| ≤ 1.3·2^22, 255·1.3·2^22 < 2^31), so they
//! must agree bit for bit; the tests below hold them equal.

use super::resize::{clip8, Coeffs, HALF};

/// Horizontal pass for one RGB row: `out_row[xx] = clip8(HALF + Σ_t src[xmin+t]·k[t])`.
pub fn horizontal_row(src_row: &[u8], out_row: &mut [u8], c: &Coeffs) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() {
            // SAFETY: AVX2 presence was checked at run time just above.
            unsafe { x86::horizontal_row_avx2(src_row, out_row, c) };
            return;
        }
    }
    horizontal_row_scalar(src_row, out_row, c)
}

/// Vertical pass for one output row. `rows` holds the `k.len()` source rows of this
/// output row back to back (`stride` bytes each); `acc` is scratch of `stride` i32.
pub fn vertical_row(rows: &[u8], stride: usize, k: &[i32], acc: &mut [i32], out_row: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() {
            // SAFETY: AVX2 presence was checked at run time just above.
            unsafe { x86::vertical_row_avx2(rows, stride, k, acc, out_row) };
            return;
        }
    }
    vertical_row_scalar(rows, stride, k, acc, out_row)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn avx2_available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Scalar reference of [`horizontal_row`].
pub fn horizontal_row_scalar(src_row: &[u8], out_row: &mut [u8], c: &Coeffs) {
    for (xx, out) in out_row.chunks_exact_mut(3).enumerate() {
        let (xmin, k) = c.taps(xx);
        let px = &src_row[xmin * 3..(xmin + k.len()) * 3];
        let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
        for (p, &w) in px.chunks_exact(3).zip(k) {
            s0 += p[0] as i32 * w;
            s1 += p[1] as i32 * w;
            s2 += p[2] as i32 * w;
        }
        out[0] = clip8(s0);
        out[1] = clip8(s1);
        out[2] = clip8(s2);
    }
}

/// Scalar reference of [`vertical_row`]. Written as a flat multiply-add over the row so
/// the compiler can vectorise it; the AVX2 twin is this same loop built for AVX2.
#[inline(always)]
pub fn vertical_row_scalar(rows: &[u8], stride: usize, k: &[i32], acc: &mut [i32], out_row: &mut [u8]) {
    let acc = &mut acc[..stride];
    acc.fill(HALF);
    for (row, &w) in rows.chunks_exact(stride).zip(k) {
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += p as i32 * w;
        }
    }
    for (o, &a) in out_row.iter_mut().zip(acc.iter()) {
        *o = clip8(a);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// AVX2 build of the vertical loop (contiguous bytes: auto-vectorised 8 lanes wide).
    #[target_feature(enable = "avx2")]
    pub unsafe fn vertical_row_avx2(rows: &[u8], stride: usize, k: &[i32], acc: &mut [i32], out_row: &mut [u8]) {
        vertical_row_scalar(rows, stride, k, acc, out_row)
    }

    /// AVX2 horizontal pass: two taps per step. The 6 bytes of pixels t and t+1 are
    /// spread to `[R G B 0 | R G B 0]` as i32 lanes and multiplied by `[k_t ×4 | k_t+1 ×4]`;
    /// the two halves are added at the end. Windows too close to the row end for an
    /// 8-byte load finish with scalar taps.
    #[target_feature(enable = "avx2")]
    pub unsafe fn horizontal_row_avx2(src_row: &[u8], out_row: &mut [u8], c: &Coeffs) {
        // bytes 0..6 -> [0,1,2,_,3,4,5,_] (0x80 zeroes the lane)
        let spread = _mm_setr_epi8(0, 1, 2, -128, 3, 4, 5, -128, -128, -128, -128, -128, -128, -128, -128, -128);
        let pair_idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        let len = src_row.len();
        for (xx, out) in out_row.chunks_exact_mut(3).enumerate() {
            let (xmin, k) = c.taps(xx);
            let n = k.len();
            let mut acc = _mm256_setzero_si256();
            let mut t = 0;
            // An 8-byte load at byte (xmin+t)*3 must stay inside the row.
            while t + 2 <= n && (xmin + t) * 3 + 8 <= len {
                let p = _mm_loadl_epi64(src_row.as_ptr().add((xmin + t) * 3) as *const __m128i);
                let p = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(p, spread));
                let w = _mm_loadl_epi64(k.as_ptr().add(t) as *const __m128i);
                let w = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(w), pair_idx);
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, w));
                t += 2;
            }
            let sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            let mut s = [0i32; 4];
            _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, sum);
            let (mut s0, mut s1, mut s2) = (HALF + s[0], HALF + s[1], HALF + s[2]);
            while t < n {
                let p = &src_row[(xmin + t) * 3..(xmin + t) * 3 + 3];
                s0 += p[0] as i32 * k[t];
                s1 += p[1] as i32 * k[t];
                s2 += p[2] as i32 * k[t];
                t += 1;
            }
            out[0] = clip8(s0);
            out[1] = clip8(s1);
            out[2] = clip8(s2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (no extra dev-dependency needed).
    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn horizontal_simd_equals_scalar() {
        for (i, o) in [(640, 1344), (640, 448), (300, 896), (4000, 1344), (5, 3), (2, 9), (1, 4), (17, 16)] {
            let c = Coeffs::new(i, o);
            let src = bytes(i as usize * 3, i ^ o);
            let mut a = vec![0u8; o as usize * 3];
            let mut b = vec![1u8; o as usize * 3];
            horizontal_row_scalar(&src, &mut a, &c);
            horizontal_row(&src, &mut b, &c);
            assert_eq!(a, b, "{i}->{o}");
        }
    }

    #[test]
    fn vertical_simd_equals_scalar() {
        for (i, o, w) in [(480, 896, 1344), (900, 448, 448), (13, 5, 7), (3, 11, 1)] {
            let c = Coeffs::new(i, o);
            let stride = w * 3;
            let src = bytes(i as usize * stride, i + o);
            for yy in 0..o as usize {
                let (ymin, k) = c.taps(yy);
                let rows = &src[ymin * stride..(ymin + k.len()) * stride];
                let mut acc = vec![0i32; stride];
                let (mut a, mut b) = (vec![0u8; stride], vec![1u8; stride]);
                vertical_row_scalar(rows, stride, k, &mut acc, &mut a);
                vertical_row(rows, stride, k, &mut acc, &mut b);
                assert_eq!(a, b, "{i}->{o} row {yy}");
            }
        }
    }
}
