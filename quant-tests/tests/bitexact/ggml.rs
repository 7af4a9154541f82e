//! Thin safe wrappers over the ggml C functions the bit-exactness tests compare against.

use h2ovl_format::quant::GgmlType;
use llama_cpp_sys_2 as sys;

/// ggml's own quantizer (`ggml_quantize_chunk`, no imatrix → the `_ref` row functions).
pub fn quantize(ty: GgmlType, src: &[f32], ne0: usize) -> Vec<u8> {
    assert!(ne0 > 0);
    assert_eq!(src.len() % ne0, 0, "whole rows only");
    let nrows = src.len() / ne0;
    let row = unsafe { sys::ggml_row_size(ty as sys::ggml_type, ne0 as i64) };
    let mut dst = vec![0u8; row * nrows];
    // SAFETY: src holds nrows*ne0 floats and dst nrows*row bytes, as ggml_quantize_chunk expects.
    let written = unsafe {
        sys::ggml_quantize_chunk(
            ty as sys::ggml_type,
            src.as_ptr(),
            dst.as_mut_ptr().cast(),
            0,
            nrows as i64,
            ne0 as i64,
            std::ptr::null(),
        )
    };
    assert_eq!(written, dst.len(), "{ty}: ggml wrote an unexpected byte count");
    dst
}

/// ggml's type traits: (name, block size, type size).
pub fn traits(ty: GgmlType) -> (String, usize, usize) {
    // SAFETY: ggml returns a pointer into its static type table for every valid type.
    let t = unsafe { &*sys::ggml_get_type_traits(ty as sys::ggml_type) };
    let name = unsafe { std::ffi::CStr::from_ptr(t.type_name) }.to_string_lossy().into_owned();
    (name, t.blck_size as usize, t.type_size)
}

/// ggml's dequantizer (`ggml_get_type_traits(t).to_float`) over `n` elements.
pub fn dequantize(ty: GgmlType, src: &[u8], n: usize) -> Vec<f32> {
    assert_eq!(src.len(), n / ty.block_size() * ty.type_size());
    // SAFETY: static type table entry; to_float reads n/blck blocks from src and writes n floats.
    let t = unsafe { &*sys::ggml_get_type_traits(ty as sys::ggml_type) };
    let to_float = t.to_float.unwrap_or_else(|| panic!("{ty}: ggml has no to_float"));
    let mut dst = vec![0f32; n];
    unsafe { to_float(src.as_ptr().cast(), dst.as_mut_ptr(), n as i64) };
    dst
}
