//! Compute kernels of the vision encoder: blocked GEMM ([`gemm`], with its operand packing and
//! in-kernel F16/Q8_0 dequantization in [`pack`]), LayerNorm,
//! softmax (with a vector `exp`), exact-erf GELU.
//!
//! Every kernel has a plain-Rust scalar twin (the reference, and the fallback on CPUs without
//! AVX2/FMA or NEON) and SIMD versions in [`avx2`] (x86-64) and `neon` (aarch64). The ISA is
//! detected once at run time ([`isa`]) — never at compile time, so one portable binary runs
//! the fast path wherever the CPU has it. Tests hold every SIMD kernel equal to its twin.
//!
//! f32 GEMM microkernels, each with its own register tile and cache blocking ([`Isa::tile`],
//! [`Isa::blocking`]; packing follows the selected ISA):
//! - `avx2::kernel_6x16` (12 ymm accumulators) and `neon::kernel_6x16`;
//! - [`avx512::kernel_14x32`] (28 zmm accumulators) under [`Isa::Avx512`]: on CPUs with two
//!   512-bit FMA ports (Intel Xeon since Skylake-SP) the zmm FMA peak is twice the ymm one, which
//!   the 6×16 ymm kernel can never reach. Softmax, GELU, LayerNorm and the packing transposes
//!   stay AVX2 there (memory-bound, O(N·D)).
//!
//! The int8 path of the linear layers ([`qgemm`], [`qpack`]; SIMD in `qavx` / `qvnni256` /
//! `qneon`) has its own ISA ladder ([`QIsa`], [`qisa`]) because its best instructions (VNNI,
//! `sdot`) are separate CPU features from the f32 path's: AVX2 `maddubs`, AVX-VNNI (VEX ymm,
//! Alder Lake and later laptops), AVX-512 VNNI on ymm (EVEX) and on zmm, NEON `smull` / `sdot`.
//!
//! `H2OVL_VISION_ISA` caps both ladders at one CPU class, so each kernel can be measured on one
//! machine: `scalar`, `avx2`, `avxvnni` (f32 AVX2 + int8 AVX-VNNI), `avx512` (f32 AVX-512, int8
//! at most AVX-VNNI), `avx512vnni256`, `avx512vnni`; `neon`, `neondot` on aarch64. Unknown or
//! unset: no cap.
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod pack;
pub mod qgemm;
pub mod qpack;
pub mod softmax;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod qavx;
#[cfg(target_arch = "x86_64")]
pub mod qvnni256;
#[cfg(target_arch = "aarch64")]
pub mod qneon;

use std::sync::OnceLock;

/// `H2OVL_VISION_ISA`, lower-cased ("" when unset).
fn isa_env() -> String {
    std::env::var("H2OVL_VISION_ISA").unwrap_or_default().trim().to_ascii_lowercase()
}

/// Rank of an `H2OVL_VISION_ISA` value on one ladder of CPU classes, so a value caps both the
/// f32 and the int8 kernel at what such a CPU has: `scalar` < `avx2` (Haswell/Zen 1–3) <
/// `avxvnni` (Alder Lake and later laptops: AVX2 + VEX VNNI) < `avx512` (Skylake-SP: AVX-512F,
/// no VNNI) < `avx512vnni256` (AVX-512 VNNI, ymm kernel) < `avx512vnni` (the zmm kernel).
/// `neon` / `neondot` rank the aarch64 kernels. `None`: unset or unknown (no cap).
fn env_rank() -> Option<u8> {
    Some(match isa_env().as_str() {
        "scalar" => 0,
        "avx2" | "neon" => 1,
        "avxvnni" | "neondot" => 2,
        "avx512" => 3,
        "avx512vnni256" => 4,
        "avx512vnni" => 5,
        _ => return None,
    })
}

/// Instruction set the kernels dispatch to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (the reference twin of every kernel).
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C for F16 weights).
    Avx2,
    /// x86-64 AVX-512F (+VL, and AVX2/FMA/F16C): the 14×32 zmm GEMM microkernel; the other f32
    /// kernels are the AVX2 ones.
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Rank on the `H2OVL_VISION_ISA` ladder (see [`env_rank`]); `bench vision` lists the paths up to the chosen one.
    pub fn rank(self) -> u8 {
        match self {
            Isa::Scalar => 0,
            Isa::Avx2 | Isa::Neon => 1,
            Isa::Avx512 => 3,
        }
    }
}

/// Detects the best ISA once and caches it. `H2OVL_VISION_ISA` caps it (`scalar` forces the
/// scalar twins, `avx2`/`avxvnni` the AVX2 kernels on an AVX-512 machine — to prove the fallbacks
/// and measure what other CPUs get on one machine).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = env_rank().unwrap_or(u8::MAX);
        let mut v = simd_isas();
        v.retain(|i| i.rank() <= cap);
        v.pop().unwrap_or(Isa::Scalar)
    })
}

/// Every f32 SIMD ISA this CPU runs, slowest first (empty = only the scalar twins), for tests
/// and the bench.
pub fn simd_isas() -> Vec<Isa> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c") {
            v.push(Isa::Avx2);
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                v.push(Isa::Avx512);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(Isa::Neon);
        }
    }
    v
}

/// The fastest SIMD ISA available on this machine besides the scalar twin (`None` = only scalar).
pub fn simd_isa() -> Option<Isa> {
    simd_isas().pop()
}

/// Instruction set of the int8 GEMM (all produce the same int32 sums, see [`qgemm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QIsa {
    /// Portable Rust, plain i32 sums (the reference twin).
    Scalar,
    /// x86-64 AVX2: `maddubs(|a|, sign(w, a))` + `madd` (exact: |a|, |w| ≤ 127, no i16 saturation).
    Avx2,
    /// x86-64 AVX-VNNI (Alder Lake and later, no AVX-512): VEX `vpdpbusd` on ymm, u8 `a + 128`.
    AvxVnni,
    /// x86-64 AVX-512 VNNI + VL: the same ymm kernel as [`QIsa::AvxVnni`] in its EVEX form
    /// (32 registers: a taller tile).
    Avx512Vnni256,
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
        matches!(self, QIsa::AvxVnni | QIsa::Avx512Vnni256 | QIsa::Avx512Vnni)
    }

    /// Rank on the `H2OVL_VISION_ISA` ladder (see [`env_rank`]); `bench vision` lists the paths up to the chosen one.
    pub fn rank(self) -> u8 {
        match self {
            QIsa::Scalar => 0,
            QIsa::Avx2 | QIsa::Neon => 1,
            QIsa::AvxVnni | QIsa::NeonDot => 2,
            QIsa::Avx512Vnni256 => 4,
            QIsa::Avx512Vnni => 5,
        }
    }

    /// The f32 ISA a CPU with this int8 kernel as its best has (for the bench's per-class
    /// pairs: AVX-VNNI laptops have AVX2 only; the AVX-512 VNNI kernels imply AVX-512F).
    pub fn f32_isa(self) -> Isa {
        match self {
            QIsa::Scalar => Isa::Scalar,
            QIsa::Avx2 | QIsa::AvxVnni => Isa::Avx2,
            QIsa::Avx512Vnni256 | QIsa::Avx512Vnni => Isa::Avx512,
            QIsa::Neon | QIsa::NeonDot => Isa::Neon,
        }
    }
}

/// Detects the best int8 ISA once. `H2OVL_VISION_ISA` caps it on the same ladder as [`isa`]
/// (`scalar` forces the scalar twin; `avx2`, `avxvnni`, `avx512vnni256`, `avx512vnni`, `neon`
/// select each kernel on a machine that has them all).
pub fn qisa() -> QIsa {
    static Q: OnceLock<QIsa> = OnceLock::new();
    *Q.get_or_init(|| {
        let cap = env_rank().unwrap_or(u8::MAX);
        let mut v = qsimd_isas();
        v.retain(|q| q.rank() <= cap);
        v.pop().unwrap_or(QIsa::Scalar)
    })
}

/// Every int8 ISA this CPU can run besides the scalar twin, slowest first (for tests).
pub fn qsimd_isas() -> Vec<QIsa> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(QIsa::Avx2);
            if std::arch::is_x86_feature_detected!("avxvnni") {
                v.push(QIsa::AvxVnni);
            }
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            v.push(QIsa::Avx512Vnni256);
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
