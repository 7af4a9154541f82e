//! Compute kernels of the vision encoder: blocked GEMM ([`gemm`], with its operand packing and
//! in-kernel F16/Q8_0 dequantization in [`pack`]), LayerNorm,
//! softmax (with a vector `exp`), exact-erf GELU.
//!
//! Every kernel has a plain-Rust scalar twin (the reference, and the fallback on CPUs without
//! AVX2/FMA or NEON) and SIMD versions in [`avx2`] (x86-64) and `neon` (aarch64). The ISA is
//! detected once at run time ([`isa`]) — never at compile time, so one portable binary runs
//! the fast path wherever the CPU has it. Tests hold every SIMD kernel equal to its twin.
//!
//! The int8 path of the linear layers ([`qgemm`], [`qpack`]; SIMD in `qavx` / `qneon`) has its
//! own ISA ladder ([`QIsa`], [`qisa`]) because its best instructions (VNNI, `sdot`) are separate
//! CPU features from the f32 path's AVX2/FMA.
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod pack;
pub mod qgemm;
pub mod qpack;
pub mod softmax;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod qavx;
#[cfg(target_arch = "aarch64")]
pub mod qneon;

use std::sync::OnceLock;

fn forced_scalar() -> bool {
    std::env::var("H2OVL_VISION_ISA").map(|v| v.eq_ignore_ascii_case("scalar")).unwrap_or(false)
}

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
        if forced_scalar() {
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

/// Instruction set of the int8 GEMM (all produce the same int32 sums, see [`qgemm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QIsa {
    /// Portable Rust, plain i32 sums (the reference twin).
    Scalar,
    /// x86-64 AVX2: `maddubs(|a|, sign(w, a))` + `madd` (exact: |a|, |w| ≤ 127, no i16 saturation).
    Avx2,
    /// x86-64 AVX-512 VNNI (+BW): `vpdpbusd` on zmm with u8 activations `a + 128`.
    Avx512Vnni,
    /// aarch64 with the dot-product extension: `sdot`.
    NeonDot,
    /// aarch64 Advanced SIMD without dotprod: `smull` + pairwise adds.
    Neon,
}

impl QIsa {
    /// Whether this ISA stores activations as `u8 = a + 128` (then sums are corrected by `128·Σw`).
    pub fn offset_a(self) -> bool {
        self == QIsa::Avx512Vnni
    }
}

/// Detects the best int8 ISA once. `H2OVL_VISION_ISA=scalar` forces the scalar twin (as for
/// [`isa`]); `=avx2` / `=neon` cap the int8 path at the AVX2 / non-dotprod kernel when available
/// (to measure what a CPU without VNNI / dotprod gets).
pub fn qisa() -> QIsa {
    static Q: OnceLock<QIsa> = OnceLock::new();
    *Q.get_or_init(|| {
        if forced_scalar() {
            return QIsa::Scalar;
        }
        let cap = std::env::var("H2OVL_VISION_ISA").unwrap_or_default().to_ascii_lowercase();
        let want = match cap.as_str() {
            "avx2" => Some(QIsa::Avx2),
            "neon" => Some(QIsa::Neon),
            _ => None,
        };
        match want {
            Some(q) if qsimd_isas().contains(&q) => q,
            _ => qdetect(),
        }
    })
}

/// Every int8 ISA this CPU can run besides the scalar twin (for tests).
pub fn qsimd_isas() -> Vec<QIsa> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(QIsa::Avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            v.push(QIsa::Avx512Vnni);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(QIsa::Neon);
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(QIsa::NeonDot);
            }
        }
    }
    v
}

fn qdetect() -> QIsa {
    // The last entry of `qsimd_isas` is the fastest.
    qsimd_isas().pop().unwrap_or(QIsa::Scalar)
}

/// Deterministic test data in [-1, 1) (xorshift32; no rand dependency), shared by the kernels'
/// twin tests. `salt` separates the streams of different tests.
#[cfg(test)]
pub(crate) fn test_data(n: usize, seed: u32, salt: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(salt);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}
