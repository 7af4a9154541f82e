//! Seeded random fill of bf16 tensors, parallel yet reproducible.
//!
//! A tensor is cut into fixed chunks of [`CHUNK`] elements; chunk `k` of tensor `name` draws from
//! its own xoshiro256++ stream seeded by SplitMix64 over (seed, FNV-1a(name), k). The bytes
//! therefore depend only on (seed, name, init), never on the thread count, the write block size or
//! which other tensors the checkpoint has. Gaussians come from Box–Muller (two per draw pair) with
//! the portable polynomial `ln`/`sincos` of [`crate::fastmath`], so the bytes are also the same on
//! every platform.

use crate::fastmath;
use crate::inventory::Init;
use half::bf16;
use rayon::prelude::*;

/// Elements per independently seeded stream (and the unit of parallel work).
pub const CHUNK: usize = 1 << 16;

/// xoshiro256++ (Blackman & Vigna): small state, fast, good statistical quality.
struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// Expand a 64-bit seed with SplitMix64, the seeding the xoshiro authors recommend.
    fn new(mut seed: u64) -> Self {
        let mut s = [0u64; 4];
        for v in &mut s {
            *v = splitmix64(&mut seed);
        }
        Xoshiro256pp { s }
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the tensor name: a stable (cross-platform, cross-version) 64-bit hash.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Seed of chunk `chunk` of tensor `name`.
fn chunk_seed(seed: u64, name: &str, chunk: u64) -> u64 {
    let mut s = seed ^ fnv1a(name).rotate_left(17);
    let a = splitmix64(&mut s);
    let mut t = a ^ chunk.wrapping_mul(0xD605_BBB5_8C8A_BBC5);
    splitmix64(&mut t)
}

/// Two independent uniforms in [0, 1) from one 64-bit draw (24 bits each, exact in f32).
#[inline]
fn unit_pair(x: u64) -> (f32, f32) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    ((x >> 40) as f32 * SCALE, ((x >> 16) & 0xFF_FFFF) as f32 * SCALE)
}

/// Draw pairs in batches of this many, so the math below runs over fixed-size arrays
/// (auto-vectorised) instead of one libm call at a time.
const BATCH: usize = 256;

/// Fill one chunk (`out.len() <= CHUNK`) with f32 values drawn per `init`. Each 64-bit draw
/// yields one pair: elements 2i and 2i+1.
fn fill_chunk_f32(init: Init, rng: &mut Xoshiro256pp, out: &mut [f32]) {
    let mut a = [0f32; BATCH];
    let mut b = [0f32; BATCH];
    for block in out.chunks_mut(2 * BATCH) {
        let pairs = block.len().div_ceil(2);
        for i in 0..pairs {
            (a[i], b[i]) = unit_pair(rng.next_u64());
        }
        match init {
            Init::Normal { mean, std } => {
                // Box–Muller; 1 − a is in (0, 1] (exact), so the log is finite (|z| ≤ 5.77).
                for i in 0..BATCH {
                    let r = (-2.0 * fastmath::ln(1.0 - a[i])).sqrt() * std;
                    let (s, c) = fastmath::sincos_turns(b[i]);
                    (a[i], b[i]) = (mean + r * c, mean + r * s);
                }
            }
            Init::Uniform { lo, hi } => {
                for i in 0..BATCH {
                    (a[i], b[i]) = (lo + (hi - lo) * a[i], lo + (hi - lo) * b[i]);
                }
            }
        }
        for (j, v) in block.iter_mut().enumerate() {
            *v = if j % 2 == 0 { a[j / 2] } else { b[j / 2] };
        }
    }
}

/// Fill `out` with the little-endian bf16 bytes of elements `first .. first + out.len()/2` of
/// tensor `name`. `first` must be a multiple of [`CHUNK`]; chunks are filled in parallel.
pub fn fill_bf16_le(seed: u64, name: &str, init: Init, first: usize, out: &mut [u8]) {
    debug_assert_eq!(first % CHUNK, 0);
    debug_assert_eq!(out.len() % 2, 0);
    let first_chunk = (first / CHUNK) as u64;
    out.par_chunks_mut(2 * CHUNK).enumerate().for_each(|(k, bytes)| {
        let mut rng = Xoshiro256pp::new(chunk_seed(seed, name, first_chunk + k as u64));
        let mut vals = vec![0f32; bytes.len() / 2];
        fill_chunk_f32(init, &mut rng, &mut vals);
        for (dst, v) in bytes.chunks_exact_mut(2).zip(&vals) {
            dst.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
    }

    fn mean_std(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
        (m, var.sqrt())
    }

    #[test]
    fn normal_has_requested_moments() {
        let mut buf = vec![0u8; 2 * 4 * CHUNK];
        fill_bf16_le(3, "w", Init::Normal { mean: 1.0, std: 0.5 }, 0, &mut buf);
        let v = decode(&buf);
        let (m, s) = mean_std(&v);
        assert!((m - 1.0).abs() < 0.005 && (s - 0.5).abs() < 0.005, "mean {m} std {s}");
        // Tails exist but are bounded by the 24-bit uniform (|z| ≤ 5.77).
        assert!(v.iter().all(|x| x.is_finite() && (x - 1.0).abs() <= 0.5 * 5.8));
        assert!(v.iter().any(|x| (x - 1.0).abs() > 0.5 * 3.5));
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut buf = vec![0u8; 2 * (CHUNK + 7)];
        fill_bf16_le(3, "ls", Init::Uniform { lo: 0.05, hi: 0.15 }, 0, &mut buf);
        let v = decode(&buf);
        let (m, _) = mean_std(&v);
        // Allow for bf16 round-to-nearest (half an ulp: at most 2^-8 of the value).
        assert!(v.iter().all(|&x| (0.05 * (1.0 - 1.0 / 256.0)..=0.15 * (1.0 + 1.0 / 256.0)).contains(&x)));
        assert!((m - 0.1).abs() < 0.001, "mean {m}");
    }

    #[test]
    fn stream_independent_of_block_split() {
        // Whole tensor at once == two blocks starting at a chunk boundary.
        let init = Init::Normal { mean: 0.0, std: 1.0 };
        let n = 3 * CHUNK + 11;
        let mut whole = vec![0u8; 2 * n];
        fill_bf16_le(9, "t", init, 0, &mut whole);
        let mut split = vec![0u8; 2 * n];
        let (a, b) = split.split_at_mut(2 * 2 * CHUNK);
        fill_bf16_le(9, "t", init, 0, a);
        fill_bf16_le(9, "t", init, 2 * CHUNK, b);
        assert_eq!(whole, split);
        // A different seed or name gives different bytes.
        let mut other = vec![0u8; 2 * n];
        fill_bf16_le(10, "t", init, 0, &mut other);
        assert_ne!(whole, other);
        fill_bf16_le(9, "u", init, 0, &mut other);
        assert_ne!(whole, other);
    }
}
