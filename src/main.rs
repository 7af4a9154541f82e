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
    /// Write a synthetic H2OVL checkpoint (random weights, real HF layout) for demos and benchmarks.
    GenModel(cli::gen_model::GenModelArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(a) => cli::convert::run(a),
        Command::GenModel(a) => cli::gen_model::run(a),
    };
    if let Err(e) = result {
        // One clear line (with its causes), non-zero exit, never a panic trace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
