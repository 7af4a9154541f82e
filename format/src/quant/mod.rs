//! ggml reference quantizers, byte-identical to ggml-quants.c `quantize_row_*_ref`.
//!
//! Why byte-identical: the GGUF files we write must be indistinguishable from what `llama-quantize`
//! (or gguf-py) would produce from the same f32 weights, so llama.cpp's numerics — and our golden
//! parity tests — do not depend on which tool converted the checkpoint.
//!
//! Layout: one module per block type (`q8_0`, `q4_0`, `q5_0`, `q4_k`, `q6_k`), the shared K-quant
//! search routines in [`k_quants`] with their lane-parallel (SIMD) twins in [`k_quants_lanes`],
//! and the float conversions in [`f16`]. Each type module exposes `QK` (elements per block),
//! `BLOCK_BYTES`, `quantize_row(&[f32], &mut [u8])` and `dequantize_row(&[u8], &mut [f32])`
//! working on any whole number of blocks; `q4_k`/`q6_k` also keep `quantize_row_scalar`, the
//! one-sub-block-at-a-time reference the fast path is tested against.
//!
//! Exactness rules shared by every port (ggml-base is compiled with `-march=x86-64`, no FMA):
//! plain f32 `*` then `+`, the C evaluation order of every expression and sum, f16 stored with
//! ggml's round-to-nearest-even conversion, `roundf` (ties away) for Q8_0, `nearest_int`
//! (ties to even, via the 1.5·2^23 trick) for the K-quants, and C's float→int8 conversion as
//! x86-64 executes it (only visible on degenerate blocks). Tests in
//! `quant-tests/tests/bitexact.rs` compare every byte with ggml's own `ggml_quantize_chunk`.
//!
//! Target: ggml as built for x86-64, which is what the tests compare against. GCC on aarch64
//! (`-std=gnu11`, fp-contract=fast) may fuse any `a*b + c` in ggml-quants.c into an FMA — Q4_0's
//! `x·id + 8.5` (llama.cpp PR #8939) and the K-quant sums alike — so an aarch64 ggml can differ
//! from x86 ggml, and from us, on a few values. That case has not been compared.
//!
//! This module holds the type table and the parallel (rayon) dispatch over rows.

#![allow(clippy::manual_is_multiple_of)] // `x % n == 0`: workspace rust-version 1.85 predates is_multiple_of

pub mod f16;
pub mod k_quants;
pub mod k_quants_lanes;
pub mod q4_0;
pub mod q4_k;
pub mod q5_0;
pub mod q6_k;
pub mod q8_0;

use rayon::prelude::*;

/// ggml tensor types this project reads or writes (`enum ggml_type`, values are the GGUF codes).
#[allow(non_camel_case_types)] // ggml's own spelling (Q4_K), which the spec and gguf-py use
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q5_0 = 6,
    Q8_0 = 8,
    Q4_K = 12,
    Q6_K = 14,
    BF16 = 30,
}

impl GgmlType {
    /// Every supported type, in code order (handy for tests and error messages).
    pub const ALL: [GgmlType; 8] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The type for a GGUF tensor-info type code; `None` for codes this project does not handle.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u32 == v)
    }

    /// ggml's type name, upper-cased as gguf-py spells it (`"Q4_K"`, `"F32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Elements per block (1 for the float types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 => q4_0::QK,
            GgmlType::Q5_0 => q5_0::QK,
            GgmlType::Q8_0 => q8_0::QK,
            GgmlType::Q4_K => q4_k::QK,
            GgmlType::Q6_K => q6_k::QK,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => q4_0::BLOCK_BYTES,
            GgmlType::Q5_0 => q5_0::BLOCK_BYTES,
            GgmlType::Q8_0 => q8_0::BLOCK_BYTES,
            GgmlType::Q4_K => q4_k::BLOCK_BYTES,
            GgmlType::Q6_K => q6_k::BLOCK_BYTES,
        }
    }

    /// True for the block-quantized types (everything but F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `ne0` elements. Panics if `ne0` is not a multiple of the block size
    /// (a programmer error: callers check divisibility first, see [`GgmlType::try_row_bytes`]).
    pub fn row_bytes(self, ne0: usize) -> usize {
        self.try_row_bytes(ne0).unwrap_or_else(|| {
            panic!("{}: row length {ne0} is not a multiple of the block size {}", self.name(), self.block_size())
        })
    }

    /// Bytes of one row of `ne0` elements, or `None` when `ne0` is not a multiple of the block size.
    pub fn try_row_bytes(self, ne0: usize) -> Option<usize> {
        let bs = self.block_size();
        (ne0 % bs == 0).then(|| ne0 / bs * self.type_size())
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements handled per rayon task: big enough to amortise scheduling, small enough to balance
/// 2..64 cores on a single tensor.
const ELEMS_PER_TASK: usize = 1 << 16;

/// Quantize `src` (rows of `ne0` values, src.len() % ne0 == 0, ne0 % block_size == 0) in parallel
/// (rayon, chunks of rows) into ty's bytes. F32/F16/BF16 are plain conversions (f16 RNE like ggml).
pub fn quantize(ty: GgmlType, src: &[f32], ne0: usize) -> Vec<u8> {
    let mut dst = vec![0u8; quantized_len(ty, src.len(), ne0)];
    quantize_into(ty, src, ne0, &mut dst);
    dst
}

/// Like [`quantize`], writing into `dst`, which must be exactly `rows * ty.row_bytes(ne0)` long.
pub fn quantize_into(ty: GgmlType, src: &[f32], ne0: usize, dst: &mut [u8]) {
    let expected = quantized_len(ty, src.len(), ne0);
    assert_eq!(dst.len(), expected, "{ty}: destination holds {} bytes, {expected} needed", dst.len());
    if src.is_empty() {
        return;
    }
    // Every block is independent, so splitting on row boundaries cannot change a byte.
    let rows_per_task = (ELEMS_PER_TASK / ne0).max(1);
    let row_bytes = ty.row_bytes(ne0);
    dst.par_chunks_mut(rows_per_task * row_bytes)
        .zip(src.par_chunks(rows_per_task * ne0))
        .for_each(|(d, s)| quantize_blocks(ty, s, d));
}

fn quantized_len(ty: GgmlType, n: usize, ne0: usize) -> usize {
    assert!(ne0 > 0, "{ty}: row length must be positive");
    assert!(n % ne0 == 0, "{ty}: {n} values are not a whole number of rows of {ne0}");
    n / ne0 * ty.row_bytes(ne0)
}

/// Quantize a run of whole blocks (any number of rows back to back) on the calling thread.
fn quantize_blocks(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::F32 => {
            for (d, v) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => f16::quantize_row_f16(src, dst),
        GgmlType::BF16 => f16::quantize_row_bf16(src, dst),
        GgmlType::Q4_0 => q4_0::quantize_row(src, dst),
        GgmlType::Q5_0 => q5_0::quantize_row(src, dst),
        GgmlType::Q8_0 => q8_0::quantize_row(src, dst),
        GgmlType::Q4_K => q4_k::quantize_row(src, dst),
        GgmlType::Q6_K => q6_k::quantize_row(src, dst),
    }
}

/// Dequantize a whole buffer of `n` elements (parallel over blocks; results match ggml's
/// `to_float` exactly).
pub fn dequantize(ty: GgmlType, src: &[u8], n: usize) -> Vec<f32> {
    let mut dst = vec![0f32; n];
    let bs = ty.block_size();
    let blocks_per_task = (ELEMS_PER_TASK / bs).max(1);
    check_dequant_lens(ty, src.len(), n);
    dst.par_chunks_mut(blocks_per_task * bs)
        .zip(src.par_chunks(blocks_per_task * ty.type_size()))
        .for_each(|(d, s)| dequantize_row(ty, s, d));
    dst
}

/// Dequantize `dst.len()` elements (a whole number of blocks) from `src` on the calling thread.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    check_dequant_lens(ty, src.len(), dst.len());
    match ty {
        GgmlType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        GgmlType::F16 => f16::dequantize_row_f16(src, dst),
        GgmlType::BF16 => f16::dequantize_row_bf16(src, dst),
        GgmlType::Q4_0 => q4_0::dequantize_row(src, dst),
        GgmlType::Q5_0 => q5_0::dequantize_row(src, dst),
        GgmlType::Q8_0 => q8_0::dequantize_row(src, dst),
        GgmlType::Q4_K => q4_k::dequantize_row(src, dst),
        GgmlType::Q6_K => q6_k::dequantize_row(src, dst),
    }
}

fn check_dequant_lens(ty: GgmlType, src_bytes: usize, n: usize) {
    let bs = ty.block_size();
    assert!(n % bs == 0, "{ty}: {n} elements are not a whole number of {bs}-element blocks");
    let expected = n / bs * ty.type_size();
    assert_eq!(src_bytes, expected, "{ty}: {n} elements need {expected} bytes, got {src_bytes}");
}

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
