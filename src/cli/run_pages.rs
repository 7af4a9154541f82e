//! `h2ovl run` reading a document page by page (`--pages-mode each`, or `auto` when even the
//! fitted floor does not fit): a progress bar per page group with an ETA, the combined answer on
//! stdout, and with `--output json` the per-group answers and the JSON fields' pages.
use std::io::Write;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::run::{OutputFormat, RunArgs};
use h2ovl_runtime::llm::{GenerationConfig, ImageInput, PageProgress, Pipeline, StopReason};

pub fn run(a: &RunArgs, pipe: &mut Pipeline, images: &[ImageInput], prompt: &str, cfg: &GenerationConfig) -> Result<()> {
    let json = a.output == OutputFormat::Json;
    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(ProgressStyle::with_template("page by page {bar:30} {pos}/{len} groups, ETA {eta} {msg}").expect("static template"));
    let stdout = std::io::stdout();
    let t = std::time::Instant::now();
    let out = pipe.answer_pages(
        images,
        prompt,
        cfg,
        &mut |p| match p {
            PageProgress::Group { done, groups, first, last } => {
                bar.set_length(groups as u64);
                bar.set_position(done as u64);
                bar.set_message(if first == last { format!("page {first}") } else { format!("pages {first}-{last}") });
            }
            PageProgress::Combining => {
                bar.finish_and_clear();
            }
        },
        &mut |piece| {
            if !json {
                let mut o = stdout.lock();
                let _ = o.write_all(piece.as_bytes());
                let _ = o.flush();
            }
        },
    )?;
    bar.finish_and_clear();
    if out.stop == StopReason::Cancelled {
        anyhow::bail!("{} ({} of the pages answered)", h2ovl_runtime::interrupt::MESSAGE, out.pages.last().map_or(0, |p| p.last));
    }
    let groups: Vec<String> = out.pages.iter().map(|p| if p.first == p.last { p.first.to_string() } else { format!("{}-{}", p.first, p.last) }).collect();
    if json {
        let v = serde_json::json!({
            "text": out.answer,
            "pages_mode": "each",
            "pages": out.pages.iter().map(|p| serde_json::json!({
                "first": p.first, "last": p.last, "text": p.answer, "image_tiles": p.tiles,
                "prefill_s": p.timings.prefill_s, "image_encode_s": p.timings.image_encode_s, "decode_s": p.timings.decode_s,
            })).collect::<Vec<_>>(),
            "provenance": out.provenance.iter().map(|(k, pages)| (k.clone(), serde_json::json!(pages))).collect::<serde_json::Map<_, _>>(),
            "combined_by": if cfg.constraint.is_some() { "json merge" } else if out.combine.is_some() { "text-only turn" } else { "single group" },
            "stop": format!("{:?}", out.stop),
        });
        println!("{v}");
    } else {
        println!();
    }
    if !a.quiet {
        eprintln!(
            "read page by page: {} group(s) (pages {}) in {:.1} s, combined by {}",
            out.pages.len(),
            groups.join(", "),
            t.elapsed().as_secs_f64(),
            if cfg.constraint.is_some() { "the JSON merge rule" } else if out.combine.is_some() { "a text-only turn" } else { "nothing (one group)" }
        );
    }
    Ok(())
}
