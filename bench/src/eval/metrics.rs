//! The numbers `h2ovl eval` reports, as plain functions over logits, ids and embeddings, so each
//! can be unit-tested on small hand-made cases without a model.
//!
//! Distributions are full-vocabulary softmaxes computed in f64: with ~92k tokens, most of the
//! probability mass of a confident model sits in a handful of them and the rest are 1e-20-sized;
//! f32 would lose both the tail terms of the KL sum and exact zeros for identical rows.
use serde::{Deserialize, Serialize};

// One f64 softmax, KL and greedy argmax for the whole runtime (the sampler's).
pub use h2ovl_runtime::llm::sampling::{argmax, kl_from_log_probs, log_softmax};

/// One teacher-forced position compared: reference row vs candidate row, `target` = the token
/// the reference answer has there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionStats {
    /// KL(reference ‖ candidate), nats.
    pub kl: f64,
    /// Both rows pick the same most likely token.
    pub top1_agree: bool,
    /// log p(target) under the reference and under the candidate.
    pub logp_ref: f64,
    pub logp_cand: f64,
}

/// Compare two logit rows at one position.
pub fn compare_position(reference: &[f32], candidate: &[f32], target: usize) -> PositionStats {
    let lp = log_softmax(reference);
    let lq = log_softmax(candidate);
    PositionStats {
        kl: kl_from_log_probs(&lp, &lq),
        top1_agree: argmax(reference) == argmax(candidate),
        logp_ref: lp.get(target).copied().unwrap_or(f64::NAN),
        logp_cand: lq.get(target).copied().unwrap_or(f64::NAN),
    }
}

/// Teacher-forced comparison of one answer (every position of the reference's greedy answer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerStats {
    /// Per-position KL(reference ‖ candidate), nats.
    pub kl: Vec<f64>,
    /// Positions where the two top-1 tokens agree.
    pub top1_agree: usize,
    /// Log-likelihood of the reference answer under the reference and under the candidate (nats).
    pub loglik_ref: f64,
    pub loglik_cand: f64,
}

impl AnswerStats {
    pub fn positions(&self) -> usize {
        self.kl.len()
    }
}

/// Compare `n` teacher-forced rows (`reference[k]`, `candidate[k]` predict `targets[k]`).
pub fn compare_answer(reference: &[Vec<f32>], candidate: &[Vec<f32>], targets: &[i32]) -> AnswerStats {
    let mut s = AnswerStats::default();
    for ((r, c), &t) in reference.iter().zip(candidate).zip(targets) {
        let p = compare_position(r, c, t.max(0) as usize);
        s.kl.push(p.kl);
        s.top1_agree += p.top1_agree as usize;
        s.loglik_ref += p.logp_ref;
        s.loglik_cand += p.logp_cand;
    }
    s
}

/// Length of the common prefix of two token sequences (free-running greedy answers).
pub fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The leaves of a JSON value as (path, value): `total`, `items[0].name`… Objects and arrays
/// are walked; empty ones are leaves themselves (so `[]` vs `[1]` still differs).
pub fn json_leaves(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    fn walk(v: &serde_json::Value, path: String, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
            }
            serde_json::Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{path}[{i}]"), out);
                }
            }
            _ => out.push((if path.is_empty() { "$".to_string() } else { path }, v.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// Field-by-field equality of a candidate's JSON answer with the reference's: one (field,
/// equal) per leaf of the reference. `None` when the reference answer is not JSON (nothing
/// to compare against); a candidate answer that does not parse has every field unequal.
pub fn json_fields_equal(reference: &str, candidate: &str) -> Option<Vec<(String, bool)>> {
    let r: serde_json::Value = serde_json::from_str(reference.trim()).ok()?;
    let c: Option<serde_json::Value> = serde_json::from_str(candidate.trim()).ok();
    let cand: std::collections::HashMap<String, serde_json::Value> = c.map(|c| json_leaves(&c).into_iter().collect()).unwrap_or_default();
    Some(json_leaves(&r).into_iter().map(|(k, v)| (k.clone(), cand.get(&k) == Some(&v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_identical_rows_is_exactly_zero() {
        let row: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect();
        let p = compare_position(&row, &row, 3);
        assert_eq!(p.kl, 0.0);
        assert!(p.top1_agree);
        assert_eq!(p.logp_ref, p.logp_cand);
        // A shift by a constant is the same distribution; KL is ~0 (rounding only).
        let shifted: Vec<f32> = row.iter().map(|x| x + 8.0).collect();
        assert!(compare_position(&row, &shifted, 0).kl.abs() < 1e-12);
    }

    #[test]
    fn kl_matches_a_two_token_case_by_hand() {
        // p = softmax(0, 0) = (1/2, 1/2); q = softmax(ln 3, 0) = (3/4, 1/4).
        // KL(p||q) = 1/2 ln(2/3) + 1/2 ln(2) = 1/2 ln(4/3).
        let p = compare_position(&[0.0, 0.0], &[3f32.ln(), 0.0], 1);
        assert!((p.kl - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-7, "{}", p.kl);
        assert!((p.logp_ref - 0.5f64.ln()).abs() < 1e-12);
        assert!((p.logp_cand - 0.25f64.ln()).abs() < 1e-7);
        // Ties: argmax takes the lowest index, so (0,0) picks 0, as does (ln 3, 0).
        assert!(p.top1_agree);
        // KL is not symmetric, and is positive for different distributions.
        let back = compare_position(&[3f32.ln(), 0.0], &[0.0, 0.0], 0);
        assert!(back.kl > 0.0 && (back.kl - p.kl).abs() > 1e-3);
    }

    #[test]
    fn kl_handles_huge_logits_and_zero_probabilities() {
        let p = compare_position(&[1000.0, f32::NEG_INFINITY], &[1000.0, 0.0], 0);
        assert!(p.kl.is_finite() && p.kl >= 0.0 && p.kl < 1e-300 + 1e-12);
    }

    #[test]
    fn answer_stats_add_up_positions() {
        let r = vec![vec![2.0, 0.0, 0.0], vec![0.0, 2.0, 0.0]];
        let c = vec![vec![2.0, 0.0, 0.0], vec![0.0, 0.0, 2.0]];
        let s = compare_answer(&r, &c, &[0, 1]);
        assert_eq!(s.positions(), 2);
        assert_eq!(s.kl[0], 0.0);
        assert!(s.kl[1] > 0.0);
        assert_eq!(s.top1_agree, 1);
        let l0 = log_softmax(&r[0])[0] + log_softmax(&r[1])[1];
        assert_eq!(s.loglik_ref, l0);
        assert!(s.loglik_cand < s.loglik_ref);
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[7, 8], &[7, 8]), 2);
    }

    #[test]
    fn json_fields_compare_leaf_by_leaf() {
        let r = r#"{"total": "12.50", "date": "2024-01-02", "items": [{"n": 1}]}"#;
        let c = r#"{"total": "12.50", "date": "2024-01-03", "items": [{"n": 1}]}"#;
        let mut f = json_fields_equal(r, c).unwrap();
        f.sort();
        assert_eq!(f, vec![("date".into(), false), ("items[0].n".into(), true), ("total".into(), true)]);
        // Not JSON: every field unequal; a non-JSON reference has nothing to compare.
        assert!(json_fields_equal(r, "total: 12.50").unwrap().iter().all(|(_, eq)| !eq));
        assert!(json_fields_equal("nope", r).is_none());
    }
}
