//! `h2ovl run` and `h2ovl batch` with PDFs, on the tiny golden checkpoint through the real binary:
//! a 2-page PDF is two images (`--output json` lists two tile counts), `--pages` picks pages,
//! bad PDFs are one error line and exit code 1, and `batch` writes one line per page with
//! `"page"`, skips finished pages on a rerun and records a bad PDF as an `"error"` line.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("runtime/tests/fixtures/pdf").join(name)
}

fn h2ovl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_h2ovl")).args(args).output().expect("running h2ovl")
}

/// The tiny checkpoint converted once (F32 LLM + F32 vision): (llm, mmproj).
fn models() -> &'static (String, String) {
    static M: OnceLock<(String, String)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ck = root().join("quant-tests/fixtures/golden/checkpoints/tiny");
        let o = h2ovl(&["convert", ck.to_str().unwrap(), "--outdir", dir.to_str().unwrap(), "--quant", "f32", "--vision-quant", "f32", "--quiet"]);
        assert!(o.status.success(), "convert: {}", String::from_utf8_lossy(&o.stderr));
        let mut llm = None;
        let mut mmproj = None;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path().to_string_lossy().into_owned();
            if p.ends_with(".gguf") {
                if p.contains("mmproj") {
                    mmproj = Some(p);
                } else {
                    llm = Some(p);
                }
            }
        }
        (llm.expect("LLM gguf"), mmproj.expect("mmproj gguf"))
    })
}

fn run_json(extra: &[&str]) -> Result<Value, String> {
    let (llm, mmproj) = (models().0.as_str(), models().1.as_str());
    let mut args = vec!["run", "-m", llm, "--mmproj", mmproj, "-p", "Describe.", "-n", "3", "--kv-f32", "--flash-attn", "off", "-t", "2", "--max-tiles", "1", "--output", "json"];
    args.extend_from_slice(extra);
    let o = h2ovl(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        // 1 = our error line, 2 = clap refusing a flag value.
        assert!(matches!(o.status.code(), Some(1 | 2)), "{err}");
        return Err(err);
    }
    Ok(serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout))))
}

#[test]
fn run_takes_a_pdf_as_its_pages() {
    let two = fixture("two_pages.pdf");
    let v = run_json(&["--image", two.to_str().unwrap()]).unwrap();
    assert_eq!(v["image_tiles"], serde_json::json!([1, 1]), "{v}");
    // The header decides, not the name.
    let dir = tempfile::tempdir().unwrap();
    let disguised = dir.path().join("scan.png");
    std::fs::copy(&two, &disguised).unwrap();
    let w = run_json(&["--image", disguised.to_str().unwrap()]).unwrap();
    assert_eq!(w["prompt_tokens"], v["prompt_tokens"]);
    let three = fixture("three_pages.pdf");
    let p = run_json(&["--image", three.to_str().unwrap(), "--pages", "2-3"]).unwrap();
    assert_eq!(p["image_tiles"], serde_json::json!([1, 1]));
    let one = run_json(&["--image", three.to_str().unwrap(), "--pages", "3"]).unwrap();
    assert_eq!(one["image_tiles"], serde_json::json!([1]));

    for (file, extra, want) in [
        ("three_pages.pdf", "5", "page 5 is out of range: the PDF has 3 page(s)"),
        ("encrypted.pdf", "", "encrypted"),
        ("truncated.pdf", "", "truncated"),
        ("zero_pages.pdf", "", "no pages"),
        ("huge_mediabox.pdf", "", "impossible size"),
        ("many_pages.pdf", "", "over the limit of 32 pages"),
    ] {
        let f = fixture(file);
        let mut args = vec!["--image", f.to_str().unwrap()];
        if !extra.is_empty() {
            args.extend(["--pages", extra]);
        }
        let err = run_json(&args).expect_err(file);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{file}: one error line expected: {err}");
        assert!(lines[0].contains(want), "{file}: {err}");
    }
    let err = run_json(&["--image", two.to_str().unwrap(), "--pages", "0"]).unwrap_err();
    assert!(err.contains("start at 1"), "{err}");
    let err = run_json(&["--image", two.to_str().unwrap(), "--dpi", "2400"]).unwrap_err();
    assert!(err.contains("pixels per page"), "{err}");
}

#[test]
fn batch_writes_a_line_per_page_and_resumes_per_page() {
    let (llm, mmproj) = (models().0.as_str(), models().1.as_str());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(fixture("two_pages.pdf"), input.join("a.pdf")).unwrap();
    std::fs::copy(fixture("encrypted.pdf"), input.join("b.pdf")).unwrap();
    std::fs::copy(root().join("quant-tests/fixtures/golden/images/square_448x448.jpg"), input.join("c.jpg")).unwrap();
    let out = dir.path().join("r.jsonl");
    let batch = || {
        let o = h2ovl(&[
            "batch", "-m", llm, "--mmproj", mmproj, "--input", input.to_str().unwrap(), "-p", "Describe.", "-n", "3", "--kv-f32",
            "--flash-attn", "off", "-t", "2", "--max-tiles", "1", "--out", out.to_str().unwrap(), "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let lines = || -> Vec<Value> { std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    let msg = batch();
    assert!(msg.contains("4 image(s)/page(s) processed (1 with errors), 0 already"), "{msg}");
    let l = lines();
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l[0]["file"].as_str().unwrap().ends_with("a.pdf") && l[0]["page"] == 1 && l[0]["text"].is_string(), "{}", l[0]);
    assert!(l[1]["file"].as_str().unwrap().ends_with("a.pdf") && l[1]["page"] == 2 && l[1]["tiles"] == serde_json::json!([1]), "{}", l[1]);
    assert!(l[2]["file"].as_str().unwrap().ends_with("b.pdf") && l[2].get("page").is_none(), "{}", l[2]);
    assert!(l[2]["error"].as_str().unwrap().contains("encrypted"), "{}", l[2]);
    assert!(l[3]["file"].as_str().unwrap().ends_with("c.jpg") && l[3].get("page").is_none() && l[3]["text"].is_string());

    let page2 = l[1]["text"].clone();
    // Rerun: nothing to do.
    assert!(batch().contains("0 image(s)/page(s) processed (0 with errors), 4 already"));
    // Drop page 2's line (as if the run had stopped there): only page 2 is redone.
    let kept: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().filter(|l| !l.contains("\"page\":2")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&out, kept.concat()).unwrap();
    assert!(batch().contains("1 image(s)/page(s) processed (0 with errors), 3 already"));
    let l = lines();
    assert_eq!(l.len(), 4);
    assert!(l[3]["file"].as_str().unwrap().ends_with("a.pdf") && l[3]["page"] == 2, "{}", l[3]);
    assert_eq!(l[3]["text"], page2, "greedy: the redone page gives the same answer");
}

/// `run` on six_pages.pdf (six A4 invoice pages) with `--pages-mode mode`, JSON output.
fn six_pages(mode: &str, extra: &[&str]) -> Output {
    let (llm, mmproj) = (models().0.as_str(), models().1.as_str());
    let pdf = fixture("six_pages.pdf");
    let mut args = vec!["run", "-m", llm, "--mmproj", mmproj, "--image", pdf.to_str().unwrap(), "-p", "Total?", "-n", "3"];
    args.extend(["--kv-f32", "--flash-attn", "off", "-t", "2", "--output", "json", "--pages-mode", mode]);
    args.extend_from_slice(extra);
    h2ovl(&args)
}

/// Issue 23: six pages of a PDF that need 42 tiles (10 752 image positions) at the default max 6
/// tiles do not fit the 8192-token context; the default `--pages-mode auto` fits them (one line
/// on stderr, `fit` in the JSON), every page tiled alike, and `--pages-mode off` is the old error.
/// A `--min-tiles` above `--max-tiles` is refused up front.
#[test]
fn six_pages_are_fitted_to_the_context() {
    let o = six_pages("auto", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tiles: Vec<u64> = v["image_tiles"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert_eq!(tiles.len(), 6);
    assert!(tiles.iter().all(|&t| t == tiles[0]) && tiles[0] < 7, "{tiles:?}");
    let fit = v["fit"].as_str().expect("fit reported");
    assert!(fit.contains("6 images") && fit.contains("instead of 42"), "{fit}");
    assert!(v["prompt_tokens"].as_u64().unwrap() + 3 <= 8192);
    assert!(err.lines().any(|l| l.starts_with("fitted to the context: 6 images")), "{err}");

    let o = six_pages("off", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("10752 image positions from 42 tiles") && err.contains("--pages-mode auto"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err}");

    let o = six_pages("auto", &["--min-tiles", "7"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--min-tiles 7 must be between 1 and --max-tiles (6)"), "{err}");
}

/// Issue 23, page by page: three A4 pages that do not fit a 2048-token context even at the floor
/// are read page by page under the default `auto` (one group a page, combined by a text-only
/// turn, per-page answers in the JSON); `--pages-mode fit` refuses in one line naming `each`.
#[test]
fn pages_that_cannot_be_fitted_are_read_one_by_one() {
    let o = six_pages("auto", &["--pages", "1-3", "-c", "2048"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pages_mode"], "each", "{v}");
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3, "{v}");
    for (k, p) in pages.iter().enumerate() {
        assert_eq!((p["first"].as_u64(), p["last"].as_u64()), (Some(k as u64 + 1), Some(k as u64 + 1)));
        assert!(p["text"].is_string());
    }
    assert_eq!(v["combined_by"], "text-only turn");
    assert!(err.contains("read page by page: 3 group(s) (pages 1, 2, 3)"), "{err}");

    let o = six_pages("fit", &["--pages", "1-3", "-c", "2048"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("even at the floor") && err.contains("--pages-mode each"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err}");
}

/// `batch --per document`: one line per PDF about the whole document (here three pages that do
/// not fit a 2048 context even at the floor: read page by page, three groups), resumable per file.
#[test]
fn batch_per_document_writes_one_line_per_pdf() {
    let (llm, mmproj) = (models().0.as_str(), models().1.as_str());
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(fixture("six_pages.pdf"), input.join("doc.pdf")).unwrap();
    let out = d.path().join("r.jsonl");
    let batch = || {
        h2ovl(&[
            "batch", "-m", llm, "--mmproj", mmproj, "--input", input.to_str().unwrap(), "--pages", "1-3", "-p", "Total?", "-n", "3", "--kv-f32",
            "--flash-attn", "off", "-t", "2", "-c", "2048", "--per", "document", "--out", out.to_str().unwrap(), "--quiet",
        ])
    };
    let o = batch();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert!(l["file"].as_str().unwrap().ends_with("doc.pdf") && l.get("page").is_none(), "{l}");
    assert_eq!(l["pages"], 3);
    assert_eq!(l["groups"], serde_json::json!([[1, 1], [2, 2], [3, 3]]), "{l}");
    assert!(l["text"].is_string(), "{l}");
    let o = batch();
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 image(s)/page(s) processed (0 with errors), 1 already"));
}
