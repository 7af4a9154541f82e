//! Full-size conversion benchmark (not a test: 4.3 GB of input for the 2b).
//!
//! ```text
//! cargo run --release -p h2ovl-convert --example convert_bench -- gen 2b /tmp/h2ovl-mississippi-2b
//! cargo run --release -p h2ovl-convert --example convert_bench -- convert /tmp/h2ovl-mississippi-2b /tmp/gguf q4_k_m q8_0
//! ```
//! `convert` prints wall time, output sizes and the process's peak RSS (VmHWM), which stays far
//! below the checkpoint size because tensors are streamed one at a time.
use anyhow::{bail, Context, Result};
use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") if args.len() == 3 => {
            let preset = h2ovl_models::Preset::from_name(&args[1])?;
            let g = h2ovl_models::generate(&preset.spec(), &PathBuf::from(&args[2]), &Default::default())?;
            println!("{} ({} tensors, {} bytes)", g.dir.display(), g.tensors, g.safetensors_bytes);
        }
        Some("convert") if args.len() == 5 => {
            let opts = ConvertOptions {
                input: PathBuf::from(&args[1]),
                outdir: PathBuf::from(&args[2]),
                quant: LlmQuant::parse(&args[3])?,
                vision_quant: VisionQuant::parse(&args[4])?,
                quiet: true,
                threads: None,
            };
            let input_bytes = std::fs::metadata(opts.input.join("model.safetensors")).context("model.safetensors")?.len();
            let t = Instant::now();
            let out = h2ovl_convert::convert(&opts)?;
            let secs = t.elapsed().as_secs_f64();
            let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
            println!(
                "input {:.0} MB -> {} {:.0} MB + {} {:.0} MB in {secs:.1} s; peak RSS {:.0} MB",
                input_bytes as f64 / 1e6,
                out.llm.display(),
                size(&out.llm),
                out.vision.display(),
                size(&out.vision),
                peak_rss_mb().unwrap_or(f64::NAN)
            );
        }
        _ => bail!("usage: convert_bench gen <preset> <dir> | convert <dir> <outdir> <quant> <vision-quant>"),
    }
    Ok(())
}
