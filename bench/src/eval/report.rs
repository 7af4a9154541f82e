//! What `h2ovl eval` keeps: `report.json` (every finished case of every pair, so a rerun
//! resumes where Ctrl-C stopped it) and the per-pair summary computed from it, printed as a
//! table. Summaries are always recomputed from the cases, never stored alone, so a resumed
//! run and a one-shot run report the same figures.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::metrics::AnswerStats;

/// Bumped when the layout changes (an old report is then refused, not misread).
pub const REPORT_VERSION: u32 = 1;

/// Everything that makes two runs' numbers comparable. A `report.json` with another fingerprint
/// is not resumed (its cases answered other questions, or under other settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// (file name, size in bytes) of each image, in order.
    pub images: Vec<(String, u64)>,
    pub prompts: Vec<String>,
    pub json_template: bool,
    pub max_new_tokens: usize,
    /// Runtime settings every pair runs with (KV type, flash attention, vision arithmetic, tiling).
    pub settings: String,
    /// Reference pair: (LLM file name, size), (mmproj file name, size).
    pub reference: Vec<(String, u64)>,
}

/// One question about one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    pub id: String,
    pub image: String,
    pub prompt: String,
}

/// Wall-clock split of one free-running answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseTimings {
    pub encode_s: f64,
    /// Tiles encoded in this case (0 when the image's embeddings were cached from an earlier prompt).
    pub tiles_encoded: usize,
    pub prefill_tokens: usize,
    pub prefill_s: f64,
    pub decode_tokens: usize,
    pub decode_s: f64,
}

/// Per-token cosine of one image's embeddings against the reference encoder's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedStats {
    pub min: f64,
    pub mean: f64,
    pub rows: usize,
}

/// One finished case of one pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The free-running greedy answer and its ids.
    pub answer: String,
    pub tokens: Vec<i32>,
    pub stop: String,
    pub timings: CaseTimings,
    /// Candidates only: the image embeddings vs the reference's (when encoded in this case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedStats>,
    /// Candidates only: teacher-forced along the reference's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<AnswerStats>,
    /// Candidates only: common prefix of the two free-running answers, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_prefix: Option<usize>,
    /// Candidates with `--json-template`: (field, equal to the reference's) per reference field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_fields: Option<Vec<(String, bool)>>,
}

/// One model pair and its finished cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    /// e.g. `Q4_K_M + Q8_0` (LLM preset + vision preset).
    pub name: String,
    pub model: String,
    pub mmproj: String,
    pub model_bytes: u64,
    pub mmproj_bytes: u64,
    /// Highest VmHWM seen while this pair was loaded (reset before loading it).
    pub peak_rss_bytes: Option<u64>,
    /// Whether `peak_rss_bytes` is this pair's own (peak reset worked) or the whole process's.
    #[serde(default)]
    pub peak_rss_per_pair: bool,
    pub cases: BTreeMap<String, CaseResult>,
}

impl PairRecord {
    pub fn new(name: &str, model: &Path, mmproj: &Path) -> PairRecord {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        PairRecord {
            name: name.to_string(),
            model: model.display().to_string(),
            mmproj: mmproj.display().to_string(),
            model_bytes: size(model),
            mmproj_bytes: size(mmproj),
            peak_rss_bytes: None,
            peak_rss_per_pair: false,
            cases: BTreeMap::new(),
        }
    }
}

/// Where and how the figures were measured (overwritten by each run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub threads: usize,
    pub load_average: String,
    pub h2ovl: String,
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub fingerprint: Fingerprint,
    pub machine: Machine,
    pub cases: Vec<CaseInfo>,
    pub reference: PairRecord,
    pub pairs: Vec<PairRecord>,
    /// Derived from the cases on every save (for readers of the JSON; ignored when resuming).
    #[serde(default)]
    pub summary: Vec<Summary>,
}

impl Report {
    /// The report in `path` if it exists and was made with `fingerprint`; an error if it exists
    /// with another one (its numbers would be mixed with these); `None` if there is none.
    pub fn load_matching(path: &Path, fingerprint: &Fingerprint) -> Result<Option<Report>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let r: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a report of this version of h2ovl eval: delete it or use another --out", path.display()))?;
        if r.version != REPORT_VERSION {
            bail!("{} is a version {} report (this is {}): delete it or use another --out", path.display(), r.version, REPORT_VERSION);
        }
        if &r.fingerprint != fingerprint {
            bail!(
                "{} was made with other images, prompts, -n, runtime settings or reference files, so it cannot be resumed: \
                 delete it or use another --out",
                path.display()
            );
        }
        Ok(Some(r))
    }

    /// One summary per pair, from its cases.
    pub fn summaries(&self) -> Vec<Summary> {
        self.pairs.iter().map(|p| Summary::of(p, &self.reference, self.cases.len())).collect()
    }

    /// Writes the report atomically, summary refreshed.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.summary = self.summaries();
        let text = serde_json::to_string_pretty(self)?;
        h2ovl_runtime::npy::write_atomic(path, text.as_bytes())
    }

    /// The record of the pair named `name`, created (with its files' sizes) if new.
    pub fn pair_mut(&mut self, name: &str, model: &Path, mmproj: &Path) -> &mut PairRecord {
        let fresh = PairRecord::new(name, model, mmproj);
        match self.pairs.iter().position(|p| p.name == name) {
            Some(i) => {
                let p = &mut self.pairs[i];
                if (p.model_bytes, p.mmproj_bytes) != (fresh.model_bytes, fresh.mmproj_bytes) {
                    // Same preset name, other files (e.g. re-converted): its old cases do not apply.
                    *p = fresh;
                }
                p
            }
            None => {
                self.pairs.push(fresh);
                self.pairs.last_mut().expect("just pushed")
            }
        }
    }
}

/// One pair's figures over its finished cases (the table row and the chart points).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub cases_done: usize,
    pub cases_total: usize,
    pub size_bytes: u64,
    pub model_bytes: u64,
    pub mmproj_bytes: u64,
    /// Per-token image-embedding cosine vs the reference encoder: min and mean over all images.
    pub embed_cos_min: Option<f64>,
    pub embed_cos_mean: Option<f64>,
    /// Teacher-forced: KL(reference ‖ candidate) mean over all answer positions, and max.
    pub kl_mean: Option<f64>,
    pub kl_max: Option<f64>,
    /// Fraction of positions whose top-1 tokens agree.
    pub top1: Option<f64>,
    pub positions: usize,
    /// Log-likelihood of the reference answers under the candidate minus under the reference,
    /// mean per answer (nats; negative = the candidate finds the reference answer less likely).
    pub dloglik_per_answer: Option<f64>,
    /// Common greedy prefix of the free-running answers: mean tokens, and answers fully identical.
    pub prefix_mean: Option<f64>,
    pub identical_answers: usize,
    /// JSON fields equal to the reference's / compared.
    pub json_equal: usize,
    pub json_fields: usize,
    pub encode_s_per_tile: Option<f64>,
    pub prefill_tok_s: Option<f64>,
    pub decode_tok_s: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Summary {
    /// `p`'s figures; `reference` supplies the answers that count as identical.
    pub fn of(p: &PairRecord, reference: &PairRecord, cases_total: usize) -> Summary {
        let mut s = Summary {
            name: p.name.clone(),
            cases_done: p.cases.len(),
            cases_total,
            size_bytes: p.model_bytes + p.mmproj_bytes,
            model_bytes: p.model_bytes,
            mmproj_bytes: p.mmproj_bytes,
            peak_rss_bytes: p.peak_rss_bytes,
            ..Default::default()
        };
        let (mut kl_sum, mut kl_max, mut agree, mut dll, mut n_forced) = (0.0, 0.0f64, 0usize, 0.0, 0usize);
        let (mut cos_min, mut cos_sum, mut cos_n) = (f64::INFINITY, 0.0, 0usize);
        let (mut prefix_sum, mut prefix_n) = (0usize, 0usize);
        let mut t = CaseTimings::default();
        for c in p.cases.values() {
            if let Some(f) = &c.forced {
                kl_sum += f.kl.iter().sum::<f64>();
                kl_max = f.kl.iter().copied().fold(kl_max, f64::max);
                agree += f.top1_agree;
                s.positions += f.positions();
                dll += f.loglik_cand - f.loglik_ref;
                n_forced += 1;
            }
            if let Some(e) = &c.embed {
                cos_min = cos_min.min(e.min);
                cos_sum += e.mean;
                cos_n += 1;
            }
            if let Some(k) = c.common_prefix {
                prefix_sum += k;
                prefix_n += 1;
            }
            if let Some(f) = &c.json_fields {
                s.json_fields += f.len();
                s.json_equal += f.iter().filter(|(_, eq)| *eq).count();
            }
            t.encode_s += c.timings.encode_s;
            t.tiles_encoded += c.timings.tiles_encoded;
            t.prefill_s += c.timings.prefill_s;
            t.prefill_tokens += c.timings.prefill_tokens;
            t.decode_s += c.timings.decode_s;
            t.decode_tokens += c.timings.decode_tokens;
        }
        if s.positions > 0 {
            s.kl_mean = Some(kl_sum / s.positions as f64);
            s.kl_max = Some(kl_max);
            s.top1 = Some(agree as f64 / s.positions as f64);
        }
        if n_forced > 0 {
            s.dloglik_per_answer = Some(dll / n_forced as f64);
        }
        if cos_n > 0 {
            s.embed_cos_min = Some(cos_min);
            s.embed_cos_mean = Some(cos_sum / cos_n as f64);
        }
        if prefix_n > 0 {
            s.prefix_mean = Some(prefix_sum as f64 / prefix_n as f64);
        }
        s.identical_answers =
            p.cases.iter().filter(|(id, c)| reference.cases.get(*id).is_some_and(|r| r.tokens == c.tokens)).count();
        s.encode_s_per_tile = ratio(t.encode_s, t.tiles_encoded as f64);
        s.prefill_tok_s = ratio(t.prefill_tokens as f64, t.prefill_s);
        s.decode_tok_s = ratio(t.decode_tokens as f64, t.decode_s);
        s
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// Short scientific/fixed notation for KL values (they span 0 to ~1 across presets).
pub fn fmt_kl(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// The table printed on stdout (one row per pair; headers say the units).
pub fn table(summaries: &[Summary], reference: &str) -> String {
    let header = [
        "pair (LLM + vision)", "size MB", "emb cos min/mean", "KL mean", "KL max", "top-1", "dLL/answer", "prefix", "JSON eq",
        "enc s/tile", "prefill t/s", "decode t/s", "peak RSS MB", "cases",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for s in summaries {
        rows.push(vec![
            s.name.clone(),
            format!("{:.1}", s.size_bytes as f64 / 1e6),
            match (s.embed_cos_min, s.embed_cos_mean) {
                (Some(a), Some(b)) => format!("{a:.5}/{b:.5}"),
                _ => "-".into(),
            },
            opt(s.kl_mean, fmt_kl),
            opt(s.kl_max, fmt_kl),
            opt(s.top1, |v| format!("{v:.3}")),
            opt(s.dloglik_per_answer, |v| format!("{v:+.3}")),
            opt(s.prefix_mean, |v| format!("{v:.1}")),
            if s.json_fields > 0 { format!("{}/{}", s.json_equal, s.json_fields) } else { "-".into() },
            opt(s.encode_s_per_tile, |v| format!("{v:.3}")),
            opt(s.prefill_tok_s, |v| format!("{v:.1}")),
            opt(s.decode_tok_s, |v| format!("{v:.1}")),
            s.peak_rss_bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            format!("{}/{}", s.cases_done, s.cases_total),
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!("reference: {reference}; KL = KL(reference || candidate) per answer token, teacher-forced on the reference's greedy answer\n");
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (v, w))| if c == 0 { format!("{v:<w$}") } else { format!("{v:>w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(kl: Vec<f64>, agree: usize, tokens: Vec<i32>, prefix: usize) -> CaseResult {
        CaseResult {
            answer: String::new(),
            tokens,
            stop: "EndOfAnswer".into(),
            timings: CaseTimings { encode_s: 2.0, tiles_encoded: 4, prefill_tokens: 100, prefill_s: 1.0, decode_tokens: 10, decode_s: 0.5 },
            embed: Some(EmbedStats { min: 0.99, mean: 0.995, rows: 256 }),
            forced: Some(AnswerStats { kl, top1_agree: agree, loglik_ref: -1.0, loglik_cand: -1.5 }),
            common_prefix: Some(prefix),
            json_fields: Some(vec![("a".into(), true), ("b".into(), false)]),
        }
    }

    #[test]
    fn summary_weights_kl_by_token_and_sums_timings() {
        let mut p = PairRecord::new("Q8_0 + F16", Path::new("/nonexistent/a"), Path::new("/nonexistent/b"));
        p.cases.insert("c0".into(), case(vec![0.0, 0.3], 1, vec![5, 6], 2));
        p.cases.insert("c1".into(), case(vec![0.6], 0, vec![7], 0));
        let mut r = PairRecord::new("F16 + F16", Path::new("/nonexistent/a"), Path::new("/nonexistent/b"));
        r.cases.insert("c0".into(), case(vec![], 0, vec![5, 6], 0));
        r.cases.insert("c1".into(), case(vec![], 0, vec![8], 0));
        let s = Summary::of(&p, &r, 3);
        assert_eq!((s.cases_done, s.cases_total, s.positions), (2, 3, 3));
        assert!((s.kl_mean.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(s.kl_max, Some(0.6));
        assert!((s.top1.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.dloglik_per_answer.unwrap() + 0.5).abs() < 1e-12);
        assert_eq!(s.prefix_mean, Some(1.0));
        assert_eq!(s.identical_answers, 1);
        assert_eq!((s.json_equal, s.json_fields), (2, 4));
        assert_eq!(s.encode_s_per_tile, Some(0.5));
        assert_eq!(s.prefill_tok_s, Some(100.0));
        assert_eq!(s.decode_tok_s, Some(20.0));
        let t = table(&[s], "F16 + F16");
        assert!(t.lines().count() == 4 && t.contains("Q8_0 + F16") && t.contains("0.300"), "{t}");
    }
}
