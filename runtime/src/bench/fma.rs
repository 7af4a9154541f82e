//! This CPU's f32 FMA peak, measured: each thread runs a register-only loop of 10 independent
//! FMA chains (enough to hide the FMA latency on current cores), so the figure is what the
//! hardware delivers at its current clock — no clock is assumed.
use serde::Serialize;

/// Independent accumulators per thread.
const CHAINS: usize = 10;

/// Measured f32 FMA throughput.
#[derive(Clone, Debug, Serialize)]
pub struct FmaPeak {
    /// Which loop ran: "avx2+fma (8 lanes)", "neon (4 lanes)" or "scalar".
    pub isa: String,
    pub threads: usize,
    /// GFLOP per wall second with all `threads` spinning (2 FLOP per lane per FMA).
    pub gflops_wall: f64,
    /// GFLOP per CPU second of one core: the per-core peak, independent of other load.
    pub gflops_per_core_cpu_s: f64,
}

/// Portable twin of the SIMD loops: same chains, same arithmetic (`mul_add` is a fused FMA,
/// exactly rounded like the hardware instruction), one lane. Returns the sum of all chains.
pub fn spin_scalar(iters: u64) -> f32 {
    let mut acc = [0f32; CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = x.mul_add(0.999_999, 1e-7);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// AVX2 twin of [`spin_scalar`]: 8 lanes per chain, returns lane 0's sum of all chains.
unsafe fn spin_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [[0f32; 8]; CHAINS];
    for (l, x) in lanes.iter_mut().zip(&acc) {
        _mm256_storeu_ps(l.as_mut_ptr(), *x);
    }
    lanes.iter().map(|l| l[0]).sum()
}

#[cfg(target_arch = "aarch64")]
/// NEON twin of [`spin_scalar`]: 4 lanes per chain, returns lane 0's sum of all chains.
fn spin_neon(iters: u64) -> f32 {
    use std::arch::aarch64::*;
    // SAFETY: Advanced SIMD is part of the aarch64 baseline.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); CHAINS];
        let (a, b) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = vfmaq_f32(b, *x, a);
            }
        }
        acc.iter().map(|x| vgetq_lane_f32::<0>(*x)).sum()
    }
}

/// The widest loop this CPU runs: (name, f32 lanes, kernel).
fn kernel() -> (&'static str, usize, fn(u64) -> f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            return ("avx2+fma (8 lanes)", 8, |n| unsafe { spin_avx2(n) });
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return ("neon (4 lanes)", 4, spin_neon);
    }
    #[allow(unreachable_code)]
    ("scalar", 1, spin_scalar)
}

/// Spin `iters` iterations on each of `threads` threads (200M ≈ 0.3-1 s on a desktop core).
pub fn measure(threads: usize, iters: u64) -> FmaPeak {
    let threads = threads.max(1);
    let (isa, lanes, spin) = kernel();
    let (sink, wall, cpu) = super::timed(|| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || spin(iters))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum::<f32>()
        })
    });
    std::hint::black_box(sink);
    let gflop = (threads as u64 * iters * (CHAINS * lanes * 2) as u64) as f64 / 1e9;
    FmaPeak { isa: isa.into(), threads, gflops_wall: gflop / wall, gflops_per_core_cpu_s: gflop / cpu }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_spin_equals_scalar_twin() {
        let (_, _, spin) = kernel();
        for n in [0, 1, 7, 1000] {
            assert_eq!(spin(n).to_bits(), spin_scalar(n).to_bits(), "iters {n}");
        }
    }

    #[test]
    fn measure_reports_a_positive_peak() {
        let p = measure(2, 200_000);
        assert!(p.gflops_wall > 0.0 && p.gflops_wall.is_finite(), "{p:?}");
    }
}
