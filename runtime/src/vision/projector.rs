//! The `mlp1` projector: LayerNorm(4D, eps 1e-5) → Linear(4D → H) → exact GELU → Linear(H → H),
//! run once over the pixel-shuffled tokens of all tiles (M = 256·T rows: one big GEMM).
use super::config::VisionConfig;
use super::kernels::gemm::Epilogue;
use super::kernels::layernorm;
use super::math::Math;
use super::weights::VisionWeights;

/// `x`: `[rows, 4D]` pixel-shuffled features. Returns `[rows, H]`.
pub fn project(mx: Math, cfg: &VisionConfig, w: &VisionWeights, x: &[f32]) -> Vec<f32> {
    let width = w.mm1.k;
    let h = cfg.projection_dim;
    let rows = x.len() / width;
    let mut n = vec![0f32; x.len()];
    layernorm::layernorm_rows(mx.isa, x, &mut n, width, &w.mm_ln_w, &w.mm_ln_b, cfg.proj_ln_eps);
    let mut mid = vec![0f32; rows * h];
    mx.linear(&n, width, rows, &w.mm1, &mut mid, h, Epilogue::BiasGelu(&w.mm1_b));
    let mut out = vec![0f32; rows * h];
    mx.linear(&mid, h, rows, &w.mm3, &mut out, h, Epilogue::Bias(&w.mm3_b));
    out
}
