//! `h2ovl chat -m LLM.gguf [--mmproj VISION.gguf]`: a multi-turn REPL over the same `Pipeline`
//! (the KV cache carries over between turns, images are encoded once).
//! Commands: `/image PATH` attaches an image (or a PDF's pages) to the next question, `/reset` starts over,
//! `/quit` (or end of input) leaves.
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use h2ovl_runtime::llm::{History, ImageInput};

use super::pdf_args::PdfArgs;
use super::run::{fit_line, load_images, timings_line, unescape, ModelArgs, SamplingArgs};

#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Image(s) or PDF(s) attached to the first question (same as `/image PATH`).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub pdf: PdfArgs,
    /// No timings on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// What one input line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Image(PathBuf),
    Reset,
    Quit,
    Ask(String),
    Nothing,
}

fn parse_line(line: &str) -> Result<Command, String> {
    let l = line.trim_end_matches(['\n', '\r']);
    if l.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    if let Some(rest) = l.trim_start().strip_prefix('/') {
        let (cmd, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return match cmd {
            "image" if !arg.trim().is_empty() => Ok(Command::Image(PathBuf::from(arg.trim()))),
            "image" => Err("usage: /image PATH".into()),
            "reset" => Ok(Command::Reset),
            "quit" | "exit" => Ok(Command::Quit),
            _ => Err(format!("unknown command /{cmd} (try /image PATH, /reset, /quit)")),
        };
    }
    Ok(Command::Ask(unescape(l)))
}

pub fn run(a: ChatArgs) -> Result<()> {
    let cfg = a.sampling.config()?;
    let mut pipe = a.model.load()?;
    let interactive = std::io::stdin().is_terminal();
    let mut history = History::new();
    let mut pending: Vec<ImageInput> = load_images(&a.images, &a.pdf, &a.model, &pipe, 0)?;
    if interactive {
        eprintln!("h2ovl chat: type a question; /image PATH attaches an image, /reset starts over, /quit leaves.");
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    loop {
        if interactive {
            print!("> ");
            stdout.lock().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        match parse_line(&line) {
            Err(msg) => eprintln!("{msg}"),
            Ok(Command::Nothing) => {}
            Ok(Command::Quit) => break,
            Ok(Command::Reset) => {
                history = History::new();
                pending.clear();
                pipe.reset();
                eprintln!("(conversation cleared)");
            }
            Ok(Command::Image(p)) => {
                if !p.is_file() {
                    eprintln!("error: {} is not a file", p.display());
                } else if !pipe.has_vision() {
                    eprintln!("error: no vision model loaded (start with --mmproj VISION.gguf)");
                } else {
                    // A PDF attaches its pages (--pages/--dpi apply); errors leave the turn as it was.
                    let before = history.n_images() + pending.len();
                    match load_images(std::slice::from_ref(&p), &a.pdf, &a.model, &pipe, before) {
                        Ok(imgs) => {
                            eprintln!("(attached {} ({} image(s)) to the next question)", p.display(), imgs.len());
                            pending.extend(imgs);
                        }
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                }
            }
            Ok(Command::Ask(q)) => {
                let r = pipe.chat_stream(&pending, &q, &cfg, &history, &mut |piece| {
                    let mut o = stdout.lock();
                    let _ = o.write_all(piece.as_bytes());
                    let _ = o.flush();
                });
                println!();
                match r {
                    Ok(out) => {
                        history = out.history.clone();
                        pending.clear();
                        if !a.quiet {
                            if let Some(f) = &out.fit {
                                eprintln!("[{}]", fit_line(f));
                            }
                            eprintln!("[{}; {} reused from the cache]", timings_line(&out), out.reused_tokens);
                        }
                    }
                    // A failed turn (e.g. context full) leaves the conversation as it was.
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repl_commands_parse() {
        assert_eq!(parse_line("/image a b.png\n"), Ok(Command::Image(PathBuf::from("a b.png"))));
        assert_eq!(parse_line("/reset"), Ok(Command::Reset));
        assert_eq!(parse_line("/quit\r\n"), Ok(Command::Quit));
        assert_eq!(parse_line("   \n"), Ok(Command::Nothing));
        assert_eq!(parse_line(r"Hi\nthere"), Ok(Command::Ask("Hi\nthere".into())));
        assert!(parse_line("/image").is_err());
        assert!(parse_line("/frobnicate").is_err());
    }
}
