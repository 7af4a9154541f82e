//! `h2ovl batch`: one question (optionally JSON-template constrained) over a folder of images
//! and PDFs, one JSON line per image or PDF page in a `.jsonl` file.
//!
//! Lines: `{"file", "text"|"json", "tiles", "ms"}` (plus `"finish": "length"` when a JSON answer was
//! closed early to fit `-n`) or `{"file", "error"}`; a PDF page's lines
//! also carry `"page"` (1-based). The file is appended line by line (each line one write,
//! flushed), so an interrupted run loses at most the line being written; a rerun repairs a torn
//! last line and skips every image and every PDF page already listed (resumable per page).
//! A bad image or page only costs its own `"error"` line; a PDF that cannot be opened at all
//! gets one `"error"` line without `"page"`.
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::json::{Constraint, OValue};
use crate::llm::{GenerationConfig, History, ImageInput, Pipeline, StopReason};
use crate::pdf::{is_pdf_file, page_count, render_pages, PageSet, PdfOptions};

/// File extensions taken from a folder (images and PDFs; a PDF is recognised by its header, so
/// a PDF under an image name works too).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "pdf"];

/// One finished result: the file and, for a PDF page, its number.
pub type DoneKey = (String, Option<u64>);

/// The files named by `input`: a folder (its image files, not recursive) or a glob pattern;
/// sorted, so runs and resumes see the same order.
pub fn list_inputs(input: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(input);
    let mut files: Vec<PathBuf> = if p.is_dir() {
        std::fs::read_dir(p)
            .with_context(|| format!("listing {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                f.is_file()
                    && f.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect()
    } else if input.contains(['*', '?', '[']) {
        glob::glob(input)
            .with_context(|| format!("bad --input pattern {input:?}"))?
            .filter_map(|r| r.ok())
            .filter(|f| f.is_file())
            .collect()
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        bail!("--input {input:?} is neither a folder, a file nor a glob pattern that exists");
    };
    files.sort();
    if files.is_empty() {
        bail!("--input {input:?} names no image or PDF files");
    }
    Ok(files)
}

/// Results already in `out` (any line with a `"file"`, with its `"page"` if it has one). Cuts a
/// torn last line (crash mid-write).
pub fn done_files(out: &Path) -> Result<HashSet<DoneKey>> {
    let mut done = HashSet::new();
    let Ok(f) = File::open(out) else { return Ok(done) };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        // A device or pipe (/dev/full, a FIFO) has no earlier results, and reading it may never end.
        return Ok(done);
    }
    let mut good_len = 0u64;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).with_context(|| format!("reading {}", out.display()))?;
        if n == 0 {
            break;
        }
        match serde_json::from_str::<Value>(line.trim_end()) {
            Ok(v) if line.ends_with('\n') => {
                if let Some(f) = v.get("file").and_then(Value::as_str) {
                    done.insert((f.to_string(), v.get("page").and_then(Value::as_u64)));
                }
                good_len += n as u64;
            }
            _ if line.trim().is_empty() => good_len += n as u64,
            _ => {
                // Only a torn *last* line is repaired; garbage in the middle is the user's file.
                let mut rest = String::new();
                if r.read_line(&mut rest)? > 0 {
                    bail!("{} is not a results file of h2ovl batch (bad line: {:?})", out.display(), line.trim_end());
                }
                break;
            }
        }
    }
    let f = OpenOptions::new().write(true).open(out).with_context(|| format!("opening {}", out.display()))?;
    if f.metadata()?.len() != good_len {
        f.set_len(good_len).with_context(|| format!("repairing the torn last line of {}", out.display()))?;
    }
    Ok(done)
}

/// What to ask and how.
pub struct BatchJob<'a> {
    pub prompt: String,
    pub constraint: Option<Constraint>,
    pub cfg: GenerationConfig,
    pub out: &'a Path,
    /// How PDF pages are rendered (`pages` = which pages of every PDF; `tiling.msac` as for a
    /// single image, since each page is asked about on its own).
    pub pdf: PdfOptions,
    /// `--per document`: one line per PDF with the answer about the whole document (its pages
    /// fitted to the context, or read page by page and combined, as `run` does).
    pub per_document: bool,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub processed: usize,
    pub skipped: usize,
    pub errors: usize,
}

/// Run `job` over `files`, calling `progress(done_so_far, total, file)` after each file.
pub fn run_batch(pipe: &mut Pipeline, files: &[PathBuf], job: &BatchJob, progress: &mut dyn FnMut(usize, usize, &Path)) -> Result<BatchSummary> {
    let done = done_files(job.out)?;
    let mut out = OpenOptions::new().create(true).append(true).open(job.out).with_context(|| format!("opening {}", job.out.display()))?;
    out.seek(SeekFrom::End(0))?;
    let mut w = Writer { out: &mut out, path: job.out, sum: BatchSummary::default() };
    let mut cfg = job.cfg.clone();
    cfg.constraint = job.constraint.clone();
    for (i, f) in files.iter().enumerate() {
        interrupted(&w.sum)?;
        let name = f.to_string_lossy().into_owned();
        if done.contains(&(name.clone(), None)) {
            w.sum.skipped += 1;
        } else if is_pdf_file(f).unwrap_or(false) && job.per_document {
            run_pdf_document(pipe, f, &name, job, &cfg, &mut w)?;
        } else if is_pdf_file(f).unwrap_or(false) {
            run_pdf(pipe, f, &name, job, &cfg, &done, &mut w)?;
        } else {
            let t = Instant::now();
            let r = pipe.chat_stream(&[ImageInput::Path(f.clone())], &job.prompt, &cfg, &History::new(), &mut |_| {});
            w.result(&name, None, r, job, &cfg, t)?;
        }
        progress(i + 1, files.len(), f);
    }
    Ok(w.sum)
}

/// The pages of one PDF: those not yet in the results, each rendered and asked about on its own.
fn run_pdf(pipe: &mut Pipeline, f: &Path, name: &str, job: &BatchJob, cfg: &GenerationConfig, done: &HashSet<DoneKey>, w: &mut Writer) -> Result<()> {
    let bytes = match std::fs::read(f) {
        Ok(b) => b,
        Err(e) => return w.error(name, None, &format!("cannot read {}: {e}", f.display())),
    };
    let n = match page_count(&bytes, &job.pdf.limits) {
        Ok(0) => return w.error(name, None, "the PDF has no pages"),
        Ok(n) => n,
        Err(e) => return w.error(name, None, &e.to_string()),
    };
    let wanted: Vec<usize> = match &job.pdf.pages {
        Some(set) => set.iter().collect(),
        None => (1..=n).collect(),
    };
    if wanted.len() > job.pdf.limits.max_pages {
        let max = job.pdf.limits.max_pages;
        let msg = format!("{} pages selected (the PDF has {n}), over the limit of {max} pages per document (choose some with --pages, or raise --max-pages)", wanted.len());
        return w.error(name, None, &msg);
    }
    for p in wanted {
        if done.contains(&(name.to_string(), Some(p as u64))) {
            w.sum.skipped += 1;
            continue;
        }
        interrupted(&w.sum)?;
        if p > n {
            w.error(name, Some(p), &format!("page {p} is out of range: the PDF has {n} page(s)"))?;
            continue;
        }
        let t = Instant::now();
        let opts = PdfOptions { pages: Some(PageSet::from_pages([p])), ..job.pdf.clone() };
        let r = match render_pages(&bytes, &opts) {
            Ok(mut pages) if pages.len() == 1 => {
                let img = ImageInput::Rgb(pages.remove(0).image);
                pipe.chat_stream(&[img], &job.prompt, cfg, &History::new(), &mut |_| {})
            }
            Ok(_) => Err(anyhow::anyhow!("page {p} did not render")),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        w.result(name, Some(p), r, job, cfg, t)?;
    }
    Ok(())
}

/// One PDF as one question (`--per document`): every selected page rendered, then one answer
/// about the document, whole (fitted) or page by page and combined (`Pipeline::reads_page_by_page`).
fn run_pdf_document(pipe: &mut Pipeline, f: &Path, name: &str, job: &BatchJob, cfg: &GenerationConfig, w: &mut Writer) -> Result<()> {
    let t = Instant::now();
    let pages = match std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display())).and_then(|b| render_pages(&b, &job.pdf).map_err(|e| e.to_string())) {
        Ok(p) if p.is_empty() => return w.error(name, None, "the PDF has no pages"),
        Ok(p) => p,
        Err(e) => return w.error(name, None, &e),
    };
    let images: Vec<ImageInput> = pages.into_iter().map(|p| ImageInput::Rgb(p.image)).collect();
    let each = match pipe.reads_page_by_page(&images, &job.prompt, cfg.max_new_tokens) {
        Ok(b) => b,
        Err(e) => return w.error(name, None, &format!("{e:#}")),
    };
    if !each {
        let r = pipe.chat_stream(&images, &job.prompt, cfg, &History::new(), &mut |_| {});
        return w.result(name, None, r, job, cfg, t);
    }
    let o = match pipe.answer_pages(&images, &job.prompt, cfg, &mut |_| {}, &mut |_| {}) {
        Ok(o) => o,
        Err(e) => return w.error(name, None, &format!("{e:#}")),
    };
    if o.stop == StopReason::Cancelled {
        interrupted(&w.sum)?;
        bail!("the answer for {name} was cancelled");
    }
    let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    let groups: Vec<[usize; 2]> = o.pages.iter().map(|p| [p.first, p.last]).collect();
    let head = format!("{},\"pages\":{},\"groups\":{},\"ms\":{ms}", Writer::head(name, None), images.len(), json!(groups));
    match (&job.constraint, OValue::parse(&o.answer)) {
        (Some(_), Ok(j)) => {
            let prov: serde_json::Map<String, Value> = o.provenance.iter().map(|(k, p)| (k.clone(), json!(p))).collect();
            w.line(format!("{head},\"json\":{},\"provenance\":{}}}", j.to_json(), Value::Object(prov)), false)
        }
        _ => w.line(format!("{head},\"text\":{}}}", Value::String(o.answer)), false),
    }
}

/// Ctrl-C between two images: the lines written so far stay, a rerun resumes after them.
fn interrupted(sum: &BatchSummary) -> Result<()> {
    if crate::interrupt::requested() {
        bail!("{} after {} result line(s) in this run; rerun the same command to resume", crate::interrupt::MESSAGE, sum.processed);
    }
    Ok(())
}

/// Appends result lines, one flushed write each, and counts them.
struct Writer<'a> {
    out: &'a mut File,
    path: &'a Path,
    sum: BatchSummary,
}

impl Writer<'_> {
    fn line(&mut self, mut s: String, failed: bool) -> Result<()> {
        s.push('\n');
        self.out.write_all(s.as_bytes()).and_then(|_| self.out.flush()).with_context(|| format!("writing {}", self.path.display()))?;
        self.sum.processed += 1;
        if failed {
            self.sum.errors += 1;
        }
        Ok(())
    }

    /// `{"file", ["page",]` — the start of every line (built by hand so the "json" value keeps
    /// the template's key order).
    fn head(name: &str, page: Option<usize>) -> String {
        let mut h = format!("{{\"file\":{}", Value::String(name.to_string()));
        if let Some(p) = page {
            h.push_str(&format!(",\"page\":{p}"));
        }
        h
    }

    fn error(&mut self, name: &str, page: Option<usize>, msg: &str) -> Result<()> {
        self.line(format!("{},\"error\":{}}}", Self::head(name, page), json!(msg)), true)
    }

    fn result(&mut self, name: &str, page: Option<usize>, r: Result<crate::llm::ChatOutput>, job: &BatchJob, cfg: &GenerationConfig, t: Instant) -> Result<()> {
        let o = match r {
            Ok(o) => o,
            Err(e) => return self.error(name, page, &format!("{e:#}")),
        };
        if o.stop == StopReason::Cancelled {
            // A cut answer is not a result: no line, so a rerun asks again.
            interrupted(&self.sum)?;
            bail!("the answer for {name} was cancelled");
        }
        let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        let head = format!("{},\"tiles\":{},\"ms\":{ms}", Self::head(name, page), json!(o.image_tiles));
        let text = Value::String(o.answer.clone()).to_string();
        match (&job.constraint, OValue::parse(&o.answer)) {
            (None, _) => self.line(format!("{head},\"text\":{text}}}"), false),
            // Closed early by the token budget: still valid, flagged as cut.
            (Some(_), Ok(j)) if o.stop == StopReason::Length => {
                self.line(format!("{head},\"json\":{},\"finish\":\"length\"}}", j.to_json()), false)
            }
            (Some(_), Ok(j)) => self.line(format!("{head},\"json\":{}}}", j.to_json()), false),
            (Some(_), _) => {
                let e = json!(format!("the JSON answer does not parse ({} tokens; raise -n)", cfg.max_new_tokens));
                self.line(format!("{head},\"error\":{e},\"text\":{text}}}"), true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_from_folder_and_glob_sorted() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.png", "a.JPG", "c.txt", "d.webp", "e.PDF"] {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        let names = |v: Vec<PathBuf>| v.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert_eq!(names(list_inputs(d.path().to_str().unwrap()).unwrap()), ["a.JPG", "b.png", "d.webp", "e.PDF"]);
        assert_eq!(names(list_inputs(&format!("{}/*.png", d.path().display())).unwrap()), ["b.png"]);
        assert!(list_inputs(&format!("{}/*.gif", d.path().display())).is_err());
        assert!(list_inputs("/no/such/dir").is_err());
    }

    #[test]
    fn resume_reads_done_files_and_repairs_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r.jsonl");
        assert!(done_files(&out).unwrap().is_empty());
        std::fs::write(&out, "{\"file\":\"a\",\"text\":\"x\"}\n{\"file\":\"b\",\"error\":\"bad\"}\n{\"file\":\"d.pdf\",\"page\":2,\"text\":\"y\"}\n{\"file\":\"c\",\"te").unwrap();
        let done = done_files(&out).unwrap();
        let want: HashSet<DoneKey> = [("a", None), ("b", None), ("d.pdf", Some(2))].iter().map(|(s, p)| (s.to_string(), *p)).collect();
        assert_eq!(done, want);
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("\"y\"}\n"));
        std::fs::write(&out, "garbage\n{\"file\":\"a\"}\n").unwrap();
        assert!(done_files(&out).unwrap_err().to_string().contains("not a results file"));
    }
}
