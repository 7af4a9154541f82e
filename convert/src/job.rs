//! One output tensor = one job: which checkpoint tensor it comes from, how its rows are rearranged,
//! and the ggml type it is written at. Jobs are planned (and validated) for a whole file before a
//! byte is written, then produced one at a time.
use crate::quant::{self, GgmlType};
use crate::safetensors::Checkpoint;
use anyhow::{ensure, Result};

/// Row rearrangement applied to the f32 data before quantizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    None,
    /// llama.cpp's rope permutation of q_proj/k_proj rows (`LlamaModel.permute`), `heads` heads.
    RopePermute { heads: usize },
    /// Part `index` of `parts` equal row blocks (InternViT's fused qkv → q, k, v).
    Split { index: usize, parts: usize },
}

#[derive(Clone, Debug)]
pub struct TensorJob {
    pub gguf_name: String,
    pub hf_name: String,
    pub ty: GgmlType,
    /// ggml order.
    pub ne: Vec<usize>,
    pub transform: Transform,
}

impl TensorJob {
    /// Reads, rearranges and encodes the tensor.
    pub fn produce(&self, ck: &Checkpoint) -> Result<Vec<u8>> {
        let data = ck.load_f32(&self.hf_name)?;
        let ne0 = self.ne[0];
        let data = match self.transform {
            Transform::None => data,
            Transform::RopePermute { heads } => rope_permute(&data, ne0, heads),
            Transform::Split { index, parts } => {
                let n = data.len() / parts;
                data[index * n..(index + 1) * n].to_vec()
            }
        };
        let numel: usize = self.ne.iter().product();
        ensure!(data.len() == numel, "tensor {}: {} values for shape {:?}", self.hf_name, data.len(), self.ne);
        Ok(quant::quantize(self.ty, &data, ne0))
    }
}

/// HF row h·D + j·D/2 + i goes to row h·D + 2i + j (D = rows/heads): each head's first half lands on
/// the even rows, its second half on the odd rows, so ggml's adjacent-pair RoPE reproduces HF's
/// rotate_half pairing.
pub fn rope_permute(data: &[f32], cols: usize, heads: usize) -> Vec<f32> {
    let rows = data.len() / cols;
    let d = rows / heads;
    let d2 = d / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..d2 {
                let src = h * d + j * d2 + i;
                let dst = h * d + 2 * i + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// llama-quantize's tensor order (`weight_name_comparer`): non-block tensors first, then block 0,
/// block 1, ...; by name within each group.
pub fn sort_jobs(jobs: &mut [TensorJob]) {
    jobs.sort_by(|a, b| {
        let la = crate::preset::block_index(&a.gguf_name).map(|i| i as i64).unwrap_or(-1);
        let lb = crate::preset::block_index(&b.gguf_name).map(|i| i as i64).unwrap_or(-1);
        la.cmp(&lb).then_with(|| a.gguf_name.cmp(&b.gguf_name))
    });
}

/// numpy shape → ggml `ne`.
pub fn reversed(shape: &[usize]) -> Vec<usize> {
    shape.iter().rev().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permute_interleaves_head_halves() {
        // 2 heads of D = 4 rows, 1 column: rows are their own indices.
        let data: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(rope_permute(&data, 1, 2), vec![0., 2., 1., 3., 4., 6., 5., 7.]);
    }
}
