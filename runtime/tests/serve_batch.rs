//! `h2ovl batch` engine on the tiny golden checkpoint (real vision GGUF): one JSON line per image
//! with the template's shape, a bad image becomes an "error" line and the run goes on, a rerun
//! skips what is done (resumable), and a torn last line is repaired.
use std::path::Path;

use h2ovl_runtime::json::template::{find_template, matches_template};
use h2ovl_runtime::json::{Constraint, Limits};
use h2ovl_runtime::llm::{GenerationConfig, KvType, Pipeline, PipelineOptions};
use h2ovl_runtime::serve::batch::{list_inputs, run_batch, BatchJob, BatchSummary};
use serde_json::Value;

mod common;
use common::golden;

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn batch_over_a_folder_with_a_template_resumes_and_survives_bad_images() {
    let o = common::tiny_f32();
    let opts = PipelineOptions { threads: 2, kv_type: KvType::F32, flash_attn: Some(false), max_tiles: 2, ..Default::default() };
    let mut pipe = Pipeline::load(&o.llm, Some(&o.vision), opts).expect("load");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(golden().join("images/square_448x448.jpg"), dir.path().join("a.jpg")).unwrap();
    std::fs::write(dir.path().join("b.png"), b"this is not a PNG").unwrap();
    let out = dir.path().join("results.jsonl");
    let prompt = r#"Extract the fields: {"name": "", "total": 0, "items": [{"what": ""}]}"#;
    let (template, _) = find_template(prompt).unwrap();
    let limits = Limits { max_string_chars: 10, max_items: 2, ..Default::default() };
    let job = BatchJob {
        prompt: prompt.to_string(),
        constraint: Some(Constraint::from_template(&template, &limits).unwrap()),
        cfg: GenerationConfig { max_new_tokens: 400, ..Default::default() },
        out: &out,
        pdf: Default::default(),
        per_document: false,
    };
    let input = dir.path().to_str().unwrap().to_string();
    let mut seen = Vec::new();
    let s = run_batch(&mut pipe, &list_inputs(&input).unwrap(), &job, &mut |i, n, _| seen.push((i, n))).unwrap();
    assert_eq!(s, BatchSummary { processed: 2, skipped: 0, errors: 1 });
    assert_eq!(seen, [(1, 2), (2, 2)]);
    let l = lines(&out);
    assert_eq!(l.len(), 2);
    assert!(l[0]["file"].as_str().unwrap().ends_with("a.jpg"));
    assert!(matches_template(&template, &l[0]["json"]), "{}", l[0]);
    // The stored object keeps the template's key order.
    assert!(std::fs::read_to_string(&out).unwrap().lines().next().unwrap().contains(r#""json":{"name":"#));
    assert_eq!(l[0]["tiles"], serde_json::json!([1]));
    assert!(l[0]["ms"].as_f64().unwrap() > 0.0);
    assert!(l[1]["file"].as_str().unwrap().ends_with("b.png"));
    assert!(!l[1]["error"].as_str().unwrap().is_empty() && l[1].get("json").is_none(), "{}", l[1]);

    // Resume: a new image and a torn line from an interrupted run.
    std::fs::copy(golden().join("images/tall_300x900.png"), dir.path().join("c.png")).unwrap();
    let mut text = std::fs::read_to_string(&out).unwrap();
    text.push_str("{\"file\": \"half-writ");
    std::fs::write(&out, text).unwrap();
    let s = run_batch(&mut pipe, &list_inputs(&input).unwrap(), &job, &mut |_, _, _| {}).unwrap();
    assert_eq!(s, BatchSummary { processed: 1, skipped: 2, errors: 0 });
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert!(l[2]["file"].as_str().unwrap().ends_with("c.png"));
    assert!(matches_template(&template, &l[2]["json"]), "{}", l[2]);

    // Without a template: free text.
    let out2 = dir.path().join("text.jsonl");
    let job2 = BatchJob { prompt: "Describe.".into(), constraint: None, cfg: GenerationConfig { max_new_tokens: 4, ..Default::default() }, out: &out2, pdf: Default::default(), per_document: false };
    run_batch(&mut pipe, &list_inputs(&format!("{input}/*.jpg")).unwrap(), &job2, &mut |_, _, _| {}).unwrap();
    let l = lines(&out2);
    assert_eq!(l.len(), 1);
    assert!(l[0]["text"].is_string() && l[0].get("json").is_none());
}
