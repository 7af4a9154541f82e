//! Running the cases: the reference pair first (its greedy answers, the logits that chose them
//! and its image embeddings go to `OUT/reference/`), then each candidate pair, loaded one at a
//! time so memory holds one model pair, compared case by case against what the reference left
//! on disk. `report.json` is rewritten after every case: Ctrl-C loses at most the case running.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};

use super::metrics::{common_prefix, compare_answer, json_fields_equal};
use super::report::{CaseResult, CaseTimings, EmbedStats, PairRecord, Report};
use crate::row_cosines;
use h2ovl_runtime::json::Constraint;
use h2ovl_runtime::llm::{ChatOutput, GenerationConfig, History, ImageEncoder, ImageInput, Pipeline, PipelineOptions, PreparedImage, StopReason, TilingOptions};

/// One model pair to measure.
#[derive(Clone, Debug)]
pub struct PairSpec {
    /// e.g. `Q4_K_M + Q8_0`.
    pub name: String,
    pub model: PathBuf,
    pub mmproj: PathBuf,
}

/// One question about one image.
#[derive(Clone, Debug)]
pub struct CaseSpec {
    pub id: String,
    /// Index of the image (reference embeddings are stored per image).
    pub image_index: usize,
    pub image: PathBuf,
    pub prompt: String,
    /// `--json-template`: the answer is constrained to the prompt's template.
    pub constraint: Option<Constraint>,
}

/// Everything a run needs besides the report.
pub struct EvalJob<'a> {
    pub cases: &'a [CaseSpec],
    pub reference: PairSpec,
    pub pairs: &'a [PairSpec],
    pub pipeline: PipelineOptions,
    pub max_new_tokens: usize,
    /// `OUT`: report.json and reference/ live here.
    pub out: &'a Path,
}

/// Progress of the run: (cases finished in this run, cases to do in this run, what is running).
pub type ProgressFn<'a> = dyn FnMut(usize, usize, &str) + 'a;

/// An [`ImageEncoder`] that also hands the last embeddings it computed (and how long that took)
/// to the evaluator: the pipeline encodes each image once and the comparison reuses those rows
/// instead of running the vision tower a second time.
struct Recording {
    inner: Box<dyn ImageEncoder>,
    last: Arc<Mutex<Option<Vec<f32>>>>,
}

impl ImageEncoder for Recording {
    fn prepare(&self, image: &ImageInput, tiling: &TilingOptions) -> Result<PreparedImage> {
        self.inner.prepare(image, tiling)
    }

    fn encode(&self, prepared: &PreparedImage, threads: usize) -> Result<Vec<f32>> {
        let rows = self.inner.encode(prepared, threads)?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(rows.clone());
        Ok(rows)
    }

    fn n_embd(&self) -> usize {
        self.inner.n_embd()
    }

    fn uses_msac(&self) -> bool {
        self.inner.uses_msac()
    }
}

/// A loaded pair plus the tap on its encoder.
struct Loaded {
    pipe: Pipeline,
    last: Arc<Mutex<Option<Vec<f32>>>>,
}

fn load(pair: &PairSpec, opts: &PipelineOptions) -> Result<Loaded> {
    let inner = h2ovl_runtime::llm::vision_encoder::load(&pair.mmproj, opts).with_context(|| format!("loading {}", pair.mmproj.display()))?;
    let last = Arc::new(Mutex::new(None));
    let enc = Recording { inner, last: last.clone() };
    let pipe = Pipeline::with_encoder(&pair.model, Some(Box::new(enc)), opts.clone()).with_context(|| format!("loading {}", pair.model.display()))?;
    Ok(Loaded { pipe, last })
}

/// Files of the reference's per-case and per-image data.
pub fn reference_logits_path(out: &Path, case_id: &str) -> PathBuf {
    out.join("reference").join(format!("{case_id}.logits.npy"))
}

pub fn reference_embeds_path(out: &Path, image_index: usize) -> PathBuf {
    out.join("reference").join(format!("image{image_index}.embeds.npy"))
}

/// Peak-RSS bookkeeping per pair: Linux resets a process's high-water mark when "5" is written
/// to /proc/self/clear_refs, so each pair's peak is its own, not the largest pair's so far.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok();
    let kb = s.as_deref().and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kb.map(|k| k * 1024).or_else(crate::peak_rss_bytes)
}

/// Ctrl-C during a case: the report holds every finished case and the rerun resumes.
fn interrupted(report: &mut Report, path: &Path) -> Result<()> {
    report.save(path)?;
    bail!("{}: finished cases are kept in {}; rerun the same command to resume", h2ovl_runtime::interrupt::MESSAGE, path.display())
}

/// One free-running greedy answer (the case's constraint applies).
fn answer(l: &mut Loaded, c: &CaseSpec, max_new_tokens: usize) -> Result<ChatOutput> {
    l.pipe.reset();
    *l.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let mut cfg = GenerationConfig {
        max_new_tokens,
        constraint: c.constraint.clone(),
        cancel: Some(h2ovl_runtime::interrupt::flag()),
        ..Default::default()
    };
    // The logits that chose each token: a reference's are its forced logits as they are.
    cfg.probe.step_logits = true;
    let images = [ImageInput::Path(c.image.clone())];
    l.pipe.chat_stream(&images, &c.prompt, &cfg, &History::new(), &mut |_| {}).with_context(|| format!("case {} ({})", c.id, c.image.display()))
}

fn timings(o: &ChatOutput) -> CaseTimings {
    let t = &o.timings;
    CaseTimings {
        encode_s: t.image_encode_s,
        tiles_encoded: if t.images_encoded > 0 { o.image_tiles.iter().sum() } else { 0 },
        prefill_tokens: t.prefill_tokens,
        prefill_s: t.prefill_s,
        decode_tokens: t.decode_tokens,
        decode_s: t.decode_s,
    }
}

/// The reference's own logits: row k chose `tokens[k]` (one row more when it stopped on a stop token).
fn own_rows(out: &ChatOutput) -> Vec<Vec<f32>> {
    out.step_logits[..out.tokens.len()].to_vec()
}

/// The candidate's logits along the reference answer `reference` (row k predicts
/// `reference[k]` after the prompt and `reference[..k]`), computed exactly as `run` computes
/// logits: one token per decode. Up to where the candidate's own answer `out` still equals the
/// reference its own rows are those rows; past it, the KV cache is cut back to that common
/// prefix and the rest of the reference is fed one token at a time (issue 22: a one-batch
/// teacher pass differs from this by whole 8-bit rounding steps on quantized models).
fn forced(l: &mut Loaded, out: &ChatOutput, reference: &[i32]) -> Result<Vec<Vec<f32>>> {
    let prefix = common_prefix(reference, &out.tokens);
    // Answer tokens already decoded into the KV cache (the last generated one never is).
    let decoded = l.pipe.kv_len().saturating_sub(out.prompt_ids.len());
    let shared = (prefix.min(decoded) + 1).min(reference.len());
    let mut rows: Vec<Vec<f32>> = out.step_logits.iter().take(shared).cloned().collect();
    let have = rows.len();
    if have == 0 && !reference.is_empty() {
        bail!("the candidate computed no logits for this prompt");
    }
    if have < reference.len() {
        // Row s follows reference[s-1]: keep the prompt + reference[..have-1], feed the rest.
        let rest = l.pipe.force_continuation(out.prompt_ids.len() + have - 1, &reference[have - 1..reference.len() - 1])?;
        rows.extend(rest);
    }
    Ok(rows)
}

fn take_embeddings(l: &Loaded) -> Option<Vec<f32>> {
    l.last.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

/// Whether the reference has everything a candidate needs for this case.
fn reference_done(report: &Report, out: &Path, c: &CaseSpec) -> bool {
    report.reference.cases.contains_key(&c.id)
        && reference_logits_path(out, &c.id).is_file()
        && reference_embeds_path(out, c.image_index).is_file()
}

/// Runs whatever `report` lacks, saving it to `OUT/report.json` after every case.
pub fn run(job: &EvalJob, report: &mut Report, progress: &mut ProgressFn) -> Result<()> {
    let path = job.out.join("report.json");
    std::fs::create_dir_all(job.out.join("reference")).with_context(|| format!("creating {}", job.out.join("reference").display()))?;
    let ref_todo: Vec<&CaseSpec> = job.cases.iter().filter(|c| !reference_done(report, job.out, c)).collect();
    let mut todo_per_pair = Vec::new();
    for p in job.pairs {
        let rec = report.pair_mut(&p.name, &p.model, &p.mmproj);
        todo_per_pair.push(job.cases.iter().filter(|c| !rec.cases.contains_key(&c.id)).count());
    }
    let total = ref_todo.len() + todo_per_pair.iter().sum::<usize>();
    let mut done = 0;
    progress(done, total, "");

    if !ref_todo.is_empty() {
        let mut l = load(&job.reference, &job.pipeline)?;
        let width = l.pipe.model().n_embd();
        for c in ref_todo {
            progress(done, total, &format!("reference {}", c.id));
            let out = answer(&mut l, c, job.max_new_tokens)?;
            if out.stop == StopReason::Cancelled {
                return interrupted(report, &path);
            }
            let embeds_path = reference_embeds_path(job.out, c.image_index);
            if let Some(e) = take_embeddings(&l) {
                h2ovl_runtime::npy::write_f32(&embeds_path, &[e.len() / width, width], &e)?;
            } else if !embeds_path.is_file() {
                // Not encoded: the pipeline had these pixels cached, from another file with the same
                // bytes (the same image under two names) whose embeddings are saved already.
                let twin = job.cases.iter().find(|o| {
                    o.image_index != c.image_index
                        && reference_embeds_path(job.out, o.image_index).is_file()
                        && same_bytes(&o.image, &c.image)
                });
                let Some(twin) = twin else {
                    bail!("{} disappeared during the run: rerun to recompute it", embeds_path.display());
                };
                let src = reference_embeds_path(job.out, twin.image_index);
                h2ovl_runtime::npy::write_atomic(&embeds_path, &std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?)?;
            }
            let rows = own_rows(&out);
            let v = l.pipe.model().n_vocab();
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            h2ovl_runtime::npy::write_f32(&reference_logits_path(job.out, &c.id), &[rows.len(), v], &flat)?;
            report.reference.cases.insert(
                c.id.clone(),
                CaseResult {
                    answer: out.answer.clone(),
                    tokens: out.tokens.clone(),
                    stop: format!("{:?}", out.stop),
                    timings: timings(&out),
                    embed: None,
                    forced: None,
                    common_prefix: None,
                    json_fields: None,
                },
            );
            report.save(&path)?;
            done += 1;
            progress(done, total, "");
            if h2ovl_runtime::interrupt::requested() {
                return interrupted(report, &path);
            }
        }
    }

    for (p, &n_todo) in job.pairs.iter().zip(&todo_per_pair) {
        if n_todo == 0 {
            continue;
        }
        let per_pair = reset_peak_rss();
        let mut l = load(p, &job.pipeline)?;
        let width = l.pipe.model().n_embd();
        for c in job.cases {
            if report.pairs.iter().any(|r| r.name == p.name && r.cases.contains_key(&c.id)) {
                continue;
            }
            progress(done, total, &format!("{} {}", p.name, c.id));
            let reference = report.reference.cases.get(&c.id).context("internal: reference case missing")?.clone();
            let out = answer(&mut l, c, job.max_new_tokens)?;
            if out.stop == StopReason::Cancelled {
                return interrupted(report, &path);
            }
            let embed = match take_embeddings(&l) {
                Some(e) => {
                    let (_, r) = h2ovl_runtime::npy::read_f32(&reference_embeds_path(job.out, c.image_index))?;
                    let (min, mean, rows) = row_cosines(&r, &e, width).with_context(|| {
                        format!("{}: image {} gives {} embedding values, the reference {}", p.name, c.image.display(), e.len(), r.len())
                    })?;
                    Some(EmbedStats { min, mean, rows })
                }
                None => None,
            };
            let (shape, flat) = h2ovl_runtime::npy::read_f32(&reference_logits_path(job.out, &c.id))?;
            let v = l.pipe.model().n_vocab();
            if shape.len() != 2 || shape[0] != reference.tokens.len() || (shape[0] > 0 && shape[1] != v) {
                bail!("{}: vocabulary of {} tokens, the reference's logits have shape {:?}: not the same model family?", p.name, v, shape);
            }
            let ref_rows: Vec<Vec<f32>> = flat.chunks_exact(v.max(1)).map(|r| r.to_vec()).collect();
            let cand_rows = forced(&mut l, &out, &reference.tokens).with_context(|| format!("teacher forcing case {}", c.id))?;
            let stats = compare_answer(&ref_rows, &cand_rows, &reference.tokens);
            let json_fields = c.constraint.as_ref().and_then(|_| json_fields_equal(&reference.answer, &out.answer));
            let result = CaseResult {
                answer: out.answer.clone(),
                tokens: out.tokens.clone(),
                stop: format!("{:?}", out.stop),
                timings: timings(&out),
                embed,
                forced: Some(stats),
                common_prefix: Some(common_prefix(&reference.tokens, &out.tokens)),
                json_fields,
            };
            let rec = report.pair_mut(&p.name, &p.model, &p.mmproj);
            rec.cases.insert(c.id.clone(), result);
            let peak = peak_rss();
            rec.peak_rss_bytes = rec.peak_rss_bytes.max(peak);
            rec.peak_rss_per_pair = per_pair;
            report.save(&path)?;
            done += 1;
            progress(done, total, "");
            if h2ovl_runtime::interrupt::requested() {
                return interrupted(report, &path);
            }
        }
    }
    Ok(())
}

/// A fresh record for the reference pair.
pub fn reference_record(r: &PairSpec) -> PairRecord {
    PairRecord::new(&r.name, &r.model, &r.mmproj)
}
