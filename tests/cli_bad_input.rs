//! The bad-input catalogue (docs/robustness.md) through the real binary: each refusal is exactly
//! one `error:` line on stderr with exit code 1 (2 for clap usage errors, 130 for Ctrl-C) and
//! leaves no output or `*.partial` file. Covers what the library tests cannot: disk full
//! (RLIMIT_FSIZE / /dev/full), output folders that cannot be created, non-UTF-8 arguments and
//! files, model files that llama.cpp refuses, mismatched model pairs, image files at the CLI, and
//! Ctrl-C (SIGINT) in `convert`, `run` and `batch`.
mod common;
use common::*;

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use h2ovl_format::gguf::{GgufFile, GgufValue, GgufWriter, PlannedTensor};

/// `h2ovl run` on the tiny model with `extra` arguments.
fn run(extra: &[&std::ffi::OsStr]) -> std::process::Output {
    let m = tiny();
    let mut c = Command::new(bin());
    c.args(["run", "-m"]).arg(&m.llm).arg("--mmproj").arg(&m.mmproj).args(FAST).args(["--quiet"]).args(extra);
    if !extra.contains(&os("-n")) {
        c.args(["-n", "3"]);
    }
    if !extra.contains(&os("--max-tiles")) {
        c.args(ONE_TILE);
    }
    c.output().expect("running h2ovl run")
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `h2ovl convert CK --outdir OUT` with `pre` run in the child before exec (resource limits).
fn convert_with(ck: &Path, out: &Path, quant: &str, pre: Option<fn() -> std::io::Result<()>>) -> std::process::Output {
    let mut c = Command::new(bin());
    c.args(["convert"]).arg(ck).arg("--outdir").arg(out).args(["--quant", quant, "--vision-quant", "f32", "--quiet"]);
    if let Some(f) = pre {
        // SAFETY: the closure only calls async-signal-safe libc functions (signal, setrlimit).
        unsafe { c.pre_exec(f) };
    }
    c.output().expect("running h2ovl convert")
}

fn copy_ckpt(name: &str, dst: &Path) -> PathBuf {
    let to = dst.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(golden_ckpt(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

/// A 64 KiB file-size limit with SIGXFSZ ignored: writes past it fail with EFBIG, as on a full disk.
fn small_fsize_limit() -> std::io::Result<()> {
    // SAFETY: plain libc calls on values we own.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit { rlim_cur: 64 << 10, rlim_max: 64 << 10 };
        if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn convert_disk_full_leaves_no_file() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = convert_with(&golden_ckpt("tiny"), &out, "f32", Some(small_fsize_limit));
    refused(&o, 1, "File too large");
    assert_eq!(files_in(&out), Vec::<String>::new(), "nothing half-written");
}

#[test]
fn convert_output_folder_that_cannot_be_created() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // Running as root defeats permission bits; a regular file where a folder must go fails for anyone.
    let o = convert_with(&golden_ckpt("tiny"), &file.join("out"), "f32", None);
    refused(&o, 1, "creating");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    let o = convert_with(&golden_ckpt("tiny"), &file, "f32", None);
    refused(&o, 1, "creating");
}

#[test]
fn convert_missing_input_and_non_utf8_or_corrupt_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    refused(&convert_with(&d.path().join("nope"), &out, "f32", None), 1, "input folder");

    let ck = copy_ckpt("tiny", &d.path().join("a"));
    std::fs::write(ck.join("config.json"), b"{\"llm_config\": \"\xff\xfe\"}").unwrap();
    refused(&convert_with(&ck, &out, "f32", None), 1, "config.json");

    let ck = copy_ckpt("tiny", &d.path().join("b"));
    std::fs::write(ck.join("tokenizer.model"), b"\x0a\xff\xff\xff\xff\x0fgarbage").unwrap();
    refused(&convert_with(&ck, &out, "f32", None), 1, "tokenizer.model");

    let ck = copy_ckpt("tiny", &d.path().join("c"));
    std::fs::remove_file(ck.join("tokenizer.model")).unwrap();
    std::fs::write(ck.join("tokenizer.json"), b"{\"model\": {\"vocab\": [\xff").unwrap();
    refused(&convert_with(&ck, &out, "f32", None), 1, "tokenizer.json");

    let ck = copy_ckpt("tiny", &d.path().join("e"));
    std::fs::write(ck.join("model.safetensors"), b"").unwrap();
    refused(&convert_with(&ck, &out, "f32", None), 1, "model.safetensors");
    // A header length far beyond the file.
    let mut lying = (1u64 << 40).to_le_bytes().to_vec();
    lying.extend_from_slice(b"{}");
    std::fs::write(ck.join("model.safetensors"), lying).unwrap();
    refused(&convert_with(&ck, &out, "f32", None), 1, "model.safetensors");
    assert_eq!(files_in(&out), Vec::<String>::new());
}

/// Writes `src` again with `edit` applied to its metadata (tensors copied unchanged).
fn rewrite_gguf(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, GgufValue)>)) {
    let g = GgufFile::open(src).unwrap();
    let mut kv: Vec<(String, GgufValue)> = g.metadata().to_vec();
    edit(&mut kv);
    let f = std::fs::File::create(dst).unwrap();
    let mut w = GgufWriter::new(std::io::BufWriter::new(f));
    for (k, v) in kv {
        w.add_kv(&k, v).unwrap();
    }
    for t in g.tensors() {
        w.add_tensor(PlannedTensor { name: t.name.clone(), ty: t.ty, ne: t.ne.clone() }).unwrap();
    }
    w.write_header().unwrap();
    for t in g.tensors() {
        w.write_tensor_data(&t.name, g.tensor(&t.name).unwrap().data).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn run_refuses_broken_and_mismatched_model_files() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    let img = image("square_448x448.jpg");
    let go = |llm: &Path, mmproj: &Path| {
        let mut c = Command::new(bin());
        c.args(["run", "-m"]).arg(llm).arg("--mmproj").arg(mmproj).args(FAST).args(ONE_TILE).args(["-n", "2", "-p", "Hi", "--image"]).arg(&img);
        c.output().unwrap()
    };
    refused(&go(&d.path().join("missing.gguf"), &m.mmproj), 1, "does not exist");
    let junk = d.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a GGUF file at all").unwrap();
    refused(&go(&junk, &m.mmproj), 1, "could not load");
    refused(&go(&m.llm, &junk), 1, "not a GGUF file (bad magic");
    // The LLM cut in half: llama.cpp finds its tensors beyond the end; our reader does the same for mmproj.
    let bytes = std::fs::read(&m.llm).unwrap();
    let cut = d.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&go(&cut, &m.mmproj), 1, "could not load");
    let bytes = std::fs::read(&m.mmproj).unwrap();
    let cutv = d.path().join("cutv.gguf");
    std::fs::write(&cutv, &bytes[..bytes.len() / 2]).unwrap();
    refused(&go(&m.llm, &cutv), 1, "not within the file");
    // The files swapped: a GGUF of another architecture on each side.
    refused(&go(&m.mmproj, &m.mmproj), 1, "could not load");
    refused(&go(&m.llm, &m.llm), 1, "vision GGUF");
    // A vision tower for a 96-wide LLM next to the 64-wide one.
    refused(&go(&m.llm, &tiny_2b().mmproj), 1, "projects to width 96 but the LLM");
    // One token fewer in the vocabulary than embedding rows.
    let short = d.path().join("short-vocab.gguf");
    rewrite_gguf(&m.llm, &short, |kv| {
        for (k, v) in kv.iter_mut() {
            if let ("tokenizer.ggml.tokens" | "tokenizer.ggml.scores" | "tokenizer.ggml.token_type", GgufValue::Array(items)) = (k.as_str(), v) {
                items.pop();
            }
        }
    });
    refused(&go(&short, &m.mmproj), 1, "could not load");
    // Another LLM architecture name than the tensors are for.
    let arch = d.path().join("arch.gguf");
    rewrite_gguf(&m.llm, &arch, |kv| {
        for (k, v) in kv.iter_mut() {
            if k == "general.architecture" {
                *v = GgufValue::String("mamba".into());
            }
        }
    });
    refused(&go(&arch, &m.mmproj), 1, "could not load");
    // The vision file's projector width changed in its metadata only.
    let lie = d.path().join("lie.gguf");
    rewrite_gguf(&m.mmproj, &lie, |kv| {
        for (k, v) in kv.iter_mut() {
            if k == "clip.vision.image_size" {
                *v = GgufValue::U32(100);
            }
        }
    });
    refused(&go(&m.llm, &lie), 1, "image_size 100 is not a multiple of patch_size");
}

#[test]
fn run_refuses_prompts_that_do_not_fit_or_do_not_match_the_images() {
    let img = image("square_448x448.jpg");
    let long = "word ".repeat(300);
    refused(&run(&[os("-c"), os("128"), os("-p"), os(&long)]), 1, "more than the context size 128");
    refused(&run(&[os("-n"), os("9000"), os("-p"), os("Hi")]), 1, "more than the context size 8192");
    refused(&run(&[os("-p"), os("<image> and <image>?"), os("--image"), img.as_os_str()]), 1, "2 `<image>` placeholder(s) but 1 image(s)");
    refused(&run(&[os("-p"), os("Hi <IMG_CONTEXT>"), os("--image"), img.as_os_str()]), 1, "IMG_CONTEXT");
    // Images with no vision model.
    let o = Command::new(bin())
        .args(["run", "-m"])
        .arg(&tiny().llm)
        .args(FAST).args(ONE_TILE)
        .args(["-n", "2", "-p", "Hi", "--image"])
        .arg(&img)
        .output()
        .unwrap();
    refused(&o, 1, "no vision model is loaded");
    // Non-UTF-8 bytes in the prompt: clap's usage error.
    usage_error(&run(&[os("-p"), std::ffi::OsStr::from_bytes(b"caf\xe9")]), "invalid UTF-8");
    // A non-UTF-8 schema file, a schema that is not JSON.
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.json");
    std::fs::write(&s, b"{\"type\": \"obj\xffect\"}").unwrap();
    refused(&run(&[os("-p"), os("Hi"), os("--json-schema"), s.as_os_str()]), 1, "s.json");
    std::fs::write(&s, b"{\"type\": ").unwrap();
    refused(&run(&[os("-p"), os("Hi"), os("--json-schema"), s.as_os_str()]), 1, "s.json");
    // Logits into a folder that cannot exist: one line, nothing written.
    let file = d.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let dump = file.join("logits.npy");
    refused(&run(&[os("-p"), os("Hi"), os("--dump-logits"), dump.as_os_str()]), 1, "logits.npy");
}

/// A 50-byte PNG claiming `w`×`h` (header + a few compressed bytes): the shape of a decompression bomb.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // The start of a compressed stream: decoders read the header up to the first IDAT.
    let idat = b"IDAT\x78\x9c\x62\x00\x00";
    out.extend_from_slice(&(idat.len() as u32 - 4).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn run_refuses_bad_images_and_takes_odd_ones() {
    let d = tempfile::tempdir().unwrap();
    let ask = |p: &Path| run(&[os("-p"), os("What is this?"), os("--image"), p.as_os_str()]);
    let put = |name: &str, bytes: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    refused(&ask(&d.path().join("none.png")), 1, "none.png: No such file");
    refused(&ask(&put("empty.png", b"")), 1, "empty (0 bytes)");
    refused(&ask(&put("text.png", b"just some text, not pixels")), 1, "unrecognised image format");
    let png = std::fs::read(image("gradient_640x480.png")).unwrap();
    refused(&ask(&put("half.png", &png[..png.len() / 2])), 1, "corrupt or truncated");
    let jpg = std::fs::read(image("square_448x448.jpg")).unwrap();
    refused(&ask(&put("half.jpg", &jpg[..jpg.len() / 2])), 1, "truncated JPEG");
    refused(&ask(&put("bomb.png", &png_header_only(50_000, 50_000))), 1, "over the limit of 178956970 pixels (refused before decoding)");
    refused(&ask(&put("zero.png", &png_header_only(0, 10))), 1, "cannot load image");
    let o = run(&[os("-p"), os("What is this?"), os("--image"), image("square_448x448.jpg").as_os_str(), os("--max-pixels"), os("1000")]);
    refused(&o, 1, "over the limit of 1000 pixels");

    // Extreme aspect ratios, 16-bit and a non-UTF-8 file name are answered (exit 0), not refused.
    let json = |p: &Path, tiles: &str| {
        let o = run(&[os("-p"), os("What is this?"), os("--image"), p.as_os_str(), os("--max-tiles"), os(tiles), os("--output"), os("json")]);
        assert!(o.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let save = |name: &str, img: image::DynamicImage| {
        let p = d.path().join(name);
        img.save(&p).unwrap();
        p
    };
    let wide = save("wide.png", image::RgbImage::from_fn(100_000, 1, |x, _| image::Rgb([(x % 251) as u8, 7, 9])).into());
    // Best grid for 100000:1 among 1x1, 1x2, 2x1 is 2x1, plus the thumbnail.
    assert_eq!(json(&wide, "2")["image_tiles"], serde_json::json!([3]));
    let tall = save("tall.png", image::GrayImage::from_fn(1, 100_000, |_, y| image::Luma([(y % 253) as u8])).into());
    assert_eq!(json(&tall, "2")["image_tiles"], serde_json::json!([3]));
    let deep = save("deep.png", image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(64, 48, |x, y| image::Rgb([x as u16 * 999, y as u16 * 1333, 65535])).into());
    assert_eq!(json(&deep, "1")["image_tiles"], serde_json::json!([1]));
    let odd = d.path().join(std::ffi::OsStr::from_bytes(b"scan-\xff.jpg"));
    std::fs::copy(image("square_448x448.jpg"), &odd).unwrap();
    assert_eq!(json(&odd, "1")["image_tiles"], serde_json::json!([1]));
}

fn sigint(child: &std::process::Child) {
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

/// Waits (polling) until `cond` holds, up to `secs`.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn ctrl_c_in_convert_removes_the_partial_files() {
    // A checkpoint big enough (the `small` preset, Q4_K_M on one thread) to be stopped mid-way.
    let d = tempfile::tempdir().unwrap();
    let ck = d.path().join("small");
    let o = h2ovl(&["gen-model", "--preset", "small", "--out", ck.to_str().unwrap(), "--seed", "3", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path().join("out");
    let child = Command::new(bin())
        .args(["convert"])
        .arg(&ck)
        .arg("--outdir")
        .arg(&out)
        .args(["--quant", "q4_k_m", "--vision-quant", "q8_0", "--quiet", "-t", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first `.partial` exists the tensors are being written.
    assert!(wait_for(120, || files_in(&out).iter().any(|f| f.ends_with(".partial"))), "convert never started writing");
    sigint(&child);
    let o = child.wait_with_output().unwrap();
    refused(&o, 130, "interrupted (Ctrl-C)");
    assert_eq!(files_in(&out), Vec::<String>::new(), "no GGUF and no .partial left");
}

#[test]
fn ctrl_c_in_run_stops_the_answer() {
    let m = tiny();
    let mut child = Command::new(bin())
        .args(["run", "-m"])
        .arg(&m.llm)
        .arg("--mmproj")
        .arg(&m.mmproj)
        .args(FAST).args(ONE_TILE)
        .args(["-n", "8000", "-p", "Tell me everything.", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first streamed bytes: generation is under way.
    let mut first = [0u8; 1];
    use std::io::Read as _;
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    let t = Instant::now();
    sigint(&child);
    let o = child.wait_with_output().unwrap();
    refused(&o, 130, "interrupted (Ctrl-C)");
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?} to stop", t.elapsed());
}

#[test]
fn ctrl_c_in_batch_leaves_a_resumable_file() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let n_files = 24;
    for i in 0..n_files {
        std::fs::copy(image("square_448x448.jpg"), input.join(format!("img{i:02}.jpg"))).unwrap();
    }
    let out = d.path().join("r.jsonl");
    let batch = || {
        let mut c = Command::new(bin());
        c.args(["batch", "-m"]).arg(&m.llm).arg("--mmproj").arg(&m.mmproj).args(FAST).args(ONE_TILE);
        c.args(["-n", "40", "-p", "Describe.", "--quiet", "--input"]).arg(&input).arg("--out").arg(&out);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let child = batch().spawn().unwrap();
    let lines = || std::fs::read_to_string(&out).map(|s| s.lines().count()).unwrap_or(0);
    assert!(wait_for(300, || lines() >= 2), "batch never wrote a line");
    sigint(&child);
    let o = child.wait_with_output().unwrap();
    refused(&o, 130, "rerun the same command to resume");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let done = text.lines().count();
    assert!(done >= 2 && done < n_files, "{done} lines: the run should have been stopped mid-way");
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["text"].is_string(), "an interrupted answer must not be recorded: {l}");
    }
    // The rerun does only the rest; every image once.
    let o = batch().output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains(&format!("{} image(s)/page(s) processed (0 with errors), {done} already", n_files - done)), "{msg}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut files: Vec<String> = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["file"].as_str().unwrap().to_string()).collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), n_files);
    assert_eq!(text.lines().count(), n_files);
}

#[test]
fn batch_refuses_full_disks_bad_outputs_and_bad_inputs() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(image("square_448x448.jpg"), input.join("a.jpg")).unwrap();
    let batch = |out: &Path, extra: &[&std::ffi::OsStr]| {
        let mut c = Command::new(bin());
        c.args(["batch", "-m"]).arg(&m.llm).arg("--mmproj").arg(&m.mmproj).args(FAST).args(ONE_TILE);
        c.args(["-n", "3", "-p", "Describe.", "--quiet", "--input"]).arg(&input).arg("--out").arg(out).args(extra);
        c.output().unwrap()
    };
    refused(&batch(Path::new("/dev/full"), &[]), 1, "No space left on device");
    let file = d.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    refused(&batch(&file.join("r.jsonl"), &[]), 1, "creating");
    // Not a results file: refused rather than appended to.
    let mine = d.path().join("notes.jsonl");
    std::fs::write(&mine, "my notes\nmore notes\n").unwrap();
    refused(&batch(&mine, &[]), 1, "is not a results file of h2ovl batch");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes\nmore notes\n");
    let t = d.path().join("t.json");
    std::fs::write(&t, b"{\"name\": \"\xff\"}").unwrap();
    let out = d.path().join("r.jsonl");
    refused(&batch(&out, &[os("--json-template"), t.as_os_str()]), 1, "t.json");
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut c = Command::new(bin());
    c.args(["batch", "-m"]).arg(&m.llm).args(["-p", "x", "--quiet", "--input"]).arg(&empty).arg("--out").arg(&out);
    refused(&c.output().unwrap(), 1, "names no image or PDF files");
    assert!(!out.exists(), "no results file for a refused run");
}
