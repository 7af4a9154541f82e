//! Soak test (issue 12, "Load"): the real `h2ovl serve` process on the tiny golden checkpoint,
//! loopback only, hit by C clients × R requests that mix text, images, JSON schemas, streaming
//! (read to the end, or dropped after the first chunk), malformed bodies and oversized uploads,
//! while another thread polls `/health`. Asserts: the server never dies; every answer is 200,
//! 400, 413 or 503 with a well-formed body (an OpenAI-style `error` object for the non-200s, a
//! chat completion or SSE chunks ending in `[DONE]` for the 200s); malformed → 400, oversized →
//! 413; `/health` answers every poll; the queue drains (`/health` `jobs` back to 0); the server's
//! RSS (`VmRSS` of the server process) after the load ≤ 1.2 × after the warm-up.
//!
//! Size: `H2OVL_SOAK=CxR` (default `4x6`, the CI size; `16x25` is the full run in
//! docs/robustness.md). Figures are printed (`--nocapture`).
mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const BODY_LIMIT_MB: usize = 1;
const QUEUE: usize = 8;

/// `h2ovl serve` on an ephemeral port; (child, address). Its stderr is drained by a thread.
fn start_server() -> (Child, SocketAddr) {
    let m = tiny();
    let mut child = Command::new(bin())
        .args(["serve", "-m"])
        .arg(&m.llm)
        .arg("--mmproj")
        .arg(&m.mmproj)
        .args(FAST)
        .args(ONE_TILE)
        .args(["--port", "0", "--queue", &QUEUE.to_string(), "--body-limit-mb", &BODY_LIMIT_MB.to_string(), "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting h2ovl serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("server exited before listening").expect("stderr");
        if let Some(a) = l.split("listening on http://").nth(1) {
            break a.trim().parse().expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The request kinds, in the order clients cycle through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Text,
    Image,
    Schema,
    Stream,
    StreamDisconnect,
    Malformed,
    Oversized,
    ImageStream,
}

const KINDS: [Kind; 8] =
    [Kind::Text, Kind::Image, Kind::Schema, Kind::Stream, Kind::StreamDisconnect, Kind::Malformed, Kind::Oversized, Kind::ImageStream];

fn image_url() -> String {
    let jpg = std::fs::read(image("square_448x448.jpg")).unwrap();
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpg))
}

fn body(kind: Kind, k: usize, img: &str) -> Vec<u8> {
    let text = |q: String| json!([{"role": "user", "content": q}]);
    let with_image = json!([{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": img}}]}]);
    let v = match kind {
        Kind::Text => json!({"messages": text(format!("Request {k}: say something.")), "max_tokens": 8, "temperature": 0.7, "seed": k}),
        Kind::Image => json!({"messages": with_image, "max_tokens": 6}),
        Kind::Schema => json!({"messages": text(format!("Person {k} as JSON.")), "max_tokens": 40, "response_format": {"type": "json_schema",
            "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}}, "required": ["name", "age"]}}}}),
        Kind::Stream => json!({"messages": text(format!("Stream {k}.")), "max_tokens": 12, "stream": true}),
        Kind::StreamDisconnect => json!({"messages": text(format!("Long stream {k}.")), "max_tokens": 2000, "stream": true}),
        Kind::ImageStream => json!({"messages": with_image, "max_tokens": 6, "stream": true, "stream_options": {"include_usage": true}}),
        Kind::Malformed => {
            let bad = [
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}".to_string(),
                json!({"messages": "hello"}).to_string(),
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]}).to_string(),
                json!({"messages": [{"role": "user", "content": "x"}], "temperature": -1}).to_string(),
                "\u{0}\u{1}\u{2} not json".to_string(),
            ];
            return bad[k % bad.len()].clone().into_bytes();
        }
        Kind::Oversized => return vec![b' '; (BODY_LIMIT_MB << 20) + (BODY_LIMIT_MB << 19)],
    };
    v.to_string().into_bytes()
}

/// An OpenAI-style error body: `{"error": {"message": str, "type": str, ...}}`.
fn check_error_body(b: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(b).map_err(|e| format!("error body is not JSON ({e}): {}", String::from_utf8_lossy(b)))?;
    if v["error"]["message"].is_string() && v["error"]["type"].is_string() {
        Ok(())
    } else {
        Err(format!("not an OpenAI error body: {v}"))
    }
}

fn check_sse(b: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(b);
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    if data.last() != Some(&"[DONE]") {
        return Err(format!("stream does not end with [DONE]: {text}"));
    }
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).map_err(|e| format!("bad chunk ({e}): {d}"))?;
        if !v["choices"].is_array() {
            return Err(format!("chunk without choices: {d}"));
        }
    }
    Ok(())
}

/// One request; (status, problem if the answer was not what this kind allows).
fn one(addr: SocketAddr, kind: Kind, k: usize, img: &str) -> (u16, Option<String>) {
    let b = body(kind, k, img);
    let timeout = Duration::from_secs(120);
    if kind == Kind::StreamDisconnect {
        // Read the head and the first chunk, then hang up mid-stream.
        let mut s = match std::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return (0, Some(format!("connect: {e}"))),
        };
        s.set_read_timeout(Some(timeout)).unwrap();
        // `Connection: close`: a 503 answer then ends with the connection instead of keeping it open.
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            b.len()
        );
        if let Err(e) = s.write_all(head.as_bytes()).and_then(|_| s.write_all(&b)) {
            return (0, Some(format!("write: {e}")));
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("data: ") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let r = parse_response(&got);
        return match r.status {
            200 if String::from_utf8_lossy(&got).contains("data: ") => (200, None),
            503 => (503, check_error_body(&r.body).err()),
            st => (st, Some(format!("disconnect stream: {}", String::from_utf8_lossy(&got)))),
        };
    }
    let r = match http(addr, "POST", "/v1/chat/completions", "", &b, timeout) {
        Ok(r) => r,
        Err(e) => return (0, Some(format!("{kind:?}: {e}"))),
    };
    let problem = match (kind, r.status) {
        (Kind::Malformed, 400) | (Kind::Oversized, 413) | (_, 503) => check_error_body(&r.body).err(),
        (Kind::Malformed | Kind::Oversized, _) => Some("wrong status".into()),
        (Kind::Stream | Kind::ImageStream, 200) => check_sse(&r.body).err(),
        (_, 200) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let content = v["choices"][0]["message"]["content"].as_str();
            match (kind, content) {
                (_, None) => Some("no choices[0].message.content".into()),
                (Kind::Schema, Some(c)) if serde_json::from_str::<Value>(c).map(|j| j["age"].is_i64()).unwrap_or(false) => None,
                (Kind::Schema, Some(c)) => Some(format!("schema answer does not validate: {c}")),
                _ => None,
            }
        }
        _ => Some("unexpected status".into()),
    };
    (r.status, problem.map(|p| format!("{kind:?} -> {}: {p}: {}", r.status, r.text().chars().take(300).collect::<String>())))
}

/// Polls `/health` until it reports no job queued or running (up to 60 s); the last `jobs` value.
fn wait_idle(addr: SocketAddr) -> Value {
    let t = Instant::now();
    let mut jobs = Value::Null;
    while t.elapsed() < Duration::from_secs(60) {
        let r = http(addr, "GET", "/health", "", b"", Duration::from_secs(10)).expect("/health");
        jobs = serde_json::from_slice::<Value>(&r.body).unwrap_or_default()["jobs"].clone();
        if jobs == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    jobs
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn soak_mixed_load_on_the_real_server() {
    let size = std::env::var("H2OVL_SOAK").unwrap_or_else(|_| "4x6".into());
    let (clients, per_client) = size
        .split_once('x')
        .and_then(|(c, r)| Some((c.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
        .expect("H2OVL_SOAK must look like 16x25");
    let (mut server, addr) = start_server();
    let pid = server.id();
    let img = Arc::new(image_url());

    std::thread::sleep(Duration::from_millis(200));
    let t_start = Instant::now();
    let rss_start = rss_kb(pid);
    // Warm-up: every kind once sequentially (first allocations, KV cache, image path), then one
    // concurrent round of C clients × every kind (connection buffers and allocator arenas at
    // their concurrent peak), so that growth after it would be a leak, not the first burst.
    for (k, &kind) in KINDS.iter().enumerate() {
        let (st, problem) = one(addr, kind, k, &img);
        assert!(problem.is_none(), "warm-up {kind:?}: {st} {problem:?}");
    }
    let warm: Vec<_> = (0..clients)
        .map(|c| {
            let img = img.clone();
            std::thread::spawn(move || KINDS.iter().map(|&kind| one(addr, kind, 100_000 + c, &img).1).find(Option::is_some).flatten())
        })
        .collect();
    for t in warm {
        assert_eq!(t.join().unwrap(), None, "warm-up round");
    }
    wait_idle(addr);
    std::thread::sleep(Duration::from_millis(500));
    let rss_warm = rss_kb(pid);

    // /health all along.
    let stop = Arc::new(AtomicBool::new(false));
    let health = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut bad, mut worst) = (0usize, Vec::new(), Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http(addr, "GET", "/health", "", b"", Duration::from_secs(10)) {
                    Ok(r) if r.status == 200 && r.text().contains("\"ok\"") => ok += 1,
                    other => bad.push(format!("{:?}", other.map(|r| (r.status, r.text())))),
                }
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            (ok, bad, worst)
        })
    };

    let results: Arc<Mutex<Vec<(Kind, u16, Duration, Option<String>)>>> = Arc::default();
    let t0 = Instant::now();
    println!("warm-up ({} sequential + {clients}x{} concurrent requests) took {:.1} s", KINDS.len(), KINDS.len(), t_start.elapsed().as_secs_f64());
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (img, results) = (img.clone(), results.clone());
            std::thread::spawn(move || {
                for i in 0..per_client {
                    let k = c * per_client + i;
                    let kind = KINDS[(c + i) % KINDS.len()];
                    let t = Instant::now();
                    let (st, problem) = one(addr, kind, k, &img);
                    results.lock().unwrap().push((kind, st, t.elapsed(), problem));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let wall = t0.elapsed();

    // The queue drains: /health reports no job left.
    let t = Instant::now();
    let jobs = wait_idle(addr);
    let drain = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (health_ok, health_bad, health_worst) = health.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kb(pid);
    let alive = server.try_wait().expect("try_wait").is_none();
    // A normal request still works after all that.
    let (after_status, after_problem) = one(addr, Kind::Text, 9999, &img);
    let _ = server.kill();
    let _ = server.wait();

    let results = results.lock().unwrap();
    let mut hist: BTreeMap<u16, usize> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for (kind, st, _, _) in results.iter() {
        *hist.entry(*st).or_default() += 1;
        *per_kind.entry(format!("{kind:?}")).or_default().entry(*st).or_default() += 1;
    }
    let mut lat: Vec<Duration> = results.iter().map(|r| r.2).collect();
    lat.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e3).round() as u64;
    for kind in KINDS {
        for ok in [true, false] {
            let mut l: Vec<Duration> = results.iter().filter(|r| r.0 == kind && (r.1 == 200) == ok).map(|r| r.2).collect();
            l.sort();
            if !l.is_empty() {
                let what = if ok { "200" } else { "other" };
                println!("  {kind:?} {what}: {} requests, p50 {} ms, p99 {} ms", l.len(), ms(percentile(&l, 0.5)), ms(percentile(&l, 0.99)));
            }
        }
    }
    println!(
        "soak {clients}x{per_client}: {} requests in {:.1} s; status {hist:?}; per kind {per_kind:?}; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        results.len(),
        wall.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "server VmRSS {rss_start} kB at start, {rss_warm} kB after warm-up, {rss_after} kB after the load ({:.3}x); /health {health_ok} polls ok, {} failed, slowest {:.0} ms; jobs {jobs} {:.2} s after the last client; server alive {alive}",
        rss_after as f64 / rss_warm as f64,
        health_bad.len(),
        health_worst.as_secs_f64() * 1e3,
        drain.as_secs_f64()
    );

    let problems: Vec<&String> = results.iter().filter_map(|r| r.3.as_ref()).collect();
    assert!(problems.is_empty(), "{} bad answers, e.g. {:?}", problems.len(), &problems[..problems.len().min(5)]);
    assert!(hist.keys().all(|s| [200, 400, 413, 503].contains(s)), "{hist:?}");
    assert_eq!(results.len(), clients * per_client);
    assert!(hist.get(&200).copied().unwrap_or(0) > 0, "nothing answered: {hist:?}");
    assert!(alive, "the server died");
    assert!(health_bad.is_empty() && health_ok > 0, "/health failed: {health_bad:?}");
    assert_eq!(jobs, 0, "the queue did not drain");
    assert!(after_problem.is_none() && after_status == 200, "{after_status} {after_problem:?}");
    assert!(rss_after as f64 <= 1.2 * rss_warm as f64, "RSS grew from {rss_warm} kB to {rss_after} kB");
}
