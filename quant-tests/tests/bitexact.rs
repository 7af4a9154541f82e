//! Byte-for-byte comparison of our quantizers (`h2ovl_format::quant`) with ggml's own, called
//! through llama-cpp-sys-2 (`ggml_quantize_chunk`, ggml-base compiled for x86-64 without FMA),
//! and of our dequantizers with ggml's `to_float`.
//!
//! Inputs: seeded random rows (9 distributions × up to 7 scales, plus per-block random scales)
//! and edge rows (zeros, constants, alternating signs, one huge value, ±max magnitudes that keep
//! the f16 scales finite, f32 subnormals, values around GROUP_MAX_EPS, exact rounding ties).
//! Each test prints how many rows and bytes it compared (`--nocapture` shows them).

#[path = "bitexact/ggml.rs"]
mod ggml;
#[path = "bitexact/rows.rs"]
mod rows;

use h2ovl_format::quant::{self, GgmlType};
use rows::{RowSet, NE0};

/// Compares both quantizers on every set; on a mismatch names the set, row, block and bytes.
/// Returns (rows, bytes) compared.
fn compare_quantize(ty: GgmlType, sets: &[RowSet]) -> (usize, usize) {
    let (mut rows, mut bytes) = (0, 0);
    let row_bytes = ty.row_bytes(NE0);
    for set in sets {
        let ours = quant::quantize(ty, &set.data, NE0);
        let theirs = ggml::quantize(ty, &set.data, NE0);
        assert_eq!(ours.len(), theirs.len(), "{ty} {}: byte counts", set.name);
        if let Some(pos) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            let (row, in_row) = (pos / row_bytes, pos % row_bytes);
            let block = in_row / ty.type_size();
            let start = row * row_bytes + block * ty.type_size();
            let end = start + ty.type_size();
            let first = row * NE0 + block * ty.block_size();
            panic!(
                "{ty} set {:?}: first difference at row {row}, block {block}, byte {}\n ours:  {:02x?}\n ggml:  {:02x?}\n input: {:?}",
                set.name,
                in_row % ty.type_size(),
                &ours[start..end],
                &theirs[start..end],
                &set.data[first..first + ty.block_size()],
            );
        }
        // The dequantizers must agree on these (valid) blocks too.
        compare_dequantize(ty, &theirs, set.data.len(), &set.name);
        rows += set.rows();
        bytes += ours.len();
    }
    (rows, bytes)
}

/// Bitwise comparison of dequantized values (any NaN equals any NaN: payloads are not data).
fn compare_dequantize(ty: GgmlType, bytes: &[u8], n: usize, what: &str) {
    let ours = quant::dequantize(ty, bytes, n);
    let theirs = ggml::dequantize(ty, bytes, n);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        assert!(same, "{ty} {what}: dequantized element {i} differs: ours {a:e} ggml {b:e}");
    }
}

fn check_type(ty: GgmlType, seed: u64) {
    let mut sets = rows::random_sets(ty, seed);
    sets.extend(rows::edge_sets(ty, seed ^ 0xED6E));
    let (rows, bytes) = compare_quantize(ty, &sets);
    println!("{ty}: {rows} rows x {NE0} values, {bytes} bytes identical to ggml ({} sets)", sets.len());
}

#[test]
fn q8_0_matches_ggml() {
    check_type(GgmlType::Q8_0, 8);
}

#[test]
fn q4_0_matches_ggml() {
    check_type(GgmlType::Q4_0, 2);
}

#[test]
fn q5_0_matches_ggml() {
    check_type(GgmlType::Q5_0, 6);
}

#[test]
fn q4_k_matches_ggml() {
    check_type(GgmlType::Q4_K, 12);
}

#[test]
fn q6_k_matches_ggml() {
    check_type(GgmlType::Q6_K, 14);
}

#[test]
fn f16_matches_ggml() {
    check_type(GgmlType::F16, 1);
}

#[test]
fn bf16_matches_ggml() {
    check_type(GgmlType::BF16, 30);
}

/// Scales that overflow f16, sums that overflow f32, and ±inf/NaN inputs: outside what real
/// weights reach, but ggml's output is still deterministic, so we match it there too.
#[test]
fn overflowing_and_non_finite_rows_match_ggml() {
    let sets = rows::overflow_sets();
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16] {
        let (rows, bytes) = compare_quantize(ty, &sets);
        println!("{ty}: {rows} overflow/non-finite rows, {bytes} bytes identical");
    }
}

/// Model row widths (vision 1024; LLM 1536 for 0.8B, 2560 and 6912 = down_proj's input for 2B,
/// see the model spec) over several rayon tasks, so the row-chunked parallel split is checked
/// against ggml too.
#[test]
fn model_shaped_matrices_match_ggml() {
    let mut rng = rows::Rng::new(0x5A9E);
    for (ty, ne0) in [
        (GgmlType::Q8_0, 1024),
        (GgmlType::Q4_0, 2560),
        (GgmlType::Q5_0, 1536),
        (GgmlType::F16, 1024),
        (GgmlType::Q4_K, 1536),
        (GgmlType::Q6_K, 6912),
    ] {
        let nrows = 3 * (1 << 16) / ne0 + 5;
        let src: Vec<f32> = (0..nrows * ne0)
            .map(|_| quant::f16::bf16_to_fp32(quant::f16::fp32_to_bf16((rng.normal() * 0.03) as f32)))
            .collect();
        let ours = quant::quantize(ty, &src, ne0);
        let theirs = ggml::quantize(ty, &src, ne0);
        let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert!(first.is_none(), "{ty} {nrows}x{ne0}: first differing byte {first:?}");
        println!("{ty}: {nrows}x{ne0} matrix, {} bytes identical", ours.len());
    }
}

/// Every 4099th f32 bit pattern (≈1.05M values over the whole range, NaN and inf included) through
/// the f16 and bf16 conversions.
#[test]
fn float_conversions_match_ggml_across_the_f32_range() {
    let src: Vec<f32> = (0..=u32::MAX / 4099).map(|i| f32::from_bits(i * 4099)).collect();
    let n = src.len() - src.len() % NE0;
    let src = &src[..n];
    for ty in [GgmlType::F16, GgmlType::BF16] {
        let ours = quant::quantize(ty, src, NE0);
        let theirs = ggml::quantize(ty, src, NE0);
        if let Some(i) = ours.chunks(2).zip(theirs.chunks(2)).position(|(a, b)| a != b) {
            panic!("{ty}: f32 {:#010x} -> ours {:02x?} ggml {:02x?}", src[i].to_bits(), &ours[2 * i..2 * i + 2], &theirs[2 * i..2 * i + 2]);
        }
        println!("{ty}: {n} f32 bit patterns converted identically");
    }
    // All 65536 f16 / bf16 bit patterns back to f32.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    compare_dequantize(GgmlType::F16, &all, 65536, "all f16 values");
    compare_dequantize(GgmlType::BF16, &all, 65536, "all bf16 values");
}

/// Random block bytes (scales of any value, including inf/NaN f16) through both dequantizers.
#[test]
fn dequantizers_match_ggml_on_random_blocks() {
    let mut rng = rows::Rng::new(0xDE0);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        let blocks = 8192 / ty.block_size() * 32;
        let bytes: Vec<u8> = (0..blocks * ty.type_size()).map(|_| rng.next_u64() as u8).collect();
        compare_dequantize(ty, &bytes, blocks * ty.block_size(), "random blocks");
        println!("{ty}: {blocks} random blocks ({} bytes) dequantized identically", bytes.len());
    }
}

#[test]
fn type_table_matches_ggml() {
    for ty in GgmlType::ALL {
        let (name, bs, ts) = ggml::traits(ty);
        assert_eq!(name.to_uppercase(), ty.name(), "{ty:?} name");
        assert_eq!((bs, ts), (ty.block_size(), ty.type_size()), "{ty} block/type size");
        assert_eq!(ty.row_bytes(NE0), unsafe {
            llama_cpp_sys_2::ggml_row_size(ty as llama_cpp_sys_2::ggml_type, NE0 as i64)
        });
    }
}

/// Quantize throughput (MB/s of f32 input) of ours (rayon, all cores) vs ggml's reference
/// (single-threaded), on a 4096×2048 matrix of N(0, 0.02²) values; bytes are checked equal.
/// Run with `--ignored --nocapture`; `RAYON_NUM_THREADS=1` gives our single-thread figure.
#[test]
#[ignore = "benchmark"]
fn quantize_throughput() {
    let mut rng = rows::Rng::new(42);
    let (ne0, nrows) = (4096, 2048);
    let src: Vec<f32> = (0..ne0 * nrows).map(|_| (rng.normal() * 0.02) as f32).collect();
    let mb = (src.len() * 4) as f64 / 1e6;
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16] {
        let t = std::time::Instant::now();
        let ours = quant::quantize(ty, &src, ne0);
        let ours_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let theirs = ggml::quantize(ty, &src, ne0);
        let ggml_s = t.elapsed().as_secs_f64();
        assert!(ours == theirs, "{ty}: bytes differ");
        println!("{ty}: {mb:.0} MB f32 -> ours {:.0} MB/s, ggml ref (1 thread) {:.0} MB/s", mb / ours_s, mb / ggml_s);
    }
}
