//! JSON mode on the converted tiny golden checkpoint: the five prompt-guide shapes (simple,
//! nested, list, table, chart) in template mode, a JSON Schema, and free `--json`. The tiny
//! model's values are noise; what is tested is that the grammar makes every output parse, have
//! exactly the template's keys, and end by itself (the grammar completes, not `max_new_tokens`).
mod common;
use common::*;

use h2ovl_runtime::json::template::{find_template, matches_template};
use h2ovl_runtime::json::{Constraint, Limits, OValue};
use h2ovl_runtime::llm::{GenerationConfig, History, KvType, Pipeline, PipelineOptions, StopReason};



fn pipeline() -> Pipeline {
    let o = PipelineOptions { threads: 2, kv_type: KvType::F32, flash_attn: Some(false), ..Default::default() };
    Pipeline::with_encoder(tiny_llm(), None, o).expect("loading the tiny LLM")
}

/// Small bounds keep the noise model's strings short (the test stays fast); the grammar is the
/// same as with the defaults otherwise.
fn limits() -> Limits {
    Limits { max_string_chars: 12, max_items: 3, max_members: 4, max_depth: 2, max_ws: 2 }
}

/// Prompts in the spirit of the model card's prompt guide.
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

fn generate(p: &mut Pipeline, prompt: &str, c: Constraint, temperature: f32) -> (String, StopReason) {
    let cfg = GenerationConfig { max_new_tokens: 1500, temperature, seed: 3, constraint: Some(c), ..Default::default() };
    let out = p.chat_stream(&[], prompt, &cfg, &History::new(), &mut |_| {}).expect("generation");
    (out.answer, out.stop)
}

#[test]
fn prompt_guide_templates_always_give_the_template_shape() {
    let mut p = pipeline();
    for (name, prompt) in PROMPTS {
        let (template, _) = find_template(prompt).expect("template in the prompt");
        let c = Constraint::from_prompt_template(prompt, &limits()).expect(name);
        for temperature in [0.0, 0.9] {
            let (text, stop) = generate(&mut p, prompt, c.clone(), temperature);
            assert_eq!(stop, StopReason::EndOfAnswer, "{name} (temp {temperature}): did not close: {text}");
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} (temp {temperature}): {e}: {text}"));
            assert!(matches_template(&template, &v), "{name} (temp {temperature}): wrong shape: {text}");
            // Keys come in template order.
            let first_key = match &template {
                OValue::Object(m) => m[0].0.clone(),
                _ => unreachable!(),
            };
            assert!(text.trim_start()[1..].trim_start().starts_with(&format!("\"{first_key}\"")), "{name}: {text}");
        }
    }
}

#[test]
fn schema_and_free_json_modes() {
    let mut p = pipeline();
    let schema = r#"{"type": "object", "properties": {
        "kind": {"enum": ["invoice", "receipt", 3]},
        "id": {"type": "integer"},
        "version": {"const": "v1"},
        "note": {"type": ["string", "null"], "maxLength": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
        "ok": {"type": "boolean"},
        "opt": {"type": "number"}},
        "required": ["kind", "id", "version", "note", "tags", "ok"]}"#;
    let c = Constraint::from_schema_text(schema, &limits()).unwrap();
    let (text, stop) = generate(&mut p, "Classify the document.", c, 0.0);
    assert_eq!(stop, StopReason::EndOfAnswer, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(["invoice", "receipt", "3"].contains(&v["kind"].to_string().trim_matches('"')), "{text}");
    assert!(v["id"].is_i64() || v["id"].is_u64(), "{text}");
    assert_eq!(v["version"], "v1");
    assert!(v["note"].is_null() || v["note"].as_str().is_some_and(|s| s.chars().count() <= 5), "{text}");
    let tags = v["tags"].as_array().expect("tags");
    assert!((1..=2).contains(&tags.len()) && tags.iter().all(|t| t.is_string()), "{text}");
    assert!(v["ok"].is_boolean());
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| ["kind", "id", "version", "note", "tags", "ok", "opt"].contains(&k.as_str())), "{text}");

    let (text, stop) = generate(&mut p, "Say hello in JSON.", Constraint::any_object(&limits()), 0.7);
    assert_eq!(stop, StopReason::EndOfAnswer, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v.is_object(), "{text}");
}

#[test]
fn invalid_schemas_and_missing_templates_are_clear_errors() {
    let e = Constraint::from_schema_text("{\"type\": ", &Limits::default()).unwrap_err();
    assert!(format!("{e:#}").contains("not valid JSON"), "{e:#}");
    let e = Constraint::from_schema_text(r#"{"type":"object","properties":{"a":{"type":"array","items":{"pattern":"x"}}}}"#, &Limits::default())
        .unwrap_err();
    assert!(format!("{e:#}").contains("#/properties/a/items") && format!("{e:#}").contains("pattern"), "{e:#}");
    let e = Constraint::from_prompt_template("What is in the image?", &Limits::default()).unwrap_err();
    assert!(format!("{e:#}").contains("no JSON template"), "{e:#}");
}

#[test]
fn greedy_shortlist_picks_what_a_full_mask_picks() {
    use h2ovl_runtime::llm::GrammarMask;
    use h2ovl_runtime::llm::ffi::Model;
    use h2ovl_runtime::llm::sampling::Sampler;
    let model = Model::load(tiny_llm(), true).expect("vocab");
    let c = Constraint::from_prompt_template(PROMPTS[2].1, &limits()).unwrap();
    let mut g = GrammarMask::new(&model, &c).unwrap();
    let mut full = GrammarMask::new(&model, &c).unwrap();
    let n = model.n_vocab();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut recent: Vec<i32> = vec![1, 28705, 29493, 345, 9169];
    let cfg = GenerationConfig { repeat_penalty: 1.5, ..Default::default() };
    let (mut t_fast, mut t_full, mut steps) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0u32);
    for step in 0..120 {
        let mut logits: Vec<f32> = (0..n).map(|_| rnd() * 10.0).collect();
        // Make penalised tokens attractive now and then, so the penalty path matters.
        for &t in &recent {
            if rnd() < 0.3 {
                logits[t as usize] = 12.0;
            }
        }
        let mut l2 = logits.clone();
        let t = std::time::Instant::now();
        let fast = g.sample(&mut Sampler::new(&cfg), &mut l2, &recent, true).expect("fast");
        t_fast += t.elapsed();
        let mut masked = logits.clone();
        let t = std::time::Instant::now();
        full.mask(&mut masked).expect("mask");
        t_full += t.elapsed();
        steps += 1;
        let want = Sampler::new(&cfg).sample(&masked, &recent);
        assert_eq!(fast, want, "step {step}");
        if g.is_eog(fast) {
            break;
        }
        g.accept(fast).unwrap();
        full.accept(fast).unwrap();
        recent.push(fast);
    }
    println!("grammar step over {steps} steps: greedy shortlist {:?}/step, full mask {:?}/step", t_fast / steps, t_full / steps);
}
