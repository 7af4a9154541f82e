//! `h2ovl bench cpu`: the same LLM benchmark on two or more llama.cpp CPU variants, in one run.
//!
//! Why child processes: ggml registers one CPU backend per process (the loader picks it before the
//! first model loads), so each measurement is `h2ovl bench llm --json` re-run by this binary with
//! `H2OVL_LLM_CPU=<variant>`; variants alternate in order from run to run so that a drift in machine
//! load favours none, and medians of the per-run figures are compared.
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command;

#[derive(Args)]
pub struct CpuArgs {
    /// LLM GGUF.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Variants to compare, comma-separated; `auto` = the one this CPU would pick. The first is the
    /// baseline of the ratios.
    #[arg(long, default_value = "haswell,auto")]
    pub variants: String,
    /// Threads (0 = all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Approximate prompt length (prefill case).
    #[arg(long, default_value_t = 600)]
    pub prompt_tokens: usize,
    /// Tokens generated per case.
    #[arg(long, default_value_t = 64)]
    pub gen: usize,
    /// Prefix of a decode-after-long-context case (0 = skip).
    #[arg(long, default_value_t = 0)]
    pub long_prefix: usize,
    /// Runs per variant (each a fresh process); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long = "flash-attn", default_value = "auto", value_parser = ["on", "off", "auto"])]
    pub flash_attn: String,
    #[arg(long)]
    pub json: bool,
}

/// One variant's samples of one case.
#[derive(Clone, Default)]
struct Samples {
    case: String,
    prompt_tokens: u64,
    prefill: Vec<f64>,
    decode: Vec<f64>,
}

#[derive(Serialize)]
struct CaseRow {
    case: String,
    variant: String,
    prompt_tokens: u64,
    prefill_tok_s: Vec<f64>,
    decode_tok_s: Vec<f64>,
    prefill_median: f64,
    decode_median: f64,
    /// Median over the baseline variant's median (first of `--variants`).
    prefill_ratio: f64,
    decode_ratio: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    threads: usize,
    runs: usize,
    /// What `auto` resolved to, with our vision ISA (as `h2ovl --version`).
    cpu: String,
    load_average_end: String,
    rows: Vec<CaseRow>,
}

fn one(a: &CpuArgs, variant: &str) -> Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "llm", "--json", "--no-bare", "--runs", "1"])
        .arg("-m")
        .arg(&a.model)
        .args(["-t", &a.threads.to_string(), "--prompt-tokens", &a.prompt_tokens.to_string()])
        .args(["--gen", &a.gen.to_string(), "--long-prefix", &a.long_prefix.to_string()])
        .args(["--flash-attn", &a.flash_attn]);
    if variant == "auto" {
        cmd.env_remove("H2OVL_LLM_CPU");
    } else {
        cmd.env("H2OVL_LLM_CPU", variant);
    }
    let out = cmd.output().context("running h2ovl bench llm")?;
    if !out.status.success() {
        bail!("variant {variant}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).context("parsing bench llm --json")
}

pub fn run(a: CpuArgs) -> Result<()> {
    let variants: Vec<String> = a.variants.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if variants.len() < 2 {
        bail!("--variants needs at least two (e.g. haswell,auto)");
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    // results[variant][case]
    let mut results: Vec<Vec<Samples>> = vec![Vec::new(); variants.len()];
    let bar = indicatif::ProgressBar::new((a.runs * variants.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("bench cpu {bar:30} {pos}/{len} runs, ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for r in 0..a.runs {
        let order: Vec<usize> =
            if r % 2 == 0 { (0..variants.len()).collect() } else { (0..variants.len()).rev().collect() };
        for vi in order {
            let rep = one(&a, &variants[vi])?;
            for (ci, c) in rep["cases"].as_array().into_iter().flatten().enumerate() {
                let name = c["name"].as_str().unwrap_or("?").to_string();
                if results[vi].len() <= ci {
                    let prompt_tokens = c["prompt_tokens"].as_u64().unwrap_or(0);
                    results[vi].push(Samples { case: name, prompt_tokens, ..Default::default() });
                }
                results[vi][ci].prefill.push(c["ours_prefill_tok_s"].as_f64().unwrap_or(f64::NAN));
                results[vi][ci].decode.push(c["ours_decode_tok_s"].as_f64().unwrap_or(f64::NAN));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let med = h2ovl_bench::median;
    let mut rows = Vec::new();
    for (ci, base) in results[0].iter().enumerate() {
        let (bp, bd) = (med(&base.prefill), med(&base.decode));
        for (vi, v) in variants.iter().enumerate() {
            let Some(Samples { case, prompt_tokens, prefill: p, decode: d }) = results[vi].get(ci) else { continue };
            rows.push(CaseRow {
                case: case.clone(),
                variant: v.clone(),
                prompt_tokens: *prompt_tokens,
                prefill_median: med(p),
                decode_median: med(d),
                prefill_ratio: med(p) / bp,
                decode_ratio: med(d) / bd,
                prefill_tok_s: p.clone(),
                decode_tok_s: d.clone(),
            });
        }
    }
    let report = Report {
        model: a.model.display().to_string(),
        threads: a.threads,
        runs: a.runs,
        cpu: h2ovl_runtime::llm::cpu_backend::describe(),
        load_average_end: h2ovl_bench::load_average(),
        rows,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "bench cpu: {} — {}; {} threads, median of {} alternating runs; ratios vs {}; load at end {}",
        report.model, report.cpu, a.threads, a.runs, variants[0], report.load_average_end
    );
    for r in &report.rows {
        println!(
            "{:<13} {:<10} prefill {:>5} tok {:7.1} tok/s (×{:.3})   decode {:6.1} tok/s (×{:.3})",
            r.case, r.variant, r.prompt_tokens, r.prefill_median, r.prefill_ratio, r.decode_median, r.decode_ratio
        );
    }
    Ok(())
}
