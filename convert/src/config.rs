//! `config.json` of an H2OVL checkpoint (`H2OVLChatConfig`): the top-level vision/prompt settings,
//! `llm_config` (Llama or Mistral) and `vision_config` (InternViT). Field meanings: spec §1.
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::path::Path;

/// The LLM architectures the `llama` GGUF arch can express faithfully.
pub const SUPPORTED_LLM_ARCHS: &[&str] = &["LlamaForCausalLM", "MistralForCausalLM"];

#[derive(Clone, Debug, Deserialize)]
pub struct H2ovlConfig {
    pub llm_config: LlmConfig,
    pub vision_config: VisionConfig,
    #[serde(default = "default_downsample")]
    pub downsample_ratio: f64,
    #[serde(default)]
    pub use_msac: bool,
    #[serde(default = "default_min_patch")]
    pub min_dynamic_patch: u32,
    #[serde(default = "default_max_patch")]
    pub max_dynamic_patch: u32,
    #[serde(default = "default_true")]
    pub use_thumbnail: bool,
    #[serde(default = "default_select_layer")]
    pub select_layer: i32,
    /// The class default is "v1", so a missing key means v1, not the H2OVL file value.
    #[serde(default = "default_ps_version")]
    pub ps_version: String,
    #[serde(default = "default_template")]
    pub template: String,
    pub force_image_size: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LlmConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    pub rope_scaling: Option<serde_json::Value>,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VisionConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_vit_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_norm_type")]
    pub norm_type: String,
    #[serde(default)]
    pub qk_normalization: bool,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

fn default_downsample() -> f64 {
    0.5
}
fn default_min_patch() -> u32 {
    1
}
fn default_max_patch() -> u32 {
    6
}
fn default_true() -> bool {
    true
}
fn default_select_layer() -> i32 {
    -1
}
fn default_ps_version() -> String {
    "v1".into()
}
fn default_template() -> String {
    "h2ogpt2".into()
}
fn default_rope_theta() -> f64 {
    10000.0
}
fn default_channels() -> usize {
    3
}
fn default_vit_eps() -> f64 {
    1e-6
}
fn default_norm_type() -> String {
    "layer_norm".into()
}

impl H2ovlConfig {
    /// Reads and validates `dir/config.json`; every refusal names the offending key.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: H2ovlConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        cfg.validate().with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    /// The LLM's HF architecture name (checked to be supported).
    pub fn llm_arch(&self) -> &str {
        &self.llm_config.architectures[0]
    }

    fn validate(&self) -> Result<()> {
        let l = &self.llm_config;
        match l.architectures.as_slice() {
            [a] if SUPPORTED_LLM_ARCHS.contains(&a.as_str()) => {}
            [] => bail!("llm_config.architectures is missing"),
            other => bail!(
                "unsupported LLM architecture {other:?} in llm_config.architectures (supported: {})",
                SUPPORTED_LLM_ARCHS.join(", ")
            ),
        }
        ensure!(l.num_attention_heads > 0 && l.hidden_size > 0, "llm_config: zero hidden_size or heads");
        let kv = l.n_kv_heads();
        ensure!(kv > 0 && l.num_attention_heads % kv == 0, "llm_config: num_key_value_heads {kv} does not divide num_attention_heads {}", l.num_attention_heads);
        ensure!(l.head_dim() % 2 == 0, "llm_config: head dim {} must be even for RoPE", l.head_dim());
        if let Some(rs) = &l.rope_scaling {
            ensure!(rs.is_null(), "llm_config.rope_scaling = {rs} is not supported");
        }
        ensure!(!l.attention_bias && !l.mlp_bias, "llm_config: attention_bias/mlp_bias are not supported");
        if let Some(act) = &l.hidden_act {
            ensure!(act == "silu", "llm_config.hidden_act {act:?} is not supported (silu expected)");
        }
        let v = &self.vision_config;
        ensure!(v.norm_type == "layer_norm", "vision_config.norm_type {:?} is not supported (layer_norm expected)", v.norm_type);
        ensure!(!v.qk_normalization, "vision_config.qk_normalization = true is not supported");
        ensure!(v.qkv_bias, "vision_config.qkv_bias = false is not supported");
        ensure!(v.num_channels == 3, "vision_config.num_channels {} is not supported (3 expected)", v.num_channels);
        ensure!(v.patch_size > 0 && v.image_size % v.patch_size == 0, "vision_config: image_size {} is not a multiple of patch_size {}", v.image_size, v.patch_size);
        ensure!(v.num_attention_heads > 0 && v.hidden_size % v.num_attention_heads == 0, "vision_config: hidden_size {} not divisible by num_attention_heads {}", v.hidden_size, v.num_attention_heads);
        if let Some(act) = &v.hidden_act {
            ensure!(act == "gelu", "vision_config.hidden_act {act:?} is not supported (gelu expected)");
        }
        let inv = 1.0 / self.downsample_ratio;
        ensure!(
            self.downsample_ratio > 0.0 && (inv - inv.round()).abs() < 1e-9 && inv.round() >= 1.0,
            "downsample_ratio {} must be 1/n",
            self.downsample_ratio
        );
        let grid = v.image_size / v.patch_size;
        ensure!(grid % self.scale_factor() as usize == 0, "patch grid {grid} is not divisible by 1/downsample_ratio");
        ensure!(self.ps_version == "v1" || self.ps_version == "v2", "ps_version {:?} is not supported", self.ps_version);
        ensure!(
            self.min_dynamic_patch >= 1 && self.min_dynamic_patch <= self.max_dynamic_patch,
            "min_dynamic_patch {} / max_dynamic_patch {} are inconsistent",
            self.min_dynamic_patch,
            self.max_dynamic_patch
        );
        let n = v.num_hidden_layers as i32;
        ensure!(
            (self.select_layer < 0 && self.select_layer >= -n) || (self.select_layer >= 0 && self.select_layer <= n),
            "select_layer {} is out of range for {n} ViT layers",
            self.select_layer
        );
        Ok(())
    }

    /// `1 / downsample_ratio` (2 for H2OVL).
    pub fn scale_factor(&self) -> u32 {
        (1.0 / self.downsample_ratio).round() as u32
    }

    /// Image tokens per 448 tile: (image/patch)^2 / scale^2 (256 for H2OVL).
    pub fn image_token_count(&self) -> u32 {
        let g = (self.vision_config.image_size / self.vision_config.patch_size) as u32;
        let s = self.scale_factor();
        (g / s) * (g / s)
    }
}

impl LlmConfig {
    pub fn n_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
}
