//! Exact (erf-based) GELU, `gelu(x) = x/2 · (1 + erf(x/√2))`, as PyTorch's `nn.GELU()` and
//! transformers' `"gelu"` compute it — not the tanh approximation, whose error (~1e-3) would be
//! visible against the reference.
//!
//! `erf` in f32 with < 1e-7 absolute error everywhere, built to vectorize without branches:
//! - |x| < 1: `erf(x) = x · P(2x² − 1)` (P: Chebyshev fit of `erf(√s)/√s` on s ∈ [0, 1]);
//! - 1 ≤ |x| < 4: `erf(x) = ±(1 − Q_i(u))`, Q_i a fit of `erfc` on one of six intervals of width
//!   0.5, u ∈ [−1, 1] the position inside it (SIMD code picks each lane's interval coefficients
//!   with an in-register permute);
//! - |x| ≥ 4: ±1 (erfc(4) ≈ 1.5e-8 is below half an ulp of 1).
//!
//! The coefficients are fitted once at first use (Chebyshev interpolation in f64 of an f64 erf
//! evaluated by its Taylor series, absolute error < 1e-9 on [0, 4]) — no magic tables to trust.
use super::Isa;
use std::sync::OnceLock;

/// Coefficients per polynomial (degree + 1).
pub const NCOEF: usize = 10;
/// Number of erfc intervals covering [1, 4).
pub const NINT: usize = 6;

/// Power-basis coefficients (lowest degree first), f32.
pub struct ErfTable {
    /// P for |x| < 1, in u = 2x² − 1.
    pub small: [f32; NCOEF],
    /// Q_i for interval i = [1 + i/2, 1.5 + i/2), in u = 4(|x| − centre_i); row-major [NINT][NCOEF].
    pub big: [f32; NINT * NCOEF],
    /// The same, transposed and padded to 8 lanes: `big_t[k][i]` = coefficient k of Q_i, so a SIMD
    /// version picks each lane's coefficient with one in-register permute instead of a gather.
    pub big_t: [[f32; 8]; NCOEF],
}

/// f64 erf by its Maclaurin series: abs error < 1e-9 for |x| ≤ 4 (terms peak near 1e6).
fn erf_f64(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x; // (-1)^n x^(2n+1) / n!
    let mut sum = 0.0;
    for n in 0..200 {
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-18 {
            break;
        }
        term *= -x2 / (n + 1) as f64;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

/// Chebyshev interpolation of f on u ∈ [−1, 1], returned in the power basis of u.
fn cheb_fit(f: impl Fn(f64) -> f64) -> [f64; NCOEF] {
    let n = NCOEF;
    let nodes: Vec<f64> = (0..n).map(|k| (std::f64::consts::PI * (k as f64 + 0.5) / n as f64).cos()).collect();
    let vals: Vec<f64> = nodes.iter().map(|&u| f(u)).collect();
    // Chebyshev coefficients c_j.
    let mut c = [0f64; NCOEF];
    for (j, cj) in c.iter_mut().enumerate() {
        let s: f64 = (0..n).map(|k| vals[k] * (j as f64 * std::f64::consts::PI * (k as f64 + 0.5) / n as f64).cos()).sum();
        *cj = 2.0 * s / n as f64;
    }
    c[0] *= 0.5;
    // T_j in the power basis by the recurrence T_{j+1} = 2u T_j − T_{j−1}.
    let mut out = [0f64; NCOEF];
    let (mut tprev, mut tcur) = ([0f64; NCOEF], [0f64; NCOEF]);
    tprev[0] = 1.0; // T_0
    tcur[1] = 1.0; // T_1
    out[0] = c[0];
    out[1] = c[1];
    for cj in &c[2..] {
        let mut tnext = [0f64; NCOEF];
        for i in 0..n {
            if i + 1 < n {
                tnext[i + 1] += 2.0 * tcur[i];
            }
            tnext[i] -= tprev[i];
        }
        for i in 0..n {
            out[i] += cj * tnext[i];
        }
        tprev = tcur;
        tcur = tnext;
    }
    out
}

/// The shared coefficient table (fitted on first use).
pub fn table() -> &'static ErfTable {
    static T: OnceLock<ErfTable> = OnceLock::new();
    T.get_or_init(|| {
        let to32 = |c: [f64; NCOEF]| c.map(|v| v as f32);
        let small = to32(cheb_fit(|u| {
            let s = (u + 1.0) / 2.0;
            if s == 0.0 {
                std::f64::consts::FRAC_2_SQRT_PI
            } else {
                erf_f64(s.sqrt()) / s.sqrt()
            }
        }));
        let mut big = [0f32; NINT * NCOEF];
        for i in 0..NINT {
            let centre = 1.25 + 0.5 * i as f64;
            let q = to32(cheb_fit(|u| 1.0 - erf_f64(centre + 0.25 * u)));
            big[i * NCOEF..(i + 1) * NCOEF].copy_from_slice(&q);
        }
        let mut big_t = [[0f32; 8]; NCOEF];
        for (k, row) in big_t.iter_mut().enumerate() {
            for i in 0..NINT {
                row[i] = big[i * NCOEF + k];
            }
        }
        ErfTable { small, big, big_t }
    })
}

#[inline(always)]
fn horner(c: &[f32], u: f32) -> f32 {
    let mut acc = c[NCOEF - 1];
    for i in (0..NCOEF - 1).rev() {
        acc = acc * u + c[i];
    }
    acc
}

/// Scalar erf (the twin of the SIMD versions: same operations in the same order).
pub fn erf_scalar(x: f32) -> f32 {
    let t = table();
    let ax = x.abs();
    if ax < 1.0 {
        x * horner(&t.small, 2.0 * (x * x) - 1.0)
    } else if ax < 4.0 {
        let i = (((ax - 1.0) * 2.0) as usize).min(NINT - 1);
        let centre = 1.25 + 0.5 * i as f32;
        let u = (ax - centre) * 4.0;
        (1.0 - horner(&t.big[i * NCOEF..(i + 1) * NCOEF], u)).copysign(x)
    } else if ax.is_nan() {
        x
    } else {
        1.0f32.copysign(x)
    }
}

/// Scalar exact GELU.
#[inline]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_scalar(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// In-place GELU over a slice, on the given ISA.
pub fn gelu_inplace(isa: Isa, v: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2/Avx512 are only chosen when AVX2/FMA were detected.
        Isa::Avx2 | Isa::Avx512 => unsafe { super::avx2::gelu_inplace(v) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: Isa::Neon is only chosen when NEON was detected.
        Isa::Neon => unsafe { super::neon::gelu_inplace(v) },
        _ => v.iter_mut().for_each(|x| *x = gelu_scalar(*x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_abs_error_below_1e7_vs_libm() {
        let mut worst = 0f64;
        let n = 2_000_000;
        for i in 0..=n {
            let x = -6.0 + 12.0 * i as f64 / n as f64;
            let got = erf_scalar(x as f32) as f64;
            let want = libm::erf(x as f32 as f64);
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 1e-7, "max |erf - libm::erf| = {worst:e}");
    }

    #[test]
    fn erf_f64_series_matches_libm() {
        for i in 0..=4000 {
            let x = i as f64 / 1000.0;
            assert!((erf_f64(x) - libm::erf(x)).abs() < 1e-9, "x={x}");
        }
    }

    #[test]
    fn gelu_simd_equals_scalar() {
        let Some(isa) = crate::vision::kernels::simd_isa() else {
            eprintln!("no SIMD ISA on this host: only the scalar GELU is tested");
            return;
        };
        let mut v: Vec<f32> = (0..10_007).map(|i| (i as f32 - 5003.0) * 1.7e-3 * (1.0 + (i % 7) as f32)).collect();
        v.extend([f32::MAX, f32::MIN, 0.0, -0.0, 1e-30, 3.999999, 4.0, 1.0, 0.99999994]);
        let want: Vec<f32> = v.iter().map(|&x| gelu_scalar(x)).collect();
        gelu_inplace(isa, &mut v);
        for (i, (g, w)) in v.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "i={i}: {g} vs {w}");
        }
    }
}
