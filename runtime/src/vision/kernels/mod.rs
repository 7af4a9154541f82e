//! Compute kernels of the vision encoder: blocked GEMM ([`gemm`], with its operand packing and
//! in-kernel F16/Q8_0 dequantization in [`pack`]), LayerNorm,
//! softmax (with a vector `exp`), exact-erf GELU.
//!
//! Every kernel has a plain-Rust scalar twin (the reference, and the fallback on CPUs without
//! AVX2/FMA or NEON) and SIMD versions in [`avx2`] (x86-64) and `neon` (aarch64). The ISA is
//! detected once at run time ([`isa`]) — never at compile time, so one portable binary runs
//! the fast path wherever the CPU has it. Tests hold every SIMD kernel equal to its twin.
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod pack;
pub mod softmax;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use std::sync::OnceLock;

/// Instruction set the kernels dispatch to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (the reference twin of every kernel).
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C for F16 weights).
    Avx2,
    /// aarch64 Advanced SIMD.
    Neon,
}

/// Detects the best ISA once and caches it. `H2OVL_VISION_ISA=scalar` forces the scalar twins
/// (for A/B checks and to prove the fallback works on a machine that has AVX2).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var("H2OVL_VISION_ISA").map(|v| v.eq_ignore_ascii_case("scalar")).unwrap_or(false) {
            return Isa::Scalar;
        }
        detect()
    })
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Isa::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Isa::Neon;
        }
    }
    Isa::Scalar
}

/// The SIMD ISA available on this machine besides the scalar twin, for tests (`None` = only scalar).
pub fn simd_isa() -> Option<Isa> {
    match detect() {
        Isa::Scalar => None,
        i => Some(i),
    }
}
