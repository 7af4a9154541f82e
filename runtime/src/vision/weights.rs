//! Borrowed views of the vision weights, with every name and shape checked up front.
//!
//! 2-D weights stay in the file's storage (F32/F16/Q8_0 bytes in the memory map) and are
//! dequantized by the GEMM while packing; 1-D tensors (norms, biases, layer scales, CLS, position
//! table — a few MB) are copied to f32. Names are the vision GGUF's (llama.cpp mmproj naming).
use super::config::VisionConfig;
use super::kernels::gemm::{WType, Weight};
use anyhow::{bail, Context, Result};
use h2ovl_format::gguf::{GgmlType, GgufFile};

/// One pre-norm InternViT block.
pub struct LayerWeights<'a> {
    pub ln1_w: Vec<f32>,
    pub ln1_b: Vec<f32>,
    pub q: Weight<'a>,
    pub q_b: Vec<f32>,
    pub k: Weight<'a>,
    pub k_b: Vec<f32>,
    pub v: Weight<'a>,
    pub v_b: Vec<f32>,
    pub o: Weight<'a>,
    pub o_b: Vec<f32>,
    pub ls1: Vec<f32>,
    pub ln2_w: Vec<f32>,
    pub ln2_b: Vec<f32>,
    /// fc1, [D → F].
    pub up: Weight<'a>,
    pub up_b: Vec<f32>,
    /// fc2, [F → D].
    pub down: Weight<'a>,
    pub down_b: Vec<f32>,
    pub ls2: Vec<f32>,
}

/// The whole tower + projector.
pub struct VisionWeights<'a> {
    /// Patch embedding as a GEMM weight: D rows of 3·P·P values (channel, then y, then x).
    pub patch: Weight<'a>,
    pub patch_b: Vec<f32>,
    pub cls: Vec<f32>,
    /// [n_tokens, D], row 0 = CLS position.
    pub pos: Vec<f32>,
    pub layers: Vec<LayerWeights<'a>>,
    pub mm_ln_w: Vec<f32>,
    pub mm_ln_b: Vec<f32>,
    pub mm1: Weight<'a>,
    pub mm1_b: Vec<f32>,
    pub mm3: Weight<'a>,
    pub mm3_b: Vec<f32>,
}

/// Where tensors come from: `mat(name, n, k)` a 2-D weight of n rows × k, `vec(name, len)` a 1-D f32.
pub trait TensorSource<'a> {
    fn mat(&self, name: &str, n: usize, k: usize) -> Result<Weight<'a>>;
    fn vec(&self, name: &str, len: usize) -> Result<Vec<f32>>;
}

impl<'a> VisionWeights<'a> {
    /// Fetches and shape-checks every tensor the encoder uses (first failure names the tensor).
    pub fn load(cfg: &VisionConfig, src: &impl TensorSource<'a>) -> Result<Self> {
        let (d, f, h) = (cfg.hidden, cfg.ffn, cfg.projection_dim);
        let p = cfg.patch_size;
        let s2 = cfg.shuffle_factor() * cfg.shuffle_factor();
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("v.blk.{i}.{s}");
            layers.push(LayerWeights {
                ln1_w: src.vec(&n("ln1.weight"), d)?,
                ln1_b: src.vec(&n("ln1.bias"), d)?,
                q: src.mat(&n("attn_q.weight"), d, d)?,
                q_b: src.vec(&n("attn_q.bias"), d)?,
                k: src.mat(&n("attn_k.weight"), d, d)?,
                k_b: src.vec(&n("attn_k.bias"), d)?,
                v: src.mat(&n("attn_v.weight"), d, d)?,
                v_b: src.vec(&n("attn_v.bias"), d)?,
                o: src.mat(&n("attn_out.weight"), d, d)?,
                o_b: src.vec(&n("attn_out.bias"), d)?,
                ls1: src.vec(&n("ls1.weight"), d)?,
                ln2_w: src.vec(&n("ln2.weight"), d)?,
                ln2_b: src.vec(&n("ln2.bias"), d)?,
                up: src.mat(&n("ffn_up.weight"), f, d)?,
                up_b: src.vec(&n("ffn_up.bias"), f)?,
                down: src.mat(&n("ffn_down.weight"), d, f)?,
                down_b: src.vec(&n("ffn_down.bias"), d)?,
                ls2: src.vec(&n("ls2.weight"), d)?,
            });
        }
        Ok(VisionWeights {
            patch: src.mat("v.patch_embd.weight", d, 3 * p * p)?,
            patch_b: src.vec("v.patch_embd.bias", d)?,
            cls: src.vec("v.class_embd", d)?,
            pos: src.vec("v.position_embd.weight", cfg.n_tokens() * d)?,
            layers,
            mm_ln_w: src.vec("mm.model.mlp.0.weight", s2 * d)?,
            mm_ln_b: src.vec("mm.model.mlp.0.bias", s2 * d)?,
            mm1: src.mat("mm.model.mlp.1.weight", h, s2 * d)?,
            mm1_b: src.vec("mm.model.mlp.1.bias", h)?,
            mm3: src.mat("mm.model.mlp.3.weight", h, h)?,
            mm3_b: src.vec("mm.model.mlp.3.bias", h)?,
        })
    }
}

/// [`TensorSource`] over a memory-mapped vision GGUF.
pub struct GgufSource<'a>(pub &'a GgufFile);

impl<'a> TensorSource<'a> for GgufSource<'a> {
    fn mat(&self, name: &str, n: usize, k: usize) -> Result<Weight<'a>> {
        let t = self.0.tensor(name).with_context(|| format!("vision GGUF: tensor {name}"))?;
        let numel: usize = t.ne.iter().product();
        // ne[0] is the fastest (input) dimension; higher dims after the last one must multiply to n
        // (the patch embedding is stored as [P, P, 3, D]).
        let last = *t.ne.last().unwrap_or(&0);
        if t.ne.len() < 2 || last != n || numel != n * k {
            bail!("vision GGUF: tensor {name} has shape {:?}, expected {k} values × {n} rows", t.ne);
        }
        let ty = match t.ty {
            GgmlType::F32 => WType::F32,
            GgmlType::F16 => WType::F16,
            GgmlType::Q8_0 => WType::Q8_0,
            other => bail!("vision GGUF: tensor {name} has type {other}; the encoder reads F32, F16 or Q8_0"),
        };
        Weight::new(name, ty, n, k, t.data)
    }

    fn vec(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.0.tensor(name).with_context(|| format!("vision GGUF: tensor {name}"))?;
        let numel: usize = t.ne.iter().product();
        if numel != len {
            bail!("vision GGUF: tensor {name} has shape {:?} ({numel} values), expected {len}", t.ne);
        }
        match t.ty {
            GgmlType::F32 if t.data.len() == 4 * len => {
                Ok(t.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            GgmlType::F16 if t.data.len() == 2 * len => Ok(t
                .data
                .chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect()),
            other => bail!("vision GGUF: tensor {name} has type {other} ({} bytes); expected F32", t.data.len()),
        }
    }
}
