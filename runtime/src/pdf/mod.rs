//! PDF documents as model input: each selected page rendered to an RGB image, which then goes
//! through the same preprocessing as any picture.
//!
//! Rendering is done by `hayro` (pure Rust, no poppler/pdfium binary, works offline). Hostile
//! or broken files get one clear [`PdfError`], never a panic or a hang:
//! - truncated (no `%%EOF` near the end), damaged, encrypted with a password, zero pages;
//! - limits ([`PdfLimits`]): pages per document, pixels per rendered page (computed from the
//!   page box × DPI *before* rendering: an oversized page is refused, not scaled), a MediaBox
//!   beyond the PDF spec's 200 inches, and a wall-clock limit for the whole document.
//!
//! Stages: [`pages`] (`--pages 1-3,5`) → [`dpi`] (resolution from the tile grid) →
//! [`raster`] (hayro, on a guarded worker thread).
pub mod dpi;
pub mod pages;
pub mod raster;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::Context as _;
use image::RgbImage;

pub use dpi::{Dpi, TilingHint};
pub use pages::PageSet;

use crate::llm::ImageInput;

/// Limits that keep a document from costing unbounded memory or time.
#[derive(Clone, Debug, PartialEq)]
pub struct PdfLimits {
    /// Pages rendered per document (`--max-pages`).
    pub max_pages: usize,
    /// Pixels per rendered page; checked from the page size × DPI before rendering.
    pub max_page_pixels: u64,
    /// Wall-clock limit for opening and rendering one document.
    pub timeout: Duration,
}

/// Default `--max-pages`: a handful of pages already fills the 8192-token context at 6 tiles
/// per page; 32 leaves room for `--max-tiles 1` over longer documents.
pub const DEFAULT_MAX_PAGES: usize = 32;
/// Default pixel limit per page: A4 at 600 dpi (4961×7016 = 34.8 MP) fits, a 200-inch
/// poster at 300 dpi does not. 40 MP is 160 MB of RGBA while rendering.
pub const DEFAULT_MAX_PAGE_PIXELS: u64 = 40_000_000;
/// Default time limit per document (seconds).
pub const DEFAULT_TIMEOUT_S: u64 = 60;

impl Default for PdfLimits {
    fn default() -> Self {
        PdfLimits {
            max_pages: DEFAULT_MAX_PAGES,
            max_page_pixels: DEFAULT_MAX_PAGE_PIXELS,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_S),
        }
    }
}

/// What to render and how.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PdfOptions {
    /// 1-based pages (`None` = all, up to `limits.max_pages`).
    pub pages: Option<PageSet>,
    pub dpi: Dpi,
    /// The tiling the pages will get (for `Dpi::Auto`).
    pub tiling: TilingHint,
    pub limits: PdfLimits,
}

/// One rendered page.
#[derive(Clone, Debug)]
pub struct RenderedPage {
    /// 1-based page number in the document.
    pub number: usize,
    pub image: RgbImage,
    /// The resolution it was rendered at.
    pub dpi: f64,
}

/// Why a document could not be turned into images. Each message is one line for the user.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PdfError {
    #[error("not a PDF (no %PDF- header)")]
    NotPdf,
    #[error("the PDF is truncated (no %%EOF marker at the end of the file)")]
    Truncated,
    #[error("the PDF is damaged: its structure (cross-reference table, page tree) cannot be read")]
    Invalid,
    #[error("the PDF is encrypted and cannot be opened without a password ({0}); save an unprotected copy")]
    Encrypted(String),
    #[error("the PDF has no pages")]
    NoPages,
    #[error("no pages selected")]
    NoPagesSelected,
    #[error("page {page} is out of range: the PDF has {count} page(s)")]
    PageOutOfRange { page: usize, count: usize },
    #[error("{selected} pages selected (the PDF has {count}), over the limit of {max} pages per document (choose some with --pages, or raise --max-pages)")]
    TooManyPages { selected: usize, count: usize, max: usize },
    #[error("page {page} has an impossible size of {width}x{height} pt (the PDF maximum is 14400 pt = 200 in per side)")]
    BadMediaBox { page: usize, width: f32, height: f32 },
    #[error("page {page} would render to {width}x{height} pixels at {dpi} dpi, over the limit of {max} pixels per page (lower --dpi)")]
    PageTooLarge { page: usize, width: u64, height: u64, dpi: f64, max: u64 },
    #[error("rendering the PDF took longer than the {0} s limit")]
    Timeout(u64),
    #[error("rendering was cancelled")]
    Cancelled,
    #[error("the PDF renderer failed on this file ({0})")]
    RendererPanic(String),
}

/// True if `bytes` look like a PDF: `%PDF-` in the first 1024 bytes, as readers accept it
/// (some files carry junk before the header).
pub fn is_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// True if the file at `path` starts like a PDF (reads 1 KiB).
pub fn is_pdf_file(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)?.take(1024).read_to_end(&mut head)?;
    Ok(is_pdf(&head))
}

/// Cheap checks before hayro sees the bytes: the header, and the end-of-file marker that a
/// truncated download or copy lacks (hayro would otherwise rebuild what it can and render a
/// partial document without a word).
fn precheck(bytes: &[u8]) -> Result<(), PdfError> {
    if !is_pdf(bytes) {
        return Err(PdfError::NotPdf);
    }
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(PdfError::Truncated);
    }
    Ok(())
}

/// Run `f` on a worker thread with the time limit and panic guard (see [`raster`]).
fn guarded<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce(&AtomicBool) -> Result<T, PdfError> + Send + 'static,
) -> Result<T, PdfError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = cancel.clone();
    let spawned = std::thread::Builder::new().name("h2ovl-pdf".into()).spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&flag)));
        let r = r.unwrap_or_else(|p| {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
            Err(PdfError::RendererPanic(msg.unwrap_or_else(|| "panic".into())))
        });
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return Err(PdfError::RendererPanic(format!("cannot start the render thread: {e}")));
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The thread stops at the next page boundary; its result is dropped.
            cancel.store(true, Ordering::Relaxed);
            Err(PdfError::Timeout(timeout.as_secs().max(1)))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(PdfError::RendererPanic("the render thread died".into())),
    }
}

/// Render the selected pages of a PDF to RGB images on white.
pub fn render_pages(bytes: &[u8], opts: &PdfOptions) -> Result<Vec<RenderedPage>, PdfError> {
    precheck(bytes)?;
    let data = Arc::new(bytes.to_vec());
    let o = opts.clone();
    guarded(opts.limits.timeout, move |cancel| raster::render(data, &o, cancel))
}

/// Number of pages of a PDF (opened, not rendered; same guards).
pub fn page_count(bytes: &[u8], limits: &PdfLimits) -> Result<usize, PdfError> {
    precheck(bytes)?;
    let data = Arc::new(bytes.to_vec());
    guarded(limits.timeout, move |_| raster::count_pages(data))
}

/// Command-line image paths → pipeline images: a PDF (by its `%PDF-` header, whatever the
/// extension) becomes its rendered pages, anything else stays a path for the image decoder.
/// `opts.tiling.msac` is dropped when there will be more than one image.
pub fn expand_image_paths(paths: &[PathBuf], opts: &PdfOptions) -> anyhow::Result<Vec<ImageInput>> {
    let mut o = opts.clone();
    if paths.len() > 1 {
        o.tiling.msac = false;
    }
    let mut out = Vec::new();
    for p in paths {
        if is_pdf_file(p).with_context(|| format!("cannot read {}", p.display()))? {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let pages = render_pages(&bytes, &o).with_context(|| format!("PDF {}", p.display()))?;
            out.extend(pages.into_iter().map(|pg| ImageInput::Rgb(pg.image)));
        } else {
            out.push(ImageInput::Path(p.clone()));
        }
    }
    Ok(out)
}
