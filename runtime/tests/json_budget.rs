//! JSON within the token budget (issue 12), on the converted tiny golden checkpoint: for every
//! `max_new_tokens` from the smallest valid answer's token count up to 64, the five prompt-guide
//! templates, a `{"name": string, "age": integer}` schema and free JSON give an answer that parses and has
//! the required shape, with `finish_reason` `length` when the budget closed it; one token less
//! than the minimum is refused up front with an error naming the minimum. Through the library
//! and through `h2ovl serve` (HTTP on loopback).
mod common;
use common::*;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use h2ovl_runtime::json::template::{find_template, matches_template};
use h2ovl_runtime::json::{Constraint, Limits};
use h2ovl_runtime::llm::{GenerationConfig, History, KvType, Pipeline, PipelineOptions, StopReason};
use h2ovl_runtime::serve::ServeOptions;
use serde_json::{json, Value};

const MAX_BUDGET: usize = 64;

/// The prompt-guide shapes (as in json_templates.rs).
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

fn pipeline() -> Pipeline {
    let o = PipelineOptions { threads: 2, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() };
    Pipeline::with_encoder(tiny_llm(), None, o).expect("loading the tiny LLM")
}

/// `{"name": string, "age": integer}` and nothing else.
fn is_person(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.len() == 2) && v["name"].is_string() && (v["age"].is_i64() || v["age"].is_u64())
}

/// (label, prompt, constraint, validator) for the six cases.
fn cases() -> Vec<(String, String, Constraint, Box<dyn Fn(&Value) -> bool>)> {
    let mut out: Vec<(String, String, Constraint, Box<dyn Fn(&Value) -> bool>)> = Vec::new();
    for (name, prompt) in PROMPTS {
        let (t, _) = find_template(prompt).expect("template");
        let c = Constraint::from_prompt_template(prompt, &Limits::default()).expect(name);
        out.push((name.to_string(), prompt.to_string(), c, Box::new(move |v| matches_template(&t, v))));
    }
    let c = Constraint::from_schema_text(PERSON, &Limits::default()).unwrap();
    out.push(("person schema".into(), "Who is on the card? Answer in JSON.".into(), c, Box::new(is_person)));
    out.push(("json_object".into(), "Say hello in JSON.".into(), Constraint::any_object(&Limits::default()), Box::new(|v: &Value| v.is_object())));
    out
}

#[test]
fn every_budget_from_the_minimum_to_64_gives_valid_json() {
    let mut p = pipeline();
    for (label, prompt, c, valid) in cases() {
        let (min, text) = p.json_minimum(&c);
        assert!(min >= 1 && min < MAX_BUDGET, "{label}: minimum {min} tokens for {text}");
        let (mut closed, mut natural) = (0, 0);
        for (max, temperature) in (min..=MAX_BUDGET).map(|m| (m, 0.0)).chain([(min, 0.9), (min + 7, 0.9), (40, 0.9)]) {
            let cfg = GenerationConfig { max_new_tokens: max, temperature, seed: max as u64, constraint: Some(c.clone()), ..Default::default() };
            let out = p.chat_stream(&[], &prompt, &cfg, &History::new(), &mut |_| {}).unwrap_or_else(|e| panic!("{label} -n {max}: {e:#}"));
            let v: Value = serde_json::from_str(&out.answer).unwrap_or_else(|e| panic!("{label} -n {max} (temp {temperature}): {e}: {}", out.answer));
            assert!(valid(&v), "{label} -n {max}: wrong shape: {}", out.answer);
            assert!(out.tokens.len() <= max, "{label} -n {max}: {} tokens", out.tokens.len());
            match out.stop {
                StopReason::Length => closed += 1,
                StopReason::EndOfAnswer => natural += 1,
                StopReason::Cancelled => panic!("{label}: cancelled"),
            }
        }
        println!("{label}: minimum {min} tokens ({text}); budgets {min}..={MAX_BUDGET}: {closed} closed by the budget (length), {natural} ended by themselves");
        // Free JSON may end by itself (`{}`); templates and the schema need more than the small budgets.
        assert!(closed > 0 || label == "json_object", "{label}: the budget never had to close the answer");

        let cfg = GenerationConfig { max_new_tokens: min - 1, constraint: Some(c.clone()), ..Default::default() };
        let e = format!("{:#}", p.chat_stream(&[], &prompt, &cfg, &History::new(), &mut |_| {}).unwrap_err());
        assert!(e.contains(&format!("at least {min} tokens")) && e.contains(&text), "{label}: {e}");
    }
}

/// A server for this test (common::start_server on the tiny LLM without vision).
fn budget_server() -> SocketAddr {
    start_server(pipeline(), ServeOptions::default())
}

/// POST a chat completion (blocking, `Connection: close`); (status, body as JSON).
fn post(addr: SocketAddr, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let raw = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(raw).unwrap_or_else(|e| panic!("body is not JSON ({e}): {raw}")))
}

/// A request body with `max_tokens` and `response_format` (schema text kept in its key order,
/// which is the output order).
fn body(prompt: &str, max: usize, response_format: &str) -> String {
    format!(r#"{{"messages": [{{"role": "user", "content": {}}}], "max_tokens": {max}, "response_format": {response_format}}}"#, json!(prompt))
}

#[test]
fn server_json_schema_and_templates_within_every_budget() {
    let addr = budget_server();
    let mut p = pipeline();
    type Check = Box<dyn Fn(&Value) -> bool>;
    let mut requests: Vec<(String, String, String, Check, usize)> = Vec::new();
    // The schema as OpenAI json_schema, free JSON as json_object, and the five templates (the
    // server has no template mode: their schema goes in as json_schema, as a client sends it).
    let person = Constraint::from_schema_text(PERSON, &Limits::default()).unwrap();
    let rf = format!(r#"{{"type": "json_schema", "json_schema": {{"name": "person", "schema": {PERSON}, "strict": true}}}}"#);
    requests.push(("person schema".into(), "Who is on the card? Answer in JSON.".into(), rf, Box::new(is_person), p.json_minimum(&person).0));
    let any = Constraint::any_object(&Limits::default());
    let rf = r#"{"type": "json_object"}"#.to_string();
    requests.push(("json_object".into(), "Say hello in JSON.".into(), rf, Box::new(|v: &Value| v.is_object()), p.json_minimum(&any).0));
    for (name, prompt) in PROMPTS {
        let (t, _) = find_template(prompt).unwrap();
        let schema = h2ovl_runtime::json::template::template_schema(&t).unwrap();
        let c = Constraint::from_schema(&schema, &Limits::default()).unwrap();
        let rf = format!(r#"{{"type": "json_schema", "json_schema": {{"name": "{name}", "schema": {}}}}}"#, schema.to_json());
        requests.push((name.to_string(), prompt.to_string(), rf, Box::new(move |v| matches_template(&t, v)), p.json_minimum(&c).0));
    }
    drop(p);
    for (label, prompt, rf, valid, min) in &requests {
        let mut lengths = 0;
        for max in *min..=MAX_BUDGET {
            let (st, r) = post(addr, &body(prompt, max, rf));
            assert_eq!(st, 200, "{label} max_tokens {max}: {r}");
            let text = r["choices"][0]["message"]["content"].as_str().unwrap_or_default();
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{label} max_tokens {max}: {e}: {text}"));
            assert!(valid(&v), "{label} max_tokens {max}: wrong shape: {text}");
            let completion = r["usage"]["completion_tokens"].as_u64().unwrap_or(u64::MAX);
            assert!(completion as usize <= max, "{label} max_tokens {max}: {completion} tokens");
            let finish = r["choices"][0]["finish_reason"].as_str().unwrap_or_default();
            assert!(finish == "length" || finish == "stop", "{label}: {finish}");
            lengths += (finish == "length") as usize;
        }
        println!("{label}: max_tokens {min}..={MAX_BUDGET} all parse; {lengths} with finish_reason length");
        assert!(lengths > 0 || label == "json_object", "{label}: the budget never closed an answer");
        let (st, r) = post(addr, &body(prompt, min - 1, rf));
        assert_eq!(st, 400, "{label} max_tokens {}: {r}", min - 1);
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        // `{}` is one token: max_tokens 0 is refused by the request check before the JSON one.
        let want = if *min == 1 { "max_tokens must be in 1..".to_string() } else { format!("at least {min} tokens") };
        assert!(msg.contains(&want), "{label}: {msg}");
    }
}
