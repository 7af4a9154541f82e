//! How the GEMM cache blocking was chosen: times the encoder's three linear shapes (QKV/output
//! 1025×1024·1024ᵀ, fc1 1025×1024·4096ᵀ, fc2 1025×4096·1024ᵀ; Q8_0 weights, as production) for
//! each f32 ISA under candidate `(kc, mc, nc)` blockings, and the int8 GEMM for each int8 ISA
//! under candidate columns-per-task. Candidates are timed interleaved (best of `RUNS` rounds), so
//! load drifts hit all alike; ranked by CPU time (GFLOP per core-second), which preemption by
//! other load on a shared machine changes much less than wall time.
//!
//! `cargo run --release -p h2ovl-bench --example gemm_blocking [-- THREADS [RUNS]]`; set
//! `GEMM_ISAS=avx512` (names as in `{:?}`, comma-separated, lower case) to time only some ISAs.
use h2ovl_format::quant::{quantize, GgmlType};
use h2ovl_runtime::vision::kernels::gemm::{gemm_blocked, BMat, Blocking, Epilogue, WType, Weight};
use h2ovl_runtime::vision::kernels::{qgemm, qsimd_isas, simd_isas, Isa};
use h2ovl_bench::cpu_seconds;
use std::time::Instant;

/// Best (wall, CPU) seconds of `f` over the rounds so far, updated in place.
fn time(best: &mut (f64, f64), f: impl FnOnce()) {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    f();
    best.0 = best.0.min(t0.elapsed().as_secs_f64());
    best.1 = best.1.min(cpu_seconds() - c0);
}

fn wanted(name: &str) -> bool {
    match std::env::var("GEMM_ISAS") {
        Ok(v) => v.split(',').any(|x| x.trim().eq_ignore_ascii_case(name)),
        Err(_) => true,
    }
}

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
    for kc in [256, 384, 512] {
        for mc_strips in [8, 14, 32] {
            for nc_panels in [8, 16] {
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
    // Attention of one layer (16 heads of 64, 1025 tokens): QKᵀ and PV GEMMs + softmax.
    for isa in simd_isas().into_iter().filter(|i| wanted(&format!("{i:?}"))) {
        let (t, d) = (m, 1024);
        let (q, kk, v) = (fill(t * d, 5, 1.0), fill(t * d, 6, 1.0), fill(t * d, 7, 1.0));
        let mut o = vec![0f32; t * d];
        let qbs = [h2ovl_runtime::vision::attention::QB, 42, 84, 126, 210, 252, 336];
        let mut best = vec![(f64::MAX, f64::MAX); qbs.len()];
        for round in 0..=runs {
            for (i, qb) in qbs.iter().enumerate() {
                let mut b = if round == 0 { (f64::MAX, f64::MAX) } else { best[i] };
                time(&mut b, || pool.install(|| h2ovl_runtime::vision::attention::attention_qb(isa, *qb, &q, &kk, &v, &mut o, t, d, 16)));
                if round > 0 {
                    best[i] = b;
                }
            }
        }
        let gflop = 4.0 * (t * t * d) as f64 / 1e9;
        let s: Vec<String> = qbs.iter().zip(&best).map(|(qb, b)| format!("{qb}: {:.1}/{:.1}", gflop / b.0, gflop / b.1)).collect();
        println!("attention {isa:?}: GFLOP/s wall / per core-second by query rows per task (default first) — {}", s.join(", "));
    }
    for (name, n, k) in [("qkv", 1024usize, 1024usize), ("fc1", 4096, 1024), ("fc2", 1024, 4096)] {
        let a = fill(m * k, 1, 1.0);
        let w = fill(n * k, 2, 0.03);
        let bytes = quantize(GgmlType::Q8_0, &w, k);
        let wt = Weight::new(name, WType::Q8_0, n, k, &bytes).unwrap();
        let b = BMat::Weight(wt);
        let mut c = vec![0f32; m * n];
        let gflop = 2.0 * (m * n * k) as f64 / 1e9;
        for isa in simd_isas().into_iter().filter(|i| wanted(&format!("{i:?}"))) {
            let cands = candidates(isa);
            let mut best = vec![(f64::MAX, f64::MAX); cands.len()];
            // One untimed call per candidate first (buffers, page faults).
            for round in 0..=runs {
                for (i, bl) in cands.iter().enumerate() {
                    let mut t = if round == 0 { (f64::MAX, f64::MAX) } else { best[i] };
                    time(&mut t, || pool.install(|| gemm_blocked(isa, *bl, &a, k, m, &b, &mut c, n, Epilogue::None, true)));
                    if round > 0 {
                        best[i] = t;
                    }
                }
            }
            let mut order: Vec<usize> = (0..cands.len()).collect();
            order.sort_by(|x, y| best[*x].1.total_cmp(&best[*y].1));
            let show = |i: usize| format!("{:?}: {:.1} GFLOP/s wall, {:.1} GFLOP per core-second", cands[i], gflop / best[i].0, gflop / best[i].1);
            println!("{name} {isa:?}: default {}", show(0));
            for &i in order.iter().take(6) {
                println!("  {}", show(i));
            }
        }
        for q in qsimd_isas().into_iter().filter(|q| wanted(&format!("{q:?}"))) {
            let cands = [qgemm::QNC, 32, 64, 128, 256];
            let mut best = vec![(f64::MAX, f64::MAX); cands.len()];
            for round in 0..=runs {
                for (i, qnc) in cands.iter().enumerate() {
                    let mut t = if round == 0 { (f64::MAX, f64::MAX) } else { best[i] };
                    time(&mut t, || pool.install(|| qgemm::qgemm_blocked(q, q.f32_isa(), *qnc, &a, k, m, &wt, &mut c, n, Epilogue::None, true)));
                    if round > 0 {
                        best[i] = t;
                    }
                }
            }
            let s: Vec<String> = cands.iter().zip(&best).skip(1).map(|(q, t)| format!("{q}: {:.0}/{:.0}", gflop / t.0, gflop / t.1)).collect();
            println!("{name} int8 {q:?}: GOP/s wall / per core-second by columns per task (default {}) — {}", qgemm::QNC, s.join(", "));
        }
    }
}
