//! The shapes every per-type quantizer unit test shares (round trip, all-zero block, wide-range
//! rows for lane-vs-scalar checks), so each type's tests state only its own facts and tolerance.
use super::{dequantize_row, GgmlType};

/// `x` quantized with `quantize` (the function under test) and dequantized back.
pub fn round_trip(ty: GgmlType, quantize: fn(&[f32], &mut [u8]), x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
    quantize(x, &mut q);
    let mut y = vec![0f32; x.len()];
    dequantize_row(ty, &q, &mut y);
    y
}

/// Asserts `|x − y| ≤ tol(group)` for every element, `x` and `y` cut into groups of `group`.
pub fn assert_close_per_group(x: &[f32], y: &[f32], group: usize, tol: impl Fn(&[f32]) -> f32) {
    for (g, (xs, ys)) in x.chunks(group).zip(y.chunks(group)).enumerate() {
        let t = tol(xs);
        for (a, b) in xs.iter().zip(ys) {
            assert!((a - b).abs() <= t, "group {g}: {a} vs {b}, tolerance {t}");
        }
    }
}

/// Largest magnitude of a group.
pub fn amax(xs: &[f32]) -> f32 {
    xs.iter().fold(0f32, |a, v| a.max(v.abs()))
}

/// A block of zeros must quantize to all-zero bytes (whatever was in the buffer before).
pub fn assert_zero_block_is_all_zero_bytes(ty: GgmlType, quantize: fn(&[f32], &mut [u8])) {
    let mut y = vec![0xAAu8; ty.type_size()];
    quantize(&vec![0.0; ty.block_size()], &mut y);
    assert!(y.iter().all(|&b| b == 0), "{ty}: {y:?}");
}

/// `blocks` blocks of `qk` LCG values in `[-offset, 1-offset)`, block b scaled by
/// `10^(b mod 13 − 9)`: many magnitudes, for holding a fast quantizer equal to its reference.
pub fn wide_range_rows(seed: u32, blocks: usize, qk: usize, offset: f32) -> Vec<f32> {
    let mut s = seed;
    (0..blocks * qk)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let u = (s >> 8) as f32 / (1u32 << 24) as f32 - offset;
            u * 10f32.powi((i / qk % 13) as i32 - 9)
        })
        .collect()
}
