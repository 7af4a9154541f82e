//! One output tensor = one job: which checkpoint tensor it comes from, how its rows are rearranged,
//! and the ggml type it is written at. Jobs are planned (and validated) for a whole file before a
//! byte is written, then produced one at a time.
use h2ovl_format::quant::{self, GgmlType};
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

/// f32 elements converted per streamed piece (16 MB): bounds peak memory whatever the tensor size.
const PIECE_ELEMS: usize = 1 << 22;

impl TensorJob {
    /// Reads, rearranges and encodes the whole tensor (small tensors, tests).
    pub fn produce(&self, ck: &Checkpoint) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.produce_pieces(ck, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads, rearranges and encodes the tensor in row pieces of about [`PIECE_ELEMS`] values,
    /// handing each encoded piece to `sink` in output order.
    pub fn produce_pieces(&self, ck: &Checkpoint, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.produce_pieces_of(ck, PIECE_ELEMS, sink)
    }

    fn produce_pieces_of(&self, ck: &Checkpoint, piece_elems: usize, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let ne0 = self.ne[0];
        let numel: usize = self.ne.iter().product();
        let rows = numel / ne0;
        let src = ck.require(&self.hf_name)?;
        ensure!(
            src.numel() == numel * self.parts(),
            "tensor {}: {} values for shape {:?}",
            self.hf_name,
            src.numel(),
            self.ne
        );
        // Rows per piece; a rope permutation only moves rows within a head, so pieces are whole heads.
        let group = match self.transform {
            Transform::RopePermute { heads } => rows / heads,
            _ => 1,
        };
        let per_piece = ((piece_elems / ne0).max(1) / group).max(1) * group;
        let first_row = match self.transform {
            Transform::Split { index, .. } => index * rows,
            _ => 0,
        };
        let mut r = 0;
        while r < rows {
            let n = per_piece.min(rows - r);
            let begin = (first_row + r) * ne0;
            let data = ck.load_f32_range(&self.hf_name, begin, begin + n * ne0)?;
            let data = match self.transform {
                // The piece holds n / group whole heads.
                Transform::RopePermute { .. } => rope_permute(&data, ne0, n / group),
                _ => data,
            };
            sink(&quant::quantize(self.ty, &data, ne0))?;
            r += n;
        }
        Ok(())
    }

    /// How many output tensors share the source tensor (3 for a split qkv).
    fn parts(&self) -> usize {
        match self.transform {
            Transform::Split { parts, .. } => parts,
            _ => 1,
        }
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

    /// Streaming in small pieces gives the same bytes as one piece (permuted q, split qkv, Q8_0).
    #[test]
    fn pieces_match_whole_tensor() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/checkpoints/tiny");
        let ck = Checkpoint::open(&dir).unwrap();
        let jobs = [
            ("language_model.model.layers.0.self_attn.q_proj.weight", vec![64, 64], Transform::RopePermute { heads: 4 }),
            ("language_model.model.layers.1.self_attn.k_proj.weight", vec![64, 32], Transform::RopePermute { heads: 2 }),
            ("vision_model.encoder.layers.0.attn.qkv.weight", vec![64, 64], Transform::Split { index: 2, parts: 3 }),
            ("language_model.model.embed_tokens.weight", vec![64, 32010], Transform::None),
        ];
        for (hf, ne, transform) in jobs {
            let j = TensorJob { gguf_name: "x".into(), hf_name: hf.into(), ty: GgmlType::Q8_0, ne, transform };
            let mut whole = Vec::new();
            j.produce_pieces_of(&ck, usize::MAX / 2, &mut |b| {
                whole.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            let mut pieces = Vec::new();
            let mut n = 0;
            j.produce_pieces_of(&ck, 64 * 16, &mut |b| {
                n += 1;
                pieces.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert!(n > 1, "{hf}: several pieces");
            assert_eq!(whole, pieces, "{hf}");
        }
    }

    #[test]
    fn rope_permute_interleaves_head_halves() {
        // 2 heads of D = 4 rows, 1 column: rows are their own indices.
        let data: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(rope_permute(&data, 1, 2), vec![0., 2., 1., 3., 4., 6., 5., 7.]);
    }
}
