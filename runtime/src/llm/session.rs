//! The library API: load once, then `chat` like the reference
//! `model.chat(tokenizer, images, question, generation_config, history)`.
//!
//! A [`Pipeline`] owns the llama.cpp model and context, the image encoder and a cache of image
//! embeddings keyed by content. It remembers which slots (token ids / image rows) sit in the KV
//! cache, so a new turn re-renders the whole conversation exactly as the reference does, keeps
//! the longest common prefix already in the cache, and decodes only the rest.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use super::decode::{prefill, PrefillOutput, Stepper};
use super::detok::TextStream;
use super::ffi::{Context, ContextParams, KvType, Model, Token};
use super::fit::{FitChoice, PagesMode};
use super::images::{ImageEncoder, ImageInput, PreparedImage, TilingOptions};
use super::prompt::{is_stop, question_with_placeholders, render, tokenize_prompt, PromptTokens, Slot, TOKENS_PER_TILE};
use super::sampling::{GenerationConfig, Sampler};

/// How to load and run the pipeline.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// CPU threads for llama.cpp and the vision encoder (0 = all cores).
    pub threads: usize,
    /// Context size; `None` = enough for prompt + max_new_tokens, up to the model's trained length.
    pub n_ctx: Option<usize>,
    /// Largest `llama_decode` batch.
    pub n_batch: usize,
    pub kv_type: KvType,
    /// Flash attention (None = llama.cpp's automatic choice).
    pub flash_attn: Option<bool>,
    /// Upper bound on tiles per image (the reference's `max_tiles`, 6).
    pub max_tiles: usize,
    /// Use MSAC for a single image when the model does (2b). `false` = `--no-msac`.
    pub msac: bool,
    /// Show llama.cpp's own logs.
    pub verbose: bool,
    /// Images with more pixels are refused from their header, before any pixel buffer is allocated.
    pub max_pixels: u64,
    /// Arithmetic of the vision encoder's linear layers (`--vision-math`; Auto honours
    /// `H2OVL_VISION_MATH`, then picks int8 only where it meets the speed/accuracy bar).
    pub vision_math: crate::vision::VisionMath,
    /// When a request's images do not fit the context: fit them (lower the tile budget) or refuse.
    pub pages_mode: PagesMode,
    /// Floor of the fitted tile budget (`max_num`), see [`super::fit::DEFAULT_MIN_TILES`].
    pub min_tiles: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            threads: 0,
            n_ctx: None,
            n_batch: 512,
            kv_type: KvType::F16,
            flash_attn: None,
            max_tiles: 6,
            msac: true,
            verbose: false,
            max_pixels: crate::preprocess::PIL_MAX_PIXELS,
            vision_math: crate::vision::VisionMath::Auto,
            pages_mode: PagesMode::Auto,
            min_tiles: super::fit::DEFAULT_MIN_TILES,
        }
    }
}

impl PipelineOptions {
    /// `--exact`: the settings that follow the float32 reference (f32 KV cache, flash attention
    /// off, f32 vision arithmetic), the rest unchanged. With F32 (or F16) model files these
    /// reproduce the reference's greedy ids; the defaults trade that for speed and memory (f16 KV
    /// cache, llama.cpp's flash-attention choice, int8 vision where the CPU has a fast int8 dot
    /// product; see the README).
    pub fn exact(self) -> PipelineOptions {
        PipelineOptions { kv_type: KvType::F32, flash_attn: Some(false), vision_math: crate::vision::VisionMath::F32, ..self }
    }

    /// Whether these are the [`PipelineOptions::exact`] settings.
    pub fn is_exact(&self) -> bool {
        self.kv_type == KvType::F32 && self.flash_attn == Some(false) && self.vision_math == crate::vision::VisionMath::F32
    }

    pub fn n_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}

/// One finished exchange. `question` carries its `<image>` placeholders; `images` are the
/// images attached in that turn, in placeholder order.
#[derive(Clone, Debug)]
pub struct Turn {
    pub question: String,
    pub answer: String,
    pub images: Vec<ImageInput>,
}

/// The conversation so far (the reference's `history` list of (question, answer)).
#[derive(Clone, Debug, Default)]
pub struct History {
    pub turns: Vec<Turn>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn n_images(&self) -> usize {
        self.turns.iter().map(|t| t.images.len()).sum()
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `<|end|>` or `</s>` was sampled.
    EndOfAnswer,
    /// `max_new_tokens` reached.
    Length,
    /// [`GenerationConfig::cancel`] was set.
    Cancelled,
}

/// Wall-clock split of one turn.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub image_encode_s: f64,
    pub images_encoded: usize,
    pub prefill_s: f64,
    pub prefill_tokens: usize,
    pub decode_s: f64,
    pub decode_tokens: usize,
}

impl Timings {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_s)
    }

    pub fn decode_tok_s(&self) -> f64 {
        rate(self.decode_tokens, self.decode_s)
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Everything a turn produced.
#[derive(Clone, Debug)]
pub struct ChatOutput {
    /// The answer, special tokens skipped, stripped (as the reference returns it).
    pub answer: String,
    /// Generated ids (the stop token excluded).
    pub tokens: Vec<Token>,
    pub stop: StopReason,
    /// The full prompt ids of this turn (history included), as the reference `input_ids`.
    pub prompt_ids: Vec<Token>,
    /// Prompt positions reused from the KV cache (not recomputed).
    pub reused_tokens: usize,
    /// Tiles per image of the conversation, in prompt order.
    pub image_tiles: Vec<usize>,
    /// Set when the images were fitted to the context with a lower tile budget (`--pages-mode`).
    pub fit: Option<FitChoice>,
    pub timings: Timings,
    /// With `probe.step_logits`: the logits that chose each generated token.
    pub step_logits: Vec<Vec<f32>>,
    /// With `probe.prompt_positions`: (position, logits) for each computed requested position.
    pub prompt_logits: Vec<(usize, Vec<f32>)>,
    /// `history` + this turn.
    pub history: History,
}

/// Image embeddings kept beyond the current conversation (2b: ~18 MB per 7-tile image).
const MAX_CACHED_IMAGES: usize = 32;

struct CachedImage {
    n_tiles: usize,
    rows: Vec<f32>,
}

/// The loaded model(s) plus conversation state.
pub struct Pipeline {
    model: Arc<Model>,
    ctx: Option<Context>,
    /// What the KV cache holds, position by position.
    kv: Vec<Slot>,
    encoder: Option<Box<dyn ImageEncoder>>,
    cache: HashMap<u64, CachedImage>,
    opts: PipelineOptions,
    /// Token pieces for closing JSON answers within the budget (built on the first constrained turn).
    vocab: Option<Arc<super::grammar::ModelVocab>>,
}

impl Pipeline {
    /// Load the LLM GGUF and, if given, the vision (mmproj) GGUF.
    pub fn load(llm_gguf: &Path, mmproj: Option<&Path>, opts: PipelineOptions) -> Result<Pipeline> {
        let encoder = match mmproj {
            Some(p) => Some(super::vision_encoder::load(p, &opts)?),
            None => None,
        };
        Self::with_encoder(llm_gguf, encoder, opts)
    }

    /// Load the LLM and use `encoder` for images (e.g. precomputed embeddings in tests).
    pub fn with_encoder(llm_gguf: &Path, encoder: Option<Box<dyn ImageEncoder>>, opts: PipelineOptions) -> Result<Pipeline> {
        super::ffi::set_verbose(opts.verbose);
        if opts.verbose {
            // First line of verbose output: which kernels this run uses (llama.cpp variant, vision ISA).
            eprintln!("h2ovl: {}", super::cpu_backend::describe());
        }
        let model = Arc::new(Model::load(llm_gguf, false)?);
        if let Some(e) = &encoder {
            if e.n_embd() != model.n_embd() {
                bail!(
                    "the vision GGUF projects to width {} but the LLM {} has hidden size {}: mismatched model files?",
                    e.n_embd(),
                    llm_gguf.display(),
                    model.n_embd()
                );
            }
        }
        Ok(Pipeline { model, ctx: None, kv: Vec::new(), encoder, cache: HashMap::new(), opts, vocab: None })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The loaded LLM, shareable: `bench llm` runs llama.cpp's bare loop in a second context on
    /// the very same weights, so the two sides differ only in the code around `llama_decode`.
    pub fn model_arc(&self) -> Arc<Model> {
        self.model.clone()
    }

    pub fn options(&self) -> &PipelineOptions {
        &self.opts
    }

    /// Empty the image-embedding cache (reading a document page by page keeps one page's).
    pub fn forget_images(&mut self) {
        self.cache.clear();
    }

    /// Per-request `pages_mode` (the server's request field); the other options are fixed at load.
    pub fn set_pages_mode(&mut self, m: PagesMode) {
        self.opts.pages_mode = m;
    }

    pub fn has_vision(&self) -> bool {
        self.encoder.is_some()
    }

    /// Whether a single image would be tiled with MSAC (a 2B vision model, MSAC not turned off):
    /// PDF pages are rendered with enough pixels for that grid.
    pub fn uses_msac(&self) -> bool {
        self.opts.msac && self.encoder.as_ref().is_some_and(|e| e.uses_msac())
    }

    /// Forget the KV cache (the image-embedding cache stays).
    pub fn reset(&mut self) {
        if let Some(c) = &mut self.ctx {
            c.clear_kv();
        }
        self.kv.clear();
    }

    fn json_budget(&mut self, c: &crate::json::Constraint) -> crate::json::budget::Budget<Arc<super::grammar::ModelVocab>> {
        let model = self.model.clone();
        let vocab = self.vocab.get_or_insert_with(|| Arc::new(super::grammar::ModelVocab::new(model))).clone();
        crate::json::budget::Budget::new(c.shape.clone(), vocab)
    }

    /// Tokens (this model's tokenizer) of the smallest answer `c` allows, and its text: a
    /// `max_new_tokens` below it is refused by [`Pipeline::chat_stream`].
    pub fn json_minimum(&mut self, c: &crate::json::Constraint) -> (usize, String) {
        self.json_budget(c).minimum()
    }

    /// Tokenize text with the GGUF vocabulary (special tokens parsed, no BOS).
    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>> {
        self.model.tokenize(text, true)
    }

    /// One turn: `(answer, history + this turn)`, like the reference `model.chat(...)`.
    ///
    /// `images` are the images attached in *this* turn; those of earlier turns travel in
    /// `history`. A question without `<image>` gets `<image>\n` (one image) or
    /// `Image-1: <image>\n…` (several) prepended. The reference does that on the first turn
    /// only; here a later turn that attaches images gets it too, or they would have no place.
    /// MSAC applies when the whole conversation has exactly one image (as the reference, which
    /// re-tiles every image of the conversation on each call).
    pub fn chat(
        &mut self,
        images: &[ImageInput],
        question: &str,
        cfg: &GenerationConfig,
        history: &History,
    ) -> Result<(String, History)> {
        let out = self.chat_stream(images, question, cfg, history, &mut |_| {})?;
        Ok((out.answer, out.history))
    }

    /// One turn, calling `on_text` with each newly decoded piece of the answer.
    pub fn chat_stream(
        &mut self,
        images: &[ImageInput],
        question: &str,
        cfg: &GenerationConfig,
        history: &History,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatOutput> {
        let r = self.chat_inner(images, question, cfg, history, on_text);
        if r.is_err() {
            // The KV cache may hold a half-decoded turn: start clean next time.
            self.reset();
        }
        r
    }

    /// One turn, as named stages: tiling (fit to the context) → images (keys, tiling) →
    /// prompt → context (checked before any compute) → encode → prefill → decode.
    fn chat_inner(
        &mut self,
        images: &[ImageInput],
        question: &str,
        cfg: &GenerationConfig,
        history: &History,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatOutput> {
        let mut timings = Timings::default();
        let n_prev = history.n_images();
        let all_images: Vec<&ImageInput> = history.turns.iter().flat_map(|t| t.images.iter()).chain(images).collect();
        if !all_images.is_empty() && self.encoder.is_none() {
            bail!("images were given but no vision model is loaded (pass --mmproj with the vision GGUF)");
        }
        let question_ph = question_with_placeholders(question, images.len(), n_prev + 1)?;
        let rendered = render(history.turns.iter().map(|t| (t.question.as_str(), t.answer.as_str())), &question_ph);
        let limit = self.context_limit();

        let (tiling, fit) = self.choose_tiling(&all_images, &rendered, cfg.max_new_tokens, limit)?;
        let (keys, to_encode) = self.prepare_images(&all_images, &tiling)?;
        let prompt = self.prompt(&rendered, &keys)?;

        // Context size, checked before encoding anything.
        let needed = prompt.len() + cfg.max_new_tokens;
        if needed > limit {
            let tiles_total: usize = keys.iter().map(|k| k.1).sum();
            bail!(
                "the prompt needs {} tokens ({} image positions from {} tiles) + {} new tokens = {}, more than the \
                 context size {}: lower --max-tiles (now {}), pass fewer images, lower -n/--max-new-tokens{}{}",
                prompt.len(),
                prompt.n_image_positions(),
                tiles_total,
                cfg.max_new_tokens,
                needed,
                limit,
                self.opts.max_tiles,
                if self.opts.n_ctx.is_some() { ", or raise -c/--ctx-size" } else { "" },
                if self.opts.pages_mode == PagesMode::Off { ", or let --pages-mode auto fit the images" } else { "" }
            );
        }
        // A constrained answer must fit its smallest valid value in the budget: refuse up
        // front rather than return JSON that does not parse.
        let budget = cfg.constraint.as_ref().map(|c| self.json_budget(c));
        if let Some(b) = &budget {
            check_json_minimum(b.minimum(), cfg.max_new_tokens)?;
        }
        self.ensure_context(needed, limit)?;
        self.encode_images(to_encode, &mut timings)?;
        let (keep, last) = self.prefill_prompt(&prompt, &cfg.probe.prompt_positions, &mut timings)?;
        let gen = self.generate(cfg, &prompt, last.last, budget, on_text, &mut timings)?;

        // Bound the embedding cache: past a few dozen images keep only this conversation's.
        if self.cache.len() > MAX_CACHED_IMAGES {
            self.cache.retain(|k, _| keys.iter().any(|(key, _)| key == k));
        }
        let mut new_history = history.clone();
        new_history.turns.push(Turn { question: question_ph, answer: gen.answer.clone(), images: images.to_vec() });
        Ok(ChatOutput {
            answer: gen.answer,
            tokens: gen.tokens,
            stop: gen.stop,
            prompt_ids: prompt.ids,
            reused_tokens: keep,
            image_tiles: keys.iter().map(|k| k.1).collect(),
            fit,
            timings,
            step_logits: gen.step_logits,
            prompt_logits: last.at,
            history: new_history,
        })
    }

    /// The context size a turn must fit: `-c`, else the model's trained length.
    fn context_limit(&self) -> usize {
        let train = if self.model.n_ctx_train() > 0 { self.model.n_ctx_train() } else { 8192 };
        self.opts.n_ctx.unwrap_or(train)
    }

    /// Stage 1, tiling: the request's own (`--max-tiles`, MSAC when the whole conversation has
    /// one image, as the reference), or under `--pages-mode auto|fit`, when the images do not fit
    /// with the answer budget, the largest lower budget that does ([`super::fit`]).
    fn choose_tiling(&mut self, images: &[&ImageInput], rendered: &str, max_new: usize, limit: usize) -> Result<(TilingOptions, Option<FitChoice>)> {
        let lower = self.opts.pages_mode != PagesMode::Off;
        match self.tiling_plan(images, rendered, max_new, limit, lower)? {
            Plan::Requested(t) => Ok((t, None)),
            Plan::Fitted(t, f) => Ok((t, Some(f))),
            Plan::TooLarge(msg) => bail!("{msg}"),
        }
    }

    /// Whether `images` and `question` (a new conversation) fit the context with `max_new`
    /// tokens: at the requested tiling, or (`lowered`) at some tile budget down to the floor.
    pub fn fits(&mut self, images: &[ImageInput], question: &str, max_new: usize, lowered: bool) -> Result<bool> {
        if !images.is_empty() && self.encoder.is_none() {
            bail!("images were given but no vision model is loaded (pass --mmproj with the vision GGUF)");
        }
        let refs: Vec<&ImageInput> = images.iter().collect();
        let rendered = render(std::iter::empty(), &question_with_placeholders(question, images.len(), 1)?);
        let limit = self.context_limit();
        Ok(match self.tiling_plan(&refs, &rendered, max_new, limit, lowered)? {
            Plan::Requested(t) => {
                // Requested means "nothing was lowered": check that it fits at all.
                let tiles: usize = refs.iter().map(|i| self.tile_count(i, &t)).sum::<Result<usize>>()?;
                self.text_tokens(&rendered, refs.len())? + tiles * TOKENS_PER_TILE + max_new <= limit
            }
            Plan::Fitted(..) => lowered,
            Plan::TooLarge(_) => false,
        })
    }

    fn tile_count(&self, img: &ImageInput, t: &TilingOptions) -> Result<usize> {
        let enc = self.encoder.as_ref().context("no vision model is loaded")?;
        enc.tile_count(img, t).with_context(|| format!("preparing image {}", img.label()))
    }

    /// Prompt tokens besides the image positions (they do not depend on the tile counts).
    fn text_tokens(&self, rendered: &str, n_images: usize) -> Result<usize> {
        let model = self.model.clone();
        let one_each: Vec<(u64, usize)> = vec![(0, 1); n_images];
        Ok(tokenize_prompt(rendered, &one_each, |s| model.tokenize(s, true))?.len() - n_images * TOKENS_PER_TILE)
    }

    fn tiling_plan(&mut self, images: &[&ImageInput], rendered: &str, max_new: usize, limit: usize, lower: bool) -> Result<Plan> {
        let msac = self.opts.msac && images.len() == 1 && self.encoder.as_ref().is_some_and(|e| e.uses_msac());
        let requested = TilingOptions { max_tiles: self.opts.max_tiles, msac };
        if images.is_empty() || !lower {
            return Ok(Plan::Requested(requested));
        }
        let count = |lv: &TilingOptions| -> Result<usize> { images.iter().map(|img| self.tile_count(img, lv)).sum() };
        let text = self.text_tokens(rendered, images.len())?;
        let fixed = text + max_new;
        let t0 = count(&requested)?;
        if fixed + t0 * TOKENS_PER_TILE <= limit {
            return Ok(Plan::Requested(requested));
        }
        let floor = self.opts.min_tiles.min(self.opts.max_tiles);
        let levels = super::fit::levels(self.opts.max_tiles, floor, msac);
        if levels.len() == 1 {
            return Ok(Plan::Requested(requested)); // nothing to lower: the context check says why
        }
        Ok(match super::fit::choose(&levels, fixed, limit, count)? {
            Some((i, tiles)) => {
                let used = levels[i];
                Plan::Fitted(used, FitChoice { images: images.len(), requested, used, tiles_requested: t0, tiles, limit })
            }
            None => {
                let at_floor = count(levels.last().expect("levels are never empty"))?;
                Plan::TooLarge(format!(
                    "{} image(s) do not fit the context even at the floor of max {floor} tiles per image: {} tiles = {} \
                     image positions + {text} text tokens + {max_new} new tokens = {}, more than the context size {limit}: \
                     read them page by page (--pages-mode each), pass fewer pages or images (--pages), lower \
                     -n/--max-new-tokens, lower --min-tiles (now {floor}){}",
                    images.len(),
                    at_floor,
                    at_floor * TOKENS_PER_TILE,
                    fixed + at_floor * TOKENS_PER_TILE,
                    if self.opts.n_ctx.is_some() { ", or raise -c/--ctx-size" } else { "" }
                ))
            }
        })
    }

    /// Stage 2, images: each image's content key and tile count (from the embedding cache when
    /// it was encoded before with this tiling), and the images to encode, decoded and tiled.
    #[allow(clippy::type_complexity)]
    fn prepare_images(&self, images: &[&ImageInput], tiling: &TilingOptions) -> Result<(Vec<(u64, usize)>, Vec<(u64, PreparedImage)>)> {
        let mut keys: Vec<(u64, usize)> = Vec::with_capacity(images.len());
        let mut to_encode: Vec<(u64, PreparedImage)> = Vec::new();
        for img in images {
            let key = img.content_key(tiling)?;
            let n_tiles = if let Some(c) = self.cache.get(&key) {
                c.n_tiles
            } else if let Some((_, p)) = to_encode.iter().find(|(k, _)| *k == key) {
                p.n_tiles
            } else {
                let enc = self.encoder.as_ref().expect("checked by chat_inner");
                let p = enc.prepare(img, tiling).with_context(|| format!("preparing image {}", img.label()))?;
                let n = p.n_tiles;
                to_encode.push((key, p));
                n
            };
            keys.push((key, n_tiles));
        }
        Ok((keys, to_encode))
    }

    /// Stage 3, prompt: the rendered conversation with each `<image>` expanded to its rows.
    fn prompt(&self, rendered: &str, keys: &[(u64, usize)]) -> Result<PromptTokens> {
        let model = self.model.clone();
        tokenize_prompt(rendered, keys, |s| model.tokenize(s, true))
    }

    /// Stage 4, context: large enough for `needed` positions. Auto size: what this turn needs,
    /// but at least double the previous context, so a growing conversation re-allocates only
    /// O(log n) times; the KV cache moves into the new context, so growing costs no re-prefill.
    fn ensure_context(&mut self, needed: usize, limit: usize) -> Result<()> {
        if self.ctx.as_ref().is_some_and(|c| c.n_ctx() >= needed) {
            return Ok(());
        }
        let prev = self.ctx.as_ref().map_or(0, |c| c.n_ctx());
        let n_ctx = self.opts.n_ctx.unwrap_or_else(|| needed.next_multiple_of(256).max(2 * prev).min(limit));
        let saved = match self.ctx.as_mut() {
            Some(c) if !self.kv.is_empty() => c.save_seq().ok(),
            _ => None,
        };
        self.ctx = None; // free the old KV cache before allocating the new one
        let p = ContextParams {
            n_ctx: n_ctx as u32,
            n_batch: self.opts.n_batch as u32,
            n_threads: self.opts.n_threads() as i32,
            kv_type: self.opts.kv_type,
            flash_attn: self.opts.flash_attn,
        };
        let mut ctx = Context::new(self.model.clone(), &p)?;
        if saved.is_none_or(|s| ctx.load_seq(&s).is_err()) {
            ctx.clear_kv();
            self.kv.clear();
        }
        self.ctx = Some(ctx);
        Ok(())
    }

    /// Stage 5, encode: the images not seen before, into the embedding cache.
    fn encode_images(&mut self, mut to_encode: Vec<(u64, PreparedImage)>, timings: &mut Timings) -> Result<()> {
        if to_encode.is_empty() {
            return Ok(());
        }
        let n_embd = self.model.n_embd();
        let t = Instant::now();
        let enc = self.encoder.as_ref().expect("checked by chat_inner");
        for (key, p) in &to_encode {
            let rows = enc.encode(p, self.opts.n_threads())?;
            let want = p.n_tiles * TOKENS_PER_TILE * n_embd;
            if rows.len() != want {
                bail!("the vision encoder returned {} values for {} tiles, expected {want}", rows.len(), p.n_tiles);
            }
            self.cache.insert(*key, CachedImage { n_tiles: p.n_tiles, rows });
        }
        // The normalized tiles (13 × 2.4 MB for an MSAC image) are not needed by the prefill:
        // free them now so they do not add to the peak RSS while the KV cache fills.
        timings.images_encoded = to_encode.len();
        drop(std::mem::take(&mut to_encode));
        timings.image_encode_s = t.elapsed().as_secs_f64();
        Ok(())
    }

    /// Stage 6, prefill: keep the common prefix of the KV cache, compute the rest. Returns the
    /// positions kept and the logits (last position, and the requested ones).
    fn prefill_prompt(&mut self, prompt: &PromptTokens, want: &[usize], timings: &mut Timings) -> Result<(usize, PrefillOutput)> {
        let n_embd = self.model.n_embd();
        let ctx = self.ctx.as_mut().expect("created by ensure_context");
        let mut keep = self.kv.iter().zip(&prompt.slots).take_while(|(a, b)| a == b).count();
        if keep == prompt.len() {
            keep -= 1; // recompute the last position: its logits start generation
        }
        ctx.truncate_kv(keep)?;
        self.kv.truncate(keep);
        let t = Instant::now();
        let cache = &self.cache;
        let pre = prefill(
            ctx,
            &prompt.slots[keep..],
            keep,
            |key, row| {
                let r = row as usize * n_embd;
                cache.get(&key).and_then(|c| c.rows.get(r..r + n_embd))
            },
            want,
        )?;
        self.kv.extend_from_slice(&prompt.slots[keep..]);
        timings.prefill_s = t.elapsed().as_secs_f64();
        timings.prefill_tokens = prompt.len() - keep;
        Ok((keep, pre))
    }

    /// Stage 7, decode: sample (or take the forced / budget token), stream the text, step.
    fn generate(
        &mut self,
        cfg: &GenerationConfig,
        prompt: &PromptTokens,
        mut logits: Vec<f32>,
        mut budget: Option<crate::json::budget::Budget<Arc<super::grammar::ModelVocab>>>,
        on_text: &mut dyn FnMut(&str),
        timings: &mut Timings,
    ) -> Result<Generated> {
        let t = Instant::now();
        let ctx = self.ctx.as_mut().expect("created by ensure_context");
        let mut sampler = Sampler::new(cfg);
        let mut grammar = cfg.constraint.as_ref().map(|c| super::grammar::GrammarMask::new(&self.model, c)).transpose()?;
        let mut stepper = Stepper::default();
        let mut context_ids: Vec<Token> = prompt.ids.clone();
        let mut stream = TextStream::new();
        let mut tokens = Vec::new();
        let mut step_logits = Vec::new();
        let mut stop = StopReason::Length;
        for step in 0..cfg.max_new_tokens {
            if cfg.probe.step_logits {
                step_logits.push(logits.clone());
            }
            if cfg.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                stop = StopReason::Cancelled;
                break;
            }
            let sampled = match &mut grammar {
                Some(g) => g.sample(&mut sampler, &mut logits, &context_ids, cfg.temperature <= 0.0)?,
                None => sampler.sample(&logits, &context_ids),
            };
            let mut tok = cfg.probe.forced.get(step).copied().unwrap_or(sampled);
            if let (Some(b), Some(g)) = (&mut budget, &mut grammar) {
                // Keep room to close the JSON: past this point the budget's tokens replace the model's.
                if cfg.probe.forced.get(step).is_none() && !g.is_eog(tok) {
                    tok = b.choose(tok, cfg.max_new_tokens - step - 1, &mut |t| g.allows(t));
                }
            }
            if (cfg.stop_at_eos && is_stop(tok)) || grammar.as_ref().is_some_and(|g| g.is_eog(tok)) {
                stop = StopReason::EndOfAnswer;
                break;
            }
            if let Some(g) = &mut grammar {
                g.accept(tok)?;
            }
            tokens.push(tok);
            context_ids.push(tok);
            if !self.model.is_special(tok) {
                let s = stream.push(&self.model.token_to_piece(tok, false));
                if !s.is_empty() {
                    on_text(&s);
                }
            }
            if step + 1 == cfg.max_new_tokens {
                break;
            }
            let pos = self.kv.len();
            logits.copy_from_slice(stepper.step(ctx, tok, pos)?);
            self.kv.push(Slot::Token(tok));
        }
        if stop != StopReason::Cancelled && budget.as_ref().is_some_and(|b| b.closing()) {
            stop = StopReason::Length; // closed because of the budget: OpenAI `finish_reason: length`
        }
        let tail = stream.finish();
        if !tail.is_empty() {
            on_text(&tail);
        }
        timings.decode_s = t.elapsed().as_secs_f64();
        timings.decode_tokens = tokens.len();
        Ok(Generated { answer: stream.text().trim_end().to_string(), tokens, stop, step_logits })
    }
}

/// The tiling [`Pipeline::tiling_plan`] settled on.
enum Plan {
    Requested(TilingOptions),
    Fitted(TilingOptions, FitChoice),
    /// Not even the floor fits: the error text.
    TooLarge(String),
}

/// What the decode stage produced.
struct Generated {
    answer: String,
    tokens: Vec<Token>,
    stop: StopReason,
    step_logits: Vec<Vec<f32>>,
}

impl Pipeline {
    /// Positions the KV cache holds (prompt + decoded answer tokens of the last turn).
    pub fn kv_len(&self) -> usize {
        self.kv.len()
    }

    /// Teacher forcing along a continuation, step by step: keeps the first `keep` positions of
    /// the KV cache (e.g. a prompt and the answer tokens a reference shares with the last turn's
    /// answer), then decodes `tokens` one at a time and returns the logits after each.
    ///
    /// One token per `llama_decode`, as generation does, and never a batch: with quantized
    /// weights llama.cpp rounds each activation row to 8 bits, so a batched pass, equal to the
    /// step-by-step one up to float rounding, can still land a value on the other side of a
    /// rounding boundary and move every logit of that row (issue 22 measured 0.066 on a Q8_0
    /// model). Stepping makes these the very logits `run` computes along the same tokens.
    pub fn force_continuation(&mut self, keep: usize, tokens: &[Token]) -> Result<Vec<Vec<f32>>> {
        if keep > self.kv.len() || keep == 0 {
            bail!("force_continuation: keep {keep} of {} cached positions", self.kv.len());
        }
        let ctx = self.ctx.as_mut().context("force_continuation: no context (run a turn first)")?;
        if keep + tokens.len() > ctx.n_ctx() {
            bail!("force_continuation: {} positions do not fit the context of {}", keep + tokens.len(), ctx.n_ctx());
        }
        ctx.truncate_kv(keep)?;
        self.kv.truncate(keep);
        let mut stepper = Stepper::default();
        let mut rows = Vec::with_capacity(tokens.len());
        for &t in tokens {
            let pos = self.kv.len();
            rows.push(stepper.step(ctx, t, pos)?.to_vec());
            self.kv.push(Slot::Token(t));
        }
        Ok(rows)
    }
}

/// The error for a token budget below the smallest valid JSON answer.
pub fn check_json_minimum((min, text): (usize, String), max_new_tokens: usize) -> Result<()> {
    if min > max_new_tokens {
        bail!(
            "the JSON answer needs at least {min} tokens (its smallest valid value is {text}) but the token budget is \
             {max_new_tokens}: raise max_tokens (-n/--max-new-tokens) to {min} or more"
        );
    }
    Ok(())
}
