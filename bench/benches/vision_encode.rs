//! Benchmark (not a test): encode one 448 tile at the full InternViT-300M shape (1024 wide,
//! 24 layers, 16 heads, MLP 4096; 0.8B projector 4096 → 1536) with random weights, for F32, F16
//! and Q8_0 vision GGUFs, and compare the achieved GFLOP/s with this machine's f32 FMA peak
//! (measured here with a tight register-only FMA loop on every thread). Q8_0 runs twice: f32
//! arithmetic and int8 linear layers (`VisionMath::Int8`), with the per-token cosine between them;
//! the fc1 GEMM alone is timed in f32 (F32 weights) and int8 (Q8_0 weights).
//!
//! `cargo bench -p h2ovl-bench --bench vision_encode [-- THREADS [RUNS [f32,f16,q8_0]]]` (default 2
//! threads, 3 timed runs after one warm-up, all three types). The random mmproj files are written with h2ovl-format's GGUF
//! writer into a temporary folder and memory-mapped exactly as in production.
use anyhow::Result;
use h2ovl_format::gguf::{GgmlType, GgufValue, GgufWriter, PlannedTensor};
use h2ovl_format::quant;
use h2ovl_runtime::vision::{EncodeOptions, VisionMath, VisionModel};
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

/// FLOPs per tile, as the issue counts them (GEMMs incl. attention, 2 per multiply-add).
const GFLOP_PER_TILE: f64 = 723.0;

const D: usize = 1024;
const F: usize = 4096;
const L: usize = 24;
const HEADS: usize = 16;
const LLM_H: usize = 1536;
const NPOS: usize = 1025;

struct Rng(u64);
impl Rng {
    /// Uniform in [-a, a).
    fn fill(&mut self, v: &mut [f32], a: f32) {
        for x in v {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *x = ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a;
        }
    }
}

/// (name, ne, kind): kind 0 = 2-D weight (quantized), 1 = bias/embedding, 2 = LN weight (1.0), 3 = layer scale.
fn inventory() -> Vec<(String, Vec<usize>, u8)> {
    let mut t = vec![
        ("v.patch_embd.weight".to_string(), vec![14, 14, 3, D], 0),
        ("v.patch_embd.bias".into(), vec![D], 1),
        ("v.class_embd".into(), vec![D], 1),
        ("v.position_embd.weight".into(), vec![D, NPOS], 1),
    ];
    for i in 0..L {
        let b = |s: &str| format!("v.blk.{i}.{s}");
        for (n, k) in [("attn_q", D), ("attn_k", D), ("attn_v", D), ("attn_out", D)] {
            t.push((b(&format!("{n}.weight")), vec![k, D], 0));
            t.push((b(&format!("{n}.bias")), vec![D], 1));
        }
        t.push((b("ffn_up.weight"), vec![D, F], 0));
        t.push((b("ffn_up.bias"), vec![F], 1));
        t.push((b("ffn_down.weight"), vec![F, D], 0));
        t.push((b("ffn_down.bias"), vec![D], 1));
        for n in ["ln1", "ln2"] {
            t.push((b(&format!("{n}.weight")), vec![D], 2));
            t.push((b(&format!("{n}.bias")), vec![D], 1));
        }
        t.push((b("ls1.weight"), vec![D], 3));
        t.push((b("ls2.weight"), vec![D], 3));
    }
    t.push(("mm.model.mlp.0.weight".into(), vec![4 * D], 2));
    t.push(("mm.model.mlp.0.bias".into(), vec![4 * D], 1));
    t.push(("mm.model.mlp.1.weight".into(), vec![4 * D, LLM_H], 0));
    t.push(("mm.model.mlp.1.bias".into(), vec![LLM_H], 1));
    t.push(("mm.model.mlp.3.weight".into(), vec![LLM_H, LLM_H], 0));
    t.push(("mm.model.mlp.3.bias".into(), vec![LLM_H], 1));
    t
}

/// Writes a random full-size vision GGUF with 2-D weights of type `ty` (patch embedding F16 when
/// `ty` is Q8_0, since 588 is not a multiple of 32 — as the converter does).
fn write_mmproj(path: &Path, ty: GgmlType) -> Result<()> {
    let mut w = GgufWriter::new(BufWriter::new(std::fs::File::create(path)?));
    let u = |v: usize| GgufValue::U32(v as u32);
    let arr = |v: [f32; 3]| GgufValue::Array(v.iter().map(|x| GgufValue::F32(*x)).collect());
    for (k, v) in [
        ("general.architecture", GgufValue::String("clip".into())),
        ("clip.vision.image_size", u(448)),
        ("clip.vision.patch_size", u(14)),
        ("clip.vision.embedding_length", u(D)),
        ("clip.vision.feed_forward_length", u(F)),
        ("clip.vision.block_count", u(L)),
        ("clip.vision.attention.head_count", u(HEADS)),
        ("clip.vision.attention.layer_norm_epsilon", GgufValue::F32(1e-6)),
        ("clip.vision.projection_dim", u(LLM_H)),
        ("clip.vision.image_mean", arr([0.485, 0.456, 0.406])),
        ("clip.vision.image_std", arr([0.229, 0.224, 0.225])),
        ("h2ovl.downsample_ratio", GgufValue::F32(0.5)),
        ("h2ovl.ps_version", GgufValue::String("v2".into())),
        ("h2ovl.select_layer", GgufValue::I32(-1)),
    ] {
        w.add_kv(k, v)?;
    }
    let inv = inventory();
    let tyof = |name: &str, kind: u8| match (kind, ty) {
        (0, GgmlType::Q8_0) if name == "v.patch_embd.weight" => GgmlType::F16,
        (0, t) => t,
        _ => GgmlType::F32,
    };
    for (name, ne, kind) in &inv {
        w.add_tensor(PlannedTensor { name: name.clone(), ty: tyof(name, *kind), ne: ne.clone() })?;
    }
    w.write_header()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, ne, kind) in &inv {
        let n: usize = ne.iter().product();
        let mut v = vec![0f32; n];
        match kind {
            0 => rng.fill(&mut v, 1.0 / (ne[0] as f32).sqrt()),
            1 => rng.fill(&mut v, 0.02),
            2 => v.fill(1.0),
            _ => v.fill(0.1),
        }
        w.write_tensor_data(name, &quant::quantize(tyof(name, *kind), &v, ne[0]))?;
    }
    w.finish()?;
    Ok(())
}

use h2ovl_bench::cpu_seconds;

/// f32 FMA peak on `threads` threads (the shared `h2ovl bench` probe): (GFLOP per wall second,
/// GFLOP per CPU second of one core).
fn fma_peak(threads: usize) -> (f64, f64) {
    let p = h2ovl_bench::fma::measure(threads, 200_000_000);
    println!("FMA-peak loop: {}", p.isa);
    (p.gflops_wall, p.gflops_per_core_cpu_s)
}

/// The fc1 GEMM alone (1025 × 1024 → 4096, F32 weights), to separate GEMM efficiency from the rest.
fn gemm_only(isa: h2ovl_runtime::vision::kernels::Isa, threads: usize) -> Result<()> {
    use h2ovl_runtime::vision::kernels::gemm::{gemm, BMat, Epilogue, WType, Weight};
    let (m, n, k) = (1025, F, D);
    let mut rng = Rng(7);
    let mut a = vec![0f32; m * k];
    rng.fill(&mut a, 1.0);
    let mut w = vec![0f32; n * k];
    rng.fill(&mut w, 0.03);
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let b = BMat::Weight(Weight::new("fc1", WType::F32, n, k, &bytes)?);
    let mut c = vec![0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let flop = 2.0 * (m * n * k) as f64 / 1e9;
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        pool.install(|| gemm(isa, &a, k, m, &b, &mut c, n, Epilogue::None, true));
        best = best.min(t0.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c0);
    }
    println!(
        "GEMM 1025x1024x4096 F32: {:.1} GFLOP/s wall (best of 5), {:.1} GFLOP per core-second",
        flop / best,
        flop / best_cpu
    );
    // The same product in int8 (Q8_0 weights requantized per row while packing).
    use h2ovl_runtime::vision::kernels::{qgemm, qisa};
    let qbytes = quant::quantize(GgmlType::Q8_0, &w, k);
    let qw = Weight::new("fc1", WType::Q8_0, n, k, &qbytes)?;
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        pool.install(|| qgemm::qgemm(qisa(), isa, &a, k, m, &qw, &mut c, n, Epilogue::None, true));
        best = best.min(t0.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c0);
    }
    println!(
        "GEMM 1025x1024x4096 int8 ({:?}): {:.1} GOP/s wall (best of 5), {:.1} GOP per core-second",
        qisa(),
        flop / best,
        flop / best_cpu
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let threads: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (peak, peak_core) = fma_peak(threads);
    println!(
        "f32 FMA peak ({threads} threads, 10 independent ymm FMA chains): {peak:.1} GFLOP/s wall, \
         {peak_core:.1} GFLOP per CPU-second of one core ({:.1} GFLOP/s for {threads} unshared cores); load {}",
        peak_core * threads as f64,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let isa = h2ovl_runtime::vision::kernels::isa();
    println!("vision ISA: {isa:?}");
    gemm_only(isa, threads)?;
    let dir = tempfile::tempdir()?;
    let mut rng = Rng(42);
    let mut pixels = vec![0f32; 3 * 448 * 448];
    rng.fill(&mut pixels, 2.0);
    let types: Vec<GgmlType> = match args.get(2).map(String::as_str) {
        Some(list) => list
            .split(',')
            .map(|t| match t.to_ascii_lowercase().as_str() {
                "f32" => GgmlType::F32,
                "f16" => GgmlType::F16,
                _ => GgmlType::Q8_0,
            })
            .collect(),
        None => vec![GgmlType::F32, GgmlType::F16, GgmlType::Q8_0],
    };
    for ty in types {
        let path = dir.path().join(format!("mmproj-bench-{ty}.gguf"));
        write_mmproj(&path, ty)?;
        let model = VisionModel::load(&path)?;
        let maths: &[VisionMath] = if ty == GgmlType::Q8_0 { &[VisionMath::F32, VisionMath::Int8] } else { &[VisionMath::F32] };
        let mut f32_emb = None;
        for &math in maths {
            let o = EncodeOptions { threads, math };
            let emb = model.encode_opts(&pixels, 1, &o)?; // warm-up (pages the weights in)
            assert!(emb.iter().all(|v| v.is_finite()), "non-finite output");
            let (mut times, mut cpus) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let c0 = cpu_seconds();
                let t0 = Instant::now();
                std::hint::black_box(model.encode_opts(&pixels, 1, &o)?);
                times.push(t0.elapsed().as_secs_f64());
                cpus.push(cpu_seconds() - c0);
            }
            times.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            let (med, cpu) = (times[times.len() / 2], cpus[cpus.len() / 2]);
            let gf = GFLOP_PER_TILE / med;
            let gf_cpu = GFLOP_PER_TILE / cpu;
            println!(
                "{ty:>4} {math:>4}: wall {med:.3} s/tile (median of {runs}, min {:.3}) = {gf:.1} GFLOP/s = {:.1}% of wall peak; \
                 CPU {cpu:.2} core-s/tile = {gf_cpu:.1} GFLOP per core-second = {:.1}% of the per-core peak \
                 (≈ {:.2} s/tile on {threads} unshared cores)",
                times[0],
                100.0 * gf / peak,
                100.0 * gf_cpu / peak_core,
                cpu / threads as f64
            );
            match &f32_emb {
                None => f32_emb = Some(emb),
                Some(base) => {
                    let (min, mean, _) = h2ovl_bench::row_cosines(&emb, base, LLM_H).expect("same shapes");
                    println!("{ty:>4} {math:>4} vs f32 arithmetic: per-token cosine min {min:.5}, mean {mean:.6}");
                }
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
