//! `--pages`, `--dpi`, `--max-pages`, `--pdf-timeout`: how `--image file.pdf` (and PDFs in a
//! `batch --input` folder) become page images. Shared by `run`, `chat` and `batch`.
use std::time::Duration;

use anyhow::Result;
use h2ovl_runtime::pdf::{Dpi, PageSet, PdfLimits, PdfOptions, TilingHint};

#[derive(clap::Args, Debug, Clone)]
pub struct PdfArgs {
    /// PDF pages to use, 1-based: `1-3,5` (default: all, up to --max-pages). Applies to every
    /// PDF given with --image.
    #[arg(long, value_parser = parse_pages)]
    pub pages: Option<PageSet>,
    /// PDF render resolution, or `auto` (default): per page, the smallest DPI at which the page
    /// covers the tile grid the model cuts from it (448 px per tile), so tiles are never
    /// upscaled and no pixel is rendered only to be thrown away by the resize. Portrait
    /// A4/Letter get a 2×3 grid = 896×1344 px: 115/123 dpi; a single page on the 2B (MSAC,
    /// plus a 3×2 pass = 1344 px across) 163/159 dpi. A fixed DPI above that costs render time
    /// and gives the model the same input.
    #[arg(long, default_value = "auto", value_parser = parse_dpi)]
    pub dpi: Dpi,
    /// Most pages rendered from one PDF (more selected → an error). At 6 tiles per page about 4
    /// pages fill the 8192-token context; use --max-tiles 1 for longer documents.
    #[arg(long = "max-pages", default_value_t = h2ovl_runtime::pdf::DEFAULT_MAX_PAGES)]
    pub max_pages: usize,
    /// Most pixels per rendered PDF page, checked from the page size × DPI before rendering:
    /// a larger page is refused, not scaled down (lower --dpi).
    #[arg(long = "max-page-pixels", default_value_t = h2ovl_runtime::pdf::DEFAULT_MAX_PAGE_PIXELS)]
    pub max_page_pixels: u64,
    /// Time limit (seconds) for opening and rendering one PDF.
    #[arg(long = "pdf-timeout", default_value_t = h2ovl_runtime::pdf::DEFAULT_TIMEOUT_S)]
    pub pdf_timeout: u64,
}

fn parse_pages(s: &str) -> Result<PageSet, String> {
    s.parse()
}

fn parse_dpi(s: &str) -> Result<Dpi, String> {
    s.parse()
}

impl PdfArgs {
    /// The render options for pages tiled with at most `max_tiles`, MSAC if `msac`.
    pub fn options(&self, max_tiles: usize, msac: bool) -> Result<PdfOptions> {
        if self.max_pages == 0 || self.pdf_timeout == 0 || self.max_page_pixels == 0 {
            anyhow::bail!("--max-pages, --max-page-pixels and --pdf-timeout must be at least 1");
        }
        Ok(PdfOptions {
            pages: self.pages.clone(),
            dpi: self.dpi,
            tiling: TilingHint { max_tiles: max_tiles.min(u32::MAX as usize) as u32, msac },
            limits: PdfLimits {
                max_pages: self.max_pages,
                max_page_pixels: self.max_page_pixels,
                timeout: Duration::from_secs(self.pdf_timeout),
            },
        })
    }
}
