//! The hayro calls: open a document, check every selected page against the limits, then render
//! the pages onto white and hand back RGB.
//!
//! All of it runs on a worker thread so that a document which takes too long (a page with a
//! million path segments, a decompression loop) cannot hang the caller: [`super::render_pages`]
//! waits at most the time limit, raises the cancel flag (checked between pages) and answers
//! with an error. hayro is memory-safe Rust, but it can still panic on malformed input it did
//! not foresee; `catch_unwind` turns that into an error too.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};
use image::RgbImage;

use super::dpi::{auto_dpi, Dpi, POINTS_PER_INCH};
use super::{PdfError, PdfOptions, RenderedPage};
use crate::pdf::dpi::TilingHint;

/// PDF 1.7 Annex C: a page side is at most 14 400 units (200 inches). Anything larger is a
/// broken or hostile MediaBox.
pub const MAX_PAGE_SIDE_PT: f32 = 14_400.0;
/// hayro renders into a `u16 × u16` pixmap.
const MAX_SIDE_PX: u64 = u16::MAX as u64;

/// Open `bytes` with hayro, mapping its load errors to ours.
pub fn open(bytes: Arc<Vec<u8>>) -> Result<Pdf, PdfError> {
    Pdf::new(bytes).map_err(|e| match e {
        LoadPdfError::Decryption(d) => PdfError::Encrypted(format!("{d:?}")),
        LoadPdfError::Invalid => PdfError::Invalid,
    })
}

/// A page checked against the limits, ready to render.
struct Planned {
    index: usize,
    dpi: f64,
    scale: f32,
}

/// Number of pages (after opening; nothing is rendered).
pub fn count_pages(bytes: Arc<Vec<u8>>) -> Result<usize, PdfError> {
    Ok(open(bytes)?.pages().len())
}

/// Open, check and render (the body of the worker thread).
pub fn render(bytes: Arc<Vec<u8>>, opts: &PdfOptions, cancel: &AtomicBool) -> Result<Vec<RenderedPage>, PdfError> {
    let pdf = open(bytes)?;
    let pages = pdf.pages();
    let n = pages.len();
    if n == 0 {
        return Err(PdfError::NoPages);
    }
    let selected: Vec<usize> = match &opts.pages {
        Some(set) => {
            if set.is_empty() {
                return Err(PdfError::NoPagesSelected);
            }
            if let Some(last) = set.last().filter(|&l| l > n) {
                return Err(PdfError::PageOutOfRange { page: last, count: n });
            }
            set.iter().collect()
        }
        None => (1..=n).collect(),
    };
    if selected.len() > opts.limits.max_pages {
        return Err(PdfError::TooManyPages { selected: selected.len(), count: n, max: opts.limits.max_pages });
    }
    // MSAC only applies when the page is the prompt's only image.
    let tiling = TilingHint { msac: opts.tiling.msac && selected.len() == 1, ..opts.tiling };

    // Every page is checked before the first one is rendered: a bad page 30 fails at once.
    let mut plan = Vec::with_capacity(selected.len());
    for &number in &selected {
        let page = &pages[number - 1];
        let media = page.media_box();
        let (mw, mh) = (media.width().abs() as f32, media.height().abs() as f32);
        let (w, h) = page.render_dimensions();
        let sane = |v: f32| v.is_finite() && v <= MAX_PAGE_SIDE_PT;
        if !(sane(mw) && sane(mh) && sane(w) && sane(h)) {
            return Err(PdfError::BadMediaBox { page: number, width: mw.max(w), height: mh.max(h) });
        }
        let dpi = match opts.dpi {
            Dpi::Auto => auto_dpi(w as f64, h as f64, &tiling),
            Dpi::Fixed(d) => d,
        };
        let scale = (dpi / POINTS_PER_INCH) as f32;
        // The size hayro will allocate (it truncates the same way).
        let (pw, ph) = ((w * scale) as u64, (h * scale) as u64);
        let pixels = pw * ph;
        if pw == 0 || ph == 0 || pw > MAX_SIDE_PX || ph > MAX_SIDE_PX || pixels > opts.limits.max_page_pixels {
            return Err(PdfError::PageTooLarge { page: number, width: pw, height: ph, dpi, max: opts.limits.max_page_pixels });
        }
        plan.push(Planned { index: number - 1, dpi, scale });
    }

    let cache = RenderCache::new();
    let settings = InterpreterSettings::default();
    let render_settings = RenderSettings::default();
    let mut out = Vec::with_capacity(plan.len());
    for p in plan {
        if cancel.load(Ordering::Relaxed) {
            return Err(PdfError::Cancelled);
        }
        let page = &pages[p.index];
        let pix = PixmapSettings { x_scale: p.scale, y_scale: p.scale, bg_color: WHITE };
        let pixmap = hayro::render(page, &cache, &settings, &render_settings, &pix);
        let (w, h) = (pixmap.width() as u32, pixmap.height() as u32);
        // Opaque white background: premultiplied RGBA equals straight RGBA, alpha is 255.
        let rgb: Vec<u8> = pixmap.data_as_u8_slice().chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect();
        let image = RgbImage::from_raw(w, h, rgb).ok_or(PdfError::Invalid)?;
        out.push(RenderedPage { number: p.index + 1, image, dpi: p.dpi });
    }
    Ok(out)
}
