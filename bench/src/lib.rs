//! h2ovl-bench: the measuring tools over the runtime library, kept out of what an embedding
//! application links (as llama.cpp keeps `tools/llama-bench` beside the library).
//!
//! `h2ovl bench`: reproducible figures for the README, one module per stage.
//!
//! - [`vision`]: per-tile encode time of our InternViT + projector, GFLOP/s counted from the
//!   model's shapes, and the share of this CPU's f32 FMA peak ([`fma`]).
//! - [`llm`]: prefill/decode tok/s through our [`h2ovl_runtime::llm::Pipeline`] against llama.cpp's bare
//!   decode loop on the same GGUF, threads and context settings, in one run.
//! - [`convert`]: wall time and peak RSS of a conversion.
//! - [`e2e`]: one image and question end to end; [`clip`]: llama.cpp's clip on the same mmproj.
//!
//! `h2ovl eval`: [`eval`] measures what a quantization costs in quality (KL, top-1, answers).
//!
//! Every report is `serde::Serialize` (the CLI's `--json`) and carries CPU time next to wall time:
//! on a shared machine wall time depends on the other load, CPU time much less.
/// Our encoder vs llama.cpp's clip (libmtmd) on the same mmproj; the comparison needs feature `mtmd`.
pub mod clip;
pub mod convert;
pub mod e2e;
pub mod eval;
pub mod fma;
pub mod llm;
pub mod vision;

/// CPU seconds (user + system) this process has used so far (getrusage; NaN if it fails).
pub fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes one rusage struct into the pointer we own.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call above.
            let ru = unsafe { ru.assume_init() };
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            return tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    f64::NAN
}

/// Peak resident set of this process so far, in bytes (getrusage's ru_maxrss; None if unknown).
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: as in `cpu_seconds`.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call above.
            let ru = unsafe { ru.assume_init() };
            // Linux reports kilobytes (macOS bytes).
            let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
            return Some(ru.ru_maxrss as u64 * unit);
        }
    }
    None
}

/// The current 1/5/15-minute load average (Linux), so a report says how shared the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Median of a non-empty sample (upper median for even counts); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Cosine similarity in f64; two zero vectors count as identical (1), one zero vector as 0.
/// The one definition behind every embedding comparison here (eval, bench vision, bench clip).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        return 1.0;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Per-token (per-row) cosine of two `[rows, width]` embedding matrices: (min, mean, rows).
/// `None` when the shapes differ (different tilings cannot be compared row by row).
pub fn row_cosines(a: &[f32], b: &[f32], width: usize) -> Option<(f64, f64, usize)> {
    if width == 0 || a.len() != b.len() || a.len() % width != 0 || a.is_empty() {
        return None;
    }
    let (mut min, mut sum, mut n) = (f64::INFINITY, 0.0, 0usize);
    for (ra, rb) in a.chunks_exact(width).zip(b.chunks_exact(width)) {
        let c = cosine(ra, rb);
        min = min.min(c);
        sum += c;
        n += 1;
    }
    Some((min, sum / n as f64, n))
}

/// Wall and CPU seconds of one call.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let c0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    let r = f();
    (r, t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_rss_is_known() {
        let c0 = cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > c0, "getrusage CPU time did not advance");
        #[cfg(target_os = "linux")]
        assert!(peak_rss_bytes().unwrap() > 1 << 20);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn cosines_of_vectors_and_rows() {
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-15);
        assert_eq!((cosine(&[0.0; 3], &[0.0; 3]), cosine(&[0.0; 2], &[1.0, 0.0])), (1.0, 0.0));
        let (min, mean, n) = row_cosines(&[1.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        assert_eq!(n, 2);
        assert!((min - 0.5f64.sqrt()).abs() < 1e-15, "{min}");
        assert!((mean - (1.0 + 0.5f64.sqrt()) / 2.0).abs() < 1e-15);
        assert!(row_cosines(&[1.0, 2.0], &[1.0], 1).is_none());
    }
}

#[cfg(test)]
mod tests_tiny;

/// One report as a JSON object (the CLI's `--json`; callers need no serde dependency).
pub fn to_json<T: serde::Serialize>(report: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(report)?)
}
