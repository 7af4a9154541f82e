//! `convert()`: HF H2OVL folder → `<name>-<QUANT>.gguf` + `mmproj-<name>-<VQUANT>.gguf`.
//!
//! Everything is read and validated (config, vocab, every tensor's name and shape) before a byte is
//! written; tensors are then streamed one at a time into `*.partial` files that are renamed only
//! when both files are complete.
use crate::atomic::PartialFile;
use crate::config::H2ovlConfig;
use h2ovl_format::gguf::{GgufWriter, PlannedTensor};
use crate::job::TensorJob;
use crate::preset::{LlmQuant, VisionQuant};
use crate::safetensors::Checkpoint;
use crate::{llm, vision, vocab};
use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};

/// What to convert and how.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub input: PathBuf,
    pub outdir: PathBuf,
    pub quant: LlmQuant,
    pub vision_quant: VisionQuant,
    /// No progress bar.
    pub quiet: bool,
    /// Worker threads for quantization (None = rayon's default, all cores).
    pub threads: Option<usize>,
}

/// The two files written.
#[derive(Clone, Debug)]
pub struct ConvertOutput {
    pub llm: PathBuf,
    pub vision: PathBuf,
    /// Tensor counts (LLM, vision).
    pub n_tensors: (usize, usize),
}

/// Output file names for model `name`.
pub fn output_names(name: &str, q: LlmQuant, vq: VisionQuant) -> (String, String) {
    (format!("{name}-{}.gguf", q.label()), format!("mmproj-{name}-{}.gguf", vq.label()))
}

/// Called every few MB written; its error stops the conversion (the CLI's check reports Ctrl-C).
pub type CancelCheck = dyn Fn() -> Result<()> + Sync;

/// Runs the conversion (on a dedicated rayon pool when `threads` is set).
pub fn convert(opts: &ConvertOptions) -> Result<ConvertOutput> {
    convert_cancellable(opts, &|| Ok(()))
}

/// [`convert`] that stops with `cancel`'s error, with the file being written as its context;
/// the `*.partial` files are removed as the error unwinds.
pub fn convert_cancellable(opts: &ConvertOptions, cancel: &CancelCheck) -> Result<ConvertOutput> {
    match opts.threads {
        Some(n) => {
            ensure!(n > 0, "thread count must be at least 1");
            let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().context("starting worker threads")?;
            pool.install(|| convert_inner(opts, cancel))
        }
        None => convert_inner(opts, cancel),
    }
}

fn convert_inner(opts: &ConvertOptions, cancel: &CancelCheck) -> Result<ConvertOutput> {
    let input = opts.input.canonicalize().with_context(|| format!("input folder {}", opts.input.display()))?;
    ensure!(input.is_dir(), "{} is not a folder", input.display());
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{}: folder name is not valid UTF-8", input.display()))?
        .to_string();

    let cfg = H2ovlConfig::load(&input)?;
    let vocab = vocab::load_vocab(&input)?;
    let ck = Checkpoint::open(&input)?;
    for n in ck.names() {
        let known = [llm::HF_PREFIX, vision::HF_VISION_PREFIX, vision::HF_PROJECTOR_PREFIX];
        if !known.iter().any(|p| n.starts_with(p)) {
            bail!("unexpected tensor {n} in the checkpoint (not language_model.*, vision_model.* or mlp1.*)");
        }
    }
    let llm_jobs = llm::plan(&cfg, &ck, &vocab, opts.quant)?;
    let vis_jobs = vision::plan(&cfg, &ck, opts.vision_quant)?;

    // Checked before creating anything: the input folder (and anything below it) is never touched.
    let outdir = resolve(&opts.outdir)?;
    if outdir.starts_with(&input) {
        bail!(
            "--outdir {} is inside the input folder {}; the converter never writes into its input",
            outdir.display(),
            input.display()
        );
    }
    std::fs::create_dir_all(&outdir).with_context(|| format!("creating {}", outdir.display()))?;
    let (llm_name, vis_name) = output_names(&name, opts.quant, opts.vision_quant);

    let total = (llm_jobs.len() + vis_jobs.len()) as u64;
    let pb = if opts.quiet {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} tensors {elapsed} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb
    };

    let mut llm_out = PartialFile::create(&outdir.join(&llm_name))?;
    pb.set_prefix("LLM");
    write_gguf(&mut llm_out, &ck, &llm_jobs, &pb, cancel, |w| llm::metadata(w, &cfg, &vocab, &name, opts.quant))
        .with_context(|| format!("writing {}", llm_out.dest().display()))?;
    let mut vis_out = PartialFile::create(&outdir.join(&vis_name))?;
    pb.set_prefix("vision");
    write_gguf(&mut vis_out, &ck, &vis_jobs, &pb, cancel, |w| vision::metadata(w, &cfg, &name, opts.vision_quant))
        .with_context(|| format!("writing {}", vis_out.dest().display()))?;
    pb.finish_and_clear();
    let llm_path = llm_out.commit()?;
    let vis_path = vis_out.commit()?;
    Ok(ConvertOutput { llm: llm_path, vision: vis_path, n_tensors: (llm_jobs.len(), vis_jobs.len()) })
}

type Sink<'a> = GgufWriter<&'a mut std::io::BufWriter<std::fs::File>>;

/// Metadata, tensor infos, header, then each tensor produced and written in turn.
fn write_gguf(
    out: &mut PartialFile,
    ck: &Checkpoint,
    jobs: &[TensorJob],
    pb: &ProgressBar,
    cancel: &CancelCheck,
    meta: impl FnOnce(&mut Sink<'_>) -> Result<()>,
) -> Result<()> {
    let mut w = GgufWriter::new(out.writer());
    meta(&mut w)?;
    for j in jobs {
        w.add_tensor(PlannedTensor { name: j.gguf_name.clone(), ty: j.ty, ne: j.ne.clone() })?;
    }
    w.write_header()?;
    for j in jobs {
        pb.set_message(j.gguf_name.clone());
        w.begin_tensor(&j.gguf_name)?;
        // Cancelling (Ctrl-C in the CLI) is checked per piece (a few MB): the error unwinds and the `*.partial` file is removed.
        j.produce_pieces(ck, &mut |b| {
            cancel()?;
            w.write_tensor_bytes(b)
        })?;
        w.end_tensor()?;
        pb.inc(1);
    }
    w.finish()?;
    Ok(())
}

/// Absolute, symlink-free form of a path that may not exist yet: its longest existing ancestor
/// canonicalized, plus the remaining components.
fn resolve(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) };
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Ok(out);
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => bail!("output folder {} cannot be resolved", p.display()),
        }
    }
}
