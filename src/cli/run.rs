//! `h2ovl run -m LLM.gguf [--mmproj VISION.gguf] [--image F]... -p TEXT`: one question, the
//! answer streamed to stdout, timings to stderr. A thin layer over `h2ovl_runtime::llm::Pipeline`.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use super::pdf_args::PdfArgs;
use h2ovl_runtime::llm::{ChatOutput, GenerationConfig, History, ImageInput, KvType, Pipeline, PipelineOptions, Probe};

/// Model files and runtime settings shared by `run`, `chat`, `serve`, `batch` and `bench e2e`
/// (flags as in llama.cpp).
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// LLM GGUF (from `h2ovl convert`).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Vision tower + projector GGUF (mmproj). Needed only with images.
    #[arg(long)]
    pub mmproj: Option<PathBuf>,
    #[command(flatten)]
    pub rt: RuntimeArgs,
}

/// How the models run, whatever the files: also every pair of `eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// CPU threads (default: all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Context size (default: enough for the prompt + max new tokens, up to the model's 8192).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Maximum tiles per image (fewer tiles = fewer image tokens = faster, less detail).
    #[arg(long = "max-tiles", default_value_t = 6)]
    pub max_tiles: usize,
    /// When the images (e.g. a PDF's pages) do not fit the context with the answer: `fit` lowers
    /// the tile budget over every image (MSAC off first, then max tiles one at a time, down to
    /// --min-tiles) and says so on stderr; `each` (run) answers page by page, then combines;
    /// `auto` fits if the floor fits, else reads page by page; `off` refuses as before.
    #[arg(long = "pages-mode", default_value = "auto", value_parser = ["auto", "fit", "each", "off"])]
    pub pages_mode: String,
    /// The floor of that lowering, in max tiles per image (default 2: an A4 page keeps a 1x2 grid
    /// + thumbnail, ~54 dpi; see docs/pdf.md).
    #[arg(long = "min-tiles")]
    pub min_tiles: Option<usize>,
    /// Never use MSAC (multi-scale adaptive cropping), even for a single image on the 2b.
    #[arg(long = "no-msac")]
    pub no_msac: bool,
    /// Keep the KV cache in f32 instead of f16 (exact, twice the memory).
    #[arg(long = "kv-f32")]
    pub kv_f32: bool,
    /// Flash attention: on, off, auto (default: llama.cpp decides). On CPU it rounds through f16;
    /// for float32-exact logits (e.g. with --dump-logits) use `--exact`.
    #[arg(long = "flash-attn", value_parser = ["on", "off", "auto"])]
    pub flash_attn: Option<String>,
    /// The reference-faithful settings in one switch: f32 KV cache, flash attention off, f32
    /// vision arithmetic (slower; with F32/F16 model files this reproduces the reference's greedy
    /// answers). Conflicts with `--flash-attn on|auto` and `--vision-math int8|auto`.
    #[arg(long)]
    pub exact: bool,
    /// Show llama.cpp's own log output.
    #[arg(long)]
    pub verbose: bool,
    /// Refuse images with more pixels than this (checked from the file header, before decoding).
    #[arg(long = "max-pixels", default_value_t = h2ovl_runtime::preprocess::PIL_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Vision encoder arithmetic: int8 linear layers (Q8_0 mmproj, ~2x faster, per-token cosine
    /// ≥ 0.999 vs f32), f32, or auto (int8 where the CPU has a fast int8 dot product; honours
    /// H2OVL_VISION_MATH).
    #[arg(long = "vision-math", value_parser = ["auto", "f32", "int8"])]
    pub vision_math: Option<String>,
    /// llama.cpp CPU backend variant to run the LLM on (e.g. haswell, icelake; `h2ovl --version` lists
    /// them). Default: the best this CPU supports. Same as H2OVL_LLM_CPU.
    #[arg(long = "llm-cpu")]
    pub llm_cpu: Option<String>,
}

/// `--flash-attn on|off|auto` → llama.cpp's setting (`None` = its automatic choice).
pub fn flash_attn_setting(v: &str) -> Option<bool> {
    match v {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

impl ModelArgs {
    pub fn load(&self) -> Result<Pipeline> {
        Pipeline::load(&self.model, self.mmproj.as_deref(), self.options()?)
    }

    /// The pipeline settings of [`RuntimeArgs`].
    pub fn options(&self) -> Result<PipelineOptions> {
        self.rt.options()
    }
}

impl RuntimeArgs {
    /// The pipeline settings these flags describe (`--exact` conflicts refused).
    pub fn options(&self) -> Result<PipelineOptions> {
        if let Some(v) = &self.llm_cpu {
            // Read once, when the first model loads (before any thread of ours starts).
            std::env::set_var("H2OVL_LLM_CPU", v);
        }
        if self.max_tiles == 0 {
            anyhow::bail!("--max-tiles must be at least 1");
        }
        // The default floor gives way to a lower --max-tiles; an explicit one above it is a mistake.
        let min_tiles = match self.min_tiles {
            None => h2ovl_runtime::llm::fit::DEFAULT_MIN_TILES.min(self.max_tiles),
            Some(m) if m == 0 || m > self.max_tiles => {
                anyhow::bail!("--min-tiles {m} must be between 1 and --max-tiles ({})", self.max_tiles)
            }
            Some(m) => m,
        };
        let o = PipelineOptions {
            threads: self.threads,
            n_ctx: self.ctx_size,
            max_tiles: self.max_tiles,
            msac: !self.no_msac,
            kv_type: if self.kv_f32 { KvType::F32 } else { KvType::F16 },
            flash_attn: flash_attn_setting(self.flash_attn.as_deref().unwrap_or("auto")),
            verbose: self.verbose,
            max_pixels: self.max_pixels,
            vision_math: self.vision_math.as_deref().unwrap_or("auto").parse()?,
            pages_mode: self.pages_mode.parse()?,
            min_tiles,
            ..Default::default()
        };
        if !self.exact {
            return Ok(o);
        }
        // An explicit setting that contradicts --exact is refused rather than silently overridden;
        // the ones that agree (--kv-f32, --flash-attn off, --vision-math f32) are accepted.
        if let Some(fa) = self.flash_attn.as_deref().filter(|&v| v != "off") {
            anyhow::bail!("--exact turns flash attention off (it rounds through f16 on CPU): drop --flash-attn {fa}");
        }
        if let Some(vm) = self.vision_math.as_deref().filter(|&v| v != "f32") {
            anyhow::bail!("--exact uses f32 vision arithmetic: drop --vision-math {vm}");
        }
        Ok(o.exact())
    }
}

/// Sampling flags shared by `run` and `chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Maximum number of generated tokens.
    #[arg(short = 'n', long = "max-new-tokens", default_value_t = 1024)]
    pub max_new_tokens: usize,
    /// Temperature; 0 = greedy (the reference's effective setting).
    #[arg(long, default_value_t = 0.0)]
    pub temp: f32,
    /// Nucleus sampling threshold (1.0 = off).
    #[arg(long = "top-p", default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long = "top-k", default_value_t = 0)]
    pub top_k: usize,
    /// Penalty for tokens among the last 64 (1.0 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// RNG seed for sampling (temp > 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn config(&self) -> Result<GenerationConfig> {
        // Written as positive ranges so NaN is refused too.
        let ok = (0.0..=f32::MAX).contains(&self.temp)
            && self.top_p > 0.0
            && self.top_p <= 1.0
            && (f32::MIN_POSITIVE..=f32::MAX).contains(&self.repeat_penalty);
        if !ok {
            anyhow::bail!("need --temp >= 0, 0 < --top-p <= 1 and --repeat-penalty > 0");
        }
        Ok(GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..Default::default()
        })
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Image file or PDF (repeat for several; refer to them with `<image>` in the prompt, or let
    /// `Image-1: <image>\n…` be prepended). Each selected PDF page is one image.
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub pdf: PdfArgs,
    /// The question. `\n`, `\t`, `\\` escapes are expanded, as in llama.cpp.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// No timings on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// `json`: print one JSON object instead of streaming text.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Write the logits of every generated step ([steps, vocab], f32 .npy) here.
    #[arg(long = "dump-logits")]
    pub dump_logits: Option<PathBuf>,
    /// Constrain the answer to a valid JSON object (grammar-guided sampling).
    #[arg(long)]
    pub json: bool,
    /// Constrain the answer to instances of this JSON Schema file.
    #[arg(long = "json-schema")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the answer to exactly the shape of the JSON template in the prompt
    /// (e.g. `{"name": "", "date_of_birth": ""}`, as in the model card's prompt guide).
    #[arg(long = "json-template")]
    pub json_template: bool,
}

/// Expand `\n`, `\t`, `\"`, `\\` in a command-line prompt (llama.cpp's `--escape` default).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `--image` paths → pipeline images, PDFs rendered to their pages. `n_before` = images already
/// in the conversation (MSAC, hence the render DPI, applies only to a lone image).
pub fn load_images(paths: &[PathBuf], pdf: &PdfArgs, model: &ModelArgs, pipe: &Pipeline, n_before: usize) -> Result<Vec<ImageInput>> {
    let opts = pdf.options(model.rt.max_tiles, pipe.uses_msac() && n_before == 0)?;
    h2ovl_runtime::pdf::expand_image_paths(paths, &opts)
}

/// The line saying the images were fitted to the context (`--pages-mode auto|fit`).
pub fn fit_line(f: &h2ovl_runtime::llm::FitChoice) -> String {
    format!("fitted to the context: {f} (--pages-mode off refuses instead; --max-tiles/--min-tiles bound it)")
}

/// One line of timings for stderr.
pub fn timings_line(o: &ChatOutput) -> String {
    let t = &o.timings;
    let mut s = String::new();
    if t.images_encoded > 0 {
        let tiles: usize = o.image_tiles.iter().sum();
        s.push_str(&format!("image encode: {:.2} s ({} image(s), {tiles} tiles) | ", t.image_encode_s, t.images_encoded));
    }
    s.push_str(&format!(
        "prefill: {} tokens in {:.2} s ({:.1} tok/s) | decode: {} tokens in {:.2} s ({:.1} tok/s)",
        t.prefill_tokens,
        t.prefill_s,
        t.prefill_tok_s(),
        t.decode_tokens,
        t.decode_s,
        t.decode_tok_s()
    ));
    s
}

pub fn run(a: RunArgs) -> Result<()> {
    let mut cfg = a.sampling.config()?;
    cfg.cancel = Some(h2ovl_runtime::interrupt::flag());
    cfg.probe = Probe { step_logits: a.dump_logits.is_some(), ..Default::default() };
    if a.pdf.pages.is_some() && !a.images.iter().any(|p| h2ovl_runtime::pdf::is_pdf_file(p).unwrap_or(false)) {
        anyhow::bail!("--pages selects pages of a PDF, but no --image is a PDF");
    }
    let mut pipe = a.model.load()?;
    let images = load_images(&a.images, &a.pdf, &a.model, &pipe, 0)?;
    let prompt = unescape(&a.prompt);
    cfg.constraint = h2ovl_runtime::json::from_cli_flags(a.json, a.json_schema.as_deref(), a.json_template, &prompt)?;
    let json = a.output == OutputFormat::Json;
    if pipe.reads_page_by_page(&images, &prompt, cfg.max_new_tokens)? {
        return super::run_pages::run(&a, &mut pipe, &images, &prompt, &cfg);
    }
    let stdout = std::io::stdout();
    let out = pipe.chat_stream(&images, &prompt, &cfg, &History::new(), &mut |piece| {
        if !json {
            let mut o = stdout.lock();
            let _ = o.write_all(piece.as_bytes());
            let _ = o.flush();
        }
    })?;
    if out.stop == h2ovl_runtime::llm::StopReason::Cancelled {
        // Ctrl-C: the streamed text so far stays on stdout; nothing else is printed or written.
        if !json {
            println!();
        }
        anyhow::bail!(h2ovl_runtime::interrupt::MESSAGE);
    }
    if json {
        let t = &out.timings;
        let v = serde_json::json!({
            "text": out.answer,
            "tokens": out.tokens,
            "prompt_tokens": out.prompt_ids.len(),
            "image_tiles": out.image_tiles,
            "fit": out.fit.as_ref().map(|f| f.to_string()),
            "stop": format!("{:?}", out.stop),
            "timings": {
                "image_encode_s": t.image_encode_s,
                "prefill_s": t.prefill_s,
                "prefill_tokens": t.prefill_tokens,
                "prefill_tok_s": t.prefill_tok_s(),
                "decode_s": t.decode_s,
                "decode_tokens": t.decode_tokens,
                "decode_tok_s": t.decode_tok_s(),
            }
        });
        println!("{v}");
    } else {
        println!();
    }
    if cfg.constraint.is_some() && out.stop == h2ovl_runtime::llm::StopReason::Length && !a.quiet {
        // Still valid JSON (the budget closer finished every open value), but shortened.
        eprintln!("note: the JSON answer was closed early to fit -n/--max-new-tokens {} (finish reason: length)", cfg.max_new_tokens);
    }
    if let Some(path) = &a.dump_logits {
        let n_vocab = pipe.model().n_vocab();
        let flat: Vec<f32> = out.step_logits.iter().flatten().copied().collect();
        h2ovl_runtime::npy::write_f32(path, &[out.step_logits.len(), n_vocab], &flat)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !a.quiet {
        if let Some(f) = &out.fit {
            eprintln!("{}", fit_line(f));
        }
        eprintln!("{}", timings_line(&out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_args(extra: &[&str]) -> Result<PipelineOptions> {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            m: ModelArgs,
        }
        let argv = ["h2ovl", "-m", "x.gguf"].iter().chain(extra).copied();
        <P as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?.m.options()
    }

    #[test]
    fn exact_sets_the_reference_settings_and_refuses_contradictions() {
        let d = model_args(&[]).unwrap();
        assert_eq!((d.kv_type, d.flash_attn, d.vision_math), (KvType::F16, None, h2ovl_runtime::vision::VisionMath::Auto));
        let e = model_args(&["--exact"]).unwrap();
        assert_eq!((e.kv_type, e.flash_attn, e.vision_math), (KvType::F32, Some(false), h2ovl_runtime::vision::VisionMath::F32));
        assert!(e.is_exact() && !d.is_exact());
        // Agreeing flags are fine; contradicting ones are one clear error.
        assert!(model_args(&["--exact", "--kv-f32", "--flash-attn", "off", "--vision-math", "f32"]).unwrap().is_exact());
        for (flags, msg) in [(["--flash-attn", "on"], "--flash-attn on"), (["--flash-attn", "auto"], "--flash-attn auto"), (["--vision-math", "int8"], "--vision-math int8")] {
            let mut argv = vec!["--exact"];
            argv.extend(flags);
            let err = model_args(&argv).unwrap_err().to_string();
            assert!(err.contains("--exact") && err.contains(msg), "{err}");
        }
        // Without --exact the individual flags still work.
        let o = model_args(&["--kv-f32", "--flash-attn", "off"]).unwrap();
        assert_eq!((o.kv_type, o.flash_attn), (KvType::F32, Some(false)));
    }

    #[test]
    fn unescape_handles_llama_cpp_escapes() {
        assert_eq!(unescape(r"Image-1: <image>\nImage-2: <image>\nWhat?"), "Image-1: <image>\nImage-2: <image>\nWhat?");
        assert_eq!(unescape(r"a\\nb\t\q\"), "a\\nb\t\\q\\");
    }
}
