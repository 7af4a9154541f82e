//! Shared by the CLI tests that drive the real binary on bad input: running `h2ovl`, the tiny golden
//! checkpoints converted once per test process, and the checks every refusal must pass (exactly
//! one `error:` line on stderr, the expected exit code, no file left behind).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn golden() -> PathBuf {
    root().join("quant-tests/fixtures/golden")
}

pub fn golden_ckpt(name: &str) -> PathBuf {
    golden().join("checkpoints").join(name)
}

pub fn image(name: &str) -> PathBuf {
    golden().join("images").join(name)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_h2ovl")
}

pub fn h2ovl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(bin()).args(args).output().expect("running h2ovl")
}

/// LLM and mmproj GGUF of a converted checkpoint.
#[derive(Debug, Clone)]
pub struct Models {
    pub llm: PathBuf,
    pub mmproj: PathBuf,
}

/// Golden checkpoint `name` converted by the binary (F32 + F32) into a fresh temp folder.
pub fn convert_f32(name: &str) -> Models {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let ck = golden_ckpt(name);
    let o = h2ovl(&["convert", ck.to_str().unwrap(), "--outdir", dir.to_str().unwrap(), "--quant", "f32", "--vision-quant", "f32", "--quiet"]);
    assert!(o.status.success(), "convert {name}: {}", String::from_utf8_lossy(&o.stderr));
    // The two paths are the last lines of stdout (LLM, then mmproj).
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    Models { llm: PathBuf::from(lines[lines.len() - 2]), mmproj: PathBuf::from(lines[lines.len() - 1]) }
}

/// `tiny` converted once per test process.
pub fn tiny() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| convert_f32("tiny"))
}

/// `tiny-2b` converted once per test process (its LLM is 96 wide, tiny's 64).
pub fn tiny_2b() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| convert_f32("tiny-2b"))
}

/// The flags every `run`/`batch` on the tiny model uses: deterministic, 2 threads.
pub const FAST: [&str; 5] = ["--kv-f32", "--flash-attn", "off", "-t", "2"];
/// One tile per image: the least work per request.
pub const ONE_TILE: [&str; 2] = ["--max-tiles", "1"];

/// Asserts the command was refused with exit code `code` and exactly one stderr line, which
/// starts with `error:` and contains `needle`; returns that line.
#[track_caller]
pub fn refused(o: &Output, code: i32, needle: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "exit status {:?}, stderr: {err}", o.status);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
    lines[0].to_string()
}

/// A clap usage error (exit 2): one `error:` line, then clap's usage hint.
#[track_caller]
pub fn usage_error(o: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
    lines[0].to_string()
}

/// Names of the entries of `dir` (empty if it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}
