//! The vision GGUF ("mmproj", llama.cpp `clip` naming, projector type `internvl`): InternViT tower
//! and the `mlp1` projector, fused qkv split into q/k/v, CLS position row kept first (HF order), plus
//! our own `h2ovl.*` keys so the runtime needs nothing but the two GGUF files.
use crate::config::H2ovlConfig;
use h2ovl_format::gguf::{GgufValue, GgufWriter};
use crate::job::{reversed, sort_jobs, TensorJob, Transform};
use crate::preset::{vision_tensor_type, VisionQuant};
use crate::safetensors::Checkpoint;
use anyhow::{bail, ensure, Result};
use std::io::Write;

pub const HF_VISION_PREFIX: &str = "vision_model.";
pub const HF_PROJECTOR_PREFIX: &str = "mlp1.";

/// ImageNet normalisation used by H2OVL's preprocessing (no preprocessor_config.json ships).
pub const IMAGE_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGE_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// LayerNorm eps of the projector (`nn.LayerNorm` default).
pub const PROJECTOR_LN_EPS: f32 = 1e-5;

/// Plans every mmproj tensor, checking each HF shape against config.json.
pub fn plan(cfg: &H2ovlConfig, ck: &Checkpoint, q: VisionQuant) -> Result<Vec<TensorJob>> {
    let v = &cfg.vision_config;
    let (d, ff, p) = (v.hidden_size, v.intermediate_size, v.patch_size);
    let n_pos = (v.image_size / p) * (v.image_size / p) + 1;
    let s = cfg.scale_factor() as usize;
    let proj_in = d * s * s;
    let h = cfg.llm_config.hidden_size;
    // (hf name, expected hf shape, gguf name, output numpy shape, transform)
    type Want = (String, Vec<usize>, String, Vec<usize>, Transform);
    let mut want: Vec<Want> = Vec::new();
    let mut add = |hf: String, hf_shape: Vec<usize>, gg: String, shape: Vec<usize>, tr: Transform| {
        want.push((hf, hf_shape, gg, shape, tr));
    };
    let e = "vision_model.embeddings.";
    add(format!("{e}class_embedding"), vec![1, 1, d], "v.class_embd".into(), vec![d], Transform::None);
    add(format!("{e}patch_embedding.weight"), vec![d, 3, p, p], "v.patch_embd.weight".into(), vec![d, 3, p, p], Transform::None);
    add(format!("{e}patch_embedding.bias"), vec![d], "v.patch_embd.bias".into(), vec![d], Transform::None);
    add(format!("{e}position_embedding"), vec![1, n_pos, d], "v.position_embd.weight".into(), vec![n_pos, d], Transform::None);
    for i in 0..v.num_hidden_layers {
        let l = format!("vision_model.encoder.layers.{i}.");
        let b = format!("v.blk.{i}.");
        for (hf, gg) in [("norm1", "ln1"), ("norm2", "ln2")] {
            add(format!("{l}{hf}.weight"), vec![d], format!("{b}{gg}.weight"), vec![d], Transform::None);
            add(format!("{l}{hf}.bias"), vec![d], format!("{b}{gg}.bias"), vec![d], Transform::None);
        }
        for (k, gg) in ["attn_q", "attn_k", "attn_v"].iter().enumerate() {
            let tr = Transform::Split { index: k, parts: 3 };
            add(format!("{l}attn.qkv.weight"), vec![3 * d, d], format!("{b}{gg}.weight"), vec![d, d], tr);
            add(format!("{l}attn.qkv.bias"), vec![3 * d], format!("{b}{gg}.bias"), vec![d], tr);
        }
        add(format!("{l}attn.proj.weight"), vec![d, d], format!("{b}attn_out.weight"), vec![d, d], Transform::None);
        add(format!("{l}attn.proj.bias"), vec![d], format!("{b}attn_out.bias"), vec![d], Transform::None);
        add(format!("{l}mlp.fc1.weight"), vec![ff, d], format!("{b}ffn_up.weight"), vec![ff, d], Transform::None);
        add(format!("{l}mlp.fc1.bias"), vec![ff], format!("{b}ffn_up.bias"), vec![ff], Transform::None);
        add(format!("{l}mlp.fc2.weight"), vec![d, ff], format!("{b}ffn_down.weight"), vec![d, ff], Transform::None);
        add(format!("{l}mlp.fc2.bias"), vec![d], format!("{b}ffn_down.bias"), vec![d], Transform::None);
        add(format!("{l}ls1"), vec![d], format!("{b}ls1.weight"), vec![d], Transform::None);
        add(format!("{l}ls2"), vec![d], format!("{b}ls2.weight"), vec![d], Transform::None);
    }
    add("mlp1.0.weight".into(), vec![proj_in], "mm.model.mlp.0.weight".into(), vec![proj_in], Transform::None);
    add("mlp1.0.bias".into(), vec![proj_in], "mm.model.mlp.0.bias".into(), vec![proj_in], Transform::None);
    add("mlp1.1.weight".into(), vec![h, proj_in], "mm.model.mlp.1.weight".into(), vec![h, proj_in], Transform::None);
    add("mlp1.1.bias".into(), vec![h], "mm.model.mlp.1.bias".into(), vec![h], Transform::None);
    add("mlp1.3.weight".into(), vec![h, h], "mm.model.mlp.3.weight".into(), vec![h, h], Transform::None);
    add("mlp1.3.bias".into(), vec![h], "mm.model.mlp.3.bias".into(), vec![h], Transform::None);

    let mut jobs = Vec::with_capacity(want.len());
    for (hf, hf_shape, gg, shape, tr) in want {
        let t = ck.require(&hf)?;
        ensure!(t.shape == hf_shape, "tensor {hf} has shape {:?}, expected {hf_shape:?} from config.json", t.shape);
        let ne = reversed(&shape);
        let ty = vision_tensor_type(q, &gg, &ne);
        jobs.push(TensorJob { gguf_name: gg, hf_name: hf, ty, ne, transform: tr });
    }
    for name in ck.names().filter(|n| n.starts_with(HF_VISION_PREFIX) || n.starts_with(HF_PROJECTOR_PREFIX)) {
        if !jobs.iter().any(|j| j.hf_name == name) {
            bail!("unexpected vision tensor {name} (not part of an InternViT + mlp1 projector)");
        }
    }
    sort_jobs(&mut jobs);
    Ok(jobs)
}

/// Writes the mmproj metadata into `w` (llama.cpp `clip.*` keys with the types its loader reads,
/// and the `h2ovl.*` keys the runtime reads).
pub fn metadata<W: Write>(w: &mut GgufWriter<W>, cfg: &H2ovlConfig, name: &str, q: VisionQuant) -> Result<()> {
    let v = &cfg.vision_config;
    let u = |x: usize| -> Result<GgufValue> { Ok(GgufValue::U32(u32::try_from(x)?)) };
    w.add_kv("general.architecture", GgufValue::String("clip".into()))?;
    w.add_kv("general.type", GgufValue::String("mmproj".into()))?;
    w.add_kv("general.name", GgufValue::String(name.into()))?;
    w.add_kv("general.file_type", GgufValue::U32(q.file_type()))?;
    w.add_kv("general.quantization_version", GgufValue::U32(2))?;
    w.add_kv("clip.projector_type", GgufValue::String("internvl".into()))?;
    w.add_kv("clip.has_vision_encoder", GgufValue::Bool(true))?;
    w.add_kv("clip.use_gelu", GgufValue::Bool(true))?;
    w.add_kv("clip.vision.image_size", u(v.image_size)?)?;
    w.add_kv("clip.vision.patch_size", u(v.patch_size)?)?;
    w.add_kv("clip.vision.embedding_length", u(v.hidden_size)?)?;
    w.add_kv("clip.vision.feed_forward_length", u(v.intermediate_size)?)?;
    w.add_kv("clip.vision.block_count", u(v.num_hidden_layers)?)?;
    w.add_kv("clip.vision.attention.head_count", u(v.num_attention_heads)?)?;
    w.add_kv("clip.vision.attention.layer_norm_epsilon", GgufValue::F32(v.layer_norm_eps as f32))?;
    w.add_kv("clip.vision.projection_dim", u(cfg.llm_config.hidden_size)?)?;
    w.add_kv("clip.vision.image_mean", GgufValue::f32_array(&IMAGE_MEAN))?;
    w.add_kv("clip.vision.image_std", GgufValue::f32_array(&IMAGE_STD))?;
    w.add_kv("clip.vision.projector.scale_factor", GgufValue::U32(cfg.scale_factor()))?;
    w.add_kv("clip.vision.preproc_min_tiles", GgufValue::U32(cfg.min_dynamic_patch))?;
    w.add_kv("clip.vision.preproc_max_tiles", GgufValue::U32(cfg.max_dynamic_patch))?;
    w.add_kv("h2ovl.use_msac", GgufValue::Bool(cfg.use_msac))?;
    w.add_kv("h2ovl.min_dynamic_patch", GgufValue::U32(cfg.min_dynamic_patch))?;
    w.add_kv("h2ovl.max_dynamic_patch", GgufValue::U32(cfg.max_dynamic_patch))?;
    w.add_kv("h2ovl.use_thumbnail", GgufValue::Bool(cfg.use_thumbnail))?;
    w.add_kv("h2ovl.downsample_ratio", GgufValue::F32(cfg.downsample_ratio as f32))?;
    w.add_kv("h2ovl.ps_version", GgufValue::String(cfg.ps_version.clone()))?;
    w.add_kv("h2ovl.select_layer", GgufValue::I32(cfg.select_layer))?;
    w.add_kv("h2ovl.template", GgufValue::String(cfg.template.clone()))?;
    w.add_kv("h2ovl.projector.layer_norm_epsilon", GgufValue::F32(PROJECTOR_LN_EPS))?;
    w.add_kv("h2ovl.vision.layer_norm_epsilon", GgufValue::F32(v.layer_norm_eps as f32))?;
    w.add_kv("h2ovl.llm_arch", GgufValue::String(cfg.llm_arch().to_string()))?;
    w.add_kv("h2ovl.image_token_count", GgufValue::U32(cfg.image_token_count()))?;
    Ok(())
}
