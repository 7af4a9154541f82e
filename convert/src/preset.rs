//! Which ggml type each tensor gets: llama-quantize's rules (`llama_tensor_get_type`) for the LLM,
//! llama.cpp's mmproj conventions for the vision file. See gguf-llama-conversion.md §7.
use h2ovl_format::quant::GgmlType;
use anyhow::{bail, Result};

/// `--quant` presets for the LLM GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmQuant {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4KM,
}

impl LlmQuant {
    pub const ALL: [LlmQuant; 5] = [LlmQuant::F32, LlmQuant::F16, LlmQuant::Q8_0, LlmQuant::Q4_0, LlmQuant::Q4KM];

    /// Parses the CLI spelling (`f32`, `f16`, `q8_0`, `q4_0`, `q4_k_m`, any case).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => LlmQuant::F32,
            "f16" => LlmQuant::F16,
            "q8_0" => LlmQuant::Q8_0,
            "q4_0" => LlmQuant::Q4_0,
            "q4_k_m" => LlmQuant::Q4KM,
            _ => bail!("unknown --quant {s:?} (f32, f16, q8_0, q4_0, q4_k_m)"),
        })
    }

    /// File-name label, as llama.cpp names its outputs (`Q4_K_M`).
    pub fn label(self) -> &'static str {
        match self {
            LlmQuant::F32 => "F32",
            LlmQuant::F16 => "F16",
            LlmQuant::Q8_0 => "Q8_0",
            LlmQuant::Q4_0 => "Q4_0",
            LlmQuant::Q4KM => "Q4_K_M",
        }
    }

    /// `general.file_type` (llama_ftype: ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q8_0 7, Q4_K_M 15).
    pub fn file_type(self) -> u32 {
        match self {
            LlmQuant::F32 => 0,
            LlmQuant::F16 => 1,
            LlmQuant::Q4_0 => 2,
            LlmQuant::Q8_0 => 7,
            LlmQuant::Q4KM => 15,
        }
    }

    /// The preset's default type for 2-D weights.
    pub fn default_type(self) -> GgmlType {
        match self {
            LlmQuant::F32 => GgmlType::F32,
            LlmQuant::F16 => GgmlType::F16,
            LlmQuant::Q8_0 => GgmlType::Q8_0,
            LlmQuant::Q4_0 => GgmlType::Q4_0,
            LlmQuant::Q4KM => GgmlType::Q4_K,
        }
    }
}

/// `--vision-quant` presets for the mmproj GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisionQuant {
    F32,
    F16,
    Q8_0,
}

impl VisionQuant {
    pub const ALL: [VisionQuant; 3] = [VisionQuant::F32, VisionQuant::F16, VisionQuant::Q8_0];

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => VisionQuant::F32,
            "f16" => VisionQuant::F16,
            "q8_0" => VisionQuant::Q8_0,
            _ => bail!("unknown --vision-quant {s:?} (f32, f16, q8_0)"),
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            VisionQuant::F32 => "F32",
            VisionQuant::F16 => "F16",
            VisionQuant::Q8_0 => "Q8_0",
        }
    }

    pub fn file_type(self) -> u32 {
        match self {
            VisionQuant::F32 => 0,
            VisionQuant::F16 => 1,
            VisionQuant::Q8_0 => 7,
        }
    }
}

/// llama-quantize's `use_more_bits`: first and last eighth of the layers, and every third between.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// llama-quantize's fallback for rows that are not a whole number of blocks
/// (Q4_K → Q5_0, Q6_K → Q8_0, then F16 if still indivisible; Q4_0/Q8_0 go straight to F16).
pub fn fallback(ty: GgmlType, ne0: usize) -> GgmlType {
    if ne0 % ty.block_size() == 0 {
        return ty;
    }
    let alt = match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    if ne0 % alt.block_size() == 0 {
        alt
    } else {
        GgmlType::F16
    }
}

/// Type of LLM tensor `name` (GGUF name, ggml shape `ne`) under preset `q` in a model of `n_layer`.
pub fn llm_tensor_type(q: LlmQuant, name: &str, ne: &[usize], n_layer: usize) -> GgmlType {
    // Norms and every 1-D tensor stay F32 (convert_hf_to_gguf and llama-quantize agree).
    if ne.len() < 2 || name.ends_with("_norm.weight") || !name.ends_with("weight") {
        return GgmlType::F32;
    }
    let def = q.default_type();
    let ty = match q {
        LlmQuant::F32 | LlmQuant::F16 => def,
        _ if name == "output.weight" => {
            if ne[0] % def.block_size() != 0 {
                GgmlType::Q8_0
            } else if def != GgmlType::Q8_0 {
                GgmlType::Q6_K
            } else {
                def
            }
        }
        LlmQuant::Q4KM => {
            let layer = block_index(name);
            match layer {
                Some(i) if name.ends_with(".attn_v.weight") && use_more_bits(i, n_layer) => GgmlType::Q6_K,
                Some(i) if name.ends_with(".ffn_down.weight") && use_more_bits(i, n_layer) => GgmlType::Q6_K,
                _ => def,
            }
        }
        _ => def,
    };
    fallback(ty, ne[0])
}

/// Type of mmproj tensor `name`: 1-D and the position embedding F32, patch embedding F16 (F32 when
/// the preset is F32, as llama.cpp's converter does), other weights at the preset.
pub fn vision_tensor_type(q: VisionQuant, name: &str, ne: &[usize]) -> GgmlType {
    if ne.len() < 2 || name == "v.position_embd.weight" || name == "v.class_embd" {
        return GgmlType::F32;
    }
    match (q, name) {
        (VisionQuant::F32, _) => GgmlType::F32,
        (_, "v.patch_embd.weight") | (VisionQuant::F16, _) => GgmlType::F16,
        (VisionQuant::Q8_0, _) => fallback(GgmlType::Q8_0, ne[0]),
    }
}

/// `N` of a `blk.N.` / `v.blk.N.` name.
pub fn block_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.").or_else(|| name.strip_prefix("v.blk."))?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_matches_llama_quantize_for_24_layers() {
        let bumped: Vec<usize> = (0..24).filter(|&i| use_more_bits(i, 24)).collect();
        assert_eq!(bumped, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
    }

    #[test]
    fn q4_k_m_types_for_full_size_2b() {
        let n = 24;
        let t = |name: &str, ne: &[usize]| llm_tensor_type(LlmQuant::Q4KM, name, ne, n);
        assert_eq!(t("output.weight", &[2560, 32010]), GgmlType::Q6_K);
        assert_eq!(t("token_embd.weight", &[2560, 32010]), GgmlType::Q4_K);
        assert_eq!(t("blk.0.attn_v.weight", &[2560, 640]), GgmlType::Q6_K);
        assert_eq!(t("blk.3.attn_v.weight", &[2560, 640]), GgmlType::Q4_K);
        assert_eq!(t("blk.5.ffn_down.weight", &[6912, 2560]), GgmlType::Q6_K);
        assert_eq!(t("blk.4.ffn_down.weight", &[6912, 2560]), GgmlType::Q4_K);
        assert_eq!(t("blk.4.attn_norm.weight", &[2560]), GgmlType::F32);
        assert_eq!(llm_tensor_type(LlmQuant::Q4_0, "output.weight", &[2560, 32010], n), GgmlType::Q6_K);
        assert_eq!(llm_tensor_type(LlmQuant::Q8_0, "output.weight", &[2560, 32010], n), GgmlType::Q8_0);
    }

    #[test]
    fn fallbacks_for_rows_not_divisible_by_256() {
        // 800m: hidden 1536 = 6*256 needs none; tiny (64) and tiny-2b (96) do.
        assert_eq!(fallback(GgmlType::Q4_K, 64), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q6_K, 96), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q4_K, 1536), GgmlType::Q4_K);
        assert_eq!(fallback(GgmlType::Q4_K, 40), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q8_0, 14), GgmlType::F16);
        assert_eq!(llm_tensor_type(LlmQuant::Q4KM, "output.weight", &[64, 32010], 2), GgmlType::Q8_0);
        assert_eq!(llm_tensor_type(LlmQuant::Q4_0, "output.weight", &[64, 32010], 2), GgmlType::Q8_0);
    }

    #[test]
    fn vision_types() {
        assert_eq!(vision_tensor_type(VisionQuant::Q8_0, "v.patch_embd.weight", &[14, 14, 3, 1024]), GgmlType::F16);
        assert_eq!(vision_tensor_type(VisionQuant::F32, "v.patch_embd.weight", &[14, 14, 3, 1024]), GgmlType::F32);
        assert_eq!(vision_tensor_type(VisionQuant::Q8_0, "v.position_embd.weight", &[1024, 1025]), GgmlType::F32);
        assert_eq!(vision_tensor_type(VisionQuant::Q8_0, "v.blk.0.attn_q.weight", &[1024, 1024]), GgmlType::Q8_0);
        assert_eq!(vision_tensor_type(VisionQuant::Q8_0, "v.blk.0.attn_q.bias", &[1024]), GgmlType::F32);
        assert_eq!(block_index("v.blk.12.ln1.weight"), Some(12));
        assert_eq!(block_index("blk.3.attn_q.weight"), Some(3));
        assert_eq!(block_index("output.weight"), None);
    }
}
