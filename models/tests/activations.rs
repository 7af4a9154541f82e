//! The random init must keep activations of ordinary size through the *full depth* of the real
//! models (24 ViT blocks, 24 decoder layers), or benchmarks on synthetic checkpoints would run on
//! NaN/Inf or saturated values. This runs a plain f32 forward (a sanity model, not a parity
//! reference: tanh-GELU, few tokens) over weights drawn exactly as the generator draws them, at
//! the 2b's depth but a narrow width (the init is 1/fan_in-scaled, so width does not change the
//! picture), and checks the residual-stream RMS layer by layer and the logit scale.

use h2ovl_models::inventory::{tensors, TensorSpec};
use h2ovl_models::{h2ovl_2b, rng, LlmDims, ModelSpec, VisionDims};
use std::collections::HashMap;

const SEED: u64 = 11;

/// The 2b's depth and head layout, narrowed to keep the test fast.
fn deep_narrow() -> ModelSpec {
    let mut s = h2ovl_2b();
    s.vision = VisionDims { hidden: 128, heads: 2, intermediate: 512, ..s.vision };
    s.llm = LlmDims { hidden: 128, heads: 4, kv_heads: 2, intermediate: 384, ..s.llm };
    assert_eq!((s.vision.layers, s.llm.layers), (24, 24));
    s
}

/// All tensors as f32, drawn by the generator's own fill (same seed → same values as on disk).
fn weights(spec: &ModelSpec) -> HashMap<String, Vec<f32>> {
    tensors(spec)
        .into_iter()
        .map(|t: TensorSpec| {
            let mut buf = vec![0u8; 2 * t.numel()];
            rng::fill_bf16_le(SEED, &t.name, t.init, 0, &mut buf);
            let v = buf.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
            (t.name, v)
        })
        .collect()
}

/// y = x·Wᵀ (+ b); x is [n, k] row-major, W is [m, k].
fn linear(x: &[f32], k: usize, w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let m = w.len() / k;
    let mut y = Vec::with_capacity(x.len() / k * m);
    for row in x.chunks_exact(k) {
        for (o, wr) in w.chunks_exact(k).enumerate() {
            y.push(row.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>() + b.map_or(0.0, |b| b[o]));
        }
    }
    y
}

fn layer_norm(x: &[f32], d: usize, w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    x.chunks_exact(d)
        .flat_map(|r| {
            let m = r.iter().sum::<f32>() / d as f32;
            let v = r.iter().map(|x| (x - m).powi(2)).sum::<f32>() / d as f32;
            let s = 1.0 / (v + eps).sqrt();
            r.iter().zip(w).zip(b).map(move |((x, w), b)| (x - m) * s * w + b).collect::<Vec<_>>()
        })
        .collect()
}

fn rms_norm(x: &[f32], d: usize, w: &[f32]) -> Vec<f32> {
    x.chunks_exact(d)
        .flat_map(|r| {
            let s = 1.0 / (r.iter().map(|x| x * x).sum::<f32>() / d as f32 + 1e-5).sqrt();
            r.iter().zip(w).map(move |(x, w)| x * s * w).collect::<Vec<_>>()
        })
        .collect()
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// Multi-head attention over n tokens; q has `heads`, k/v have `kv_heads` heads of `hd`.
fn attention(q: &[f32], k: &[f32], v: &[f32], n: usize, heads: usize, kv_heads: usize, hd: usize, causal: bool) -> Vec<f32> {
    let (qw, kw) = (heads * hd, kv_heads * hd);
    let mut out = vec![0f32; n * qw];
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        for i in 0..n {
            let qi = &q[i * qw + h * hd..][..hd];
            let upto = if causal { i + 1 } else { n };
            let scores: Vec<f32> = (0..upto)
                .map(|j| qi.iter().zip(&k[j * kw + g * hd..][..hd]).map(|(a, b)| a * b).sum::<f32>() / (hd as f32).sqrt())
                .collect();
            let mx = scores.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
            let z: f32 = e.iter().sum();
            for (j, p) in e.iter().enumerate() {
                for c in 0..hd {
                    out[i * qw + h * hd + c] += p / z * v[j * kw + g * hd + c];
                }
            }
        }
    }
    out
}

#[test]
fn vit_and_projector_stay_in_range_through_24_blocks() {
    let spec = deep_narrow();
    let w = weights(&spec);
    let v = &spec.vision;
    let d = v.hidden;
    let patch_in = v.channels * v.patch_size * v.patch_size;
    let n_patch = 64; // a strip of patches is enough for the scale argument
    // Pixels after ImageNet normalisation are O(1): use a deterministic pattern in [-2, 2].
    let pixels: Vec<f32> = (0..n_patch * patch_in).map(|i| 2.0 * ((i as f32 * 0.37).sin())).collect();
    let p = "vision_model.embeddings";
    let patches = linear(&pixels, patch_in, &w[&format!("{p}.patch_embedding.weight")], Some(&w[&format!("{p}.patch_embedding.bias")]));
    let mut x = w[&format!("{p}.class_embedding")].clone();
    x.extend(patches);
    let n = n_patch + 1;
    for (xi, pi) in x.iter_mut().zip(&w[&format!("{p}.position_embedding")][..n * d]) {
        *xi += pi;
    }
    let start = rms(&x);
    for l in 0..v.layers {
        let g = |s: &str| &w[&format!("vision_model.encoder.layers.{l}.{s}")];
        let h = layer_norm(&x, d, g("norm1.weight"), g("norm1.bias"), 1e-6);
        let qkv = linear(&h, d, g("attn.qkv.weight"), Some(g("attn.qkv.bias")));
        let (mut q, mut k, mut vv) = (Vec::new(), Vec::new(), Vec::new());
        for row in qkv.chunks_exact(3 * d) {
            q.extend_from_slice(&row[..d]);
            k.extend_from_slice(&row[d..2 * d]);
            vv.extend_from_slice(&row[2 * d..]);
        }
        let a = attention(&q, &k, &vv, n, v.heads, v.heads, v.head_dim(), false);
        let a = linear(&a, d, g("attn.proj.weight"), Some(g("attn.proj.bias")));
        for (i, xi) in x.iter_mut().enumerate() {
            *xi += g("ls1")[i % d] * a[i];
        }
        let h = layer_norm(&x, d, g("norm2.weight"), g("norm2.bias"), 1e-6);
        let f: Vec<f32> = linear(&h, d, g("mlp.fc1.weight"), Some(g("mlp.fc1.bias"))).into_iter().map(gelu).collect();
        let f = linear(&f, v.intermediate, g("mlp.fc2.weight"), Some(g("mlp.fc2.bias")));
        for (i, xi) in x.iter_mut().enumerate() {
            *xi += g("ls2")[i % d] * f[i];
        }
        let r = rms(&x);
        eprintln!("ViT block {l}: residual rms {r:.3} (start {start:.3})");
        assert!(r.is_finite() && r > 0.5 * start && r < 4.0 * start, "ViT block {l}: residual rms {r} (start {start})");
    }
    // Projector on 2×2-merged patch features (order does not matter for the scale).
    let merged = &x[d..d + 16 * 4 * d];
    let pi = spec.projector_in();
    let h = layer_norm(merged, pi, &w["mlp1.0.weight"], &w["mlp1.0.bias"], 1e-5);
    let h: Vec<f32> = linear(&h, pi, &w["mlp1.1.weight"], Some(&w["mlp1.1.bias"])).into_iter().map(gelu).collect();
    let e = linear(&h, spec.llm.hidden, &w["mlp1.3.weight"], Some(&w["mlp1.3.bias"]));
    let r = rms(&e);
    eprintln!("image embedding rms {r:.3}");
    assert!(r.is_finite() && (0.1..10.0).contains(&r), "image embedding rms {r}");
}

#[test]
fn decoder_stays_in_range_through_24_layers() {
    let spec = deep_narrow();
    let w = weights(&spec);
    let l = &spec.llm;
    let (d, hd) = (l.hidden, l.head_dim());
    let ids = [523usize, 28766, 14350, 447, 32000, 32002, 32001, 13];
    let emb = &w["language_model.model.embed_tokens.weight"];
    let mut x: Vec<f32> = ids.iter().flat_map(|&t| emb[t * d..(t + 1) * d].to_vec()).collect();
    let n = ids.len();
    let start = rms(&x);
    // rotate_half RoPE at positions 0..n.
    let rope = |t: &mut [f32], heads: usize| {
        for (pos, row) in t.chunks_exact_mut(heads * hd).enumerate() {
            for h in row.chunks_exact_mut(hd) {
                for i in 0..hd / 2 {
                    let ang = pos as f64 / l.rope_theta.powf(2.0 * i as f64 / hd as f64);
                    let (s, c) = (ang.sin() as f32, ang.cos() as f32);
                    let (a, b) = (h[i], h[i + hd / 2]);
                    h[i] = a * c - b * s;
                    h[i + hd / 2] = b * c + a * s;
                }
            }
        }
    };
    for i in 0..l.layers {
        let g = |s: &str| &w[&format!("language_model.model.layers.{i}.{s}")];
        let h = rms_norm(&x, d, g("input_layernorm.weight"));
        let mut q = linear(&h, d, g("self_attn.q_proj.weight"), None);
        let mut k = linear(&h, d, g("self_attn.k_proj.weight"), None);
        let v = linear(&h, d, g("self_attn.v_proj.weight"), None);
        rope(&mut q, l.heads);
        rope(&mut k, l.kv_heads);
        let a = attention(&q, &k, &v, n, l.heads, l.kv_heads, hd, true);
        let a = linear(&a, d, g("self_attn.o_proj.weight"), None);
        x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
        let h = rms_norm(&x, d, g("post_attention_layernorm.weight"));
        let gate = linear(&h, d, g("mlp.gate_proj.weight"), None);
        let up = linear(&h, d, g("mlp.up_proj.weight"), None);
        let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        let f = linear(&act, l.intermediate, g("mlp.down_proj.weight"), None);
        x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
        let r = rms(&x);
        eprintln!("decoder layer {i}: residual rms {r:.3} (start {start:.3})");
        assert!(r.is_finite() && r > 0.5 * start && r < 4.0 * start, "decoder layer {i}: residual rms {r} (start {start})");
    }
    let h = rms_norm(&x[(n - 1) * d..], d, &w["language_model.model.norm.weight"]);
    let logits = linear(&h, d, &w["language_model.lm_head.weight"], None);
    let r = rms(&logits);
    eprintln!("logit rms {r:.3}");
    assert!(logits.iter().all(|v| v.is_finite()) && (0.3..3.0).contains(&r), "logit rms {r}");
}
