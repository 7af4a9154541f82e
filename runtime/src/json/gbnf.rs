//! JSON Schema → GBNF (llama.cpp's grammar format).
//!
//! Covers the subset document extraction needs: `type` (object, array, string, number, integer,
//! boolean, null, or a list of them), `properties`/`required`, `items`/`minItems`/`maxItems`,
//! `minLength`/`maxLength`, `enum`, `const`, `anyOf`/`oneOf`. Objects take their properties in
//! schema order and no others (`additionalProperties` is false unless the schema says
//! otherwise, which is refused): the output is then fully determined by the schema's shape.
//! Keywords that would need a constraint we cannot express (`$ref`, `pattern`, …) are refused
//! with an error naming the keyword and where it sits; annotations (`title`, `description`,
//! `format`, `default`, bounds on numbers) are accepted and not enforced.
//!
//! Every string, number and container is bounded ([`Limits`]) so a grammar-following model
//! cannot run forever inside a value: the grammar then always reaches its end, where only an
//! end-of-generation token is allowed.
use std::collections::HashMap;
use std::fmt::Write as _;

use thiserror::Error;

use super::ordered::OValue;

/// Bounds that keep every value finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest string (characters) unless the schema's `maxLength` says otherwise.
    pub max_string_chars: usize,
    /// Most array items unless the schema's `maxItems` says otherwise.
    pub max_items: usize,
    /// Most members of a free-form object (`{"type": "object"}` without properties, `--json`).
    pub max_members: usize,
    /// Nesting depth of free-form values.
    pub max_depth: usize,
    /// Whitespace characters allowed between tokens.
    pub max_ws: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_string_chars: 256, max_items: 64, max_members: 32, max_depth: 4, max_ws: 20 }
    }
}

/// A schema that cannot be turned into a grammar; the message names the offending place.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("JSON schema at {path}: {msg}")]
pub struct SchemaError {
    /// JSON-pointer-like location, e.g. `#/properties/items/items`.
    pub path: String,
    pub msg: String,
}

/// Keywords we cannot honour; refusing them beats silently producing non-conforming output.
const UNSUPPORTED: &[&str] =
    &["$ref", "allOf", "not", "if", "then", "else", "pattern", "patternProperties", "dependentRequired", "dependentSchemas", "prefixItems", "contains", "uniqueItems", "$defs", "definitions"];

/// Grammar builder: named rules, deduplicated by body.
struct Builder {
    limits: Limits,
    rules: Vec<(String, String)>,
    by_body: HashMap<String, String>,
    counter: usize,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        let mut b = Builder { limits, rules: Vec::new(), by_body: HashMap::new(), counter: 0 };
        b.named("ws", &format!("[ \\t\\n]{{0,{}}}", limits.max_ws));
        b.named("char", r#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#);
        b.named("integer", r#""-"? ("0" | [1-9] [0-9]{0,15})"#);
        // At most 16 integer digits and a two-digit exponent: always a finite f64 (< 1e116).
        b.named("number", r#""-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?"#);
        b.named("boolean", r#""true" | "false""#);
        b.named("null", r#""null""#);
        let s = format!(r#""\"" char{{0,{}}} "\"""#, limits.max_string_chars);
        b.named("string", &s);
        b
    }

    fn named(&mut self, name: &str, body: &str) -> String {
        self.rules.push((name.to_string(), body.to_string()));
        self.by_body.insert(body.to_string(), name.to_string());
        name.to_string()
    }

    /// A rule for `body` (reusing an identical one), named after `hint`.
    fn rule(&mut self, hint: &str, body: String) -> String {
        if let Some(n) = self.by_body.get(&body) {
            return n.clone();
        }
        self.counter += 1;
        let name = format!("{hint}-{}", self.counter);
        self.named(&name, &body)
    }

    fn finish(self, root: &str) -> String {
        let mut out = format!("root ::= {root}\n");
        for (n, b) in &self.rules {
            let _ = writeln!(out, "{n} ::= {b}");
        }
        out
    }

    /// `"[" ws item ("," ws item){..} "]"` with item counts in [min, max].
    fn array(&mut self, item: &str, min: usize, max: usize) -> String {
        let it = self.rule("item", format!("{item} ws"));
        let body = if max == 0 {
            r#""[" ws "]""#.to_string()
        } else if min == 0 {
            format!(r#""[" ws ({it} ("," ws {it}){{0,{}}})? "]""#, max - 1)
        } else {
            format!(r#""[" ws {it} ("," ws {it}){{{},{}}} "]""#, min - 1, max - 1)
        };
        self.rule("array", body)
    }

    /// Any JSON value nested at most `depth` more levels.
    fn free_value(&mut self, depth: usize) -> String {
        let scalars = "string | number | boolean | null".to_string();
        if depth == 0 {
            return self.rule("scalar", scalars);
        }
        let obj = self.free_object(depth);
        let inner = self.free_value(depth - 1);
        let arr = self.array(&inner, 0, self.limits.max_items);
        self.rule("value", format!("{obj} | {arr} | {scalars}"))
    }

    /// A free-form object whose member values nest at most `depth - 1` more levels.
    fn free_object(&mut self, depth: usize) -> String {
        let v = self.free_value(depth.saturating_sub(1));
        let kv = self.rule("member", format!(r#"string ws ":" ws {v} ws"#));
        let max = self.limits.max_members;
        self.rule("object", format!(r#""{{" ws ({kv} ("," ws {kv}){{0,{}}})? "}}""#, max.saturating_sub(1)))
    }
}

/// GBNF string literal for `s` (UTF-8 kept as is, quotes/backslashes/control bytes escaped).
pub fn literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// GBNF for "any JSON object" (`--json`, `response_format: json_object`).
pub fn any_object_grammar(limits: &Limits) -> String {
    let mut b = Builder::new(*limits);
    let root = b.free_object(limits.max_depth);
    b.finish(&root)
}

/// GBNF for the JSON Schema `schema`.
pub fn schema_grammar(schema: &OValue, limits: &Limits) -> Result<String, SchemaError> {
    let mut b = Builder::new(*limits);
    let root = convert(&mut b, schema, "#")?;
    Ok(b.finish(&root))
}

fn err(path: &str, msg: impl Into<String>) -> SchemaError {
    SchemaError { path: path.to_string(), msg: msg.into() }
}

fn usize_kw(s: &OValue, key: &str, path: &str) -> Result<Option<usize>, SchemaError> {
    match s.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| err(path, format!("`{key}` must be a non-negative integer"))),
    }
}

/// The grammar expression (a rule name or alternation) for schema `s` at `path`.
fn convert(b: &mut Builder, s: &OValue, path: &str) -> Result<String, SchemaError> {
    let members = match s {
        OValue::Bool(true) => return Ok(b.free_value(b.limits.max_depth)),
        OValue::Object(m) => m,
        _ => return Err(err(path, "a schema must be an object (or `true`)")),
    };
    if let Some((k, _)) = members.iter().find(|(k, _)| UNSUPPORTED.contains(&k.as_str())) {
        return Err(err(path, format!("`{k}` is not supported (supported: type, properties, required, items, enum, const, anyOf, oneOf, min/maxLength, min/maxItems)")));
    }
    if let Some(c) = s.get("const") {
        return Ok(b.rule("const", literal(&c.to_json())));
    }
    if let Some(e) = s.get("enum") {
        let OValue::Array(vals) = e else { return Err(err(path, "`enum` must be an array")) };
        if vals.is_empty() {
            return Err(err(path, "`enum` must not be empty"));
        }
        let alts: Vec<String> = vals.iter().map(|v| literal(&v.to_json())).collect();
        return Ok(b.rule("enum", alts.join(" | ")));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(a) = s.get(key) {
            let OValue::Array(subs) = a else { return Err(err(path, format!("`{key}` must be an array"))) };
            if subs.is_empty() {
                return Err(err(path, format!("`{key}` must not be empty")));
            }
            let mut alts = Vec::new();
            for (i, sub) in subs.iter().enumerate() {
                alts.push(convert(b, sub, &format!("{path}/{key}/{i}"))?);
            }
            return Ok(b.rule("alt", alts.join(" | ")));
        }
    }
    let types: Vec<&str> = match s.get("type") {
        None if s.get("properties").is_some() => vec!["object"],
        None if s.get("items").is_some() => vec!["array"],
        None => return Ok(b.free_value(b.limits.max_depth)),
        Some(OValue::String(t)) => vec![t.as_str()],
        Some(OValue::Array(ts)) if !ts.is_empty() => {
            ts.iter().map(|t| t.as_str().ok_or_else(|| err(path, "`type` list entries must be strings"))).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(err(path, "`type` must be a string or a non-empty list of strings")),
    };
    let mut alts = Vec::new();
    for t in types {
        alts.push(match t {
            "string" => string_rule(b, s, path)?,
            "number" => "number".to_string(),
            "integer" => "integer".to_string(),
            "boolean" => "boolean".to_string(),
            "null" => "null".to_string(),
            "array" => array_rule(b, s, path)?,
            "object" => object_rule(b, s, path)?,
            other => return Err(err(path, format!("unknown type {other:?}"))),
        });
    }
    Ok(if alts.len() == 1 { alts.pop().unwrap_or_default() } else { b.rule("types", alts.join(" | ")) })
}

fn string_rule(b: &mut Builder, s: &OValue, path: &str) -> Result<String, SchemaError> {
    let min = usize_kw(s, "minLength", path)?;
    let max = usize_kw(s, "maxLength", path)?;
    if min.is_none() && max.is_none() {
        return Ok("string".to_string());
    }
    let min = min.unwrap_or(0);
    let max = max.unwrap_or(b.limits.max_string_chars.max(min));
    if min > max {
        return Err(err(path, format!("minLength {min} > maxLength {max}")));
    }
    Ok(b.rule("string", format!(r#""\"" char{{{min},{max}}} "\"""#)))
}

fn array_rule(b: &mut Builder, s: &OValue, path: &str) -> Result<String, SchemaError> {
    let item = match s.get("items") {
        None => b.free_value(b.limits.max_depth.saturating_sub(1)),
        Some(i) => convert(b, i, &format!("{path}/items"))?,
    };
    let min = usize_kw(s, "minItems", path)?.unwrap_or(0);
    let max = usize_kw(s, "maxItems", path)?.unwrap_or(b.limits.max_items.max(min));
    if min > max {
        return Err(err(path, format!("minItems {min} > maxItems {max}")));
    }
    Ok(b.array(&item, min, max))
}

fn object_rule(b: &mut Builder, s: &OValue, path: &str) -> Result<String, SchemaError> {
    match s.get("additionalProperties") {
        None | Some(OValue::Bool(false)) => {}
        Some(_) if s.get("properties").is_none() => {}
        Some(_) => {
            return Err(err(path, "`additionalProperties` other than false is not supported next to `properties` (the output keys must be known)"))
        }
    }
    let props = match s.get("properties") {
        None => return Ok(b.free_object(b.limits.max_depth)),
        Some(OValue::Object(p)) => p,
        Some(_) => return Err(err(path, "`properties` must be an object")),
    };
    let required: Vec<&str> = match s.get("required") {
        None => Vec::new(),
        Some(OValue::Array(r)) => r.iter().map(|v| v.as_str().ok_or_else(|| err(path, "`required` entries must be strings"))).collect::<Result<_, _>>()?,
        Some(_) => return Err(err(path, "`required` must be an array of strings")),
    };
    if let Some(missing) = required.iter().find(|r| !props.iter().any(|(k, _)| k == *r)) {
        return Err(err(path, format!("required property {missing:?} is not in `properties`")));
    }
    let mut kvs = Vec::new();
    for (k, sub) in props {
        let v = convert(b, sub, &format!("{path}/properties/{k}"))?;
        let kv = b.rule("kv", format!(r#"{} ws ":" ws {v} ws"#, literal(&serde_json::Value::String(k.clone()).to_string())));
        kvs.push((kv, required.contains(&k.as_str())));
    }
    // Members in schema order; optional ones may be skipped, commas only between written ones.
    let mut memo: HashMap<(usize, bool), String> = HashMap::new();
    let seq = seq_rule(b, &kvs, 0, true, &mut memo);
    Ok(b.rule("object", format!(r#""{{" ws {seq} "}}""#)))
}

/// Members `i..` of an object; `first` = nothing written yet (no leading comma).
fn seq_rule(b: &mut Builder, kvs: &[(String, bool)], i: usize, first: bool, memo: &mut HashMap<(usize, bool), String>) -> String {
    if i == kvs.len() {
        return "\"\"".to_string();
    }
    if let Some(r) = memo.get(&(i, first)) {
        return r.clone();
    }
    let (kv, req) = &kvs[i];
    let this = if first { kv.clone() } else { format!(r#""," ws {kv}"#) };
    let after = seq_rule(b, kvs, i + 1, false, memo);
    let body = if *req {
        format!("{this} {after}")
    } else {
        let skip = seq_rule(b, kvs, i + 1, first, memo);
        format!("({this} {after}) | {skip}")
    };
    let r = b.rule("members", body);
    memo.insert((i, first), r.clone());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(schema: &str) -> Result<String, SchemaError> {
        schema_grammar(&OValue::parse(schema).unwrap(), &Limits::default())
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(literal("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\x01é""#);
    }

    #[test]
    fn object_members_follow_schema_order() {
        let s = g(r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#).unwrap();
        let name = s.find(r#""\"name\"""#).unwrap();
        let age = s.find(r#""\"age\"""#).unwrap();
        assert!(name < age, "{s}");
        assert!(s.starts_with("root ::= "));
    }

    #[test]
    fn bad_schemas_name_the_place() {
        let e = g(r##"{"type":"object","properties":{"a":{"$ref":"#/x"}}}"##).unwrap_err();
        assert_eq!(e.path, "#/properties/a");
        assert!(e.msg.contains("$ref"));
        assert!(g(r#"{"type":"strnig"}"#).unwrap_err().msg.contains("unknown type"));
        assert!(g(r#"{"type":"object","properties":{},"required":["x"]}"#).unwrap_err().msg.contains("\"x\""));
        assert!(g(r#"[1]"#).is_err());
        assert!(g(r#"{"type":"array","minItems":3,"maxItems":2}"#).is_err());
        assert!(g(r#"{"enum":[]}"#).is_err());
    }
}
