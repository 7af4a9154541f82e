//! `h2ovl bench vision|llm|convert|clip|e2e`: the README's figures, reproducible on any machine. The
//! measuring code lives in `h2ovl_bench`; this file parses options and prints either
//! one human-readable report or (`--json`) one JSON object.
use anyhow::Result;
use clap::{Args, Subcommand};
use h2ovl_convert::{LlmQuant, VisionQuant};
use h2ovl_bench::{self as bench, convert, llm, vision};
use h2ovl_runtime::llm::KvType;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-tile time of our vision encoder, GFLOP/s and share of this CPU's measured f32 FMA peak.
    Vision(VisionArgs),
    /// Prefill/decode tok/s through our runtime vs llama.cpp's bare decode loop (same GGUF, threads, context).
    Llm(LlmArgs),
    /// Wall time, CPU time and peak RSS of converting a checkpoint.
    Convert(ConvertArgs),
    /// Our vision encoder vs llama.cpp's own clip encoder (mtmd) on the same mmproj, tile and
    /// threads: time ratio and per-token cosine. Needs a build with `--features mtmd`.
    Clip(ClipArgs),
    /// Time to first token for one image (load, encode, prefill split) and the process's peak RSS.
    E2e(E2eArgs),
    /// The LLM benchmark on several llama.cpp CPU variants (e.g. haswell vs the auto choice), one
    /// process per run, alternating: prefill/decode medians and ratios.
    Cpu(super::bench_cpu::CpuArgs),
}

#[derive(Args)]
pub struct E2eArgs {
    /// Model files and runtime settings, as for `h2ovl run` (`--mmproj` is required here).
    #[command(flatten)]
    pub model: super::run::ModelArgs,
    /// The image to ask about.
    #[arg(long)]
    pub image: PathBuf,
    #[arg(short = 'p', long, default_value = "Describe this image in detail.")]
    pub prompt: String,
    /// Runs, each with a freshly loaded pipeline; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VisionArgs {
    /// Vision GGUF (mmproj) written by `h2ovl convert`.
    #[arg(long)]
    pub mmproj: PathBuf,
    /// Tiles per encode call.
    #[arg(long, default_value_t = 1)]
    pub tiles: usize,
    /// Threads (0 = all cores); also used for the FMA-peak loop.
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Timed runs after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LlmArgs {
    /// LLM GGUF written by `h2ovl convert` (or any llama-architecture GGUF).
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Threads (0 = all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Approximate prompt length (the chat template adds a few tokens).
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    /// Tokens generated per case.
    #[arg(long, default_value_t = 64)]
    pub gen: usize,
    /// Approximate prefix length of the decode-after-long-context case (0 = skip).
    #[arg(long, default_value_t = 1800)]
    pub long_prefix: usize,
    /// Largest llama_decode batch.
    #[arg(short = 'b', long, default_value_t = 512)]
    pub batch_size: usize,
    #[arg(long = "flash-attn", default_value = "auto", value_parser = ["on", "off", "auto"])]
    pub flash_attn: String,
    /// KV cache in f32 instead of f16.
    #[arg(long = "kv-f32")]
    pub kv_f32: bool,
    /// Repetitions of each case (ours and llama.cpp, alternating which goes first); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Skip llama.cpp's bare loop (ours only).
    #[arg(long = "no-bare")]
    pub no_bare: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// HF H2OVL checkpoint folder.
    #[arg(long)]
    pub input: PathBuf,
    /// Keep the GGUFs here (default: a temporary folder, deleted afterwards).
    #[arg(long)]
    pub outdir: Option<PathBuf>,
    /// LLM weight type: f32, f16, q8_0, q4_0, q4_k_m.
    #[arg(long, default_value = "q4_k_m")]
    pub quant: String,
    /// Vision weight type: f32, f16, q8_0.
    #[arg(long, default_value = "q8_0")]
    pub vision_quant: String,
    /// Converter threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ClipArgs {
    /// Vision GGUF (mmproj) written by `h2ovl convert`.
    #[arg(long)]
    pub mmproj: PathBuf,
    /// Text GGUF whose width equals the projector output (mtmd checks it; its weights are
    /// memory-mapped, not used).
    #[arg(long)]
    pub text_model: PathBuf,
    /// Threads for both encoders (0 = all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Timed runs of each encoder after one warm-up each; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Clip's flash attention (on = what its auto mode picks on CPU).
    #[arg(long = "flash-attn", default_value = "on", value_parser = ["on", "off"])]
    pub flash_attn: String,
    /// Image to encode, stretched to one 448 tile if needed (default: a synthetic 448×448 image).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Skip the control run of clip on a copy of the mmproj with the position rows rotated
    /// (it shows that clip's CLS-after-patches order is the whole difference).
    #[arg(long)]
    pub no_pos_control: bool,
    /// Folder for that temporary copy (default: the system temp dir).
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
    /// Show llama.cpp's and clip's log.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "mtmd")]
fn run_clip(c: ClipArgs) -> Result<()> {
    let r = bench::clip::run(&bench::clip::ClipBenchOptions {
        mmproj: c.mmproj,
        text_model: c.text_model,
        threads: c.threads,
        runs: c.runs,
        flash_attn: c.flash_attn == "on",
        image: c.image,
        pos_control: !c.no_pos_control,
        scratch_dir: c.scratch_dir,
        verbose: c.verbose,
    })?;
    print(&r, c.json, bench::to_json)
}

#[cfg(not(feature = "mtmd"))]
fn run_clip(_: ClipArgs) -> Result<()> {
    anyhow::bail!(
        "`h2ovl bench clip` needs llama.cpp's mtmd library: rebuild with `cargo build --release --features mtmd` \
         (use a separate CARGO_TARGET_DIR, e.g. CARGO_TARGET_DIR=target-mtmd, as it rebuilds llama.cpp)"
    )
}

/// Text or one JSON object; both say which kernels ran (llama.cpp's CPU variant, our vision ISA).
fn print<T: std::fmt::Display>(report: &T, json: bool, to_json: fn(&T) -> Result<String>) -> Result<()> {
    let cpu = h2ovl_runtime::llm::cpu_backend::describe();
    if json {
        let mut v: serde_json::Value = serde_json::from_str(&to_json(report)?)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("cpu".into(), cpu.into());
        }
        println!("{v}");
    } else {
        println!("{cpu}\n{report}");
    }
    Ok(())
}

pub fn run(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchCommand::Vision(v) => {
            let r = vision::run(&vision::VisionBenchOptions {
                mmproj: v.mmproj,
                tiles: v.tiles,
                threads: v.threads,
                runs: v.runs,
                fma_iters: 200_000_000,
            })?;
            print(&r, v.json, bench::to_json)
        }
        BenchCommand::Llm(l) => {
            let r = llm::run(&llm::LlmBenchOptions {
                model: l.model,
                threads: l.threads,
                prompt_tokens: l.prompt_tokens,
                gen: l.gen,
                long_prefix: l.long_prefix,
                n_batch: l.batch_size,
                flash_attn: super::run::flash_attn_setting(&l.flash_attn),
                kv_type: if l.kv_f32 { KvType::F32 } else { KvType::F16 },
                runs: l.runs,
                bare: !l.no_bare,
            })?;
            print(&r, l.json, bench::to_json)
        }
        BenchCommand::Convert(c) => {
            let r = convert::run(&convert::ConvertBenchOptions {
                input: c.input,
                outdir: c.outdir,
                quant: LlmQuant::parse(&c.quant)?,
                vision_quant: VisionQuant::parse(&c.vision_quant)?,
                threads: c.threads,
            })?;
            print(&r, c.json, bench::to_json)
        }
        BenchCommand::Clip(c) => run_clip(c),
        BenchCommand::Cpu(c) => super::bench_cpu::run(c),
        BenchCommand::E2e(e) => {
            let mmproj = e.model.mmproj.clone().ok_or_else(|| anyhow::anyhow!("bench e2e needs --mmproj (the vision GGUF)"))?;
            let r = bench::e2e::run(&bench::e2e::E2eBenchOptions {
                model: e.model.model.clone(),
                mmproj,
                image: e.image,
                prompt: e.prompt,
                runs: e.runs,
                pipeline: e.model.options()?,
            })?;
            print(&r, e.json, bench::to_json)
        }
    }
}
