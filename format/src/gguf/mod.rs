//! GGUF v3 container: value types, a streaming writer and a memory-mapped reader.
//!
//! Layout per ggml `docs/gguf.md`: header (magic, version 3, tensor count, KV count), KV pairs,
//! tensor infos, zero padding to the alignment (absolute file offset), then the tensor data, each
//! tensor padded to the alignment. Everything little-endian.
mod reader;
mod types;
mod writer;

pub use crate::quant::GgmlType;
pub use reader::{GgufFile, TensorInfo, TensorView};
pub use types::{GgufValue, ValueType};
pub use writer::{GgufWriter, PlannedTensor};

/// `GGUF` as read little-endian.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The only version we write; the reader also accepts v2 (same layout).
pub const VERSION: u32 = 3;
/// ggml's default (`GGUF_DEFAULT_ALIGNMENT`), used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// `GGML_MAX_NAME` is 64 including the NUL terminator.
pub const MAX_TENSOR_NAME: usize = 63;
/// `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// Rounds `x` up to a multiple of `align` (a power of two).
pub fn pad(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// Bytes of a tensor of type `ty` and ggml shape `ne` (None if ne[0] is not a whole number of blocks
/// or the size overflows).
pub fn tensor_bytes(ty: GgmlType, ne: &[usize]) -> Option<u64> {
    let ne0 = *ne.first().unwrap_or(&1);
    if ne0 % ty.block_size() != 0 {
        return None;
    }
    // Checked: the dims come from the file (a lying header must not wrap to a small size).
    let mut n = ((ne0 / ty.block_size()) as u64).checked_mul(ty.type_size() as u64)?;
    for &d in ne.iter().skip(1) {
        n = n.checked_mul(d as u64)?;
    }
    Some(n)
}
