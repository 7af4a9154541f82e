//! InternViT-300M forward for one tile (spec §3.1–3.5): patch embedding as a GEMM, CLS first,
//! position embedding, then pre-norm blocks `x += ls1 ⊙ Attn(LN1 x)`, `x += ls2 ⊙ MLP(LN2 x)`.
//! No final norm (select_layer −1 takes the last block's output as is).
use super::attention::attention;
use super::config::VisionConfig;
use super::kernels::gemm::Epilogue;
use super::kernels::layernorm;
use super::math::Math;
use super::weights::{LayerWeights, VisionWeights};
use rayon::prelude::*;

/// Reusable activation buffers for one tile.
struct Scratch {
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    f: Vec<f32>,
}

/// Patches of one `[3, S, S]` tile as rows of `3·P·P` (channel, y, x — the conv weight's order).
fn im2col(pixels: &[f32], s: usize, p: usize) -> Vec<f32> {
    let g = s / p;
    let k = 3 * p * p;
    let mut out = vec![0f32; g * g * k];
    out.par_chunks_mut(k).enumerate().for_each(|(idx, row)| {
        let (py, px) = (idx / g, idx % g);
        for c in 0..3 {
            for ky in 0..p {
                let src = c * s * s + (py * p + ky) * s + px * p;
                row[c * p * p + ky * p..c * p * p + ky * p + p].copy_from_slice(&pixels[src..src + p]);
            }
        }
    });
    out
}

/// `x[i] += scale ⊙ y[i]` row by row.
fn add_scaled(x: &mut [f32], y: &[f32], scale: &[f32]) {
    let d = scale.len();
    x.par_chunks_mut(d).zip(y.par_chunks(d)).for_each(|(xr, yr)| {
        for ((a, b), s) in xr.iter_mut().zip(yr).zip(scale) {
            *a += s * b;
        }
    });
}

fn block(mx: Math, cfg: &VisionConfig, l: &LayerWeights, x: &mut [f32], s: &mut Scratch, t: usize) {
    let (d, isa) = (cfg.hidden, mx.isa);
    let lin = |a: &[f32], k: usize, w, out: &mut [f32], n: usize, epi| mx.linear(a, k, t, &w, out, n, epi);
    layernorm::layernorm_rows(isa, x, &mut s.h, d, &l.ln1_w, &l.ln1_b, cfg.ln_eps);
    lin(&s.h, d, l.q, &mut s.q, d, Epilogue::Bias(&l.q_b));
    lin(&s.h, d, l.k, &mut s.k, d, Epilogue::Bias(&l.k_b));
    lin(&s.h, d, l.v, &mut s.v, d, Epilogue::Bias(&l.v_b));
    attention(isa, &s.q, &s.k, &s.v, &mut s.o, t, d, cfg.n_heads);
    lin(&s.o, d, l.o, &mut s.h, d, Epilogue::Bias(&l.o_b));
    add_scaled(x, &s.h, &l.ls1);
    layernorm::layernorm_rows(isa, x, &mut s.h, d, &l.ln2_w, &l.ln2_b, cfg.ln_eps);
    lin(&s.h, d, l.up, &mut s.f, cfg.ffn, Epilogue::BiasGelu(&l.up_b));
    lin(&s.f, cfg.ffn, l.down, &mut s.h, d, Epilogue::Bias(&l.down_b));
    add_scaled(x, &s.h, &l.ls2);
}

/// Hidden states `[n_tokens, D]` after `n_layers` blocks for one normalized tile `[3, S, S]`.
/// Runs on the current rayon pool; `mx` picks f32 or int8 linear layers.
pub fn forward(mx: Math, cfg: &VisionConfig, w: &VisionWeights, pixels: &[f32], n_layers: usize) -> Vec<f32> {
    let (s, p, d) = (cfg.image_size, cfg.patch_size, cfg.hidden);
    let t = cfg.n_tokens();
    let patches = im2col(pixels, s, p);
    let mut x = vec![0f32; t * d];
    x[..d].copy_from_slice(&w.cls);
    mx.linear(&patches, 3 * p * p, t - 1, &w.patch, &mut x[d..], d, Epilogue::Bias(&w.patch_b));
    x.par_chunks_mut(d).zip(w.pos.par_chunks(d)).for_each(|(xr, pr)| xr.iter_mut().zip(pr).for_each(|(a, b)| *a += b));
    let mut sc = Scratch {
        h: vec![0f32; t * d],
        q: vec![0f32; t * d],
        k: vec![0f32; t * d],
        v: vec![0f32; t * d],
        o: vec![0f32; t * d],
        f: vec![0f32; t * cfg.ffn],
    };
    for l in &w.layers[..n_layers] {
        block(mx, cfg, l, &mut x, &mut sc, t);
    }
    x
}
