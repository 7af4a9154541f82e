//! `h2ovl run --json-template` / `--json-schema` / `--json` with `-n` from the smallest valid
//! answer up to 64 (issue 12), through the real binary on the converted tiny golden checkpoint:
//! stdout always parses and has the template's / schema's shape, exit 0; one token below the
//! minimum is one error line naming the minimum, exit 1. Also `--exact` next to a contradicting
//! flag: one error line, exit 1.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const MAX_BUDGET: usize = 64;

const PROMPTS: [(&str, &str); 5] = [
    ("simple", r#"Extract the person's details as JSON: {"name": "", "date_of_birth": "", "address": ""}"#),
    (
        "nested",
        r#"Read the ID card and answer in JSON: {"person": {"name": "", "nationality": ""}, "document": {"number": "", "expiry": {"month": 0, "year": 0}}}"#,
    ),
    ("list", r#"List every item on the receipt: {"items": [{"description": "", "price": 0}], "total": 0}"#),
    ("table", r#"Convert the table to JSON: {"columns": [""], "rows": [{"product": "", "quantity": 0, "in_stock": true}]}"#),
    (
        "chart",
        r#"Describe the chart as JSON: {"title": "", "x_axis": {"label": ""}, "series": [{"name": "", "points": [{"x": "", "y": 0}]}]}"#,
    ),
];

const PERSON: &str = r#"{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}"#;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_h2ovl")
}

/// The tiny golden checkpoint converted once (F32 LLM) by the binary itself; (folder, LLM GGUF).
fn tiny() -> &'static (PathBuf, PathBuf) {
    static T: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let ckpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("quant-tests/fixtures/golden/checkpoints/tiny");
        let o = Command::new(bin())
            .args(["convert", ckpt.to_str().unwrap(), "--outdir", dir.to_str().unwrap(), "--quant", "f32", "--vision-quant", "f32", "--quiet"])
            .output()
            .expect("running h2ovl convert");
        assert!(o.status.success(), "convert: {}", String::from_utf8_lossy(&o.stderr));
        let llm = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.ends_with("F32.gguf") && !n.starts_with("mmproj")
            })
            .expect("the LLM GGUF");
        (dir, llm)
    })
}

fn run(args: &[&str]) -> Output {
    let llm = tiny().1.to_str().unwrap().to_string();
    Command::new(bin())
        .args(["run", "-m", &llm, "-t", "2", "--quiet", "--exact"])
        .args(args)
        .output()
        .expect("running h2ovl run")
}

/// The minimum named by the error for `-n 0`, checking that error's form on the way.
fn minimum(args: &[&str]) -> usize {
    let mut a = args.to_vec();
    a.extend(["-n", "0"]);
    let o = run(&a);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "-n 0 must be refused: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err}");
    let n = err.split("at least ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("no minimum in: {err}"))
}

fn sweep(label: &str, args: &[&str], valid: &dyn Fn(&serde_json::Value) -> bool) {
    let min = minimum(args);
    assert!((1..MAX_BUDGET).contains(&min), "{label}: minimum {min}");
    let mut closed = 0;
    for max in min..=MAX_BUDGET {
        let n = max.to_string();
        let mut a = args.to_vec();
        a.extend(["-n", &n, "--output", "json"]);
        let o = run(&a);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{label} -n {max}: {stderr}");
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--output json");
        let text = out["text"].as_str().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{label} -n {max}: {e}: {text}"));
        assert!(valid(&v), "{label} -n {max}: wrong shape: {text}");
        assert!(out["tokens"].as_array().map_or(0, Vec::len) <= max, "{label} -n {max}");
        closed += (out["stop"] == "Length") as usize;
    }
    // One below the minimum: the error names it.
    let n = (min - 1).to_string();
    let mut a = args.to_vec();
    a.extend(["-n", &n]);
    let o = run(&a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{label} -n {}: {err}", min - 1);
    assert!(err.starts_with("error: ") && err.contains(&format!("at least {min} tokens")), "{label}: {err}");
    println!("{label}: -n {min}..={MAX_BUDGET} all parse ({closed} closed by the budget); -n {} refused", min - 1);
}

#[test]
fn run_json_template_every_budget() {
    for (name, prompt) in PROMPTS {
        let (t, _) = h2ovl_runtime::json::template::find_template(prompt).unwrap();
        sweep(name, &["-p", prompt, "--json-template"], &|v| h2ovl_runtime::json::template::matches_template(&t, v));
    }
}

#[test]
fn run_json_schema_and_free_json_every_budget() {
    let schema = tiny().0.join("person.schema.json");
    std::fs::write(&schema, PERSON).unwrap();
    let is_person = |v: &serde_json::Value| v.as_object().is_some_and(|m| m.len() == 2) && v["name"].is_string() && v["age"].is_i64();
    sweep("person schema", &["-p", "Who is on the card? Answer in JSON.", "--json-schema", schema.to_str().unwrap()], &is_person);
    sweep("--json", &["-p", "Say hello in JSON.", "--json"], &|v| v.is_object());
}

#[test]
fn exact_conflicts_are_one_error_line() {
    for bad in [["--flash-attn", "on"], ["--vision-math", "int8"]] {
        let o = run(&["-p", "Hi", "-n", "2", bad[0], bad[1]]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: --exact") && err.trim_end().lines().count() == 1, "{err}");
    }
    let o = run(&["-p", "Hi", "-n", "2", "--flash-attn", "off", "--kv-f32"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
