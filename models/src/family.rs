//! The H2OVL-Mississippi family as data: the two released sizes, the golden test checkpoints and a
//! small demo size, each a [`ModelSpec`] holding every dimension the checkpoint layout depends on.
//!
//! Values for `800m`/`2b` are those of `h2ovl-model-spec.md` §1–§2 (the 800m read from its
//! `config.json`, the 2b from its hub config diff and a third-party port). `tiny`/`tiny-2b` mirror
//! `quant-tests/fixtures/golden/checkpoints/*/config.json`, so a generated `tiny` has exactly the
//! tensor inventory of the golden one. The tensor list itself lives in [`crate::inventory`].

use std::fmt;

/// Vocabulary of every H2OVL size: 32000 Mistral SentencePiece pieces + 10 added tokens
/// (`<img>` … `<|end|>`, ids 32000..32009). Synthetic checkpoints keep it because they ship the
/// real tokenizer.
pub const VOCAB_SIZE: usize = 32010;

/// Which HF decoder class the `llm_config` names. Both are converted to GGUF arch `llama`;
/// they differ in `config.json` keys only (Mistral has no bias flags, has `sliding_window`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmArch {
    /// `LlamaForCausalLM`, model_type `llama` (800m: H2O-Danube3-500M).
    Llama,
    /// `MistralForCausalLM`, model_type `mistral` (2b: H2O-Danube2-1.8B).
    Mistral,
}

impl LlmArch {
    /// The HF `architectures[0]` string.
    pub fn hf_class(self) -> &'static str {
        match self {
            LlmArch::Llama => "LlamaForCausalLM",
            LlmArch::Mistral => "MistralForCausalLM",
        }
    }
    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            LlmArch::Llama => "llama",
            LlmArch::Mistral => "mistral",
        }
    }
}

/// InternViT tower dimensions (`vision_config`). Patch/image size are fixed by the family
/// (448 px tiles, 14 px patches → 32×32 grid + CLS = 1025 tokens) but kept as data.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionDims {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub channels: usize,
}

impl VisionDims {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
    /// Patches per tile (32×32 = 1024 for 448/14).
    pub fn num_patches(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side
    }
    /// Rows of `position_embedding`: patches + the CLS position (row 0).
    pub fn num_positions(&self) -> usize {
        self.num_patches() + 1
    }
}

/// Decoder dimensions (`llm_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct LlmDims {
    pub arch: LlmArch,
    /// `_name_or_path` written into `llm_config` (the base model the size was built on).
    pub base_model: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
}

impl LlmDims {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
    /// Rows of `k_proj`/`v_proj` (grouped-query attention).
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }
}

/// One member of the family: everything needed to lay out its checkpoint and `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Preset name as used on the command line (`800m`, `2b`, `small`, `tiny`, `tiny-2b`).
    pub name: &'static str,
    pub vision: VisionDims,
    pub llm: LlmDims,
    /// Pixel-shuffle ratio; 0.5 merges 2×2 patches, so the projector sees 4·vision.hidden.
    pub downsample_ratio: f64,
    /// Multi-scale adaptive cropping (2b only): changes preprocessing, not the tensors.
    pub use_msac: bool,
}

impl ModelSpec {
    /// Projector input width: vision hidden × (1/downsample_ratio)².
    pub fn projector_in(&self) -> usize {
        let r = (1.0 / self.downsample_ratio).round() as usize;
        self.vision.hidden * r * r
    }
    /// Image tokens per 448 tile after pixel shuffle (256 for the real sizes).
    pub fn tokens_per_tile(&self) -> usize {
        let r = (1.0 / self.downsample_ratio).round() as usize;
        self.vision.num_patches() / (r * r)
    }

    /// Parameters of the InternViT tower (closed form; the inventory sum is tested against it).
    pub fn vision_param_count(&self) -> usize {
        let v = &self.vision;
        let (d, f) = (v.hidden, v.intermediate);
        let embeddings = d // class_embedding
            + d * v.channels * v.patch_size * v.patch_size + d // patch conv + bias
            + v.num_positions() * d; // position_embedding
        let per_layer = 2 * d // norm1
            + 3 * d * d + 3 * d // qkv
            + d * d + d // proj
            + d // ls1
            + 2 * d // norm2
            + f * d + f // fc1
            + d * f + d // fc2
            + d; // ls2
        embeddings + v.layers * per_layer
    }

    /// Parameters of the `mlp1` projector: LayerNorm(4D) → Linear(4D→H) → GELU → Linear(H→H).
    pub fn projector_param_count(&self) -> usize {
        let (i, h) = (self.projector_in(), self.llm.hidden);
        2 * i + i * h + h + h * h + h
    }

    /// Parameters of the decoder, untied `lm_head` included.
    pub fn llm_param_count(&self) -> usize {
        let l = &self.llm;
        let (h, f, kv) = (l.hidden, l.intermediate, l.kv_dim());
        let per_layer = h * h + 2 * kv * h + h * h // q, k, v, o
            + 3 * f * h // gate, up, down
            + 2 * h; // input / post-attention RMSNorm
        2 * l.vocab * h + l.layers * per_layer + h
    }

    /// Total parameters of the checkpoint (vision + projector + LLM).
    pub fn param_count(&self) -> usize {
        self.vision_param_count() + self.projector_param_count() + self.llm_param_count()
    }

    /// Size of `model.safetensors` payload in bf16 (header excluded).
    pub fn bf16_bytes(&self) -> u64 {
        2 * self.param_count() as u64
    }
}

/// The InternViT-300M-448px tower shared by both released sizes.
fn intern_vit_300m() -> VisionDims {
    VisionDims { hidden: 1024, layers: 24, heads: 16, intermediate: 4096, image_size: 448, patch_size: 14, channels: 3 }
}

/// A tower with the real tile/patch geometry but custom width/depth (test and demo sizes).
fn vit(hidden: usize, layers: usize, heads: usize, intermediate: usize) -> VisionDims {
    VisionDims { hidden, layers, heads, intermediate, ..intern_vit_300m() }
}

/// H2OVL-Mississippi-800m: InternViT-300M + H2O-Danube3-500M (Llama).
pub fn h2ovl_800m() -> ModelSpec {
    ModelSpec {
        name: "800m",
        vision: intern_vit_300m(),
        llm: LlmDims {
            arch: LlmArch::Llama,
            base_model: "h2oai/h2o-danube3-500m-chat",
            hidden: 1536,
            layers: 16,
            heads: 16,
            kv_heads: 8,
            intermediate: 4096,
            vocab: VOCAB_SIZE,
            rope_theta: 100000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 8192,
        },
        downsample_ratio: 0.5,
        use_msac: false,
    }
}

/// H2OVL-Mississippi-2b: InternViT-300M + H2O-Danube2-1.8B (Mistral), MSAC on.
pub fn h2ovl_2b() -> ModelSpec {
    ModelSpec {
        name: "2b",
        vision: intern_vit_300m(),
        llm: LlmDims {
            arch: LlmArch::Mistral,
            base_model: "h2oai/h2o-danube2-1.8b-chat",
            hidden: 2560,
            layers: 24,
            heads: 32,
            kv_heads: 8,
            intermediate: 6912,
            vocab: VOCAB_SIZE,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 8192,
        },
        downsample_ratio: 0.5,
        use_msac: true,
    }
}

/// Golden `checkpoints/tiny`: 800m-shaped (Llama, no MSAC), 59 tensors.
pub fn tiny() -> ModelSpec {
    let mut m = h2ovl_800m();
    m.name = "tiny";
    m.vision = vit(64, 2, 4, 256);
    m.llm = LlmDims { hidden: 64, layers: 2, heads: 4, kv_heads: 2, intermediate: 128, ..m.llm };
    m
}

/// Golden `checkpoints/tiny-2b`: 2b-shaped (Mistral, rope θ 10000, MSAC), 82 tensors.
pub fn tiny_2b() -> ModelSpec {
    let mut m = h2ovl_2b();
    m.name = "tiny-2b";
    m.vision = vit(96, 3, 6, 384);
    m.llm = LlmDims { hidden: 96, layers: 3, heads: 6, kv_heads: 2, intermediate: 256, ..m.llm };
    m
}

/// Demo size (≈22M params, mostly the 32010-row embeddings; 44 MB): fast to convert and run end to end. Every matrix row length
/// (input width) is a multiple of 256, so K-quant GGUF types apply without a fallback type;
/// head_dim 64 like the real tower.
pub fn small() -> ModelSpec {
    let mut m = h2ovl_800m();
    m.name = "small";
    m.vision = vit(256, 2, 4, 1024);
    m.llm = LlmDims { hidden: 256, layers: 4, heads: 4, kv_heads: 2, intermediate: 768, ..m.llm };
    m
}

/// Every preset, in the order the CLI lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    M800,
    B2,
    Small,
    Tiny,
    Tiny2b,
}

impl Preset {
    pub const ALL: [Preset; 5] = [Preset::M800, Preset::B2, Preset::Small, Preset::Tiny, Preset::Tiny2b];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::M800 => "800m",
            Preset::B2 => "2b",
            Preset::Small => "small",
            Preset::Tiny => "tiny",
            Preset::Tiny2b => "tiny-2b",
        }
    }

    pub fn spec(self) -> ModelSpec {
        match self {
            Preset::M800 => h2ovl_800m(),
            Preset::B2 => h2ovl_2b(),
            Preset::Small => small(),
            Preset::Tiny => tiny(),
            Preset::Tiny2b => tiny_2b(),
        }
    }

    /// Look a preset up by its command-line name; the error lists the valid names.
    pub fn from_name(name: &str) -> anyhow::Result<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<_> = Preset::ALL.iter().map(|p| p.name()).collect();
            anyhow::anyhow!("unknown model preset {name:?} (expected one of: {})", names.join(", "))
        })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_sizes_match_spec_parameter_totals() {
        // h2ovl-model-spec.md §1.3: 826,295,808 and 2,152,317,440 (1.65 GB / 4.30 GB in bf16).
        assert_eq!(h2ovl_800m().param_count(), 826_295_808);
        assert_eq!(h2ovl_2b().param_count(), 2_152_317_440);
        // Spec breakdown: vision 304.0M (both), projector 8.66M / 17.05M, LLM 513.6M / 1,831.3M.
        let (m, b) = (h2ovl_800m(), h2ovl_2b());
        assert_eq!(m.vision_param_count(), b.vision_param_count());
        assert_eq!((m.vision_param_count() as f64 / 1e5).round(), 3040.0);
        assert_eq!((m.projector_param_count() as f64 / 1e4).round(), 866.0);
        assert_eq!((b.projector_param_count() as f64 / 1e4).round(), 1705.0);
        assert_eq!((m.llm_param_count() as f64 / 1e5).round(), 5136.0);
        assert_eq!((b.llm_param_count() as f64 / 1e5).round(), 18313.0);
    }

    #[test]
    fn derived_dims() {
        let m = h2ovl_800m();
        assert_eq!((m.vision.head_dim(), m.llm.head_dim(), m.llm.kv_dim()), (64, 96, 768));
        assert_eq!((m.vision.num_positions(), m.projector_in(), m.tokens_per_tile()), (1025, 4096, 256));
        let b = h2ovl_2b();
        assert_eq!((b.llm.head_dim(), b.llm.kv_dim()), (80, 640));
        assert_eq!(tiny().tokens_per_tile(), 256);
    }

    #[test]
    fn small_has_k_quant_friendly_rows() {
        let s = small();
        for width in [s.llm.hidden, s.llm.intermediate, s.vision.hidden, s.vision.intermediate, s.projector_in()] {
            assert_eq!(width % 256, 0, "row length {width}");
        }
    }

    #[test]
    fn preset_names_round_trip() {
        for p in Preset::ALL {
            assert_eq!(Preset::from_name(p.name()).unwrap(), p);
            assert_eq!(p.spec().name, p.name());
        }
        let err = Preset::from_name("7b").unwrap_err().to_string();
        assert!(err.contains("7b") && err.contains("tiny-2b"), "{err}");
    }
}
