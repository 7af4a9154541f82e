//! `config.json` of a generated checkpoint: the real 800m `config.json` with only the dimensions
//! (and, for a Mistral decoder, the `llm_config` class keys) replaced — exactly how the golden
//! `tiny`/`tiny-2b` configs were made, so every other key (template, ps_version, select_layer,
//! tile limits, eps…) stays what real H2OVL code expects.

use crate::family::{LlmArch, ModelSpec};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

/// The real `h2oai/h2ovl-mississippi-800m` config.json (see `assets/h2ovl-800m-meta/SOURCE.md`).
pub const BASE_CONFIG: &str = include_str!("../assets/h2ovl-800m-meta/config.json");

/// Write a float as a JSON integer when it is one (`rope_theta: 10000`, as HF files have it).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn object<'a>(v: &'a mut Value, key: &str) -> Result<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut).with_context(|| format!("base config.json has no object {key:?}"))
}

/// Build the `config.json` value for `spec`.
pub fn config_json(spec: &ModelSpec) -> Result<Value> {
    let mut cfg: Value = serde_json::from_str(BASE_CONFIG).context("parsing the bundled 800m config.json")?;
    let top = cfg.as_object_mut().context("base config.json is not an object")?;
    top.insert("use_msac".into(), json!(spec.use_msac));
    top.insert("downsample_ratio".into(), number(spec.downsample_ratio));
    top.insert("force_image_size".into(), json!(spec.vision.image_size));

    let v = &spec.vision;
    let vision = object(&mut cfg, "vision_config")?;
    vision.insert("hidden_size".into(), json!(v.hidden));
    vision.insert("num_hidden_layers".into(), json!(v.layers));
    vision.insert("num_attention_heads".into(), json!(v.heads));
    vision.insert("intermediate_size".into(), json!(v.intermediate));
    vision.insert("image_size".into(), json!(v.image_size));
    vision.insert("patch_size".into(), json!(v.patch_size));
    vision.insert("num_channels".into(), json!(v.channels));

    let l = &spec.llm;
    let llm = object(&mut cfg, "llm_config")?;
    llm.insert("_name_or_path".into(), json!(l.base_model));
    llm.insert("architectures".into(), json!([l.arch.hf_class()]));
    llm.insert("model_type".into(), json!(l.arch.model_type()));
    llm.insert("hidden_size".into(), json!(l.hidden));
    llm.insert("num_hidden_layers".into(), json!(l.layers));
    llm.insert("num_attention_heads".into(), json!(l.heads));
    llm.insert("num_key_value_heads".into(), json!(l.kv_heads));
    llm.insert("intermediate_size".into(), json!(l.intermediate));
    llm.insert("vocab_size".into(), json!(l.vocab));
    llm.insert("rope_theta".into(), number(l.rope_theta));
    llm.insert("rms_norm_eps".into(), json!(l.rms_norm_eps));
    llm.insert("max_position_embeddings".into(), json!(l.max_position_embeddings));
    llm.insert("tie_word_embeddings".into(), json!(false));
    if l.arch == LlmArch::Mistral {
        // MistralConfig has no bias flags or tensor-parallel key; an absent sliding_window
        // would default to 4096 in HF, so write the explicit null Danube2 implies.
        for key in ["attention_bias", "mlp_bias", "pretraining_tp"] {
            llm.remove(key);
        }
        llm.insert("sliding_window".into(), Value::Null);
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::*;

    fn golden(name: &str) -> Value {
        let p = format!("{}/../quant-tests/fixtures/golden/checkpoints/{name}/config.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn tiny_configs_equal_golden() {
        assert_eq!(config_json(&tiny()).unwrap(), golden("tiny"));
        assert_eq!(config_json(&tiny_2b()).unwrap(), golden("tiny-2b"));
    }

    #[test]
    fn preset_800m_reproduces_real_config() {
        let base: Value = serde_json::from_str(BASE_CONFIG).unwrap();
        assert_eq!(config_json(&h2ovl_800m()).unwrap(), base);
    }

    #[test]
    fn preset_2b_is_mistral_with_msac() {
        let c = config_json(&h2ovl_2b()).unwrap();
        let llm = &c["llm_config"];
        assert_eq!(llm["architectures"][0], "MistralForCausalLM");
        assert_eq!((llm["hidden_size"].as_u64(), llm["rope_theta"].as_u64()), (Some(2560), Some(10000)));
        assert!(llm.get("attention_bias").is_none() && llm["sliding_window"].is_null());
        assert_eq!(c["use_msac"], true);
    }
}
