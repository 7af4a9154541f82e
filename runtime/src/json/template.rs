//! Template mode: the model card's prompt guide puts a JSON template in the prompt
//! (`{"name": "", "date_of_birth": "", "address": ""}`) and hopes the model follows it. We turn
//! the template into a JSON Schema (every key required, in template order; `""` → string,
//! a number → number, `true`/`false` → boolean, `null` → string or null, `[ {…} ]` → array of
//! that object) so the output always has exactly the template's keys.
use anyhow::{bail, Result};

use super::ordered::OValue;

/// The first JSON object or array embedded in `prompt` (the template), with its byte range.
pub fn find_template(prompt: &str) -> Option<(OValue, std::ops::Range<usize>)> {
    for (i, c) in prompt.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        let rest = &prompt[i..];
        let mut it = serde_json::Deserializer::from_str(rest).into_iter::<OValue>();
        if let Some(Ok(v)) = it.next() {
            if matches!(v, OValue::Object(ref m) if !m.is_empty()) || matches!(v, OValue::Array(ref a) if !a.is_empty()) {
                return Some((v, i..i + it.byte_offset()));
            }
        }
    }
    None
}

/// The JSON Schema (as an [`OValue`]) whose instances have the template's shape.
pub fn template_schema(t: &OValue) -> Result<OValue> {
    template_schema_at(t, "$")
}

fn obj(m: Vec<(&str, OValue)>) -> OValue {
    OValue::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn s(x: &str) -> OValue {
    OValue::String(x.to_string())
}

fn template_schema_at(t: &OValue, path: &str) -> Result<OValue> {
    Ok(match t {
        OValue::String(_) => obj(vec![("type", s("string"))]),
        OValue::Number(_) => obj(vec![("type", s("number"))]),
        OValue::Bool(_) => obj(vec![("type", s("boolean"))]),
        OValue::Null => obj(vec![("type", OValue::Array(vec![s("string"), s("null")]))]),
        OValue::Array(items) => {
            // The first element shows what every item looks like; `[]` = a list of strings.
            let item = match items.first() {
                Some(first) => template_schema_at(first, &format!("{path}[0]"))?,
                None => obj(vec![("type", s("string"))]),
            };
            obj(vec![("type", s("array")), ("items", item)])
        }
        OValue::Object(members) => {
            if members.is_empty() {
                bail!("JSON template at {path}: an empty object {{}} gives no keys to fill");
            }
            let mut props = Vec::new();
            for (k, v) in members {
                props.push((k.clone(), template_schema_at(v, &format!("{path}.{k}"))?));
            }
            let required = members.iter().map(|(k, _)| s(k)).collect();
            obj(vec![("type", s("object")), ("properties", OValue::Object(props)), ("required", OValue::Array(required))])
        }
    })
}

/// Whether `value` has exactly `template`'s shape: same keys in every object (order free),
/// strings where the template has strings, numbers for numbers, every array item shaped like
/// the template's first item.
pub fn matches_template(template: &OValue, value: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (template, value) {
        (OValue::String(_), V::String(_)) | (OValue::Number(_), V::Number(_)) | (OValue::Bool(_), V::Bool(_)) => true,
        (OValue::Null, V::String(_) | V::Null) => true,
        (OValue::Array(t), V::Array(vs)) => match t.first() {
            Some(first) => vs.iter().all(|v| matches_template(first, v)),
            None => vs.iter().all(|v| v.is_string()),
        },
        (OValue::Object(tm), V::Object(vm)) => {
            tm.len() == vm.len() && tm.iter().all(|(k, tv)| vm.get(k).is_some_and(|v| matches_template(tv, v)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_template_inside_a_prompt() {
        let p = r#"Extract as JSON {"name": "", "date_of_birth": "", "address": ""} please {not json"#;
        let (t, r) = find_template(p).unwrap();
        assert_eq!(&p[r], r#"{"name": "", "date_of_birth": "", "address": ""}"#);
        assert_eq!(t.to_json(), r#"{"name":"","date_of_birth":"","address":""}"#);
        assert!(find_template("no template {here} or [there").is_none());
    }

    #[test]
    fn schema_keeps_keys_required_and_nested() {
        let t = OValue::parse(r#"{"a": "", "b": 0, "c": [{"d": true}], "e": {"f": null}}"#).unwrap();
        let s = template_schema(&t).unwrap().to_json();
        assert_eq!(
            s,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"},"c":{"type":"array","items":{"type":"object","properties":{"d":{"type":"boolean"}},"required":["d"]}},"e":{"type":"object","properties":{"f":{"type":["string","null"]}},"required":["f"]}},"required":["a","b","c","e"]}"#
        );
        assert!(template_schema(&OValue::parse(r#"{"a": {}}"#).unwrap()).unwrap_err().to_string().contains("$.a"));
    }

    #[test]
    fn shape_check() {
        let t = OValue::parse(r#"{"a": "", "rows": [{"x": 0}]}"#).unwrap();
        assert!(matches_template(&t, &serde_json::json!({"rows": [{"x": 1.5}, {"x": -2}], "a": "q"})));
        assert!(!matches_template(&t, &serde_json::json!({"a": "q"})));
        assert!(!matches_template(&t, &serde_json::json!({"a": "q", "rows": [{"x": "1"}]})));
        assert!(!matches_template(&t, &serde_json::json!({"a": "q", "rows": [], "z": 1})));
    }
}
