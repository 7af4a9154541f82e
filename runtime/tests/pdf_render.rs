//! `h2ovl_runtime::pdf` on the hand-made PDFs of tests/fixtures/pdf (made by
//! quant-tests/scripts/make_test_pdfs.py): what each page renders to (sizes from the automatic
//! DPI, colours where the file paints them, rotation, page selection) and one clear error for
//! every bad file (truncated, damaged, encrypted, zero pages, huge MediaBox, out-of-range page,
//! too many pages, too many pixels, too slow), never a panic.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use h2ovl_runtime::pdf::dpi::auto_dpi;
use h2ovl_runtime::pdf::{page_count, render_pages, Dpi, PageSet, PdfError, PdfLimits, PdfOptions, RenderedPage, TilingHint};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn render(name: &str, opts: &PdfOptions) -> Result<Vec<RenderedPage>, PdfError> {
    render_pages(&read(name), opts)
}

/// Mean RGB over a pixel rectangle.
fn mean(img: &image::RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> [f64; 3] {
    let mut s = [0f64; 3];
    let mut n = 0f64;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y).0;
            for c in 0..3 {
                s[c] += p[c] as f64;
            }
            n += 1.0;
        }
    }
    s.map(|v| v / n)
}

/// Fraction of pixels that are clearly not white.
fn ink(img: &image::RgbImage) -> f64 {
    img.pixels().filter(|p| p.0.iter().any(|&c| c < 200)).count() as f64 / (img.width() * img.height()) as f64
}

/// Pixel (x, y) of PDF point (px, py) on an unrotated page of height `h_pt` at `dpi`.
fn at(px: f64, py: f64, h_pt: f64, dpi: f64) -> (u32, u32) {
    let s = dpi / 72.0;
    ((px * s) as u32, ((h_pt - py) * s) as u32)
}

#[test]
fn text_page_renders_at_the_grid_dpi_on_white() {
    let pages = render("text.pdf", &PdfOptions::default()).unwrap();
    assert_eq!(pages.len(), 1);
    let p = &pages[0];
    // Letter, 2x3 grid: 123 dpi (the smallest DPI with >= 896x1344 px).
    assert_eq!(p.dpi, auto_dpi(612.0, 792.0, &TilingHint::default()));
    assert_eq!((p.image.width(), p.image.height()), ((612.0 * p.dpi / 72.0) as u32, (792.0 * p.dpi / 72.0) as u32));
    assert!(p.image.width() >= 896 && p.image.height() >= 1344);
    assert_eq!(p.image.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(p.image.get_pixel(p.image.width() - 1, p.image.height() - 1).0, [255, 255, 255]);
    // The title "INVOICE" (28 pt at x=72, baseline 692) is dark ink.
    let (x0, y0) = at(72.0, 715.0, 792.0, p.dpi);
    let (x1, y1) = at(200.0, 692.0, 792.0, p.dpi);
    let title = ink(&image::imageops::crop_imm(&p.image, x0, y0, x1 - x0, y1 - y0).to_image());
    assert!(title > 0.15, "ink in the title box: {title}");
    let i = ink(&p.image);
    assert!(i > 0.005 && i < 0.2, "ink fraction {i}");
}

#[test]
fn vector_shapes_have_their_colours_where_the_file_paints_them() {
    let opts = PdfOptions { dpi: Dpi::Fixed(72.0), ..Default::default() };
    let p = &render("shapes.pdf", &opts).unwrap()[0];
    assert_eq!((p.image.width(), p.image.height()), (595, 842));
    let px = |x: f64, y: f64| {
        let (a, b) = at(x, y, 842.0, 72.0);
        p.image.get_pixel(a, b).0
    };
    let red = px(172.0, 660.0);
    assert!(red[0] > 200 && red[1] < 60 && red[2] < 60, "red rect {red:?}");
    assert_eq!(px(420.0, 660.0), [255, 255, 255], "inside the stroked (unfilled) rectangle");
    let stroke = px(320.0, 660.0);
    assert!(stroke.iter().all(|&c| c < 80), "rectangle outline {stroke:?}");
    let blue = px(200.0, 350.0);
    assert!(blue[2] > 180 && blue[0] < 60, "blue disc {blue:?}");
    let green = px(450.0, 320.0);
    assert!(green[1] > 120 && green[0] < 40 && green[2] < 100, "green triangle {green:?}");
}

#[test]
fn embedded_jpeg_keeps_its_pixels() {
    // 72 dpi: the 448x448 JPEG is drawn 448x448 pt at (73, 300), i.e. 1 px per image pixel.
    let opts = PdfOptions { dpi: Dpi::Fixed(72.0), ..Default::default() };
    let p = &render("jpeg.pdf", &opts).unwrap()[0];
    let jpeg = image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/images/square_448x448.jpg")).unwrap().to_rgb8();
    let (x0, y0) = at(73.0, 748.0, 842.0, 72.0);
    let mut diff = 0f64;
    for (dx, dy) in [(100, 100), (224, 224), (300, 50), (50, 400), (400, 400)] {
        let a = mean(&p.image, x0 + dx - 4, y0 + dy - 4, x0 + dx + 4, y0 + dy + 4);
        let b = mean(&jpeg, dx - 4, dy - 4, dx + 4, dy + 4);
        diff = diff.max((0..3).map(|c| (a[c] - b[c]).abs()).fold(0.0, f64::max));
    }
    assert!(diff < 12.0, "8x8 patch means differ by up to {diff}");
}

#[test]
fn rotated_page_comes_out_landscape() {
    let p = &render("rotated.pdf", &PdfOptions::default()).unwrap()[0];
    assert!(p.image.width() > p.image.height(), "{}x{}", p.image.width(), p.image.height());
    // A4 turned: 842x595 pt, a 3x2 grid -> 1344 px across.
    assert_eq!(p.dpi, auto_dpi(842.0, 595.0, &TilingHint::default()));
    assert!(p.image.width() >= 1344 && p.image.height() >= 896);
    // /Rotate 90 turns clockwise: the title, top-left of the unrotated page, is now at the top
    // right; the left edge (formerly the bottom) carries the red arrow.
    let (w, h) = (p.image.width(), p.image.height());
    let top_right = ink(&image::imageops::crop_imm(&p.image, w * 3 / 4, 0, w / 4, h / 2).to_image());
    let top_left = ink(&image::imageops::crop_imm(&p.image, 0, 0, w / 4, h / 4).to_image());
    assert!(top_right > 0.01, "title ink {top_right}");
    assert!(top_left > 0.01, "arrow ink {top_left}");
}

#[test]
fn pages_are_selected_and_numbered() {
    let all = render("three_pages.pdf", &PdfOptions::default()).unwrap();
    assert_eq!(all.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(all[0].image.as_raw() != all[1].image.as_raw());
    let opts = PdfOptions { pages: Some("2-3".parse().unwrap()), ..Default::default() };
    let some = render("three_pages.pdf", &opts).unwrap();
    assert_eq!(some.iter().map(|p| p.number).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(some[0].image.as_raw(), all[1].image.as_raw(), "page 2 renders the same either way");
    assert_eq!(page_count(&read("three_pages.pdf"), &PdfLimits::default()).unwrap(), 3);
}

#[test]
fn msac_hint_raises_the_dpi_for_a_single_page_only() {
    let msac = PdfOptions { tiling: TilingHint { max_tiles: 6, msac: true }, ..Default::default() };
    let one = &render("shapes.pdf", &msac).unwrap()[0];
    assert_eq!(one.dpi, 163.0); // A4 with MSAC: the 3x2 pass needs 1344 px across
    let two = render("two_pages.pdf", &msac).unwrap();
    assert!(two.iter().all(|p| p.dpi == 115.0), "several pages: no MSAC, 2x3 grid");
}

#[test]
fn password_free_encryption_opens() {
    // RC4-40 with an empty user password: readers open it without asking; so does hayro.
    let p = &render("encrypted_nopw.pdf", &PdfOptions::default()).unwrap()[0];
    assert!(ink(&p.image) > 0.002, "decrypted text is drawn");
}

#[test]
fn bad_files_give_one_clear_error() {
    let d = PdfOptions::default();
    let err = |name: &str, opts: &PdfOptions| render(name, opts).err().unwrap_or_else(|| panic!("{name} rendered"));
    assert_eq!(err("truncated.pdf", &d), PdfError::Truncated);
    assert!(matches!(err("encrypted.pdf", &d), PdfError::Encrypted(_)));
    assert_eq!(err("zero_pages.pdf", &d), PdfError::NoPages);
    assert!(matches!(err("huge_mediabox.pdf", &d), PdfError::BadMediaBox { page: 1, .. }));
    let out = PdfOptions { pages: Some("2,5".parse().unwrap()), ..Default::default() };
    assert_eq!(err("three_pages.pdf", &out), PdfError::PageOutOfRange { page: 5, count: 3 });
    assert_eq!(err("many_pages.pdf", &d), PdfError::TooManyPages { selected: 40, count: 40, max: 32 });
    let big = PdfOptions { dpi: Dpi::Fixed(2400.0), ..Default::default() };
    assert!(matches!(err("text.pdf", &big), PdfError::PageTooLarge { page: 1, .. }));
    let none = PdfOptions { pages: Some(PageSet::from_pages([])), ..Default::default() };
    assert_eq!(err("text.pdf", &none), PdfError::NoPagesSelected);
    assert_eq!(render_pages(b"GIF89a not a pdf", &d).unwrap_err(), PdfError::NotPdf);
    assert_eq!(render_pages(b"%PDF-1.4\nnothing in here at all\n%%EOF\n", &d).unwrap_err(), PdfError::Invalid);
    // Every message is a single line.
    for name in ["truncated.pdf", "encrypted.pdf", "zero_pages.pdf", "huge_mediabox.pdf", "many_pages.pdf"] {
        let m = err(name, &d).to_string();
        assert!(!m.contains('\n') && m.len() > 10, "{name}: {m:?}");
    }
    // Raising the page limit lets the 40-page file through.
    let more = PdfOptions { limits: PdfLimits { max_pages: 40, ..Default::default() }, dpi: Dpi::Fixed(36.0), ..Default::default() };
    assert_eq!(render("many_pages.pdf", &more).unwrap().len(), 40);
}

/// A minimal PDF around `content` (one 200x200 page) with `kids` as the page tree's Kids.
fn tiny_pdf(content: &[u8], kids: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offs = Vec::new();
    let objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{kids}] /Count 1 >>").into_bytes(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
    ];
    for (i, o) in objs.iter().enumerate() {
        offs.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offs {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes());
    out
}

#[test]
fn a_page_tree_bomb_is_one_page() {
    // /Kids lists the same page 200 000 times (claiming as many pages): it is one page object.
    let kids = vec!["3 0 R"; 200_000].join(" ");
    let pdf = tiny_pdf(b"0 0 1 rg 10 10 50 50 re f", &kids);
    let t = Instant::now();
    let n = page_count(&pdf, &PdfLimits::default()).unwrap();
    assert_eq!(n, 1);
    assert_eq!(render_pages(&pdf, &PdfOptions::default()).unwrap().len(), 1);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_slow_document_hits_the_time_limit() {
    // 100 000 stroked segments: far more than 1 ms of work.
    let content: Vec<u8> = (0..100_000).flat_map(|i| format!("{} 0 m 200 {} l S\n", i % 200, (i * 7) % 200).into_bytes()).collect();
    let pdf = tiny_pdf(&content, "3 0 R");
    let opts = PdfOptions { limits: PdfLimits { timeout: Duration::from_millis(1), ..Default::default() }, ..Default::default() };
    let t = Instant::now();
    assert!(matches!(render_pages(&pdf, &opts), Err(PdfError::Timeout(_))));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn damaged_files_never_panic() {
    // Every prefix (with an end marker glued on) and a few byte flips of two fixtures: each
    // renders or fails with a PdfError; a panic inside hayro would be RendererPanic, which is
    // allowed here but reported.
    let limits = PdfLimits { timeout: Duration::from_secs(10), ..Default::default() };
    let opts = PdfOptions { dpi: Dpi::Fixed(36.0), limits, ..Default::default() };
    let mut panics = Vec::new();
    for name in ["text.pdf", "three_pages.pdf", "jpeg.pdf"] {
        let good = read(name);
        let step = (good.len() / 40).max(1);
        let mut cases: Vec<Vec<u8>> = (1..good.len()).step_by(step).map(|n| [&good[..n], b"\n%%EOF\n"].concat()).collect();
        for k in (9..good.len()).step_by(step) {
            let mut b = good.clone();
            b[k] ^= 0x5A;
            cases.push(b);
        }
        for c in cases {
            if let Err(PdfError::RendererPanic(m)) = render_pages(&c, &opts) {
                panics.push(m);
            }
        }
    }
    eprintln!("hayro panics caught on damaged input: {}", panics.len());
}
