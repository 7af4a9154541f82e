//! Tests of the type table and of the parallel dispatch (per-type numerics are tested beside each
//! type; byte-exactness against ggml itself lives in quant-tests/tests/bitexact.rs).

use super::*;

#[test]
fn type_table_matches_ggml_block_sizes() {
    let expect = [
        (GgmlType::F32, "F32", 1, 4),
        (GgmlType::F16, "F16", 1, 2),
        (GgmlType::Q4_0, "Q4_0", 32, 18),
        (GgmlType::Q5_0, "Q5_0", 32, 22),
        (GgmlType::Q8_0, "Q8_0", 32, 34),
        (GgmlType::Q4_K, "Q4_K", 256, 144),
        (GgmlType::Q6_K, "Q6_K", 256, 210),
        (GgmlType::BF16, "BF16", 1, 2),
    ];
    for (ty, name, bs, ts) in expect {
        assert_eq!((ty.name(), ty.block_size(), ty.type_size()), (name, bs, ts));
        assert_eq!(GgmlType::from_u32(ty as u32), Some(ty));
        assert_eq!(ty.is_quantized(), bs > 1);
    }
    for code in [3, 4, 5, 7, 9, 10, 11, 13, 15, 16, 29, 31, 1000] {
        assert_eq!(GgmlType::from_u32(code), None, "code {code}");
    }
    assert_eq!(GgmlType::Q4_K.try_row_bytes(896), None);
    assert_eq!(GgmlType::Q4_K.row_bytes(2048), 8 * 144);
    assert_eq!(GgmlType::Q8_0.row_bytes(896), 28 * 34);
}

#[test]
#[should_panic(expected = "not a multiple of the block size")]
fn row_bytes_rejects_partial_blocks() {
    GgmlType::Q4_K.row_bytes(896);
}

fn test_values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.3
        })
        .collect()
}

#[test]
fn parallel_quantize_equals_one_sequential_pass() {
    // 3 rows × 2 tasks' worth of elements, so rayon really splits the work.
    let ne0 = 1024;
    let rows = 2 * ELEMS_PER_TASK / ne0 + 3;
    let src = test_values(rows * ne0, 7);
    for ty in GgmlType::ALL {
        let par = quantize(ty, &src, ne0);
        let mut seq = vec![0u8; rows * ty.row_bytes(ne0)];
        quantize_blocks(ty, &src, &mut seq);
        assert!(par == seq, "{ty}: parallel and sequential bytes differ");
        let back = dequantize(ty, &par, src.len());
        let mut back_seq = vec![0f32; src.len()];
        dequantize_row(ty, &par, &mut back_seq);
        assert!(back.iter().zip(&back_seq).all(|(a, b)| a.to_bits() == b.to_bits()), "{ty}: dequantize");
    }
}

#[test]
fn float_types_round_trip() {
    let src = test_values(64, 3);
    assert_eq!(dequantize(GgmlType::F32, &quantize(GgmlType::F32, &src, 64), 64), src);
    let f16 = dequantize(GgmlType::F16, &quantize(GgmlType::F16, &src, 16), 64);
    let bf16 = dequantize(GgmlType::BF16, &quantize(GgmlType::BF16, &src, 8), 64);
    for i in 0..64 {
        assert_eq!(f16[i], half::f16::from_f32(src[i]).to_f32());
        assert_eq!(bf16[i], half::bf16::from_f32(src[i]).to_f32());
    }
}

#[test]
fn empty_input_gives_empty_output() {
    for ty in GgmlType::ALL {
        assert!(quantize(ty, &[], 256).is_empty());
        assert!(dequantize(ty, &[], 0).is_empty());
    }
}

#[test]
#[should_panic(expected = "not a whole number of rows")]
fn quantize_rejects_ragged_rows() {
    quantize(GgmlType::Q8_0, &[0.0; 48], 32);
}

#[test]
#[should_panic(expected = "need 34 bytes")]
fn dequantize_rejects_short_source() {
    dequantize(GgmlType::Q8_0, &[0; 33], 32);
}
