//! `h2ovl eval` through the real binary on the tiny golden checkpoint: the F32-vs-F32 row is
//! exactly KL 0 / top-1 1.0 (same files, same settings: the comparison itself adds nothing), the
//! Q8_0 row has KL > 0 and its per-token KL agrees with one computed here, independently, from
//! two `h2ovl run --dump-logits` dumps; report.html is well-formed with one SVG per chart; a
//! resumed run recomputes a removed case to the same numbers; bad inputs are one error line.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use serde_json::Value;

const PROMPT: &str = "Describe this image in detail.";
const N: &str = "12";

/// tiny converted with the converter API to (F32, F32) and (Q8_0, Q8_0), once per process.
fn pairs() -> &'static (Models, Models) {
    static P: OnceLock<(Models, Models)> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let conv = |q, v| {
            let o = h2ovl_convert::convert(&ConvertOptions { input: golden_ckpt("tiny"), outdir: dir.clone(), quant: q, vision_quant: v, quiet: true, threads: Some(2) })
                .expect("converting tiny");
            Models { llm: o.llm, mmproj: o.vision }
        };
        (conv(LlmQuant::F32, VisionQuant::F32), conv(LlmQuant::Q8_0, VisionQuant::Q8_0))
    })
}

/// A folder with two of the golden images.
fn image_dir() -> PathBuf {
    let d = tempfile::tempdir().unwrap().keep();
    for n in ["gradient_640x480.png", "square_448x448.jpg"] {
        std::fs::copy(image(n), d.join(n)).unwrap();
    }
    d
}

fn eval_args<'a>(f32: &'a Models, q8: &'a Models, images: &'a Path, out: &'a Path) -> Vec<&'a std::ffi::OsStr> {
    let mut v: Vec<&std::ffi::OsStr> = Vec::new();
    for s in ["eval", "--exact", "-t", "2", "--max-tiles", "2", "-n", N, "--quiet", "-p", PROMPT] {
        v.push(s.as_ref());
    }
    for (flag, p) in [
        ("-m", &f32.llm),
        ("--mmproj", &f32.mmproj),
        ("-m", &q8.llm),
        ("--mmproj", &q8.mmproj),
        ("--ref-model", &f32.llm),
        ("--ref-mmproj", &f32.mmproj),
    ] {
        v.push(flag.as_ref());
        v.push(p.as_os_str());
    }
    v.extend([std::ffi::OsStr::new("--images"), images.as_os_str(), std::ffi::OsStr::new("--out"), out.as_os_str()]);
    v
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// KL(p || q) of two logit rows, in f64, written out independently of the crate's metrics.
fn kl_direct(p: &[f32], q: &[f32]) -> f64 {
    let lse = |r: &[f32]| {
        let m = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        m + r.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lp, lq) = (lse(p), lse(q));
    p.iter().zip(q).map(|(&a, &b)| {
        let la = a as f64 - lp;
        la.exp() * (la - (b as f64 - lq))
    }).sum()
}

/// `h2ovl run --dump-logits` with the eval's settings: ([steps, vocab] logits).
fn dump(m: &Models, img: &Path, dir: &Path, name: &str) -> (usize, Vec<f32>) {
    let f = dir.join(name);
    let o = h2ovl(&[
        "run", "-m", m.llm.to_str().unwrap(), "--mmproj", m.mmproj.to_str().unwrap(), "--image", img.to_str().unwrap(), "-p", PROMPT,
        "--exact", "-t", "2", "--max-tiles", "2", "-n", N, "--quiet", "--dump-logits", f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, v) = h2ovl_runtime::npy::read_f32(&f).unwrap();
    (shape[1], v)
}

/// A small XML well-formedness check: every element closed in order, attribute values quoted,
/// entities known. Enough for markup we generate ourselves.
fn check_well_formed(s: &str) -> Result<usize, String> {
    let body = s.trim_start().strip_prefix("<!DOCTYPE html>").ok_or("no doctype")?;
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = body;
    while let Some(i) = rest.find(['<', '&']) {
        let (text, tail) = rest.split_at(i);
        if text.contains('>') {
            return Err(format!("stray '>' in text {text:?}"));
        }
        if tail.starts_with('&') {
            let end = tail.find(';').ok_or("unterminated entity")?;
            let ent = &tail[1..end];
            let known = ["amp", "lt", "gt", "quot", "#39"].contains(&ent);
            if !known {
                return Err(format!("unknown entity &{ent};"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("unterminated tag")?;
        let tag = &tail[1..end];
        rest = &tail[end + 1..];
        if tag.matches('"').count() % 2 != 0 || tag.contains('<') {
            return Err(format!("bad tag <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            elements += 1;
            let name = tag.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string();
            if !tag.ends_with('/') {
                if name == "style" {
                    // CSS is raw text: skip to its end tag.
                    let e = rest.find("</style>").ok_or("unclosed style")?;
                    rest = &rest[e..];
                }
                stack.push(name);
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    Ok(elements)
}

#[test]
fn f32_row_is_exact_q8_0_row_matches_dump_logits_html_is_well_formed_and_resumes() {
    let (f32, q8) = pairs();
    let images = image_dir();
    let out = tempfile::tempdir().unwrap();
    let o = h2ovl(&eval_args(f32, q8, &images, out.path()));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(out.path());
    let sums = r["summary"].as_array().unwrap();
    assert_eq!(sums.len(), 2);
    let (s32, s8) = (&sums[0], &sums[1]);
    assert!(s32["name"].as_str().unwrap().contains("F32") && s8["name"].as_str().unwrap().contains("Q8_0"), "{s32} {s8}");
    for s in sums {
        assert!(stdout.contains(s["name"].as_str().unwrap()), "table: {stdout}");
        assert_eq!(s["cases_done"], 2);
    }

    // F32 vs F32: exactly 0 and 1, every position of every case.
    assert_eq!(s32["kl_mean"].as_f64(), Some(0.0), "{s32}");
    assert_eq!(s32["kl_max"].as_f64(), Some(0.0));
    assert_eq!(s32["top1"].as_f64(), Some(1.0));
    assert_eq!(s32["dloglik_per_answer"].as_f64(), Some(0.0));
    assert_eq!(s32["identical_answers"], 2);
    assert!(s32["positions"].as_u64().unwrap() > 0);
    assert!(s32["embed_cos_min"].as_f64().unwrap() > 1.0 - 1e-12);

    // Q8_0: KL > 0, and per token equal to the KL of the two `run --dump-logits` dumps wherever
    // both free-running answers have had the same context so far (positions 0..=common prefix).
    assert!(s8["kl_mean"].as_f64().unwrap() > 0.0, "{s8}");
    assert!(s8["embed_cos_min"].as_f64().unwrap() < 1.0);
    let pair8 = &r["pairs"][1];
    let (mut compared, mut worst) = (0, 0.0f64);
    for (k, name) in ["gradient_640x480.png", "square_448x448.jpg"].iter().enumerate() {
        let case = &pair8["cases"][format!("i{k}-p0")];
        let ref_case = &r["reference"]["cases"][format!("i{k}-p0")];
        let (v, ref_dump) = dump(f32, &images.join(name), out.path(), &format!("ref{k}.npy"));
        let (_, q8_dump) = dump(q8, &images.join(name), out.path(), &format!("q8{k}.npy"));
        // The eval's reference answer is the free-running greedy answer of `run`.
        let ref_tokens: Vec<i64> = ref_case["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
        for (step, &t) in ref_tokens.iter().enumerate() {
            let row = &ref_dump[step * v..(step + 1) * v];
            let am = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
            assert_eq!(am as i64, t, "case {k} step {step}");
        }
        let kl: Vec<f64> = case["forced"]["kl"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let prefix = case["common_prefix"].as_u64().unwrap() as usize;
        let steps = (q8_dump.len() / v).min(ref_dump.len() / v).min(kl.len()).min(prefix + 1);
        for s in 0..steps {
            let d = kl_direct(&ref_dump[s * v..(s + 1) * v], &q8_dump[s * v..(s + 1) * v]);
            let e = kl[s];
            assert!(d > 0.0, "case {k} step {s}: direct KL {d}");
            // The same f32 rows on both sides (eval decodes one token at a time, as run does):
            // only the f64 summation order of the two KL formulas differs.
            assert!((e - d).abs() <= 1e-9 * d.max(e), "case {k} step {s}: eval KL {e} vs direct {d}");
            compared += 1;
            worst = worst.max((e - d).abs() / d.max(e));
        }
    }
    assert!(compared > 0);
    println!("Q8_0: {compared} positions compared with run --dump-logits, largest relative KL difference {worst:.2e}");

    // The page: well-formed, one <svg> per chart, each chart present.
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    check_well_formed(&html).unwrap_or_else(|e| panic!("report.html: {e}"));
    assert_eq!(html.matches("<svg").count(), h2ovl_bench::eval::html::CHARTS.len());
    for id in h2ovl_bench::eval::html::CHARTS {
        assert!(html.contains(&format!(r#"id="{id}""#)), "{id}");
    }

    // Resume: drop one finished case of the Q8_0 pair; a rerun recomputes only that one, equal.
    let mut edited = r.clone();
    let removed = edited["pairs"][1]["cases"].as_object_mut().unwrap().remove("i1-p0").unwrap();
    std::fs::write(out.path().join("report.json"), serde_json::to_string(&edited).unwrap()).unwrap();
    let o = h2ovl(&eval_args(f32, q8, &images, out.path()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = report(out.path());
    let redone = &again["pairs"][1]["cases"]["i1-p0"];
    assert_eq!(redone["forced"], removed["forced"]);
    assert_eq!(redone["tokens"], removed["tokens"]);
    assert_eq!(again["pairs"][1]["cases"]["i0-p0"], r["pairs"][1]["cases"]["i0-p0"], "a finished case was recomputed");
}

#[test]
fn bad_inputs_are_one_error_line() {
    let (f32, q8) = pairs();
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = h2ovl(&eval_args(f32, q8, empty.path(), &out.path().join("o1")));
    refused(&o, 1, "no image files");
    assert!(!out.path().join("o1").exists(), "an output folder was left behind");

    let bad = tempfile::tempdir().unwrap();
    std::fs::copy(image("square_448x448.jpg"), bad.path().join("a.jpg")).unwrap();
    std::fs::write(bad.path().join("b.png"), b"not a png at all").unwrap();
    let o = h2ovl(&eval_args(f32, q8, bad.path(), &out.path().join("o2")));
    let line = refused(&o, 1, "b.png");
    assert!(line.contains("image"), "{line}");

    let images = image_dir();
    let o3 = out.path().join("o3");
    let mut args = eval_args(f32, q8, &images, &o3);
    args.extend([std::ffi::OsStr::new("--quants"), std::ffi::OsStr::new("f16,q3_k")]);
    refused(&h2ovl(&args), 1, "q3_k");
    let hf = golden_ckpt("tiny");
    let o = h2ovl(&[
        "eval", "--hf-dir", hf.to_str().unwrap(), "--vision-quants", "q4_0", "--images", images.to_str().unwrap(), "-p", PROMPT,
        "--out", out.path().join("o4").to_str().unwrap(),
    ]);
    refused(&o, 1, "q4_0");
    let o = h2ovl(&[
        "eval", "--hf-dir", hf.to_str().unwrap(), "--json-template", "--images", images.to_str().unwrap(), "-p", PROMPT,
        "--out", out.path().join("o5").to_str().unwrap(),
    ]);
    refused(&o, 1, "no JSON template");
    for o in ["o3", "o4", "o5"] {
        assert!(!out.path().join(o).exists(), "{o} was created");
    }
}

#[test]
fn ctrl_c_keeps_the_finished_cases_and_the_rerun_completes() {
    let (f32, q8) = pairs();
    let d = tempfile::tempdir().unwrap();
    let images = d.path().join("img");
    std::fs::create_dir(&images).unwrap();
    for i in 0..6 {
        std::fs::copy(image("gradient_640x480.png"), images.join(format!("g{i}.png"))).unwrap();
    }
    let out = d.path().join("out");
    let args = eval_args(f32, q8, &images, &out);
    let child = std::process::Command::new(bin())
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cases_done = || {
        std::fs::read_to_string(out.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map_or(0, |r| r["reference"]["cases"].as_object().map_or(0, |c| c.len()))
    };
    let t = std::time::Instant::now();
    while cases_done() < 1 && t.elapsed().as_secs() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(cases_done() >= 1, "eval never finished a case");
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    refused(&o, 130, "rerun the same command to resume");
    let r = report(&out);
    let kept = r["reference"]["cases"].as_object().unwrap().len() + r["pairs"].as_array().unwrap().iter().map(|p| p["cases"].as_object().unwrap().len()).sum::<usize>();
    assert!(kept >= 1 && kept < 18, "{kept} cases kept: the run should have stopped mid-way");
    let leftovers: Vec<_> = walk(&out).into_iter().filter(|p| p.to_string_lossy().contains(".partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The rerun finishes the rest.
    let o = h2ovl(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out);
    for s in r["summary"].as_array().unwrap() {
        assert_eq!(s["cases_done"], 6, "{s}");
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
