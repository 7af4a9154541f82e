//! `h2ovl batch -m … --mmproj … --input DIR_OR_GLOB -p PROMPT [--json-template FILE] --out results.jsonl`:
//! the same question over many images and PDF pages, one JSON line each, with a progress bar;
//! rerunning resumes (see `h2ovl_runtime::serve::batch`).
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use h2ovl_runtime::json::template::find_template;
use h2ovl_runtime::json::{Constraint, Limits, OValue};
use h2ovl_runtime::serve::batch::{list_inputs, run_batch, BatchJob};
use indicatif::{ProgressBar, ProgressStyle};

use super::pdf_args::PdfArgs;
use super::run::{unescape, ModelArgs, SamplingArgs};

#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// A folder of images and PDFs (not recursive) or a glob pattern (quote it: 'scans/*.jpg').
    /// Every PDF page is asked about on its own (one line each, with "page").
    #[arg(long)]
    pub input: String,
    #[command(flatten)]
    pub pdf: PdfArgs,
    /// The question asked about every image.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// JSON template file (e.g. {"name": "", "total": 0}): answers are constrained to its
    /// shape and stored under "json". Appended to the prompt unless the prompt has one.
    #[arg(long = "json-template")]
    pub json_template: Option<PathBuf>,
    /// Results, one JSON line per image or PDF page; images and pages already in it are skipped.
    #[arg(long)]
    pub out: PathBuf,
    /// `page` (default): one line per PDF page; `document`: one line per PDF answering about the
    /// whole document (pages fitted to the context, or read page by page and combined).
    #[arg(long = "per", default_value = "page", value_parser = ["page", "document"])]
    pub per: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: BatchArgs) -> Result<()> {
    let mut cfg = a.sampling.config()?;
    // Ctrl-C stops the answer being generated (not written) and the run, with a resumable file.
    cfg.cancel = Some(h2ovl_runtime::interrupt::flag());
    let mut prompt = unescape(&a.prompt);
    let constraint = match &a.json_template {
        None => None,
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading the JSON template {}", f.display()))?;
            let t = OValue::parse(&text).with_context(|| format!("the JSON template {} is not valid JSON", f.display()))?;
            if find_template(&prompt).is_none() {
                prompt = format!("{prompt}\n{}", text.trim());
            }
            Some(Constraint::from_template(&t, &Limits::default()).with_context(|| format!("JSON template {}", f.display()))?)
        }
    };
    let files = list_inputs(&a.input)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut pipe = a.model.load()?;
    if let Some(c) = &constraint {
        // Refused once here rather than as an error line per image.
        h2ovl_runtime::llm::session::check_json_minimum(pipe.json_minimum(c), cfg.max_new_tokens)?;
    }
    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(files.len() as u64) };
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise} elapsed, ETA {eta}] {msg}") {
        bar.set_style(style);
    }
    let pdf = a.pdf.options(a.model.rt.max_tiles, pipe.uses_msac())?;
    let job = BatchJob { prompt, constraint, cfg, out: &a.out, pdf, per_document: a.per == "document" };
    let sum = run_batch(&mut pipe, &files, &job, &mut |i, _, f| {
        bar.set_position(i as u64);
        bar.set_message(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    })?;
    bar.finish_and_clear();
    eprintln!(
        "{} image(s)/page(s) processed ({} with errors), {} already in {} skipped",
        sum.processed,
        sum.errors,
        sum.skipped,
        a.out.display()
    );
    Ok(())
}
