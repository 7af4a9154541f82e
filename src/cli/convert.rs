//! `h2ovl convert DIR --outdir OUT`: HF H2OVL checkpoint → LLM GGUF + vision (mmproj) GGUF.
use anyhow::Result;
use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// HuggingFace H2OVL checkpoint folder (config.json, model.safetensors, tokenizer.model, ...).
    pub dir: PathBuf,
    /// Folder for the two GGUF files (created if missing; never the input folder).
    #[arg(long)]
    pub outdir: PathBuf,
    /// LLM weight type: f32, f16, q8_0, q4_0, q4_k_m.
    #[arg(long, default_value = "q4_k_m", value_parser = parse_quant)]
    pub quant: LlmQuant,
    /// Vision tower + projector weight type: f32, f16, q8_0.
    #[arg(long = "vision-quant", default_value = "q8_0", value_parser = parse_vision_quant)]
    pub vision_quant: VisionQuant,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Worker threads for quantization (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

fn parse_quant(s: &str) -> Result<LlmQuant, String> {
    LlmQuant::parse(s).map_err(|e| e.to_string())
}

fn parse_vision_quant(s: &str) -> Result<VisionQuant, String> {
    VisionQuant::parse(s).map_err(|e| e.to_string())
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let opts = ConvertOptions {
        input: a.dir,
        outdir: a.outdir,
        quant: a.quant,
        vision_quant: a.vision_quant,
        quiet: a.quiet,
        threads: a.threads,
    };
    let out = h2ovl_convert::convert_cancellable(&opts, &h2ovl_runtime::interrupt::check)?;
    // The paths are the last lines of stdout so scripts can pick them up.
    println!("{}", out.llm.display());
    println!("{}", out.vision.display());
    Ok(())
}
