//! Vision encoder benchmark: median per-tile time of [`VisionModel::encode_opts`] on deterministic
//! pseudo-random normalized tiles, GFLOP/s from the model's own shapes, and the share of the
//! measured f32 FMA peak ([`super::fma`]).
//!
//! The main figures are the f32 path of the selected ISA. Every kernel this CPU has runs in the
//! same process, alternating run by run (so machine load drifts hit all alike): the f32 path on
//! each f32 ISA (AVX2, AVX-512) and, when the file allows it (Q8_0 weights), the int8 path on each
//! int8 ISA (AVX2, AVX-VNNI, AVX-512 VNNI ymm and zmm) — so one machine measures what each CPU
//! class gets. Each path's GFLOP/s is set against the measured peak of the ISA it used; each int8
//! path is compared with the f32 path of its CPU class ([`QIsa::f32_isa`]): speed ratio and the
//! per-token cosine of its embeddings. The legacy `int8` field is the path `auto`/`int8` select.
use std::path::PathBuf;

use anyhow::{ensure, Result};
use serde::Serialize;

use super::fma::{self, FmaPeak};
use h2ovl_runtime::vision::kernels::{self, Isa, QIsa};
use h2ovl_runtime::vision::{Math, VisionConfig, VisionMath, VisionModel};

/// What to run.
#[derive(Clone, Debug)]
pub struct VisionBenchOptions {
    pub mmproj: PathBuf,
    /// Tiles per encode call (the per-tile time divides by this).
    pub tiles: usize,
    /// Encoder threads (0 = all cores); also the FMA-peak threads.
    pub threads: usize,
    /// Timed runs after one untimed warm-up (which pages the weights in).
    pub runs: usize,
    /// Iterations of the FMA-peak loop per thread (200M ≈ 0.3-1 s).
    pub fma_iters: u64,
}

/// The figures, per tile.
#[derive(Clone, Debug, Serialize)]
pub struct VisionReport {
    pub mmproj: String,
    pub file_bytes: u64,
    /// Kernel ISA of the f32 path (`H2OVL_VISION_ISA=scalar` forces the portable twins).
    pub encoder_isa: String,
    pub threads: usize,
    pub tiles: usize,
    pub runs: usize,
    /// FLOPs of one tile counted from the shapes (2 per multiply-add; GEMMs + attention).
    pub gflop_per_tile: f64,
    pub wall_s_per_tile_median: f64,
    pub wall_s_per_tile_min: f64,
    /// CPU seconds (all threads) per tile, median.
    pub cpu_s_per_tile_median: f64,
    pub gflops_wall: f64,
    /// GFLOP per CPU second of one core: comparable across loads.
    pub gflops_per_core_cpu_s: f64,
    pub fma_peak: FmaPeak,
    /// `gflops_wall / fma_peak.gflops_wall`.
    pub pct_of_peak_wall: f64,
    /// `gflops_per_core_cpu_s / fma_peak.gflops_per_core_cpu_s`.
    pub pct_of_peak_per_core: f64,
    pub load_average: String,
    /// What `--vision-math auto` picks for this file on this CPU.
    pub auto_math: String,
    /// The int8 path beside the f32 one (absent when the weights are not Q8_0).
    pub int8: Option<Int8Report>,
    /// Every path run, f32 ISAs first (same alternating run).
    pub paths: Vec<PathReport>,
}

/// One (arithmetic, ISA) path of the encoder.
#[derive(Clone, Debug, Serialize)]
pub struct PathReport {
    /// e.g. `f32 (Avx512)`, `int8 (AvxVnni)`.
    pub math: String,
    pub wall_s_per_tile_median: f64,
    pub wall_s_per_tile_min: f64,
    pub cpu_s_per_tile_median: f64,
    pub gflops_wall: f64,
    pub gflops_per_core_cpu_s: f64,
    /// Measured peak of the ISA this path ran: f32 FMA loop (f32 paths) or `vpdpbusd` loop
    /// (VNNI int8 paths; GOP/s). None for int8 paths without a single-instruction dot product.
    pub peak: Option<FmaPeak>,
    pub pct_of_peak_per_core: Option<f64>,
    /// Int8 paths: f32 path of the same CPU class (median wall / this median wall), and the
    /// per-token cosine of the embeddings against it (min, mean).
    pub vs_f32: Option<f64>,
    pub vs_f32_cpu: Option<f64>,
    pub cosine_min: Option<f64>,
    pub cosine_mean: Option<f64>,
}

/// Int8 linear layers vs the f32 path, same run, same tiles.
#[derive(Clone, Debug, Serialize)]
pub struct Int8Report {
    /// e.g. `int8 (Avx512Vnni)`.
    pub math: String,
    pub wall_s_per_tile_median: f64,
    pub wall_s_per_tile_min: f64,
    pub cpu_s_per_tile_median: f64,
    /// f32 median wall / int8 median wall.
    pub speedup_wall: f64,
    /// f32 median CPU / int8 median CPU.
    pub speedup_cpu: f64,
    /// Per-token (embedding row) cosine of int8 vs f32 embeddings: smallest and mean.
    pub cosine_min: f64,
    pub cosine_mean: f64,
}

/// FLOPs of one 448 tile: patch embedding, `layers` ViT blocks (QKV + output projections, the
/// two MLP GEMMs, QK^T and PV over all tokens) and the 2-GEMM projector after the pixel shuffle.
/// LayerNorm, GELU, softmax and biases are O(N·D) and left out, as is usual. Full 0.8B: ≈ 723e9.
pub fn flop_per_tile(cfg: &VisionConfig, layers: usize) -> f64 {
    let n = cfg.n_tokens() as f64;
    let d = cfg.hidden as f64;
    let f = cfg.ffn as f64;
    let patches = (cfg.grid() * cfg.grid()) as f64;
    let patch_in = (3 * cfg.patch_size * cfg.patch_size) as f64;
    let s = cfg.shuffle_factor() as f64;
    let (t, p_in, h) = (cfg.tokens_per_tile() as f64, d * s * s, cfg.projection_dim as f64);
    let patch = 2.0 * patches * patch_in * d;
    let block = 2.0 * n * d * (4.0 * d + 2.0 * f) + 4.0 * n * n * d;
    let projector = 2.0 * t * (p_in * h + h * h);
    patch + layers as f64 * block + projector
}

/// Deterministic normalized-looking pixels in [-2, 2) (xorshift; content does not change the cost).
fn pixels(n: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 2.0
        })
        .collect()
}

/// The paths to run: f32 on every SIMD ISA up to the selected one (`H2OVL_VISION_ISA` caps it),
/// int8 on every int8 ISA up to the selected one when the file allows int8.
fn paths(int8_ok: bool) -> Vec<Math> {
    let sel = kernels::isa();
    let mut f: Vec<Isa> = kernels::simd_isas().into_iter().filter(|i| i.rank() <= sel.rank()).collect();
    if f.is_empty() {
        f.push(Isa::Scalar);
    }
    let mut v: Vec<Math> = f.into_iter().map(|isa| Math { isa, q: None }).collect();
    if int8_ok {
        let qsel = kernels::qisa();
        let mut q: Vec<QIsa> = kernels::qsimd_isas().into_iter().filter(|q| q.rank() <= qsel.rank()).collect();
        if q.is_empty() {
            q.push(QIsa::Scalar);
        }
        // The f32 parts of an int8 path run on its CPU class's f32 ISA, capped by the selection.
        v.extend(q.into_iter().map(|q| Math { isa: if q.f32_isa().rank() <= sel.rank() { q.f32_isa() } else { sel }, q: Some(q) }));
    }
    v
}

pub fn run(o: &VisionBenchOptions) -> Result<VisionReport> {
    ensure!(o.tiles >= 1, "--tiles must be at least 1");
    ensure!(o.runs >= 1, "--runs must be at least 1");
    let threads = if o.threads > 0 { o.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    let model = VisionModel::load(&o.mmproj)?;
    let cfg = model.config().clone();
    let gflop = flop_per_tile(&cfg, cfg.layers_to_run()?) / 1e9;
    let px = pixels(o.tiles * 3 * cfg.image_size * cfg.image_size);
    let int8_ok = model.resolve_math(VisionMath::Int8).is_ok();
    let maths = paths(int8_ok);
    // Untimed warm-ups (page the weights in) that also give the embeddings to compare.
    let mut embs = Vec::new();
    for mx in &maths {
        let e = model.encode_with_math(&px, o.tiles, *mx, threads)?;
        ensure!(e.iter().all(|v| v.is_finite()), "{}: the encoder ({}) produced non-finite values", o.mmproj.display(), mx.describe());
        embs.push(e);
    }
    let (mut walls, mut cpus) = (vec![Vec::new(); maths.len()], vec![Vec::new(); maths.len()]);
    for run in 0..o.runs {
        // Rotate which path goes first.
        for j in 0..maths.len() {
            let i = (j + run) % maths.len();
            let (r, wall, cpu) = super::timed(|| model.encode_with_math(&px, o.tiles, maths[i], threads));
            std::hint::black_box(r?);
            walls[i].push(wall / o.tiles as f64);
            cpus[i].push(cpu / o.tiles as f64);
        }
    }
    let mut f32_peaks = Vec::new();
    for mx in maths.iter().filter(|m| m.q.is_none()) {
        f32_peaks.push((mx.isa, fma::measure_isa(mx.isa, threads, o.fma_iters)));
    }
    let f32_peak = |isa: Isa| f32_peaks.iter().find(|(i, _)| *i == isa).map(|(_, p)| p.clone());
    let mut reports: Vec<PathReport> = Vec::new();
    for (i, mx) in maths.iter().enumerate() {
        let (wall, cpu) = (super::median(&walls[i]), super::median(&cpus[i]));
        let peak = match mx.q {
            None => f32_peak(mx.isa),
            Some(q) => fma::measure_int8(q, threads, o.fma_iters),
        };
        let base = maths.iter().position(|m| m.q.is_none() && m.isa == mx.isa).filter(|_| mx.q.is_some());
        let cos = base.and_then(|b| crate::row_cosines(&embs[i], &embs[b], cfg.projection_dim)).map(|(min, mean, _)| (min, mean));
        reports.push(PathReport {
            math: mx.describe(),
            wall_s_per_tile_median: wall,
            wall_s_per_tile_min: walls[i].iter().copied().fold(f64::INFINITY, f64::min),
            cpu_s_per_tile_median: cpu,
            gflops_wall: gflop / wall,
            gflops_per_core_cpu_s: gflop / cpu,
            pct_of_peak_per_core: peak.as_ref().map(|p| 100.0 * gflop / cpu / p.gflops_per_core_cpu_s),
            peak,
            vs_f32: base.map(|b| super::median(&walls[b]) / wall),
            vs_f32_cpu: base.map(|b| super::median(&cpus[b]) / cpu),
            cosine_min: cos.map(|c| c.0),
            cosine_mean: cos.map(|c| c.1),
        });
    }
    // The headline f32 path: the selected ISA's (the last f32 path).
    let main = maths.iter().rposition(|m| m.q.is_none()).unwrap_or(0);
    let (wall, cpu) = (reports[main].wall_s_per_tile_median, reports[main].cpu_s_per_tile_median);
    let peak = f32_peak(maths[main].isa).unwrap_or_else(|| fma::measure(threads, o.fma_iters));
    let int8 = match model.resolve_math(VisionMath::Int8).ok() {
        Some(sel) => maths.iter().position(|m| m.q == sel.q).map(|i| {
            let r = &reports[i];
            Int8Report {
                math: r.math.clone(),
                wall_s_per_tile_median: r.wall_s_per_tile_median,
                wall_s_per_tile_min: r.wall_s_per_tile_min,
                cpu_s_per_tile_median: r.cpu_s_per_tile_median,
                speedup_wall: r.vs_f32.unwrap_or(wall / r.wall_s_per_tile_median),
                speedup_cpu: r.vs_f32_cpu.unwrap_or(cpu / r.cpu_s_per_tile_median),
                cosine_min: r.cosine_min.unwrap_or(f64::NAN),
                cosine_mean: r.cosine_mean.unwrap_or(f64::NAN),
            }
        }),
        None => None,
    };
    let gflops_wall = gflop / wall;
    let gflops_core = gflop / cpu;
    Ok(VisionReport {
        mmproj: o.mmproj.display().to_string(),
        file_bytes: std::fs::metadata(&o.mmproj).map_or(0, |m| m.len()),
        encoder_isa: format!("f32 {:?}", maths[main].isa),
        threads,
        tiles: o.tiles,
        runs: o.runs,
        gflop_per_tile: gflop,
        wall_s_per_tile_median: wall,
        wall_s_per_tile_min: reports[main].wall_s_per_tile_min,
        cpu_s_per_tile_median: cpu,
        gflops_wall,
        gflops_per_core_cpu_s: gflops_core,
        pct_of_peak_wall: 100.0 * gflops_wall / peak.gflops_wall,
        pct_of_peak_per_core: 100.0 * gflops_core / peak.gflops_per_core_cpu_s,
        fma_peak: peak,
        load_average: super::load_average(),
        auto_math: model.resolve_math(VisionMath::Auto)?.describe(),
        int8,
        paths: reports,
    })
}

impl std::fmt::Display for VisionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.fma_peak;
        writeln!(f, "vision bench: {} ({:.0} MB), encoder ISA {}, {} threads", self.mmproj, self.file_bytes as f64 / 1e6, self.encoder_isa, self.threads)?;
        writeln!(
            f,
            "f32 FMA peak ({}, {} threads): {:.1} GFLOP/s wall, {:.1} GFLOP per core-second; load {}",
            p.isa, p.threads, p.gflops_wall, p.gflops_per_core_cpu_s, self.load_average
        )?;
        write!(
            f,
            "{:.1} GFLOP/tile: wall {:.3} s/tile (median of {} runs × {} tiles, min {:.3}) = {:.1} GFLOP/s = {:.1}% of peak; \
             CPU {:.2} core-s/tile = {:.1} GFLOP per core-second = {:.1}% of the per-core peak",
            self.gflop_per_tile,
            self.wall_s_per_tile_median,
            self.runs,
            self.tiles,
            self.wall_s_per_tile_min,
            self.gflops_wall,
            self.pct_of_peak_wall,
            self.cpu_s_per_tile_median,
            self.gflops_per_core_cpu_s,
            self.pct_of_peak_per_core
        )?;
        match &self.int8 {
            Some(q) => write!(
                f,
                "\nint8 linear layers, {}: wall {:.3} s/tile (min {:.3}), CPU {:.2} core-s/tile; f32/int8 = {:.2}x wall, {:.2}x CPU; \
                 per-token cosine vs f32 min {:.5}, mean {:.6}; auto picks {}",
                q.math, q.wall_s_per_tile_median, q.wall_s_per_tile_min, q.cpu_s_per_tile_median, q.speedup_wall, q.speedup_cpu, q.cosine_min, q.cosine_mean, self.auto_math
            ),
            None => write!(f, "\nint8 path not available for this file (needs Q8_0 weights); auto picks {}", self.auto_math),
        }?;
        write!(f, "\nall paths, same alternating run (load {}):", self.load_average)?;
        for r in &self.paths {
            write!(f, "\n  {:<22} wall {:.3} s/tile (min {:.3}), CPU {:.2} core-s/tile, {:.1} GFLOP per core-second", r.math, r.wall_s_per_tile_median, r.wall_s_per_tile_min, r.cpu_s_per_tile_median, r.gflops_per_core_cpu_s)?;
            if let (Some(p), Some(pct)) = (&r.peak, r.pct_of_peak_per_core) {
                write!(f, " = {pct:.1}% of {} ({:.1}/core-s)", p.isa, p.gflops_per_core_cpu_s)?;
            }
            if let (Some(x), Some(xc), Some(cmin)) = (r.vs_f32, r.vs_f32_cpu, r.cosine_min) {
                write!(f, "; vs f32 same class {x:.2}x wall, {xc:.2}x CPU, cosine min {cmin:.5}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full 0.8B shape (InternViT-300M, 4096 → 1536 projector) counts to the issue's ~723 GFLOP.
    #[test]
    fn full_shape_flop_count() {
        let cfg = VisionConfig {
            image_size: 448,
            patch_size: 14,
            hidden: 1024,
            ffn: 4096,
            n_layers: 24,
            n_heads: 16,
            ln_eps: 1e-6,
            proj_ln_eps: 1e-5,
            projection_dim: 1536,
            image_mean: [0.485, 0.456, 0.406],
            image_std: [0.229, 0.224, 0.225],
            downsample_ratio: 0.5,
            ps_version: h2ovl_runtime::vision::config::PsVersion::V2,
            select_layer: -1,
            use_msac: false,
            use_thumbnail: true,
            min_dynamic_patch: 1,
            max_dynamic_patch: 6,
        };
        let g = flop_per_tile(&cfg, cfg.layers_to_run().unwrap()) / 1e9;
        assert!((g - 723.0).abs() < 0.01 * 723.0, "{g} GFLOP");
    }
}
