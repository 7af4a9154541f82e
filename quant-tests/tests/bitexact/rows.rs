//! Seeded test rows for the bit-exactness comparison: random rows of several distributions and
//! scales, and the edge rows ggml's arithmetic is most sensitive to.

use h2ovl_format::quant::f16::{bf16_to_fp32, fp32_to_bf16};
use h2ovl_format::quant::GgmlType;

/// Row length used everywhere: two Q4_K/Q6_K super-blocks, sixteen 32-blocks.
pub const NE0: usize = 512;

/// splitmix64: tiny, seedable, good enough to spread test values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A named group of rows (each NE0 long, concatenated).
pub struct RowSet {
    pub name: String,
    pub data: Vec<f32>,
}

impl RowSet {
    pub fn rows(&self) -> usize {
        self.data.len() / NE0
    }
}

/// Largest |x| for which every scale ggml stores for `ty` stays finite in f16 (≤ 65504).
/// ggml does not guard against f16 overflow of d; real weights never come near it, so the "max"
/// edge rows stay at these values (the overflow rows are a separate, explicitly named set):
/// - Q8_0: d = amax/127  → 65504·127 ≈ 8.3e6, we use 8e6;
/// - Q4_0: d = amax/8    → 5.2e5, we use 5e5;
/// - Q5_0: d = amax/16   → 1.05e6, we use 1e6;
/// - Q4_K: dmin = max(−min)/63 → 4.1e6 (the tighter of d and dmin), we use 4e6;
/// - Q6_K: d ≈ amax/(31·128) → 2.6e8, we use 2e8;
/// - F16/BF16: 65504 (f16's largest finite value; BF16 shares the value for simplicity).
pub fn safe_max(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::Q8_0 => 8.0e6,
        GgmlType::Q4_0 => 5.0e5,
        GgmlType::Q5_0 => 1.0e6,
        GgmlType::Q4_K => 4.0e6,
        GgmlType::Q6_K => 2.0e8,
        GgmlType::F16 | GgmlType::BF16 | GgmlType::F32 => 65504.0,
    }
}

const RANDOM_ROWS: usize = 24;
const SCALES: [f32; 7] = [1e-7, 1e-4, 0.02, 1.0, 50.0, 3000.0, 1e5];

/// Random rows: every distribution × every scale (scales beyond `safe_max` are skipped).
pub fn random_sets(ty: GgmlType, seed: u64) -> Vec<RowSet> {
    type Gen = fn(&mut Rng, f32) -> f32;
    let dists: [(&str, Gen); 9] = [
        ("uniform", |r, s| ((r.unit() * 2.0 - 1.0) as f32) * s),
        ("normal", |r, s| r.normal() as f32 * s),
        ("normal_bf16", |r, s| bf16_to_fp32(fp32_to_bf16(r.normal() as f32 * s))),
        ("heavy_tail", |r, s| (r.normal().powi(3) / 4.0) as f32 * s),
        ("positive", |r, s| r.normal().abs() as f32 * s),
        ("negative", |r, s| -(r.normal().abs() as f32) * s),
        ("offset", |r, s| (r.normal() + 3.0) as f32 * s),
        ("sparse", |r, s| if r.unit() < 0.9 { 0.0 } else { r.normal() as f32 * s }),
        ("small_ints", |r, s| (r.normal() * 4.0).round() as f32 * s),
    ];
    let mut rng = Rng::new(seed);
    let mut sets = Vec::new();
    for (name, gen) in dists {
        for s in SCALES {
            if s * 40.0 > safe_max(ty) {
                continue;
            }
            let data = (0..RANDOM_ROWS * NE0).map(|_| gen(&mut rng, s)).collect();
            sets.push(RowSet { name: format!("{name}*{s:e}"), data });
        }
    }
    // Each 32-block with its own log-uniform scale in [1e-6, 1e2]: the super-block scales of the
    // K-quants then span many orders of magnitude.
    let mut data = Vec::with_capacity(RANDOM_ROWS * NE0);
    for _ in 0..RANDOM_ROWS * NE0 / 32 {
        let s = 10f64.powf(-6.0 + 8.0 * rng.unit());
        data.extend((0..32).map(|_| (rng.normal() * s) as f32));
    }
    sets.push(RowSet { name: "block_scales".into(), data });
    sets
}

/// Edge rows, each a whole row of NE0 values.
pub fn edge_sets(ty: GgmlType, seed: u64) -> Vec<RowSet> {
    let m = safe_max(ty);
    let mut rng = Rng::new(seed);
    let mut sets: Vec<RowSet> = Vec::new();
    let mut add = |name: &str, rows: Vec<Vec<f32>>| {
        let data: Vec<f32> = rows.into_iter().flatten().collect();
        assert_eq!(data.len() % NE0, 0, "{name}");
        sets.push(RowSet { name: name.into(), data });
    };
    let row = |f: &mut dyn FnMut(usize) -> f32| (0..NE0).map(f).collect::<Vec<f32>>();

    add("all_zero", vec![vec![0.0; NE0], vec![-0.0; NE0]]);
    let consts = [1.0, -1.0, 0.3, -7.5, 1e-3, 2.5, m, -m, m / 3.0];
    add("constant", consts.iter().map(|&c| vec![c; NE0]).collect());
    add(
        "alternating_signs",
        [1e-3f32, 0.7, 40.0]
            .iter()
            .map(|&s| row(&mut |i| if i % 2 == 0 { 1.0 } else { -1.0 } * (1 + i % 7) as f32 * s))
            .collect(),
    );
    let mut huge_rows = Vec::new();
    for big in [1e2f32, 1e4, m, -m] {
        let pos = rng.below(NE0);
        let small: Vec<f32> = (0..NE0).map(|i| if i == pos { big } else { rng.normal() as f32 * 1e-3 }).collect();
        huge_rows.push(small);
    }
    add("one_huge_among_small", huge_rows);
    add(
        "single_spike",
        [(0usize, 1.0f32), (31, -1.0), (255, 0.5), (300, -3.0)]
            .iter()
            .map(|&(p, v)| row(&mut |i| if i == p { v } else { 0.0 }))
            .collect(),
    );
    // ±max-ish: the largest magnitudes whose block scales still fit f16 (see safe_max).
    add(
        "max_magnitude",
        vec![
            row(&mut |i| if i % 2 == 0 { m } else { -m }),
            row(&mut |_| ((rng.unit() * 2.0 - 1.0) as f32) * m),
            row(&mut |i| if i % 3 == 0 { m } else { (rng.normal() as f32) * m / 10.0 }),
        ],
    );
    // Subnormal f32 inputs (no NaN/inf): make id = 1/d overflow and scales flush to f16 zero.
    let tiny = f32::from_bits(1);
    add(
        "denormals",
        vec![
            row(&mut |_| (rng.normal() * 1e-40) as f32),
            row(&mut |i| if i % 5 == 0 { (rng.normal() * 1e-39) as f32 } else { 0.0 }),
            vec![tiny; NE0],
            row(&mut |i| if i % 2 == 0 { tiny } else { -tiny * 3.0 }),
            row(&mut |_| f32::MIN_POSITIVE * (rng.unit() as f32)),
        ],
    );
    // Around GROUP_MAX_EPS (1e-15): Q6_K's all-zero test and f16-underflowing scales.
    add(
        "near_group_max_eps",
        vec![
            row(&mut |_| (rng.normal() * 1e-15) as f32),
            row(&mut |_| (rng.normal() * 3e-15) as f32),
            vec![1e-15; NE0],
            vec![1.0000001e-15; NE0],
            vec![9.999999e-16; NE0],
            row(&mut |i| if i % 16 == 3 { 1.1e-15 } else { 0.0 }),
            row(&mut |_| (rng.normal() * 1e-13) as f32),
            row(&mut |_| (rng.normal() * 1e-8) as f32),
        ],
    );
    // Values exactly half-way between quant levels once scaled (power-of-two scales keep x·id exact).
    add(
        "exact_ties",
        [2f32.powi(-6), 1.0, 2f32.powi(5)]
            .iter()
            .map(|&s| row(&mut |i| if i % 32 == 0 { 127.0 * s } else { ((i % 32) as f32 - 16.5) * s }))
            .collect(),
    );
    add("ramp", vec![row(&mut |i| i as f32 / NE0 as f32), row(&mut |i| (i as f32 - 255.5) * 0.25)]);
    add("near_rounding_boundaries", near_boundary_rows(ty, &mut rng));
    sets
}

/// Rows whose values sit within a few ulps of the points where Q8_0/Q4_0/Q5_0 change level
/// (x·id = k + ½), so an FMA or a different rounding of `x·id + c` shows up as a different byte.
/// Each 32-block starts with its scale-setting value `s`; the rest are (k + ½)/id nudged by
/// −3..=3 ulps. K-quants get the same rows (their levels differ, but the rows are still valid).
fn near_boundary_rows(ty: GgmlType, rng: &mut Rng) -> Vec<Vec<f32>> {
    // (divisor of the block max giving d, number of levels on each side)
    let (div, half_levels) = match ty {
        GgmlType::Q4_0 => (-8.0f32, 8),
        GgmlType::Q5_0 => (-16.0, 16),
        _ => (127.0, 127),
    };
    let mut rows = Vec::new();
    for _ in 0..32 {
        let mut r = Vec::with_capacity(NE0);
        for _ in 0..NE0 / 32 {
            let s = (10f64.powf(-4.0 + 6.0 * rng.unit()) * if rng.unit() < 0.5 { -1.0 } else { 1.0 }) as f32;
            // Q8_0 divides the absolute max, Q4_0/Q5_0 the signed one.
            let d = if div > 0.0 { s.abs() / div } else { s / div };
            let id = 1.0 / d;
            r.push(s);
            for _ in 1..32 {
                let k = rng.below(2 * half_levels - 1) as i32 - (half_levels as i32 - 1);
                let x = (k as f32 + 0.5) / id;
                let nudge = rng.below(7) as i32 - 3;
                r.push(f32::from_bits((x.to_bits() as i32 + nudge) as u32));
            }
        }
        rows.push(r);
    }
    rows
}

/// Rows whose block scales overflow f16 or whose intermediate sums overflow f32, and rows with
/// ±inf/NaN. Not required for real weights; kept apart because ggml's bytes are still
/// deterministic there (x86-64 conversion semantics, see `quant::q4_0::trunc_i8`).
pub fn overflow_sets() -> Vec<RowSet> {
    let row = |f: &dyn Fn(usize) -> f32| (0..NE0).map(f).collect::<Vec<f32>>();
    let data = [
        row(&|i| if i % 2 == 0 { 1e30 } else { -1e29 }),
        row(&|i| if i % 7 == 0 { f32::MAX } else { 1.0 }),
        row(&|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX }),
        row(&|_| -f32::MAX),
        row(&|i| (i as f32 - 256.0) * 1e35),
    ]
    .concat();
    let non_finite = [
        row(&|i| if i % 9 == 0 { f32::INFINITY } else { 0.5 }),
        row(&|i| if i % 11 == 0 { f32::NEG_INFINITY } else { -(i as f32) }),
        row(&|i| if i % 13 == 0 { f32::NAN } else { 1.0 - i as f32 * 0.01 }),
        row(&|i| if i % 2 == 0 { f32::NAN } else { -f32::NAN }),
    ]
    .concat();
    vec![RowSet { name: "overflow".into(), data }, RowSet { name: "non_finite".into(), data: non_finite }]
}
