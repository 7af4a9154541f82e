//! Report, not a CI check: our hayro pages against poppler's `pdftoppm` at the same DPI, on the
//! test PDFs. Prints the Markdown table of docs/pdf.md: per page the sizes, mean / max per-pixel
//! absolute difference (0–255, over RGB) of the rendered pages, the share of pixels differing by
//! more than 64, the tile grid each gets (plain and MSAC), and the mean difference of the model's
//! input tiles (after the reference resize to the grid).
//!
//!     apt-get install -y poppler-utils
//!     cargo test --release -p h2ovl-runtime --test pdf_vs_poppler -- --ignored --nocapture
use std::path::Path;
use std::process::Command;

use h2ovl_runtime::pdf::{render_pages, Dpi, PageSet, PdfOptions};
use h2ovl_runtime::preprocess::{tile_image, PreprocessConfig};
use image::RgbImage;

/// (mean, max, share > 64) of |a − b| over the common area.
fn diff(a: &RgbImage, b: &RgbImage) -> (f64, u8, f64) {
    let (w, h) = (a.width().min(b.width()), a.height().min(b.height()));
    let (mut sum, mut max, mut big, mut n) = (0f64, 0u8, 0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
            let mut px_max = 0;
            for c in 0..3 {
                let d = p[c].abs_diff(q[c]);
                sum += d as f64;
                px_max = px_max.max(d);
            }
            max = max.max(px_max);
            big += (px_max > 64) as usize;
            n += 1;
        }
    }
    (sum / (3 * n) as f64, max, big as f64 / n as f64)
}

fn tiles_diff(a: &RgbImage, b: &RgbImage, msac: bool) -> (String, String, f64) {
    let cfg = PreprocessConfig { use_msac: msac, ..Default::default() };
    let (ta, tb) = (tile_image(a, &cfg, true), tile_image(b, &cfg, true));
    let g = |t: &h2ovl_runtime::preprocess::Tiling| match t.pass1_grid {
        Some(p1) => format!("{}x{}+{}x{}", p1.0, p1.1, t.grid.0, t.grid.1),
        None => format!("{}x{}", t.grid.0, t.grid.1),
    };
    let mean = if ta.tiles.len() == tb.tiles.len() {
        ta.tiles.iter().zip(&tb.tiles).map(|(x, y)| diff(x, y).0).sum::<f64>() / ta.tiles.len() as f64
    } else {
        f64::NAN
    };
    (g(&ta), g(&tb), mean)
}

#[test]
#[ignore = "needs poppler-utils (pdftoppm); a report for docs/pdf.md"]
fn compare_with_pdftoppm() {
    if Command::new("pdftoppm").arg("-v").output().is_err() {
        panic!("pdftoppm not found: apt-get install -y poppler-utils");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf");
    let tmp = tempfile::tempdir().unwrap();
    println!("| file | page | dpi | hayro px | poppler px | mean diff | max diff | px > 64 | grid (hayro / poppler) | MSAC grid (hayro / poppler) | tile mean diff (plain / MSAC) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for name in ["text.pdf", "shapes.pdf", "jpeg.pdf", "rotated.pdf", "three_pages.pdf", "encrypted_nopw.pdf"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let n = h2ovl_runtime::pdf::page_count(&bytes, &Default::default()).unwrap();
        for page in 1..=n {
            // The automatic DPI of the plain grid, and a fixed 150.
            let auto = render_pages(&bytes, &PdfOptions { pages: Some(PageSet::from_pages([page])), ..Default::default() }).unwrap();
            let auto_dpi_v = auto[0].dpi;
            for dpi in [auto_dpi_v, 150.0] {
                let opts = PdfOptions { pages: Some(PageSet::from_pages([page])), dpi: Dpi::Fixed(dpi), ..Default::default() };
                let ours = render_pages(&bytes, &opts).unwrap().remove(0).image;
                let prefix = tmp.path().join(format!("{}-{page}-{dpi}", name.trim_end_matches(".pdf")));
                let st = Command::new("pdftoppm")
                    .args(["-r", &format!("{dpi}"), "-png", "-f", &page.to_string(), "-l", &page.to_string(), "-singlefile"])
                    .arg(dir.join(name))
                    .arg(&prefix)
                    .status()
                    .unwrap();
                assert!(st.success(), "pdftoppm failed on {name}");
                let theirs = image::open(format!("{}.png", prefix.display())).unwrap().to_rgb8();
                let (mean, max, big) = diff(&ours, &theirs);
                let (ga, gb, tm) = tiles_diff(&ours, &theirs, false);
                let (ma, mb, tmm) = tiles_diff(&ours, &theirs, true);
                println!(
                    "| {name} | {page} | {dpi} | {}x{} | {}x{} | {mean:.2} | {max} | {:.2}% | {ga} / {gb} | {ma} / {mb} | {tm:.2} / {tmm:.2} |",
                    ours.width(),
                    ours.height(),
                    theirs.width(),
                    theirs.height(),
                    big * 100.0
                );
            }
        }
    }
}
