//! LayerNorm over the last dimension, `y = (x − mean)/√(var + eps) · w + b` (biased variance,
//! as PyTorch). Two passes over the row (mean, then centred squares) for accuracy: ViT rows have
//! large outliers, and the one-pass `E[x²] − mean²` loses digits there.
use super::Isa;

/// Scalar twin: one row.
pub fn layernorm_row_scalar(x: &[f32], y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    let rstd = 1.0 / (var + eps).sqrt();
    for i in 0..x.len() {
        y[i] = (x[i] - mean) * rstd * w[i] + b[i];
    }
}

/// One row on the given ISA.
pub fn layernorm_row(isa: Isa, x: &[f32], y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    assert!(y.len() == x.len() && w.len() == x.len() && b.len() == x.len(), "layernorm: length mismatch");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2/Avx512 are only chosen when AVX2/FMA were detected.
        Isa::Avx2 | Isa::Avx512 => unsafe { super::avx2::layernorm_row(x, y, w, b, eps) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: Isa::Neon is only chosen when NEON was detected; lengths asserted above.
        Isa::Neon => unsafe { super::neon::layernorm_row(x, y, w, b, eps) },
        _ => layernorm_row_scalar(x, y, w, b, eps),
    }
}

/// All rows of a row-major `[rows, d]` matrix, in parallel on the current rayon pool.
pub fn layernorm_rows(isa: Isa, x: &[f32], y: &mut [f32], d: usize, w: &[f32], b: &[f32], eps: f32) {
    use rayon::prelude::*;
    y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(yr, xr)| layernorm_row(isa, xr, yr, w, b, eps));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layernorm_simd_equals_scalar() {
        let Some(isa) = crate::vision::kernels::simd_isa() else {
            eprintln!("no SIMD ISA on this host: only the scalar LayerNorm is tested");
            return;
        };
        for d in [1usize, 7, 8, 33, 1024, 4099] {
            let x: Vec<f32> = (0..d).map(|i| ((i * 53 % 97) as f32 - 40.0) * 0.11 + if i == 3 { 60.0 } else { 0.0 }).collect();
            let w: Vec<f32> = (0..d).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..d).map(|i| (i % 3) as f32 * 0.01).collect();
            let (mut y0, mut y1) = (vec![0f32; d], vec![0f32; d]);
            layernorm_row_scalar(&x, &mut y0, &w, &b, 1e-6);
            layernorm_row(isa, &x, &mut y1, &w, &b, 1e-6);
            for (a, c) in y0.iter().zip(&y1) {
                assert!((a - c).abs() <= 1e-5 * a.abs().max(1.0), "d {d}: {a} vs {c}");
            }
        }
    }
}
