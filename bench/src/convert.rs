//! Conversion benchmark: wall time, CPU time and peak RSS of [`h2ovl_convert::convert`] in this
//! process. Run it from a fresh process (`h2ovl bench convert`) so the peak RSS (getrusage
//! `ru_maxrss`, the process's high-water mark) is the conversion's own: the converter streams
//! tensors one at a time, so it stays far below the checkpoint size.
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct ConvertBenchOptions {
    /// HF checkpoint folder.
    pub input: PathBuf,
    /// Where the GGUFs go; `None` = a temporary folder deleted afterwards.
    pub outdir: Option<PathBuf>,
    pub quant: LlmQuant,
    pub vision_quant: VisionQuant,
    /// Converter threads (`None` = its default).
    pub threads: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConvertReport {
    pub input: String,
    pub input_bytes: u64,
    pub quant: String,
    pub vision_quant: String,
    /// Output files (already deleted when written to a temporary folder).
    pub llm: String,
    pub vision: String,
    pub llm_bytes: u64,
    pub vision_bytes: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    /// Peak resident set of this process (conversion included), bytes.
    pub peak_rss_bytes: u64,
    pub load_average: String,
}

/// Sum of the checkpoint's `*.safetensors` sizes.
fn input_bytes(dir: &std::path::Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            n += std::fs::metadata(&p)?.len();
        }
    }
    Ok(n)
}

pub fn run(o: &ConvertBenchOptions) -> Result<ConvertReport> {
    let in_bytes = input_bytes(&o.input)?;
    let (outdir, temporary) = match &o.outdir {
        Some(d) => (d.clone(), false),
        None => {
            let d = std::env::temp_dir().join(format!("h2ovl-bench-convert-{}", std::process::id()));
            (d, true)
        }
    };
    let opts = ConvertOptions {
        input: o.input.clone(),
        outdir: outdir.clone(),
        quant: o.quant,
        vision_quant: o.vision_quant,
        quiet: true,
        threads: o.threads,
    };
    let (out, wall, cpu) = super::timed(|| h2ovl_convert::convert(&opts));
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let result = out.map(|out| ConvertReport {
        input: o.input.display().to_string(),
        input_bytes: in_bytes,
        quant: format!("{:?}", o.quant),
        vision_quant: format!("{:?}", o.vision_quant),
        llm: out.llm.display().to_string(),
        vision: out.vision.display().to_string(),
        llm_bytes: size(&out.llm),
        vision_bytes: size(&out.vision),
        wall_s: wall,
        cpu_s: cpu,
        peak_rss_bytes: super::peak_rss_bytes().unwrap_or(0),
        load_average: super::load_average(),
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&outdir);
    }
    result
}

impl std::fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "convert bench: {} ({:.0} MB) -> LLM {} {:.0} MB + vision {} {:.0} MB in {:.1} s wall ({:.1} s CPU); \
             peak RSS {:.0} MB; load {}",
            self.input,
            self.input_bytes as f64 / 1e6,
            self.quant,
            self.llm_bytes as f64 / 1e6,
            self.vision_quant,
            self.vision_bytes as f64 / 1e6,
            self.wall_s,
            self.cpu_s,
            self.peak_rss_bytes as f64 / 1e6,
            self.load_average
        )
    }
}
