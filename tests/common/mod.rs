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

/// One HTTP/1.1 exchange on a fresh loopback connection (`Connection: close`).
pub struct Http {
    /// 0 when no status line came back.
    pub status: u16,
    /// Lower-cased header block.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Http {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with `body` (and `extra` header lines, each ending in `\r\n`), reads the
/// whole answer (up to `timeout`). Write errors after the head are ignored: a server may answer
/// (413) before reading an oversized body.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, extra: &str, body: &[u8], timeout: std::time::Duration) -> std::io::Result<Http> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(parse_response(&out))
}

/// Status, head and de-chunked body of a raw HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Http {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, rest) = match split {
        Some(i) => (String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase(), &raw[i + 4..]),
        None => (String::from_utf8_lossy(raw).to_ascii_lowercase(), &raw[raw.len()..]),
    };
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_vec() };
    Http { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol]).ok().and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(n) = size.filter(|&n| n > 0) else { break };
        let start = eol + 2;
        let end = (start + n).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = b.get(end + 2..).unwrap_or(&[]);
    }
    out
}
