//! `h2ovl eval`: which quantization preset to pick, measured on the user's own images and
//! prompts. Converts the presets it needs from `--hf-dir` (cached in `--out/models`) or takes
//! `-m/--mmproj` pairs, runs everything through `h2ovl_bench::eval`, and writes
//! `OUT/report.json` (resumable), `OUT/report.html` and a table on stdout.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use h2ovl_bench::eval::report::{CaseInfo, Machine, REPORT_VERSION};
use h2ovl_bench::eval::{engine, CaseSpec, EvalJob, Fingerprint, PairSpec, Report};
use h2ovl_runtime::json::{Constraint, Limits};
use indicatif::{ProgressBar, ProgressStyle};

use super::run::{unescape, RuntimeArgs};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// HuggingFace H2OVL checkpoint folder: the presets of --quants / --vision-quants are converted
    /// from it (once; kept in OUT/models).
    #[arg(long = "hf-dir")]
    pub hf_dir: Option<PathBuf>,
    /// LLM presets to compare (comma-separated): f32, f16, q8_0, q4_0, q4_k_m.
    #[arg(long, default_value = "f16,q8_0,q4_k_m,q4_0")]
    pub quants: String,
    /// Vision presets to compare (comma-separated): f32, f16, q8_0. Every LLM preset is paired
    /// with every vision preset.
    #[arg(long = "vision-quants", default_value = "f16,q8_0")]
    pub vision_quants: String,
    /// Reference precision for both files with --hf-dir: f16 or f32.
    #[arg(long = "ref", default_value = "f16")]
    pub reference: String,
    /// Candidate LLM GGUF (instead of --hf-dir; repeat, paired in order with --mmproj).
    #[arg(short = 'm', long = "model")]
    pub models: Vec<PathBuf>,
    /// Candidate vision GGUF (one per -m, or one for all).
    #[arg(long = "mmproj")]
    pub mmprojs: Vec<PathBuf>,
    /// Reference LLM GGUF (with -m).
    #[arg(long = "ref-model")]
    pub ref_model: Option<PathBuf>,
    /// Reference vision GGUF (with -m).
    #[arg(long = "ref-mmproj")]
    pub ref_mmproj: Option<PathBuf>,
    /// Folder of images (jpg, png, webp, gif, bmp, tiff; not recursive) or one image file.
    #[arg(long)]
    pub images: PathBuf,
    /// Question asked about every image (repeat for several). `\n` escapes are expanded.
    #[arg(short = 'p', long = "prompt", required = true)]
    pub prompts: Vec<String>,
    /// Constrain the answers of the prompts that contain a JSON template (e.g. `{"total": "", "date": ""}`)
    /// to it, and compare those answers with the reference's field by field.
    #[arg(long = "json-template")]
    pub json_template: bool,
    /// Longest answer, in tokens.
    #[arg(short = 'n', long = "max-new-tokens", default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Output folder: report.json, report.html, models/ (converted presets), reference/ (reference logits).
    #[arg(long)]
    pub out: PathBuf,
    /// Runtime settings, the same for every pair (`--exact`: the differences measured are then
    /// the files' alone).
    #[command(flatten)]
    pub rt: RuntimeArgs,
    /// No progress bar (the table is still printed).
    #[arg(long)]
    pub quiet: bool,
}

fn list<T>(flag: &str, s: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let items: Vec<&str> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect();
    if items.is_empty() {
        bail!("{flag} is empty");
    }
    items.into_iter().map(|x| parse(x).with_context(|| format!("{flag} {s:?}"))).collect()
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// The images of `--images`, sorted, each decoded once now so a bad file is refused before any
/// conversion or model load.
fn list_images(p: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = if p.is_dir() {
        std::fs::read_dir(p)
            .with_context(|| format!("listing --images {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && f.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
            .collect()
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        bail!("--images {} is neither a folder nor a file", p.display());
    };
    files.sort();
    if files.is_empty() {
        bail!("--images {}: no image files in it ({})", p.display(), IMAGE_EXTENSIONS.join(", "));
    }
    for f in &files {
        h2ovl_runtime::preprocess::load_image(f, h2ovl_runtime::preprocess::PIL_MAX_PIXELS).with_context(|| format!("image {}", f.display()))?;
    }
    Ok(files)
}

fn file_id(p: &Path) -> (String, u64) {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (name, std::fs::metadata(p).map_or(0, |m| m.len()))
}

fn must_exist(p: &Path, what: &str) -> Result<()> {
    if !p.is_file() {
        bail!("{what} {} does not exist or is not a file", p.display());
    }
    Ok(())
}

/// Reference + candidate pairs, converting from `--hf-dir` whatever `OUT/models` lacks.
fn pairs_from_hf(a: &EvalArgs, hf: &Path) -> Result<(PairSpec, Vec<PairSpec>)> {
    let quants = list("--quants", &a.quants, LlmQuant::parse)?;
    let vquants = list("--vision-quants", &a.vision_quants, VisionQuant::parse)?;
    let (rq, rv) = match a.reference.to_ascii_lowercase().as_str() {
        "f16" => (LlmQuant::F16, VisionQuant::F16),
        "f32" => (LlmQuant::F32, VisionQuant::F32),
        r => bail!("--ref {r:?}: use f16 or f32"),
    };
    if !a.models.is_empty() || !a.mmprojs.is_empty() || a.ref_model.is_some() || a.ref_mmproj.is_some() {
        bail!("give either --hf-dir (presets converted from it) or -m/--mmproj/--ref-model/--ref-mmproj files, not both");
    }
    let hf = hf.canonicalize().with_context(|| format!("--hf-dir {}", hf.display()))?;
    h2ovl_convert::config::H2ovlConfig::load(&hf).with_context(|| format!("--hf-dir {}", hf.display()))?;
    let name = hf.file_name().and_then(|n| n.to_str()).context("--hf-dir: folder name is not valid UTF-8")?.to_string();
    let models = a.out.join("models");
    let llm_path = |q: LlmQuant| models.join(h2ovl_convert::pipeline::output_names(&name, q, VisionQuant::F16).0);
    let vis_path = |v: VisionQuant| models.join(h2ovl_convert::pipeline::output_names(&name, LlmQuant::F16, v).1);
    let mut need_l: Vec<LlmQuant> = Vec::new();
    for q in quants.iter().copied().chain([rq]) {
        if !need_l.contains(&q) && !llm_path(q).is_file() {
            need_l.push(q);
        }
    }
    let mut need_v: Vec<VisionQuant> = Vec::new();
    for v in vquants.iter().copied().chain([rv]) {
        if !need_v.contains(&v) && !vis_path(v).is_file() {
            need_v.push(v);
        }
    }
    // One conversion writes one LLM and one vision file: pair the missing ones up.
    for k in 0..need_l.len().max(need_v.len()) {
        let q = need_l.get(k).copied().unwrap_or(rq);
        let v = need_v.get(k).copied().unwrap_or(rv);
        if !a.quiet {
            eprintln!("converting {} to {} + vision {} (kept in {})", hf.display(), q.label(), v.label(), models.display());
        }
        h2ovl_convert::convert_cancellable(&ConvertOptions { input: hf.clone(), outdir: models.clone(), quant: q, vision_quant: v, quiet: a.quiet, threads: none_if_zero(a.rt.threads) }, &h2ovl_runtime::interrupt::check)?;
    }
    let reference = PairSpec { name: format!("{} + {}", rq.label(), rv.label()), model: llm_path(rq), mmproj: vis_path(rv) };
    let mut pairs = Vec::new();
    for q in &quants {
        for v in &vquants {
            pairs.push(PairSpec { name: format!("{} + {}", q.label(), v.label()), model: llm_path(*q), mmproj: vis_path(*v) });
        }
    }
    Ok((reference, pairs))
}

fn none_if_zero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// Pairs given as files (`-m`/`--mmproj` against `--ref-model`/`--ref-mmproj`).
fn pairs_from_files(a: &EvalArgs) -> Result<(PairSpec, Vec<PairSpec>)> {
    let (Some(rm), Some(rp)) = (&a.ref_model, &a.ref_mmproj) else {
        bail!("with -m/--model, also give the reference pair: --ref-model LLM.gguf --ref-mmproj VISION.gguf (or use --hf-dir)");
    };
    if a.models.is_empty() {
        bail!("give --hf-dir or at least one -m/--model with its --mmproj");
    }
    if a.mmprojs.len() != a.models.len() && a.mmprojs.len() != 1 {
        bail!("{} -m/--model but {} --mmproj: give one --mmproj per model, or one for all", a.models.len(), a.mmprojs.len());
    }
    for p in a.models.iter().chain(&a.mmprojs).chain([rm, rp]) {
        must_exist(p, "model file")?;
    }
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let reference = PairSpec { name: format!("{} + {}", stem(rm), stem(rp)), model: rm.clone(), mmproj: rp.clone() };
    let mut pairs: Vec<PairSpec> = Vec::new();
    for (i, m) in a.models.iter().enumerate() {
        let mp = &a.mmprojs[if a.mmprojs.len() == 1 { 0 } else { i }];
        let mut name = format!("{} + {}", stem(m), stem(mp));
        if pairs.iter().any(|p| p.name == name) {
            name = format!("{name} #{}", i + 1);
        }
        pairs.push(PairSpec { name, model: m.clone(), mmproj: mp.clone() });
    }
    Ok((reference, pairs))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

pub fn run(a: EvalArgs) -> Result<()> {
    // Everything a user can get wrong is checked before the long work starts.
    let opts = a.rt.options()?;
    if a.max_new_tokens == 0 {
        bail!("-n/--max-new-tokens must be at least 1");
    }
    // Preset lists are used with --hf-dir only, but an unknown name is refused either way.
    list("--quants", &a.quants, LlmQuant::parse)?;
    list("--vision-quants", &a.vision_quants, VisionQuant::parse)?;
    if !["f16", "f32"].contains(&a.reference.to_ascii_lowercase().as_str()) {
        bail!("--ref {:?}: use f16 or f32", a.reference);
    }
    let images = list_images(&a.images)?;
    let prompts: Vec<String> = a.prompts.iter().map(|p| unescape(p)).collect();
    if prompts.iter().any(|p| p.trim().is_empty()) {
        bail!("a --prompt is empty");
    }
    // --json-template constrains the prompts that carry a template; at least one must.
    let mut constraints = Vec::new();
    for p in &prompts {
        let has = a.json_template && h2ovl_runtime::json::template::find_template(p).is_some();
        constraints.push(if has { Some(Constraint::from_prompt_template(p, &Limits::default()).with_context(|| format!("--prompt {p:?}"))?) } else { None });
    }
    if a.json_template && constraints.iter().all(Option::is_none) {
        Constraint::from_prompt_template(&prompts[0], &Limits::default()).map(|_| ())?;
    }
    if a.out.is_file() {
        bail!("--out {} is a file; give a folder", a.out.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating --out {}", a.out.display()))?;
    let (reference, pairs) = match &a.hf_dir {
        Some(hf) => pairs_from_hf(&a, hf)?,
        None => pairs_from_files(&a)?,
    };

    let mut cases = Vec::new();
    for (i, img) in images.iter().enumerate() {
        for (j, (p, c)) in prompts.iter().zip(&constraints).enumerate() {
            cases.push(CaseSpec { id: format!("i{i}-p{j}"), image_index: i, image: img.clone(), prompt: p.clone(), constraint: c.clone() });
        }
    }
    let fingerprint = Fingerprint {
        images: images.iter().map(|p| file_id(p)).collect(),
        prompts: prompts.clone(),
        json_template: a.json_template,
        max_new_tokens: a.max_new_tokens,
        settings: format!(
            "KV cache {:?}, flash attention {}, vision math {:?}, max tiles {}, MSAC {}",
            opts.kv_type,
            opts.flash_attn.map_or("auto".to_string(), |b| if b { "on".into() } else { "off".into() }),
            opts.vision_math,
            opts.max_tiles,
            if opts.msac { "on" } else { "off" }
        ),
        reference: vec![file_id(&reference.model), file_id(&reference.mmproj)],
    };
    let report_path = a.out.join("report.json");
    let mut report = match Report::load_matching(&report_path, &fingerprint)? {
        Some(r) => r,
        None => Report {
            version: REPORT_VERSION,
            fingerprint,
            machine: Machine::default(),
            cases: cases.iter().map(|c| CaseInfo { id: c.id.clone(), image: file_id(&c.image).0, prompt: c.prompt.clone() }).collect(),
            reference: engine::reference_record(&reference),
            pairs: Vec::new(),
            summary: Vec::new(),
        },
    };
    report.machine = Machine {
        cpu: cpu_model(),
        threads: opts.n_threads(),
        load_average: h2ovl_bench::load_average(),
        h2ovl: format!("h2ovl {} ({})", env!("CARGO_PKG_VERSION"), env!("H2OVL_GIT_COMMIT")),
    };
    // Pairs dropped from the command line are dropped from the report too (kept in order given).
    report.pairs.retain(|r| pairs.iter().any(|p| p.name == r.name));

    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} cases [{elapsed_precise} elapsed, ETA {eta}] {msg}") {
        bar.set_style(style);
    }
    let job = EvalJob { cases: &cases, reference, pairs: &pairs, pipeline: opts, max_new_tokens: a.max_new_tokens, out: &a.out };
    let result = engine::run(&job, &mut report, &mut |done, total, msg| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(msg.to_string());
    });
    bar.finish_and_clear();
    // What is finished is written out even when the run stopped early (Ctrl-C, a failing pair).
    report.pairs.sort_by_key(|r| pairs.iter().position(|p| p.name == r.name));
    report.save(&report_path)?;
    h2ovl_runtime::npy::write_atomic(&a.out.join("report.html"), h2ovl_bench::eval::html::page(&report).as_bytes())?;
    result?;
    print!("{}", h2ovl_bench::eval::report::table(&report.summaries(), &report.reference.name));
    if !a.quiet {
        eprintln!("wrote {} and {}", report_path.display(), a.out.join("report.html").display());
    }
    Ok(())
}
