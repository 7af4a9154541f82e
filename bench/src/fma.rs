//! This CPU's f32 FMA peak, measured per ISA: each thread runs a register-only loop of 10
//! independent FMA chains (enough to hide the FMA latency on current cores) on ymm (AVX2) or zmm
//! (AVX-512F), so the figure is what the hardware delivers at its current clock — no clock is
//! assumed, and a CPU that halves its zmm throughput (one FMA port, or a lower AVX-512 clock)
//! shows it. The int8 peak is the same loop on `vpdpbusd` (ymm VEX/EVEX, zmm).
use h2ovl_runtime::vision::kernels::{Isa, QIsa};
use serde::Serialize;

/// Independent accumulators per thread.
const CHAINS: usize = 10;

/// Measured f32 FMA (or int8 dot-product) throughput.
#[derive(Clone, Debug, Serialize)]
pub struct FmaPeak {
    /// Which loop ran: "avx2+fma (8 lanes)", "avx512f (16 lanes)", "neon (4 lanes)", "scalar",
    /// or an int8 loop ("vpdpbusd zmm (64 MAC)", …; then the figures are GOP, 2 per MAC).
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
/// AVX-512 twin of [`spin_scalar`]: 16 lanes per chain, returns lane 0's sum of all chains.
unsafe fn spin_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); CHAINS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [[0f32; 16]; CHAINS];
    for (l, x) in lanes.iter_mut().zip(&acc) {
        _mm512_storeu_ps(l.as_mut_ptr(), *x);
    }
    lanes.iter().map(|l| l[0]).sum()
}

/// Bytes the int8 loops multiply: u8 activations (as the VNNI kernels' `a + 128`) and s8 weights.
const DP_A: [u8; 4] = [200, 3, 129, 77];
const DP_B: [i8; 4] = [-127, 45, 3, -8];

/// Portable twin of the `vpdpbusd` loops: per chain and lane `acc += Σ_u a[u]·b[u]` (wrapping
/// i32, as the instruction). Returns the wrapping sum of all chains.
pub fn spin_dp_scalar(iters: u64) -> i32 {
    let dot: i32 = DP_A.iter().zip(&DP_B).map(|(a, b)| *a as i32 * *b as i32).sum();
    let mut acc = [0i32; CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = std::hint::black_box(x.wrapping_add(dot));
        }
    }
    acc.iter().fold(0, |s, x| s.wrapping_add(*x))
}

#[cfg(target_arch = "x86_64")]
mod dp {
    use super::{CHAINS, DP_A, DP_B};
    use std::arch::x86_64::*;

    fn word(b: [u8; 4]) -> i32 {
        i32::from_le_bytes(b)
    }

    /// zmm `vpdpbusd` (AVX-512 VNNI) chains; lane 0's wrapping sum.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn zmm(iters: u64) -> i32 {
        let (a, b) = (_mm512_set1_epi32(word(DP_A)), _mm512_set1_epi32(word(DP_B.map(|v| v as u8))));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_dpbusd_epi32(*x, a, b);
            }
        }
        acc.iter().fold(0i32, |s, x| s.wrapping_add(_mm_cvtsi128_si32(_mm512_castsi512_si128(*x))))
    }

    /// ymm `vpdpbusd`, EVEX form (AVX-512 VNNI + VL).
    #[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
    pub unsafe fn ymm_evex(iters: u64) -> i32 {
        let (a, b) = (_mm256_set1_epi32(word(DP_A)), _mm256_set1_epi32(word(DP_B.map(|v| v as u8))));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_dpbusd_epi32(*x, a, b);
            }
        }
        acc.iter().fold(0i32, |s, x| s.wrapping_add(_mm_cvtsi128_si32(_mm256_castsi256_si128(*x))))
    }

    /// ymm `vpdpbusd`, VEX form (AVX-VNNI).
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn ymm_vex(iters: u64) -> i32 {
        let (a, b) = (_mm256_set1_epi32(word(DP_A)), _mm256_set1_epi32(word(DP_B.map(|v| v as u8))));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_dpbusd_avx_epi32(*x, a, b);
            }
        }
        acc.iter().fold(0i32, |s, x| s.wrapping_add(_mm_cvtsi128_si32(_mm256_castsi256_si128(*x))))
    }
}

/// The f32 loop of an ISA: (name, f32 lanes, kernel). The caller must have detected `isa`.
fn kernel_for(isa: Isa) -> (&'static str, usize, fn(u64) -> f32) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was detected (Isa::Avx2 implies AVX2+FMA).
        Isa::Avx2 => ("avx2+fma (8 lanes)", 8, |n| unsafe { spin_avx2(n) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above (Isa::Avx512 implies AVX-512F).
        Isa::Avx512 => ("avx512f (16 lanes)", 16, |n| unsafe { spin_avx512(n) }),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => ("neon (4 lanes)", 4, spin_neon),
        _ => ("scalar", 1, spin_scalar),
    }
}

/// The `vpdpbusd` loop of an int8 ISA: (name, MACs per instruction, kernel), `None` when the ISA
/// has no such loop (AVX2's three-instruction sequence, NEON, scalar).
#[allow(clippy::type_complexity)]
fn dp_kernel_for(q: QIsa) -> Option<(&'static str, usize, fn(u64) -> i32)> {
    match q {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `q` was detected (AVX-512 VNNI).
        QIsa::Avx512Vnni => Some(("vpdpbusd zmm (64 MAC)", 64, |n| unsafe { dp::zmm(n) })),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above (+VL).
        QIsa::Avx512Vnni256 => Some(("vpdpbusd ymm EVEX (32 MAC)", 32, |n| unsafe { dp::ymm_evex(n) })),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above (AVX-VNNI).
        QIsa::AvxVnni => Some(("vpdpbusd ymm VEX (32 MAC)", 32, |n| unsafe { dp::ymm_vex(n) })),
        _ => None,
    }
}

fn spin_threads<T: Send + Copy + Default + 'static>(threads: usize, iters: u64, spin: fn(u64) -> T) -> (f64, f64) {
    let (sink, wall, cpu) = super::timed(|| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || spin(iters))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_default()).collect::<Vec<T>>()
        })
    });
    std::hint::black_box(sink);
    (wall, cpu)
}

/// Spin `iters` iterations on each of `threads` threads with the widest f32 loop this CPU runs
/// under the current ISA choice ([`h2ovl_runtime::vision::kernels::isa`]).
pub fn measure(threads: usize, iters: u64) -> FmaPeak {
    measure_isa(h2ovl_runtime::vision::kernels::isa(), threads, iters)
}

/// [`measure`] with the f32 loop of `isa` (which must be available: see `kernels::simd_isas`).
pub fn measure_isa(isa: Isa, threads: usize, iters: u64) -> FmaPeak {
    let threads = threads.max(1);
    let (name, lanes, spin) = kernel_for(isa);
    let (wall, cpu) = spin_threads(threads, iters, spin);
    let gflop = (threads as u64 * iters * (CHAINS * lanes * 2) as u64) as f64 / 1e9;
    FmaPeak { isa: name.into(), threads, gflops_wall: gflop / wall, gflops_per_core_cpu_s: gflop / cpu }
}

/// The int8 `vpdpbusd` peak of `q` (GOP, 2 per MAC), `None` for ISAs without such a loop.
pub fn measure_int8(q: QIsa, threads: usize, iters: u64) -> Option<FmaPeak> {
    let threads = threads.max(1);
    let (name, macs, spin) = dp_kernel_for(q)?;
    let (wall, cpu) = spin_threads(threads, iters, spin);
    let gop = (threads as u64 * iters * (CHAINS * macs * 2) as u64) as f64 / 1e9;
    Some(FmaPeak { isa: name.into(), threads, gflops_wall: gop / wall, gflops_per_core_cpu_s: gop / cpu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use h2ovl_runtime::vision::kernels::{qsimd_isas, simd_isas};

    #[test]
    fn simd_spin_equals_scalar_twin() {
        for isa in simd_isas() {
            let (name, _, spin) = kernel_for(isa);
            for n in [0, 1, 7, 1000] {
                assert_eq!(spin(n).to_bits(), spin_scalar(n).to_bits(), "{name} iters {n}");
            }
        }
    }

    #[test]
    fn dp_spin_equals_scalar_twin() {
        for q in qsimd_isas() {
            if let Some((name, _, spin)) = dp_kernel_for(q) {
                for n in [0, 1, 7, 1000, 3_000_000] {
                    assert_eq!(spin(n), spin_dp_scalar(n), "{name} iters {n}");
                }
            }
        }
    }

    #[test]
    fn measure_reports_a_positive_peak() {
        let p = measure(2, 200_000);
        assert!(p.gflops_wall > 0.0 && p.gflops_wall.is_finite(), "{p:?}");
        for isa in simd_isas() {
            let p = measure_isa(isa, 1, 100_000);
            assert!(p.gflops_per_core_cpu_s > 0.0, "{p:?}");
        }
        for q in qsimd_isas() {
            if let Some(p) = measure_int8(q, 1, 100_000) {
                assert!(p.gflops_wall > 0.0 && p.gflops_wall.is_finite(), "{p:?}");
            }
        }
    }
}
