//! The checkpoint's tensor inventory: every HF name and shape of `model.safetensors`
//! (h2ovl-model-spec.md §2), each with the random initialisation the generator uses for it.
//!
//! Names are built here and nowhere else, so the 493 (800m) / 565 (2b) count is checked in one
//! place. The init is chosen so that a random checkpoint runs through the full depth without
//! NaN/Inf and with activations of ordinary size:
//! - linear weights: N(0, 1/fan_in) (variance preserving); the decoder's projections into the
//!   residual stream (`o_proj`, `down_proj`) are further scaled by 1/√(2·layers) so the stream
//!   grows by O(1) over the whole depth, not O(√layers) (in the ViT the layer scales do that);
//! - Layer/RMS norm weights ≈ 1 (1 + N(0, 0.02²)), biases N(0, 0.02²);
//! - ViT layer scales `ls1`/`ls2` ≈ 0.1 (uniform 0.05..0.15), like a trained InternViT's small gates;
//! - ViT class/position embeddings N(0, 0.02²); token embeddings N(0, 1) (RMSNorm follows);
//!   `lm_head` N(0, 1/hidden) so logits have unit scale.

use crate::family::ModelSpec;

/// How a tensor's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Gaussian with this mean and standard deviation.
    Normal { mean: f32, std: f32 },
    /// Uniform on [lo, hi).
    Uniform { lo: f32, hi: f32 },
}

/// One entry of `model.safetensors`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Full HF name, e.g. `vision_model.encoder.layers.3.attn.qkv.weight`.
    pub name: String,
    /// PyTorch shape (row-major, outermost first).
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

const BIAS: Init = Init::Normal { mean: 0.0, std: 0.02 };
const NORM_WEIGHT: Init = Init::Normal { mean: 1.0, std: 0.02 };
const NORM_BIAS: Init = BIAS;
const LAYER_SCALE: Init = Init::Uniform { lo: 0.05, hi: 0.15 };
const VIT_EMBED: Init = Init::Normal { mean: 0.0, std: 0.02 };
const TOKEN_EMBED: Init = Init::Normal { mean: 0.0, std: 1.0 };

/// Linear weight `[out, fan_in]` (or any weight whose inner dims multiply to fan_in).
fn linear(fan_in: usize, gain: f32) -> Init {
    Init::Normal { mean: 0.0, std: gain / (fan_in as f32).sqrt() }
}

struct Builder(Vec<TensorSpec>);

impl Builder {
    fn push(&mut self, name: String, shape: &[usize], init: Init) {
        self.0.push(TensorSpec { name, shape: shape.to_vec(), init });
    }
}

/// All tensors of `spec`'s checkpoint, in the order safetensors stores them (sorted by name,
/// as `safetensors.torch.save_file` and the golden checkpoints do).
pub fn tensors(spec: &ModelSpec) -> Vec<TensorSpec> {
    let mut b = Builder(Vec::new());
    vision_tensors(spec, &mut b);
    projector_tensors(spec, &mut b);
    llm_tensors(spec, &mut b);
    let mut all = b.0;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn vision_tensors(spec: &ModelSpec, b: &mut Builder) {
    let v = &spec.vision;
    let (d, f) = (v.hidden, v.intermediate);
    let e = "vision_model.embeddings";
    b.push(format!("{e}.class_embedding"), &[1, 1, d], VIT_EMBED);
    let patch_in = v.channels * v.patch_size * v.patch_size;
    b.push(format!("{e}.patch_embedding.weight"), &[d, v.channels, v.patch_size, v.patch_size], linear(patch_in, 1.0));
    b.push(format!("{e}.patch_embedding.bias"), &[d], BIAS);
    b.push(format!("{e}.position_embedding"), &[1, v.num_positions(), d], VIT_EMBED);
    for i in 0..v.layers {
        let p = format!("vision_model.encoder.layers.{i}");
        b.push(format!("{p}.norm1.weight"), &[d], NORM_WEIGHT);
        b.push(format!("{p}.norm1.bias"), &[d], NORM_BIAS);
        b.push(format!("{p}.attn.qkv.weight"), &[3 * d, d], linear(d, 1.0));
        b.push(format!("{p}.attn.qkv.bias"), &[3 * d], BIAS);
        b.push(format!("{p}.attn.proj.weight"), &[d, d], linear(d, 1.0));
        b.push(format!("{p}.attn.proj.bias"), &[d], BIAS);
        b.push(format!("{p}.ls1"), &[d], LAYER_SCALE);
        b.push(format!("{p}.norm2.weight"), &[d], NORM_WEIGHT);
        b.push(format!("{p}.norm2.bias"), &[d], NORM_BIAS);
        b.push(format!("{p}.mlp.fc1.weight"), &[f, d], linear(d, 1.0));
        b.push(format!("{p}.mlp.fc1.bias"), &[f], BIAS);
        b.push(format!("{p}.mlp.fc2.weight"), &[d, f], linear(f, 1.0));
        b.push(format!("{p}.mlp.fc2.bias"), &[d], BIAS);
        b.push(format!("{p}.ls2"), &[d], LAYER_SCALE);
    }
}

fn projector_tensors(spec: &ModelSpec, b: &mut Builder) {
    let (i, h) = (spec.projector_in(), spec.llm.hidden);
    b.push("mlp1.0.weight".into(), &[i], NORM_WEIGHT);
    b.push("mlp1.0.bias".into(), &[i], NORM_BIAS);
    b.push("mlp1.1.weight".into(), &[h, i], linear(i, 1.0));
    b.push("mlp1.1.bias".into(), &[h], BIAS);
    b.push("mlp1.3.weight".into(), &[h, h], linear(h, 1.0));
    b.push("mlp1.3.bias".into(), &[h], BIAS);
}

fn llm_tensors(spec: &ModelSpec, b: &mut Builder) {
    let l = &spec.llm;
    let (h, f, kv) = (l.hidden, l.intermediate, l.kv_dim());
    let residual_gain = 1.0 / ((2 * l.layers) as f32).sqrt();
    b.push("language_model.model.embed_tokens.weight".into(), &[l.vocab, h], TOKEN_EMBED);
    for i in 0..l.layers {
        let p = format!("language_model.model.layers.{i}");
        b.push(format!("{p}.self_attn.q_proj.weight"), &[h, h], linear(h, 1.0));
        b.push(format!("{p}.self_attn.k_proj.weight"), &[kv, h], linear(h, 1.0));
        b.push(format!("{p}.self_attn.v_proj.weight"), &[kv, h], linear(h, 1.0));
        b.push(format!("{p}.self_attn.o_proj.weight"), &[h, h], linear(h, residual_gain));
        b.push(format!("{p}.mlp.gate_proj.weight"), &[f, h], linear(h, 1.0));
        b.push(format!("{p}.mlp.up_proj.weight"), &[f, h], linear(h, 1.0));
        b.push(format!("{p}.mlp.down_proj.weight"), &[h, f], linear(f, residual_gain));
        b.push(format!("{p}.input_layernorm.weight"), &[h], NORM_WEIGHT);
        b.push(format!("{p}.post_attention_layernorm.weight"), &[h], NORM_WEIGHT);
    }
    b.push("language_model.model.norm.weight".into(), &[h], NORM_WEIGHT);
    b.push("language_model.lm_head.weight".into(), &[l.vocab, h], linear(h, 1.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::*;

    #[test]
    fn tensor_counts_match_spec() {
        // Spec §2: vision 4 + 24×14 = 340, projector 6, LLM 1 + L×9 + 2 → 493 / 565.
        assert_eq!(tensors(&h2ovl_800m()).len(), 493);
        assert_eq!(tensors(&h2ovl_2b()).len(), 565);
        // Golden README: tiny 59, tiny-2b 82.
        assert_eq!(tensors(&tiny()).len(), 59);
        assert_eq!(tensors(&tiny_2b()).len(), 82);
    }

    #[test]
    fn inventory_sum_equals_closed_form_count() {
        for p in Preset::ALL {
            let spec = p.spec();
            let sum: usize = tensors(&spec).iter().map(TensorSpec::numel).sum();
            assert_eq!(sum, spec.param_count(), "{p}");
        }
    }

    #[test]
    fn names_unique_and_sorted() {
        let t = tensors(&h2ovl_2b());
        assert!(t.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn spec_shapes_of_2b() {
        let t = tensors(&h2ovl_2b());
        let shape = |n: &str| t.iter().find(|s| s.name == n).map(|s| s.shape.clone()).unwrap();
        assert_eq!(shape("vision_model.embeddings.position_embedding"), [1, 1025, 1024]);
        assert_eq!(shape("vision_model.embeddings.patch_embedding.weight"), [1024, 3, 14, 14]);
        assert_eq!(shape("vision_model.encoder.layers.23.attn.qkv.weight"), [3072, 1024]);
        assert_eq!(shape("mlp1.1.weight"), [2560, 4096]);
        assert_eq!(shape("language_model.model.layers.23.self_attn.k_proj.weight"), [640, 2560]);
        assert_eq!(shape("language_model.model.layers.0.mlp.down_proj.weight"), [2560, 6912]);
        assert_eq!(shape("language_model.lm_head.weight"), [32010, 2560]);
    }
}
