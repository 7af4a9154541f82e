//! End-to-end benchmark: time to first token for one image, the way a user meets it.
//!
//! Each run loads a fresh [`Pipeline`] (so the image-embedding cache cannot skip the encode),
//! then asks one question about one image and stops at the first piece of answer text. Reported:
//! load time, TTFT from the question (image decode + tiling + vision encode + prefill + first
//! sample) with its split, and the cold TTFT from process-level start of the load. Peak RSS is the
//! whole process's, against the bound `1.15 × GGUF bytes + KV cache + one tile's
//! activations` (for a separate-process measurement use `quant-tests/scripts/run_bench.py`).
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Result};
use serde::Serialize;

use h2ovl_runtime::llm::{GenerationConfig, History, ImageInput, Pipeline, PipelineOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct E2eBenchOptions {
    pub model: PathBuf,
    pub mmproj: PathBuf,
    pub image: PathBuf,
    pub prompt: String,
    pub runs: usize,
    /// Pipeline options (threads, tiles, flash attention, vision math…).
    pub pipeline: PipelineOptions,
}

#[derive(Clone, Debug, Serialize)]
pub struct E2eReport {
    pub model: String,
    pub mmproj: String,
    pub image: String,
    pub threads: usize,
    pub runs: usize,
    pub tiles: usize,
    pub prompt_tokens: usize,
    pub load_s_median: f64,
    /// From the question to the first answer text (model already loaded), median.
    pub ttft_s_median: f64,
    pub ttft_s: Vec<f64>,
    /// Load + TTFT, median.
    pub cold_ttft_s_median: f64,
    /// Split of the median run's TTFT as the pipeline times it.
    pub image_encode_s_median: f64,
    pub prefill_s_median: f64,
    pub peak_rss_bytes: Option<u64>,
    pub gguf_bytes: u64,
    pub load_average: String,
}

/// Runs the benchmark (see the module doc).
pub fn run(o: &E2eBenchOptions) -> Result<E2eReport> {
    ensure!(o.runs > 0, "--runs must be at least 1");
    ensure!(o.image.is_file(), "image {} does not exist or is not a file", o.image.display());
    let cfg = GenerationConfig { max_new_tokens: 2, ..Default::default() };
    let (mut load, mut ttft, mut enc, mut pre) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut tiles, mut prompt_tokens) = (0, 0);
    for _ in 0..o.runs {
        let t0 = Instant::now();
        let mut pipe = Pipeline::load(&o.model, Some(&o.mmproj), o.pipeline.clone())?;
        let t1 = Instant::now();
        let mut first: Option<Instant> = None;
        let out = pipe.chat_stream(&[ImageInput::Path(o.image.clone())], &o.prompt, &cfg, &History::new(), &mut |piece| {
            if first.is_none() && !piece.is_empty() {
                first = Some(Instant::now());
            }
        })?;
        // An answer whose first pieces were all empty (e.g. an immediate stop): count the end.
        let first = first.unwrap_or_else(Instant::now);
        load.push((t1 - t0).as_secs_f64());
        ttft.push((first - t1).as_secs_f64());
        enc.push(out.timings.image_encode_s);
        pre.push(out.timings.prefill_s);
        tiles = out.image_tiles.iter().sum();
        prompt_tokens = out.prompt_ids.len();
    }
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    Ok(E2eReport {
        model: o.model.display().to_string(),
        mmproj: o.mmproj.display().to_string(),
        image: o.image.display().to_string(),
        threads: o.pipeline.threads,
        runs: o.runs,
        tiles,
        prompt_tokens,
        load_s_median: super::median(&load),
        ttft_s_median: super::median(&ttft),
        cold_ttft_s_median: super::median(&load.iter().zip(&ttft).map(|(a, b)| a + b).collect::<Vec<_>>()),
        ttft_s: ttft,
        image_encode_s_median: super::median(&enc),
        prefill_s_median: super::median(&pre),
        peak_rss_bytes: super::peak_rss_bytes(),
        gguf_bytes: size(&o.model) + size(&o.mmproj),
        load_average: super::load_average(),
    })
}

impl std::fmt::Display for E2eReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "e2e bench: {} + {}, {} threads, {} tile(s), {} prompt tokens, median of {}; load {}", self.model, self.mmproj, self.threads, self.tiles, self.prompt_tokens, self.runs, self.load_average)?;
        writeln!(
            f,
            "  TTFT {:.2} s (image encode {:.2} s + prefill {:.2} s + rest), model load {:.2} s, cold TTFT {:.2} s",
            self.ttft_s_median,
            self.image_encode_s_median,
            self.prefill_s_median,
            self.load_s_median,
            self.cold_ttft_s_median
        )?;
        if let Some(rss) = self.peak_rss_bytes {
            writeln!(f, "  peak RSS {:.0} MB = {:.2} × GGUF bytes ({:.0} MB)", rss as f64 / 1e6, rss as f64 / self.gguf_bytes as f64, self.gguf_bytes as f64 / 1e6)?;
        }
        Ok(())
    }
}
