//! `h2ovl`: one CLI over the converter and the runtime. Each subcommand lives in `cli/<name>.rs`
//! as a clap `Args` struct plus `run(args)`; this file only dispatches and reports errors.
use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "h2ovl", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("H2OVL_GIT_COMMIT"), ", ", env!("H2OVL_TARGET"), ")"),
          about = "H2OVL-Mississippi on CPUs, offline: convert HF checkpoints to GGUF and run them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a HuggingFace H2OVL checkpoint folder into an LLM GGUF + a vision (mmproj) GGUF.
    Convert(cli::convert::ConvertArgs),
    /// Answer one prompt about zero or more images (streams the answer to stdout).
    Run(cli::run::RunArgs),
    /// Multi-turn chat REPL (`/image PATH` attaches an image, `/reset`, `/quit`).
    Chat(cli::chat::ChatArgs),
    /// Debug: preprocess + encode one image with the vision GGUF and write the embeddings as .npy.
    EncodeImage(cli::encode_image::EncodeImageArgs),
    /// OpenAI-compatible HTTP server (chat completions, streaming, JSON output).
    Serve(cli::serve::ServeArgs),
    /// Ask the same question about every image of a folder or glob; one JSON line per image (resumable).
    Batch(cli::batch::BatchArgs),
    /// Benchmarks: vision encoder vs FMA peak, LLM vs bare llama.cpp, conversion time and peak RSS.
    Bench(cli::bench::BenchArgs),
    /// Write a synthetic H2OVL checkpoint (random weights, real HF layout) for demos and benchmarks.
    GenModel(cli::gen_model::GenModelArgs),
}

/// llama.cpp (llama-cpp-sys-2's default x86 build) is compiled for AVX2/FMA/F16C/BMI2 with no run-time
/// check: on an older CPU it would die of SIGILL mid-run. Say so up front instead.
fn check_cpu() -> anyhow::Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let missing: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "this CPU lacks {} which the bundled llama.cpp build requires (x86-64-v3: Haswell/Zen1 or newer)",
                missing.join(", ")
            );
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = check_cpu() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let result = match cli.command {
        Command::Convert(a) => cli::convert::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Chat(a) => cli::chat::run(a),
        Command::EncodeImage(a) => cli::encode_image::run(a),
        Command::GenModel(a) => cli::gen_model::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Batch(a) => cli::batch::run(a),
        Command::Bench(a) => cli::bench::run(a),
    };
    if let Err(e) = result {
        // One clear line (with its causes), non-zero exit, never a panic trace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
