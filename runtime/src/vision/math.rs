//! Which arithmetic the linear layers use: f32 (weights dequantized while packing) or int8
//! (per-token s8 activations × per-row requantized Q8_0 weights, int32 sums; [`kernels::qgemm`]).
//! Attention's `QKᵀ`/`PV`, LayerNorm, softmax and GELU stay f32 either way.
use super::kernels::gemm::{gemm, BMat, Epilogue, WType, Weight};
use super::kernels::{self, qgemm, Isa, QIsa};
use super::weights::VisionWeights;
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// The user's choice (`--vision-math`, `H2OVL_VISION_MATH`). An explicit F32/Int8 wins; Auto first
/// honours `H2OVL_VISION_MATH`, then decides by the weights and the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VisionMath {
    /// Int8 where it meets the bar (Q8_0 weights and a CPU whose int8 kernel measured
    /// ≥ 1.3× our f32 path: AVX-VNNI or AVX-512 VNNI; see `auto_int8_isa`), else f32.
    #[default]
    Auto,
    F32,
    /// Int8 linear layers on any CPU (needs Q8_0 weights).
    Int8,
}

impl FromStr for VisionMath {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(VisionMath::Auto),
            "f32" => Ok(VisionMath::F32),
            "int8" | "i8" => Ok(VisionMath::Int8),
            other => bail!("vision math '{other}': expected auto, f32 or int8"),
        }
    }
}

impl fmt::Display for VisionMath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VisionMath::Auto => "auto",
            VisionMath::F32 => "f32",
            VisionMath::Int8 => "int8",
        })
    }
}

/// Environment variable read by [`VisionMath::from_env`].
pub const ENV: &str = "H2OVL_VISION_MATH";

impl VisionMath {
    /// `H2OVL_VISION_MATH` (auto|f32|int8), [`VisionMath::Auto`] when unset; a bad value is an error.
    pub fn from_env() -> Result<Self> {
        match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e: anyhow::Error| e.context(format!("environment variable {ENV}"))),
            _ => Ok(VisionMath::Auto),
        }
    }

}

/// The resolved kernels: f32 ISA for everything, plus the int8 ISA for Q8_0 linear weights
/// (`None` = f32 linear layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Math {
    pub isa: Isa,
    pub q: Option<QIsa>,
}

/// Whether every block and projector weight is int8-capable (the patch embedding, 588 wide, is
/// F16 in a Q8_0 file and stays f32).
fn all_q8_0(w: &VisionWeights) -> bool {
    let ok = |x: &Weight| qgemm::supports(x);
    w.layers.iter().all(|l| [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down].into_iter().all(ok)) && ok(&w.mm1) && ok(&w.mm3)
}

/// Int8 ISAs fast enough for Auto to choose int8.
///
/// Rule: int8 wherever the whole encoder measured ≥ 1.3× our f32 path *of the same CPU class*
/// (`h2ovl bench vision`, which runs every path in one alternating run; f32 on the ISA that class
/// has, [`QIsa::f32_isa`]) at per-token cosine ≥ 0.999 against f32 (the golden tests assert the
/// cosine on every int8 ISA). Measured, 0.8B full-size synthetic Q8_0 mmproj, 2 threads, one tile,
/// two rounds alternating with PyTorch (load average 5.8–6.0: another job held about one core):
///
/// | int8 ISA | vs f32 path, round 1 / round 2 (wall) | CPU |
/// |---|---|---|
/// | AVX-512 VNNI zmm | 1.77× / 1.70× (f32 AVX-512 5.76 s → 3.25 s), cos ≥ 0.99972 | Intel Xeon, Sapphire Rapids class |
/// | AVX-512 VNNI ymm (EVEX) | 1.70× / 1.68×, cos ≥ 0.99972 | same runs |
/// | AVX-VNNI (VEX ymm; f32 AVX2, as on Alder Lake) | 2.04× / 1.99× (f32 AVX2 7.88 s → 3.86 s), cos ≥ 0.99970 | same runs |
/// | AVX2 `maddubs` (no VNNI) | 1.13× / 1.15× — below the bar | same runs; 1.2× on an AMD EPYC (issue 6) |
/// | AVX-512 VNNI zmm | 2.3× against that machine's AVX2 f32 path | AMD EPYC, AVX-512 VNNI (issue 6) |
/// | NEON `sdot` (dotprod) | unmeasured: **estimated** from instruction throughput, see below | Cortex-A76 (Pi 5) |
/// | NEON `smull` (no dotprod) | unmeasured; ~1× f32 expected (like AVX2 `maddubs`) | Cortex-A72 (Pi 4) |
///
/// So AVX2-without-VNNI and ARM without dotprod stay f32. ARM with dotprod is the one choice made from
/// an estimate (no ARM hardware here; the kernel is proved equal to its twin under qemu): on a Cortex-A76
/// `sdot` and `fmla` (128-bit) both issue at 2 per cycle, so `sdot` does 4× the multiply-adds of the f32
/// FMA — the same 4× ratio as zmm `vpdpbusd` over zmm FMA, which measured 1.7–2.3× on the whole encoder
/// above. That is well over the 1.3× bar, so auto picks int8 there (docs/raspberry-pi.md; `--vision-math
/// f32` reverts, `h2ovl bench vision` measures both on the board).
fn auto_int8_isa(q: QIsa) -> bool {
    matches!(q, QIsa::AvxVnni | QIsa::Avx512Vnni256 | QIsa::Avx512Vnni | QIsa::NeonDot)
}

impl Math {
    /// Resolves a choice against the environment, the weights and this CPU (an explicit Int8 on a
    /// non-Q8_0 file is an error naming the weights' type).
    pub fn resolve(choice: VisionMath, w: &VisionWeights) -> Result<Math> {
        let isa = kernels::isa();
        let choice = if choice == VisionMath::Auto { VisionMath::from_env()? } else { choice };
        let q = match choice {
            VisionMath::F32 => None,
            VisionMath::Auto => Some(kernels::qisa()).filter(|q| auto_int8_isa(*q) && all_q8_0(w)),
            VisionMath::Int8 => {
                if !all_q8_0(w) {
                    let ty = w.layers.first().map_or(w.mm1.ty, |l| l.q.ty);
                    bail!("--vision-math int8 needs a Q8_0 vision GGUF (its linear weights are {ty:?}); convert with --vision-quant q8_0");
                }
                Some(kernels::qisa())
            }
        };
        Ok(Math { isa, q })
    }

    /// `"f32"` or `"int8 (Avx512Vnni)"`, for logs and bench reports.
    pub fn describe(&self) -> String {
        match self.q {
            None => format!("f32 ({:?})", self.isa),
            Some(q) => format!("int8 ({q:?})"),
        }
    }

    /// A linear layer `C = A·Wᵀ (+ epilogue)`, in int8 when selected and the weight allows it.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(&self, a: &[f32], lda: usize, m: usize, w: &Weight, c: &mut [f32], ldc: usize, epi: Epilogue) {
        match self.q {
            Some(q) if w.ty == WType::Q8_0 && qgemm::supports(w) => qgemm::qgemm(q, self.isa, a, lda, m, w, c, ldc, epi, true),
            _ => gemm(self.isa, a, lda, m, &BMat::Weight(*w), c, ldc, epi, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for m in [VisionMath::Auto, VisionMath::F32, VisionMath::Int8] {
            assert_eq!(m.to_string().parse::<VisionMath>().unwrap(), m);
        }
        assert_eq!("INT8".parse::<VisionMath>().unwrap(), VisionMath::Int8);
        let e = "fp16".parse::<VisionMath>().unwrap_err().to_string();
        assert!(e.contains("fp16") && e.contains("auto, f32 or int8"), "{e}");
    }
}
