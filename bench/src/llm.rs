//! LLM benchmark: prefill and decode tok/s through our runtime ([`Pipeline::chat_stream`]:
//! prompt rendering, chunked [`h2ovl_runtime::llm::decode::prefill`], sampler, detokenizer) against
//! llama.cpp's bare loop (raw token batches through [`h2ovl_runtime::llm::ffi`], argmax) on the same GGUF
//! with the same threads, context size, batch size, KV type and flash-attention setting, in one
//! run. The bare loop decodes exactly the prompt ids our run produced, so both see the same
//! tokens. Then the same again after a long prefix (≈ an image-heavy prompt), where decode is
//! dominated by attention over the KV cache rather than by the weights.
//!
//! Rates are defined identically on both sides: prefill = prompt tokens / time of the prefill;
//! decode = generated tokens / time from the prefill's logits to the last sampled token
//! (`gen` samples, `gen - 1` single-token decodes), as [`h2ovl_runtime::llm::Timings`] counts them.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Result};
use serde::Serialize;

use h2ovl_runtime::llm::ffi::{Batch, Context, ContextParams, Token};
use h2ovl_runtime::llm::{GenerationConfig, History, KvType, Pipeline, PipelineOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct LlmBenchOptions {
    pub model: PathBuf,
    /// llama.cpp threads (0 = all cores).
    pub threads: usize,
    /// Approximate prompt length of the short case (the chat template adds a few tokens).
    pub prompt_tokens: usize,
    /// Tokens generated per case.
    pub gen: usize,
    /// Approximate prefix length of the long-context decode case (0 = skip it).
    pub long_prefix: usize,
    /// Largest `llama_decode` batch (as `PipelineOptions::n_batch`).
    pub n_batch: usize,
    pub flash_attn: Option<bool>,
    pub kv_type: KvType,
    /// Repetitions of each case (ours and bare, alternating which goes first); medians are reported.
    pub runs: usize,
    /// Also time llama.cpp's bare loop (false: ours only, bare figures NaN; for `bench cpu`, which
    /// compares CPU variants rather than code paths).
    pub bare: bool,
}

impl Default for LlmBenchOptions {
    fn default() -> Self {
        let p = PipelineOptions::default();
        LlmBenchOptions {
            model: PathBuf::new(),
            threads: 0,
            prompt_tokens: 256,
            gen: 64,
            long_prefix: 1800,
            n_batch: p.n_batch,
            flash_attn: p.flash_attn,
            kv_type: p.kv_type,
            runs: 1,
            bare: true,
        }
    }
}

/// Rates of one case, ours and bare.
#[derive(Clone, Debug, Serialize)]
pub struct LlmCase {
    pub name: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub ours_prefill_tok_s: f64,
    pub bare_prefill_tok_s: f64,
    /// ours / bare (≥ 0.98 is the target).
    pub prefill_ratio: f64,
    pub ours_decode_tok_s: f64,
    pub bare_decode_tok_s: f64,
    pub decode_ratio: f64,
    /// CPU seconds of the whole case (prefill + decode), ours and bare.
    pub ours_cpu_s: f64,
    pub bare_cpu_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LlmReport {
    pub model: String,
    pub file_bytes: u64,
    pub threads: usize,
    pub n_ctx: usize,
    pub n_batch: usize,
    pub flash_attn: String,
    pub kv_type: String,
    pub runs: usize,
    pub cases: Vec<LlmCase>,
    pub load_average: String,
}

/// A question of about `n` tokens (plain words, one token each or close to it).
fn question_of(pipe: &Pipeline, n: usize) -> Result<String> {
    const WORDS: [&str; 12] = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then", "sleeps"];
    let make = |k: usize| (0..k).map(|i| WORDS[i % WORDS.len()]).collect::<Vec<_>>().join(" ");
    // Chat template overhead measured on the model's own tokenizer, then one correction step.
    let mut k = n.saturating_sub(16).max(1);
    let got = pipe.tokenize(&make(k))?.len();
    if got > 0 {
        k = ((k as f64) * (n.saturating_sub(16).max(1) as f64) / got as f64).round().max(1.0) as usize;
    }
    Ok(make(k))
}

struct Run {
    prefill_tok_s: f64,
    decode_tok_s: f64,
    cpu_s: f64,
}

fn ours(pipe: &mut Pipeline, question: &str, gen: usize) -> Result<(Run, Vec<Token>)> {
    pipe.reset();
    let cfg = GenerationConfig { max_new_tokens: gen, stop_at_eos: false, ..Default::default() };
    let (out, _, cpu) = super::timed(|| pipe.chat_stream(&[], question, &cfg, &History::new(), &mut |_| {}));
    let out = out?;
    let t = &out.timings;
    Ok((Run { prefill_tok_s: t.prefill_tok_s(), decode_tok_s: t.decode_tok_s(), cpu_s: cpu }, out.prompt_ids))
}

fn argmax(l: &[f32]) -> Token {
    let mut best = 0;
    for (i, v) in l.iter().enumerate() {
        if *v > l[best] {
            best = i;
        }
    }
    best as Token
}

/// llama.cpp's bare loop: the prompt in `n_batch` token chunks, then argmax + one-token decodes.
fn bare(ctx: &mut Context, ids: &[Token], gen: usize) -> Result<Run> {
    ctx.clear_kv();
    let c0 = super::cpu_seconds();
    let n_batch = ctx.n_batch().max(1);
    let mut batch = Batch::tokens(n_batch);
    let t = Instant::now();
    for (c, chunk) in ids.chunks(n_batch).enumerate() {
        batch.clear();
        for (k, &tok) in chunk.iter().enumerate() {
            let pos = c * n_batch + k;
            batch.push_token(tok, pos, pos + 1 == ids.len())?;
        }
        ctx.decode(&batch)?;
    }
    let mut tok = argmax(ctx.logits(batch.len() - 1)?);
    let prefill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut one = Batch::tokens(1);
    for step in 1..gen {
        one.clear();
        one.push_token(tok, ids.len() + step - 1, true)?;
        ctx.decode(&one)?;
        tok = argmax(ctx.logits(0)?);
    }
    std::hint::black_box(tok);
    let decode_s = t.elapsed().as_secs_f64();
    Ok(Run {
        prefill_tok_s: ids.len() as f64 / prefill_s,
        decode_tok_s: gen as f64 / decode_s,
        cpu_s: super::cpu_seconds() - c0,
    })
}

pub fn run(o: &LlmBenchOptions) -> Result<LlmReport> {
    ensure!(o.gen >= 2, "--gen must be at least 2");
    ensure!(o.prompt_tokens >= 1, "--prompt-tokens must be at least 1");
    ensure!(o.runs >= 1, "--runs must be at least 1");
    let popts = PipelineOptions {
        threads: o.threads,
        n_batch: o.n_batch,
        kv_type: o.kv_type,
        flash_attn: o.flash_attn,
        ..Default::default()
    };
    let threads = popts.n_threads();
    // One explicit context size for both sides, large enough for the longest case.
    let longest = o.prompt_tokens.max(o.long_prefix) + 64 + o.gen;
    let mut pipe = Pipeline::load(&o.model, None, PipelineOptions { n_ctx: Some(longest.next_multiple_of(256)), ..popts.clone() })?;
    let train = pipe.model().n_ctx_train();
    ensure!(
        train == 0 || longest <= train,
        "{}: the long case needs {longest} positions but the model was trained for {train}; lower --long-prefix",
        o.model.display()
    );
    let n_ctx = longest.next_multiple_of(256);
    // Same weights in memory for both sides (a second copy could sit differently in caches/TLB).
    let model = pipe.model_arc();
    let params = ContextParams {
        n_ctx: n_ctx as u32,
        n_batch: o.n_batch as u32,
        n_threads: threads as i32,
        kv_type: o.kv_type,
        flash_attn: o.flash_attn,
    };
    let mut ctx = Context::new(model, &params)?;

    // Warm-up, untimed: first-decode allocations and page faults of the weights on both sides.
    let warm = question_of(&pipe, 8)?;
    let (_, ids) = ours(&mut pipe, &warm, 2)?;
    if o.bare {
        bare(&mut ctx, &ids, 2)?;
    }

    let mut cases = Vec::new();
    let mut plan = vec![("short prompt", o.prompt_tokens)];
    if o.long_prefix > 0 {
        plan.push(("long prefix", o.long_prefix));
    }
    for (name, n) in plan {
        let q = question_of(&pipe, n)?;
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        let mut ids: Vec<Token> = Vec::new();
        for run in 0..o.runs {
            // Alternate which side goes first, so a drift in machine load does not favour one.
            if o.bare && run % 2 == 1 {
                theirs.push(bare(&mut ctx, &ids, o.gen)?);
            }
            let (r, got) = ours(&mut pipe, &q, o.gen)?;
            ids = got;
            mine.push(r);
            if o.bare && run % 2 == 0 {
                theirs.push(bare(&mut ctx, &ids, o.gen)?);
            }
        }
        let n_prompt = ids.len();
        let med = |v: &[Run], f: fn(&Run) -> f64| super::median(&v.iter().map(f).collect::<Vec<_>>());
        let (op, bp) = (med(&mine, |r| r.prefill_tok_s), med(&theirs, |r| r.prefill_tok_s));
        let (od, bd) = (med(&mine, |r| r.decode_tok_s), med(&theirs, |r| r.decode_tok_s));
        cases.push(LlmCase {
            name: name.into(),
            prompt_tokens: n_prompt,
            gen_tokens: o.gen,
            ours_prefill_tok_s: op,
            bare_prefill_tok_s: bp,
            prefill_ratio: op / bp,
            ours_decode_tok_s: od,
            bare_decode_tok_s: bd,
            decode_ratio: od / bd,
            ours_cpu_s: med(&mine, |r| r.cpu_s),
            bare_cpu_s: med(&theirs, |r| r.cpu_s),
        });
    }
    Ok(LlmReport {
        model: o.model.display().to_string(),
        file_bytes: std::fs::metadata(&o.model).map_or(0, |m| m.len()),
        threads,
        n_ctx,
        n_batch: o.n_batch,
        flash_attn: o.flash_attn.map_or("auto".into(), |b| if b { "on".into() } else { "off".into() }),
        kv_type: format!("{:?}", o.kv_type),
        runs: o.runs,
        cases,
        load_average: super::load_average(),
    })
}

impl std::fmt::Display for LlmReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "llm bench: {} ({:.0} MB), {} threads, n_ctx {}, n_batch {}, flash attention {}, KV {}, median of {} run(s); load {}",
            self.model,
            self.file_bytes as f64 / 1e6,
            self.threads,
            self.n_ctx,
            self.n_batch,
            self.flash_attn,
            self.kv_type,
            self.runs,
            self.load_average
        )?;
        for (i, c) in self.cases.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{:<12} prefill {:>5} tok: ours {:7.1} tok/s, llama.cpp {:7.1} tok/s (×{:.3}); decode {} tok: ours {:6.1} tok/s, \
                 llama.cpp {:6.1} tok/s (×{:.3}); CPU {:.2} s vs {:.2} s",
                c.name,
                c.prompt_tokens,
                c.ours_prefill_tok_s,
                c.bare_prefill_tok_s,
                c.prefill_ratio,
                c.gen_tokens,
                c.ours_decode_tok_s,
                c.bare_decode_tok_s,
                c.decode_ratio,
                c.ours_cpu_s,
                c.bare_cpu_s
            )?;
        }
        Ok(())
    }
}
