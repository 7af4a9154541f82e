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
    /// Which quantization? Compare presets against a reference pair on your own images and prompts
    /// (KL, top-1, embeddings, JSON fields, speed, memory): table, report.json, report.html. The
    /// runtime flags (-t, --max-tiles, --exact, ...) apply to every pair alike.
    Eval(cli::eval::EvalArgs),
    /// Write a synthetic H2OVL checkpoint (random weights, real HF layout) for demos and benchmarks.
    GenModel(cli::gen_model::GenModelArgs),
}

/// `h2ovl --version`: the build, then what this CPU runs (llama.cpp's CPU variant, our vision ISA).
/// Answered before clap parses, because the second line is found at run time.
fn print_version() {
    println!(
        "h2ovl {} ({}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("H2OVL_GIT_COMMIT"),
        env!("H2OVL_TARGET")
    );
    println!("{}", h2ovl_runtime::llm::cpu_backend::describe());
    let (found, _) = h2ovl_runtime::llm::cpu_backend::available();
    let list: Vec<String> =
        found.iter().map(|v| if v.score > 0 { v.name.clone() } else { format!("({})", v.name) }).collect();
    println!("llama.cpp CPU variants beside the binary: {} (in parentheses: not runnable on this CPU)", list.join(" "));
    if let Some(dir) = found.first().and_then(|v| v.path.parent()) {
        println!("libraries: {}", dir.display());
    }
}

fn main() {
    if matches!(std::env::args().nth(1).as_deref(), Some("--version" | "-V")) {
        print_version();
        return;
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Convert(_) | Command::Run(_) | Command::Batch(_) | Command::Eval(_)) {
        // Ctrl-C becomes an error of the running step (cleaned up, one line, exit 130).
        h2ovl_runtime::interrupt::install();
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
        Command::Eval(a) => cli::eval::run(a),
    };
    if let Err(e) = result {
        // One clear line (with its causes), non-zero exit, never a panic trace.
        eprintln!("error: {e:#}");
        let interrupted = h2ovl_runtime::interrupt::requested();
        std::process::exit(if interrupted { h2ovl_runtime::interrupt::EXIT_CODE } else { 1 });
    }
}
