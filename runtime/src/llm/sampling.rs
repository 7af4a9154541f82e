//! Choosing the next token from raw logits: greedy, or temperature / top-k / top-p with a
//! repeat penalty and a seeded RNG.
//!
//! Done here on the logits slice rather than through llama.cpp's sampler chain so the same
//! code serves the raw-FFI context, stays reproducible from `--seed` alone, and is unit-testable
//! without a model. Order follows HF `generate`: repetition penalty → temperature → top-k →
//! top-p → draw. `temperature == 0` is plain argmax (lowest index wins a tie, like torch).
use super::ffi::Token;

/// Generation settings, mirroring HF `generation_config` (defaults = the CLI defaults).
#[derive(Clone, Debug)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens (the stop token is not counted).
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Nucleus: keep the smallest set whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// > 1 discourages tokens seen in the last `repeat_last_n` tokens (1.0 = off).
    pub repeat_penalty: f32,
    /// Window of the repeat penalty, over prompt + generated tokens (llama.cpp semantics).
    pub repeat_last_n: usize,
    pub seed: u64,
    /// Stop at `<|end|>` (32009) or `</s>` (2). The parity tests turn this off to generate a
    /// fixed number of tokens.
    pub stop_at_eos: bool,
    /// Output grammar (JSON mode, see `crate::json`): each step's logits are masked by it and
    /// generation ends when the JSON value is complete. The value always closes within
    /// `max_new_tokens` (`crate::json::budget`; then the stop reason is `Length`), and a budget
    /// below its smallest valid value is refused before any work.
    pub constraint: Option<crate::json::Constraint>,
    /// Set from any thread to stop before the next token (a server's client went away, or a
    /// stop string was seen).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Debug/verification taps (`--dump-logits`, parity tests).
    pub probe: Probe,
}

/// What to record besides the text.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// Keep the logits that chose every generated token ([steps][n_vocab]).
    pub step_logits: bool,
    /// Absolute prompt positions whose logits to return (only positions actually computed in
    /// this turn, i.e. not reused from the KV cache).
    pub prompt_positions: Vec<usize>,
    /// Teacher forcing: step k feeds `forced[k]` instead of the sampled token (while recording
    /// the logits), to compare logits along a reference continuation.
    pub forced: Vec<Token>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 1024,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            stop_at_eos: true,
            constraint: None,
            cancel: None,
            probe: Probe::default(),
        }
    }
}

impl GenerationConfig {
    /// Greedy decoding of exactly `n` tokens (no early stop): the reference's setting.
    pub fn greedy_fixed(n: usize) -> Self {
        GenerationConfig { max_new_tokens: n, stop_at_eos: false, ..Default::default() }
    }
}

/// SplitMix64: a tiny, well-known generator; enough for sampling and fully determined by the seed.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Stateful sampler for one generation (holds the RNG).
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: GenerationConfig,
    rng: SplitMix64,
}

/// Index of the largest value; the lowest index wins ties (torch.argmax semantics).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best
}

impl Sampler {
    pub fn new(cfg: &GenerationConfig) -> Self {
        Sampler { cfg: cfg.clone(), rng: SplitMix64(cfg.seed) }
    }

    /// Pick the next token. `recent` = the context so far (prompt + generated); only its
    /// last `repeat_last_n` entries are penalised.
    pub fn sample(&mut self, logits: &[f32], recent: &[Token]) -> Token {
        let cfg = &self.cfg;
        let needs_penalty = cfg.repeat_penalty != 1.0 && cfg.repeat_last_n > 0;
        if cfg.temperature <= 0.0 && !needs_penalty {
            return argmax(logits) as Token;
        }
        let mut l = logits.to_vec();
        if needs_penalty {
            apply_repeat_penalty(&mut l, recent, cfg.repeat_penalty, cfg.repeat_last_n);
        }
        if cfg.temperature <= 0.0 {
            return argmax(&l) as Token;
        }
        let cands = filter_candidates(&l, cfg.temperature, cfg.top_k, cfg.top_p);
        let u = self.rng.next_f64();
        draw(&cands, u) as Token
    }
}

/// CTRL-style penalty (as in HF and llama.cpp): positive logits are divided, negative ones
/// multiplied, once per distinct token in the window.
pub fn apply_repeat_penalty(logits: &mut [f32], recent: &[Token], penalty: f32, last_n: usize) {
    let start = recent.len().saturating_sub(last_n);
    let mut seen = std::collections::HashSet::new();
    for &t in &recent[start..] {
        if t < 0 || t as usize >= logits.len() || !seen.insert(t) {
            continue;
        }
        let v = &mut logits[t as usize];
        *v = if *v > 0.0 { *v / penalty } else { *v * penalty };
    }
}

/// Temperature-scaled softmax restricted to top-k then top-p; returns (token, probability)
/// sorted by decreasing probability, probabilities renormalised to sum 1.
pub fn filter_candidates(logits: &[f32], temperature: f32, top_k: usize, top_p: f32) -> Vec<(usize, f64)> {
    let mut idx: Vec<usize> = (0..logits.len()).filter(|&i| logits[i].is_finite()).collect();
    // Stable sort: equal logits keep index order, so results do not depend on the sort algorithm.
    idx.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap_or(std::cmp::Ordering::Equal));
    if top_k > 0 && top_k < idx.len() {
        idx.truncate(top_k);
    }
    if idx.is_empty() {
        return vec![(argmax(logits), 1.0)];
    }
    let max = logits[idx[0]] as f64;
    let t = temperature as f64;
    let mut probs: Vec<f64> = idx.iter().map(|&i| ((logits[i] as f64 - max) / t).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    let mut keep = probs.len();
    if top_p < 1.0 {
        let mut acc = 0.0;
        for (k, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= top_p as f64 {
                keep = k + 1;
                break;
            }
        }
    }
    let kept_sum: f64 = probs[..keep].iter().sum();
    idx.into_iter().zip(probs).take(keep).map(|(i, p)| (i, p / kept_sum)).collect()
}

/// Inverse-CDF draw with `u` in [0,1).
fn draw(cands: &[(usize, f64)], u: f64) -> usize {
    let mut acc = 0.0;
    for &(i, p) in cands {
        acc += p;
        if u < acc {
            return i;
        }
    }
    cands.last().map(|c| c.0).unwrap_or(0)
}

/// Softmax in f64 (for KL figures between two logit rows).
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    logits.iter().map(|&v| v as f64 - lse).collect()
}

/// KL(p ‖ q) in nats, from log-probabilities. Terms with p = 0 contribute nothing (the limit
/// of p·log p, where `exp(-inf) * (-inf - b)` would be NaN); identical inputs give exactly 0.
pub fn kl_from_log_probs(lp: &[f64], lq: &[f64]) -> f64 {
    lp.iter().zip(lq).map(|(&a, &b)| if a == f64::NEG_INFINITY { 0.0 } else { a.exp() * (a - b) }).sum()
}

/// KL(p || q) of the distributions given by two logit rows, in nats.
pub fn kl_divergence(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    kl_from_log_probs(&log_softmax(p_logits), &log_softmax(q_logits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_with_lowest_index_on_ties() {
        let mut s = Sampler::new(&GenerationConfig::default());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0], &[]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_once() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut l, &[0, 1, 0, 0], 2.0, 64);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
        // Outside the window: untouched.
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut l, &[0, 1], 2.0, 1);
        assert_eq!(l, vec![2.0, -4.0, 1.0]);
    }

    #[test]
    fn penalty_can_change_the_greedy_choice() {
        let cfg = GenerationConfig { repeat_penalty: 2.0, ..Default::default() };
        let mut s = Sampler::new(&cfg);
        assert_eq!(s.sample(&[3.0, 2.0], &[0]), 1);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [1.0f32, 4.0, 3.0, 2.0];
        let c = filter_candidates(&logits, 1.0, 2, 1.0);
        assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
        let s: f64 = c.iter().map(|c| c.1).sum();
        assert!((s - 1.0).abs() < 1e-12);
        // Softmax of [4,3,2,1]: p(1) ≈ 0.644 < 0.7, so top-p 0.7 keeps two tokens.
        let c = filter_candidates(&logits, 1.0, 0, 0.7);
        assert_eq!(c.len(), 2);
        let c = filter_candidates(&logits, 1.0, 0, 0.5);
        assert_eq!(c, vec![(1, 1.0)]);
    }

    #[test]
    fn sampling_is_reproducible_from_the_seed_and_follows_the_distribution() {
        let logits = [0.0f32, 1.0, 2.0];
        let cfg = GenerationConfig { temperature: 1.0, seed: 42, ..Default::default() };
        let run = |cfg: &GenerationConfig| {
            let mut s = Sampler::new(cfg);
            (0..4000).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = run(&cfg);
        assert_eq!(a, run(&cfg));
        assert_ne!(a, run(&GenerationConfig { seed: 43, ..cfg.clone() }));
        let p = filter_candidates(&logits, 1.0, 0, 1.0);
        for (tok, prob) in p {
            let freq = a.iter().filter(|&&t| t as usize == tok).count() as f64 / a.len() as f64;
            assert!((freq - prob).abs() < 0.03, "token {tok}: freq {freq} vs p {prob}");
        }
    }

    #[test]
    fn low_temperature_approaches_greedy() {
        let cfg = GenerationConfig { temperature: 0.01, seed: 7, ..Default::default() };
        let mut s = Sampler::new(&cfg);
        for _ in 0..100 {
            assert_eq!(s.sample(&[1.0, 1.5, 0.2], &[]), 1);
        }
    }

    #[test]
    fn kl_is_zero_for_equal_rows_and_positive_otherwise() {
        assert!(kl_divergence(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        // Adding a constant does not change the distribution.
        assert!(kl_divergence(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]).abs() < 1e-9);
        assert!(kl_divergence(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) > 0.1);
    }
}
