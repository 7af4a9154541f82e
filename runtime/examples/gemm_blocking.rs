//! How the GEMM cache blocking was chosen: times the encoder's three linear shapes (QKV/output
//! 1025×1024·1024ᵀ, fc1 1025×1024·4096ᵀ, fc2 1025×4096·1024ᵀ; Q8_0 weights, as production) for
//! each f32 ISA under candidate `(kc, mc, nc)` blockings, and the int8 GEMM for each int8 ISA
//! under candidate columns-per-task. Candidates are timed interleaved (best of `RUNS` rounds), so
//! load drifts hit all alike.
//!
//! `cargo run --release -p h2ovl-runtime --example gemm_blocking [-- THREADS [RUNS]]`
use h2ovl_convert::quant::{quantize, GgmlType};
use h2ovl_runtime::vision::kernels::gemm::{gemm_blocked, BMat, Blocking, Epilogue, WType, Weight};
use h2ovl_runtime::vision::kernels::{qgemm, qsimd_isas, simd_isas, Isa};
use std::time::Instant;

fn fill(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect()
}

fn candidates(isa: Isa) -> Vec<Blocking> {
    let (mr, nr) = isa.tile();
    let mut v = vec![isa.blocking()];
    for kc in [128, 192, 256, 384, 512] {
        for mc_strips in [8, 14, 24, 32] {
            for nc_panels in [8, 16, 32] {
                let b = Blocking { kc, mc: mc_strips * mr, nc: nc_panels * nr };
                if !v.contains(&b) {
                    v.push(b);
                }
            }
        }
    }
    v
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let threads = args.first().copied().unwrap_or(2);
    let runs = args.get(1).copied().unwrap_or(3);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    println!("threads {threads}, best of {runs}; load {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let m = 1025;
    for (name, n, k) in [("qkv", 1024usize, 1024usize), ("fc1", 4096, 1024), ("fc2", 1024, 4096)] {
        let a = fill(m * k, 1, 1.0);
        let w = fill(n * k, 2, 0.03);
        let bytes = quantize(GgmlType::Q8_0, &w, k);
        let wt = Weight::new(name, WType::Q8_0, n, k, &bytes).unwrap();
        let b = BMat::Weight(wt);
        let mut c = vec![0f32; m * n];
        let gflop = 2.0 * (m * n * k) as f64 / 1e9;
        for isa in simd_isas() {
            let cands = candidates(isa);
            let mut best = vec![f64::MAX; cands.len()];
            for _ in 0..runs {
                for (i, bl) in cands.iter().enumerate() {
                    let t0 = Instant::now();
                    pool.install(|| gemm_blocked(isa, *bl, &a, k, m, &b, &mut c, n, Epilogue::None, true));
                    best[i] = best[i].min(t0.elapsed().as_secs_f64());
                }
            }
            let mut order: Vec<usize> = (0..cands.len()).collect();
            order.sort_by(|x, y| best[*x].total_cmp(&best[*y]));
            println!("{name} {isa:?}: default {:?} {:.1} GFLOP/s", cands[0], gflop / best[0]);
            for &i in order.iter().take(5) {
                println!("  {:?}: {:.1} GFLOP/s", cands[i], gflop / best[i]);
            }
        }
        for q in qsimd_isas() {
            let cands = [qgemm::QNC, 32, 64, 128, 256, 512];
            let mut best = vec![f64::MAX; cands.len()];
            for _ in 0..runs {
                for (i, qnc) in cands.iter().enumerate() {
                    let t0 = Instant::now();
                    pool.install(|| qgemm::qgemm_blocked(q, q.f32_isa(), *qnc, &a, k, m, &wt, &mut c, n, Epilogue::None, true));
                    best[i] = best[i].min(t0.elapsed().as_secs_f64());
                }
            }
            let s: Vec<String> = cands.iter().zip(&best).skip(1).map(|(q, t)| format!("{q}: {:.1}", gflop / t)).collect();
            println!("{name} int8 {q:?}: GOP/s by columns per task (default {}) — {}", qgemm::QNC, s.join(", "));
        }
    }
}
