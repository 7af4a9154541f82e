//! `h2ovl serve -m LLM.gguf --mmproj VISION.gguf [--host 127.0.0.1] [--port 8080] [--api-key KEY]
//! [--allowed-image-dir DIR] [--no-webui]`: the OpenAI-compatible server of `h2ovl_runtime::serve`,
//! with its chat page at `/`.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use h2ovl_runtime::serve::{run_blocking, ServeOptions};

use super::run::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (loopback by default: put a reverse proxy in front to expose it).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (or set H2OVL_API_KEY).
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// Serve `file://` image URLs from under this folder only (default: file URLs refused).
    #[arg(long = "allowed-image-dir")]
    pub allowed_image_dir: Option<PathBuf>,
    /// Requests that may wait while one runs; more get 503.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Largest request body, in MB.
    #[arg(long = "body-limit-mb", default_value_t = 20)]
    pub body_limit_mb: usize,
    /// Model name reported by /v1/models (default: the LLM file's stem).
    #[arg(long = "model-id")]
    pub model_id: Option<String>,
    /// Do not serve the built-in chat page at `/` (the API alone). The page needs no key to load;
    /// with --api-key it asks for the key and sends it on every call.
    #[arg(long = "no-webui")]
    pub no_webui: bool,
    /// Most pages used from one PDF in a request (all pages are used; more → HTTP 400).
    #[arg(long = "max-pages", default_value_t = h2ovl_runtime::pdf::DEFAULT_MAX_PAGES)]
    pub max_pages: usize,
    /// Most pixels per rendered PDF page (checked before rendering; larger → HTTP 400).
    #[arg(long = "max-page-pixels", default_value_t = h2ovl_runtime::pdf::DEFAULT_MAX_PAGE_PIXELS)]
    pub max_page_pixels: u64,
    /// Time limit (seconds) for rendering one PDF of a request.
    #[arg(long = "pdf-timeout", default_value_t = h2ovl_runtime::pdf::DEFAULT_TIMEOUT_S)]
    pub pdf_timeout: u64,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if let Some(d) = &a.allowed_image_dir {
        if !d.is_dir() {
            bail!("--allowed-image-dir {} is not a folder", d.display());
        }
    }
    if a.max_pages == 0 || a.max_page_pixels == 0 || a.pdf_timeout == 0 {
        bail!("--max-pages, --max-page-pixels and --pdf-timeout must be at least 1");
    }
    if a.body_limit_mb == 0 {
        bail!("--body-limit-mb must be at least 1");
    }
    let model_id = a
        .model_id
        .clone()
        .or_else(|| a.model.model.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "h2ovl".into());
    let pipe = a.model.load().with_context(|| format!("loading {}", a.model.model.display()))?;
    let opts = ServeOptions {
        model_id,
        api_key: a.api_key.or_else(|| std::env::var("H2OVL_API_KEY").ok().filter(|k| !k.is_empty())),
        allowed_image_dir: a.allowed_image_dir,
        queue: a.queue,
        body_limit: a.body_limit_mb << 20,
        webui: !a.no_webui,
        version: concat!("h2ovl ", env!("CARGO_PKG_VERSION"), " (", env!("H2OVL_GIT_COMMIT"), ", ", env!("H2OVL_TARGET"), ")").into(),
        pdf: h2ovl_runtime::pdf::PdfLimits {
            max_pages: a.max_pages,
            max_page_pixels: a.max_page_pixels,
            timeout: std::time::Duration::from_secs(a.pdf_timeout),
        },
    };
    run_blocking(SocketAddr::new(a.host, a.port), pipe, opts)
}
