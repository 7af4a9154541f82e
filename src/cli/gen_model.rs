//! `h2ovl gen-model`: write a synthetic H2OVL checkpoint (random bf16 weights in the exact HF
//! layout of a family member) for demos, benchmarks and tests without downloading real weights.
//! All the work is in `h2ovl_models::generate`; this file only maps flags and reports.
use anyhow::Result;
use clap::builder::PossibleValuesParser;
use h2ovl_models::{GenerateOptions, Preset};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct GenModelArgs {
    /// Model size: the two released shapes (800m ≈ 1.65 GB, 2b ≈ 4.3 GB), a small demo size, or
    /// the golden test shapes.
    #[arg(long, value_parser = PossibleValuesParser::new(Preset::ALL.map(|p| p.name())))]
    pub preset: String,
    /// Output checkpoint folder (created atomically: written beside it, then renamed).
    #[arg(long)]
    pub out: PathBuf,
    /// PRNG seed; the same seed and preset give a byte-identical checkpoint.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace OUT if it already exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary on stderr (the folder path is still printed on stdout).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: GenModelArgs) -> Result<()> {
    let preset = Preset::from_name(&a.preset)?;
    let spec = preset.spec();
    let opts = GenerateOptions { seed: a.seed, progress: !a.quiet, force: a.force };
    if !a.quiet {
        eprintln!(
            "generating synthetic H2OVL '{preset}' ({:.1}M parameters, {:.2} GB bf16, seed {})",
            spec.param_count() as f64 / 1e6,
            spec.bf16_bytes() as f64 / 1e9,
            a.seed
        );
    }
    let start = Instant::now();
    let g = h2ovl_models::generate(&spec, &a.out, &opts)?;
    if !a.quiet {
        eprintln!("wrote {} tensors, {} bytes of safetensors in {:.1} s", g.tensors, g.safetensors_bytes, start.elapsed().as_secs_f64());
    }
    println!("{}", g.dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenModelArgs,
    }

    #[test]
    fn flags_parse_and_reject_unknown_presets() {
        let a = Cli::try_parse_from(["t", "--preset", "tiny-2b", "--out", "x", "--seed", "5", "--quiet"]).unwrap().args;
        assert_eq!((a.preset.as_str(), a.seed, a.quiet, a.force), ("tiny-2b", 5, true, false));
        assert!(Cli::try_parse_from(["t", "--preset", "7b", "--out", "x"]).is_err());
        assert!(Cli::try_parse_from(["t", "--preset", "tiny"]).is_err());
    }

    #[test]
    fn writes_checkpoint_and_refuses_overwrite_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ck");
        let args = |force| GenModelArgs { preset: "tiny".into(), out: out.clone(), seed: 3, force, quiet: true };
        run(args(false)).unwrap();
        assert!(out.join("model.safetensors").is_file() && out.join("config.json").is_file());
        let err = run(args(false)).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        run(args(true)).unwrap();
    }
}
