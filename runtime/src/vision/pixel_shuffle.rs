//! Pixel shuffle (InternVL `pixel_shuffle`, downsample 0.5): merges each 2×2 block of patches into
//! one token of 4·D channels, dropping the CLS token first (spec §3.6–3.7).
//!
//! Output token (i, j) of the 16×16 grid holds source patch (2i+dy, 2j+dx) channel c at channel
//! `dy·2D + dx·D + c` — in that order (vertical offset outermost). ps_version v2 emits tokens
//! row-major (i·16 + j); v1 (no final transpose in the reference) column-major (j·16 + i).
use super::config::PsVersion;

/// `x`: ViT output `[1 + g·g, d]` (CLS first). `f`: patches merged per side. Returns `[(g/f)², f²·d]`.
pub fn pixel_shuffle(x: &[f32], g: usize, d: usize, f: usize, ps: PsVersion) -> Vec<f32> {
    assert_eq!(x.len(), (1 + g * g) * d, "pixel_shuffle: input shape");
    let go = g / f;
    let width = f * f * d;
    let mut out = vec![0f32; go * go * width];
    for i in 0..go {
        for j in 0..go {
            let tok = match ps {
                PsVersion::V2 => i * go + j,
                PsVersion::V1 => j * go + i,
            };
            let dst = &mut out[tok * width..(tok + 1) * width];
            for dy in 0..f {
                for dx in 0..f {
                    let src = 1 + (f * i + dy) * g + (f * j + dx);
                    let ch = (dy * f + dx) * d;
                    dst[ch..ch + d].copy_from_slice(&x[src * d..(src + 1) * d]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §3.7 worked out on a labelled 4×4 grid: token (i,j) = patches (2i,2j), (2i,2j+1),
    /// (2i+1,2j), (2i+1,2j+1) in that channel order.
    #[test]
    fn channel_order_matches_spec() {
        let (g, d) = (4, 2);
        // value = 100·y + 10·x + c for patch (y, x), channel c; CLS = -1.
        let mut x = vec![-1f32; d];
        for y in 0..g {
            for xx in 0..g {
                for c in 0..d {
                    x.push((100 * y + 10 * xx + c) as f32);
                }
            }
        }
        let out = pixel_shuffle(&x, g, d, 2, PsVersion::V2);
        // token (i=0, j=1) = index 1.
        let t = &out[8..16];
        assert_eq!(t, &[20.0, 21.0, 30.0, 31.0, 120.0, 121.0, 130.0, 131.0]);
        let v1 = pixel_shuffle(&x, g, d, 2, PsVersion::V1);
        // v1: token (i=0, j=1) sits at index j·2 + i = 2.
        assert_eq!(&v1[16..24], t);
    }
}
