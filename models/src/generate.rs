//! Write a complete HF H2OVL checkpoint folder with random weights: `config.json`,
//! `model.safetensors` (bf16, exact tensor names/shapes of the real model), the real tokenizer
//! and metadata files, and a `SYNTHETIC.txt` note saying what it is.
//!
//! The safetensors file is streamed: header first (offsets are known from the shapes), then each
//! tensor in blocks of a few MiB filled by rayon while a writer thread flushes the previous block,
//! so memory stays flat even for the 4.3 GB 2b. Everything is built in a hidden staging folder
//! next to the target and renamed into place at the end, so a crash or Ctrl-C never leaves a
//! half-written checkpoint under the requested name.

use crate::family::ModelSpec;
use crate::inventory::{self, TensorSpec};
use crate::{config, rng, safetensors};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Metadata files of the real 800m repo, shipped unchanged (identical to the golden checkpoints').
const META_FILES: [(&str, &[u8]); 4] = [
    ("added_tokens.json", include_bytes!("../assets/h2ovl-800m-meta/added_tokens.json")),
    ("tokenizer_config.json", include_bytes!("../assets/h2ovl-800m-meta/tokenizer_config.json")),
    ("special_tokens_map.json", include_bytes!("../assets/h2ovl-800m-meta/special_tokens_map.json")),
    ("generation_config.json", include_bytes!("../assets/h2ovl-800m-meta/generation_config.json")),
];
/// The Mistral 32000-piece SentencePiece model (see `assets/spm-mistral/SOURCE.md`).
const TOKENIZER_MODEL: &[u8] = include_bytes!("../assets/spm-mistral/tokenizer.model");

/// Elements per write block: 64 rng chunks = 4 Mi elements = 8 MiB of bf16.
const BLOCK: usize = 64 * rng::CHUNK;

/// Options of [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// PRNG seed: same seed + preset → byte-identical checkpoint.
    pub seed: u64,
    /// Show an indicatif progress bar (on stderr).
    pub progress: bool,
    /// Replace `out` if it already exists (otherwise that is an error unless it is an empty dir).
    pub force: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { seed: 0, progress: false, force: false }
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct Generated {
    pub dir: PathBuf,
    pub tensors: usize,
    pub params: usize,
    /// Size of `model.safetensors` (header included).
    pub safetensors_bytes: u64,
}

/// Removes the staging folder unless the checkpoint was committed.
struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Write `content` to `dir/name`.
fn write_file(dir: &Path, name: &str, content: &[u8]) -> Result<()> {
    let p = dir.join(name);
    fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
}

/// Generate the checkpoint of `spec` into the folder `out` (created; its parent too).
pub fn generate(spec: &ModelSpec, out: &Path, opts: &GenerateOptions) -> Result<Generated> {
    let out = if out.is_absolute() { out.to_path_buf() } else { std::env::current_dir()?.join(out) };
    let name = out.file_name().with_context(|| format!("output path {} has no folder name", out.display()))?;
    let parent = out.parent().with_context(|| format!("output path {} has no parent", out.display()))?;
    check_target(&out, opts.force)?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;

    let staging_path = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    if staging_path.exists() {
        fs::remove_dir_all(&staging_path).with_context(|| format!("removing stale {}", staging_path.display()))?;
    }
    fs::create_dir(&staging_path).with_context(|| format!("creating {}", staging_path.display()))?;
    let mut staging = Staging { path: staging_path, committed: false };
    let dir = staging.path.clone();

    let cfg = config::config_json(spec)?;
    write_file(&dir, "config.json", (serde_json::to_string_pretty(&cfg)? + "\n").as_bytes())?;
    for (file, bytes) in META_FILES {
        write_file(&dir, file, bytes)?;
    }
    write_file(&dir, "tokenizer.model", TOKENIZER_MODEL)?;
    write_file(&dir, "SYNTHETIC.txt", synthetic_note(spec, opts.seed).as_bytes())?;

    let tensors = inventory::tensors(spec);
    let safetensors_bytes = write_safetensors(&dir.join("model.safetensors"), &tensors, opts.seed, opts.progress)?;

    commit(&dir, &out, opts.force)?;
    staging.committed = true;
    Ok(Generated { dir: out, tensors: tensors.len(), params: spec.param_count(), safetensors_bytes })
}

/// Refuse to clobber an existing non-empty path unless `force`.
fn check_target(out: &Path, force: bool) -> Result<()> {
    if !out.exists() || force {
        return Ok(());
    }
    let empty_dir = out.is_dir() && fs::read_dir(out)?.next().is_none();
    if !empty_dir {
        bail!("{} already exists (pass --force to replace it)", out.display());
    }
    Ok(())
}

/// Move the finished staging folder to `out`. An existing `out` (only with `force`, or empty)
/// is first moved aside, then deleted once the new folder is in place.
fn commit(staging: &Path, out: &Path, force: bool) -> Result<()> {
    let mut old = None;
    if out.exists() {
        if force || out.is_dir() {
            let aside = out.with_file_name(format!(
                ".{}.old-{}",
                out.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            fs::rename(out, &aside).with_context(|| format!("moving the existing {} aside", out.display()))?;
            old = Some(aside);
        }
    }
    fs::rename(staging, out).with_context(|| format!("renaming {} to {}", staging.display(), out.display()))?;
    if let Some(aside) = old {
        let res = if aside.is_dir() { fs::remove_dir_all(&aside) } else { fs::remove_file(&aside) };
        res.with_context(|| format!("removing the replaced {}", aside.display()))?;
    }
    Ok(())
}

fn synthetic_note(spec: &ModelSpec, seed: u64) -> String {
    let (v, l) = (&spec.vision, &spec.llm);
    format!(
        "Synthetic random-weight H2OVL checkpoint (NOT a trained model: its outputs are meaningless).\n\
         generated by `h2ovl gen-model --preset {} --seed {seed}` (h2ovl-models {})\n\
         vision: hidden {} / {} layers / {} heads / mlp {}; llm: {} hidden {} / {} layers / {} heads / {} kv heads / mlp {}, \
         rope theta {}; use_msac {}; {} parameters, bf16.\n\
         Tensor names, shapes, config.json and tokenizer files follow the real h2oai/h2ovl-mississippi layout.\n",
        spec.name,
        env!("CARGO_PKG_VERSION"),
        v.hidden,
        v.layers,
        v.heads,
        v.intermediate,
        l.arch.model_type(),
        l.hidden,
        l.layers,
        l.heads,
        l.kv_heads,
        l.intermediate,
        l.rope_theta,
        spec.use_msac,
        spec.param_count(),
    )
}

fn progress_style() -> Result<ProgressStyle> {
    Ok(ProgressStyle::with_template("{msg:>12} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta})")?
        .progress_chars("=> "))
}

/// Stream `tensors` into a bf16 safetensors file; returns its size. The calling thread fills
/// blocks (in parallel through rayon) while a writer thread writes the previous one.
fn write_safetensors(path: &Path, tensors: &[TensorSpec], seed: u64, progress: bool) -> Result<u64> {
    let (header, offsets) = safetensors::bf16_header(tensors.iter().map(|t| (t.name.as_str(), t.shape.as_slice())))?;
    let data_bytes = offsets.last().map_or(0, |o| o.1);
    let bar = if progress {
        let bar = ProgressBar::new(data_bytes).with_style(progress_style()?);
        bar.set_message("weights");
        bar
    } else {
        ProgressBar::hidden()
    };

    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header).with_context(|| format!("writing {}", path.display()))?;

    // Two buffers circulate: filled ones go to the writer, emptied ones come back.
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        empty_tx.send(Vec::with_capacity(2 * BLOCK)).expect("receiver alive");
    }
    let file = std::thread::scope(|s| -> Result<File> {
        let writer = s.spawn(move || -> Result<BufWriter<File>> {
            for buf in full_rx {
                w.write_all(&buf)?;
                bar.inc(buf.len() as u64);
                if empty_tx.send(buf).is_err() {
                    break;
                }
            }
            bar.finish_and_clear();
            Ok(w)
        });
        let produced = (|| -> Result<()> {
            for t in tensors {
                let n = t.numel();
                let mut first = 0;
                while first < n {
                    let len = BLOCK.min(n - first);
                    // A closed channel means the writer failed; its error is reported below.
                    let Ok(mut buf) = empty_rx.recv() else { return Ok(()) };
                    buf.resize(2 * len, 0);
                    rng::fill_bf16_le(seed, &t.name, t.init, first, &mut buf);
                    if full_tx.send(buf).is_err() {
                        return Ok(());
                    }
                    first += len;
                }
            }
            Ok(())
        })();
        drop(full_tx);
        let w = writer.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
        produced?;
        let w = w.with_context(|| format!("writing {}", path.display()))?;
        w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", path.display()))
    })?;
    // Data on disk before the folder is renamed into place.
    file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    Ok(header.len() as u64 + data_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_template_parses() {
        progress_style().unwrap();
    }

    #[test]
    fn missing_parents_created_and_nameless_out_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("a/b/ck");
        let g = generate(&crate::tiny(), &out, &GenerateOptions { progress: true, ..Default::default() }).unwrap();
        assert!(g.dir.join("model.safetensors").is_file());
        let err = generate(&crate::tiny(), Path::new("/"), &GenerateOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no folder name"), "{err}");
    }
}
