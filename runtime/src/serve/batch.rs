//! `h2ovl batch`: one question (optionally JSON-template constrained) over a folder of images,
//! one JSON line per image in a `.jsonl` file.
//!
//! Lines: `{"file", "text"|"json", "tiles", "ms"}` (plus `"finish": "length"` when a JSON answer was closed
//! early to fit `-n`) or `{"file", "error"}`. The file is appended
//! line by line (each line one write, flushed), so an interrupted run loses at most the line being
//! written; a rerun repairs a torn last line and skips every file already listed (resumable).
//! A bad image only costs its own `"error"` line.
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::json::{Constraint, OValue};
use crate::llm::{GenerationConfig, History, ImageInput, Pipeline, StopReason};

/// Image file extensions taken from a folder.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

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
        bail!("--input {input:?} names no image files");
    }
    Ok(files)
}

/// Files already in `out` (any line with a `"file"`). Cuts a torn last line (crash mid-write).
pub fn done_files(out: &Path) -> Result<HashSet<String>> {
    let mut done = HashSet::new();
    let Ok(f) = File::open(out) else { return Ok(done) };
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
                    done.insert(f.to_string());
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
}

/// Totals of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub processed: usize,
    pub skipped: usize,
    pub errors: usize,
}

/// Run `job` over `files`, calling `progress(done_so_far, total, file)` after each one.
pub fn run_batch(pipe: &mut Pipeline, files: &[PathBuf], job: &BatchJob, progress: &mut dyn FnMut(usize, usize, &Path)) -> Result<BatchSummary> {
    let done = done_files(job.out)?;
    let mut out = OpenOptions::new().create(true).append(true).open(job.out).with_context(|| format!("opening {}", job.out.display()))?;
    out.seek(SeekFrom::End(0))?;
    let mut sum = BatchSummary::default();
    let mut cfg = job.cfg.clone();
    cfg.constraint = job.constraint.clone();
    for (i, f) in files.iter().enumerate() {
        let name = f.to_string_lossy().into_owned();
        if done.contains(&name) {
            sum.skipped += 1;
            progress(i + 1, files.len(), f);
            continue;
        }
        let t = Instant::now();
        // Built by hand so the "json" value keeps the template's key order.
        let file = Value::String(name).to_string();
        let (line, failed) = match pipe.chat_stream(&[ImageInput::Path(f.clone())], &job.prompt, &cfg, &History::new(), &mut |_| {}) {
            Ok(o) => {
                let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
                let head = format!("{{\"file\":{file},\"tiles\":{},\"ms\":{ms}", json!(o.image_tiles));
                let text = Value::String(o.answer.clone()).to_string();
                match (&job.constraint, OValue::parse(&o.answer)) {
                    (None, _) => (format!("{head},\"text\":{text}}}"), false),
                    // Closed early by the token budget: still valid, flagged as cut.
                    (Some(_), Ok(j)) if o.stop == StopReason::Length => (format!("{head},\"json\":{},\"finish\":\"length\"}}", j.to_json()), false),
                    (Some(_), Ok(j)) => (format!("{head},\"json\":{}}}", j.to_json()), false),
                    (Some(_), _) => {
                        let e = json!(format!("the JSON answer does not parse ({} tokens; raise -n)", cfg.max_new_tokens));
                        (format!("{head},\"error\":{e},\"text\":{text}}}"), true)
                    }
                }
            }
            Err(e) => (format!("{{\"file\":{file},\"error\":{}}}", json!(format!("{e:#}"))), true),
        };
        if failed {
            sum.errors += 1;
        }
        let mut s = line;
        s.push('\n');
        out.write_all(s.as_bytes()).and_then(|_| out.flush()).with_context(|| format!("writing {}", job.out.display()))?;
        sum.processed += 1;
        progress(i + 1, files.len(), f);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_from_folder_and_glob_sorted() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.png", "a.JPG", "c.txt", "d.webp"] {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        let names = |v: Vec<PathBuf>| v.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert_eq!(names(list_inputs(d.path().to_str().unwrap()).unwrap()), ["a.JPG", "b.png", "d.webp"]);
        assert_eq!(names(list_inputs(&format!("{}/*.png", d.path().display())).unwrap()), ["b.png"]);
        assert!(list_inputs(&format!("{}/*.gif", d.path().display())).is_err());
        assert!(list_inputs("/no/such/dir").is_err());
    }

    #[test]
    fn resume_reads_done_files_and_repairs_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r.jsonl");
        assert!(done_files(&out).unwrap().is_empty());
        std::fs::write(&out, "{\"file\":\"a\",\"text\":\"x\"}\n{\"file\":\"b\",\"error\":\"bad\"}\n{\"file\":\"c\",\"te").unwrap();
        let done = done_files(&out).unwrap();
        assert_eq!(done, ["a", "b"].iter().map(|s| s.to_string()).collect());
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("\"bad\"}\n"));
        std::fs::write(&out, "garbage\n{\"file\":\"a\"}\n").unwrap();
        assert!(done_files(&out).unwrap_err().to_string().contains("not a results file"));
    }
}
