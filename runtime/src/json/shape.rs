//! The structure a constrained answer must have, as a small tree the budget closer can walk.
//!
//! The GBNF text ([`super::gbnf`]) is what llama.cpp enforces, but it cannot answer "what is the
//! shortest text that finishes this value?". [`Shape`] mirrors the same schema semantics (same
//! keyword precedence: `const`, `enum`, `anyOf`/`oneOf`, then `type`; properties in schema
//! order; free values nested at most `max_depth` levels) so [`super::scanner`] can follow the
//! answer as it is written and [`super::budget`] can close it when the token budget runs out.
//! Schemas are validated by the GBNF conversion first; this walk only reads them.
use super::gbnf::Limits;
use super::ordered::OValue;

/// One node of the tree; children are indices into [`Shape::nodes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Any JSON value; containers only while `depth > 0` (free-form values, `--json`).
    Any(usize),
    /// An object with free keys whose values are `Any(depth - 1)`.
    FreeObject(usize),
    /// A string of at least `min` characters.
    String { min: usize },
    /// A number (the scanner does not distinguish integers: the grammar does).
    Number,
    /// One of these exact JSON texts (`enum`, `const`, `true`/`false`, `null`).
    Literal(Vec<String>),
    /// An array of at least `min` items.
    Array { item: usize, min: usize },
    /// Properties in schema order: (key as a JSON string literal, value node, required).
    Object(Vec<(String, usize, bool)>),
    /// Any of these (type lists, `anyOf`, `oneOf`).
    Alt(Vec<usize>),
}

/// An arena of [`Node`]s with its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub nodes: Vec<Node>,
    pub root: usize,
    /// `any[d]` = the node `Any(d)`, for every depth 0..=max_depth.
    any: Vec<usize>,
}

impl Shape {
    fn empty(limits: &Limits) -> Shape {
        let mut s = Shape { nodes: Vec::new(), root: 0, any: Vec::new() };
        for d in 0..=limits.max_depth {
            let id = s.push(Node::Any(d));
            s.any.push(id);
        }
        s
    }

    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// The node `Any(depth)` (depths past the limit are clamped).
    pub fn any(&self, depth: usize) -> usize {
        self.any[depth.min(self.any.len() - 1)]
    }

    /// `--json` / `json_object`: a free-form object.
    pub fn any_object(limits: &Limits) -> Shape {
        let mut s = Shape::empty(limits);
        s.root = s.push(Node::FreeObject(limits.max_depth));
        s
    }

    /// The shape of a JSON Schema's instances (the schema was accepted by the GBNF conversion).
    pub fn from_schema(schema: &OValue, limits: &Limits) -> Shape {
        let mut s = Shape::empty(limits);
        s.root = s.convert(schema, limits);
        s
    }

    fn convert(&mut self, s: &OValue, l: &Limits) -> usize {
        let OValue::Object(_) = s else { return self.any(l.max_depth) };
        if let Some(c) = s.get("const") {
            return self.push(Node::Literal(vec![c.to_json()]));
        }
        if let Some(OValue::Array(vals)) = s.get("enum") {
            return self.push(Node::Literal(vals.iter().map(OValue::to_json).collect()));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(OValue::Array(subs)) = s.get(key) {
                let alts = subs.iter().map(|sub| self.convert(sub, l)).collect();
                return self.push(Node::Alt(alts));
            }
        }
        let types: Vec<&str> = match s.get("type") {
            None if s.get("properties").is_some() => vec!["object"],
            None if s.get("items").is_some() => vec!["array"],
            Some(OValue::String(t)) => vec![t.as_str()],
            Some(OValue::Array(ts)) => ts.iter().filter_map(OValue::as_str).collect(),
            _ => return self.any(l.max_depth),
        };
        let mut alts = Vec::new();
        for t in types {
            let n = match t {
                "string" => {
                    let min = s.get("minLength").and_then(OValue::as_u64).unwrap_or(0) as usize;
                    self.push(Node::String { min })
                }
                "number" | "integer" => self.push(Node::Number),
                "boolean" => self.push(Node::Literal(vec!["true".into(), "false".into()])),
                "null" => self.push(Node::Literal(vec!["null".into()])),
                "array" => {
                    let item = match s.get("items") {
                        None => self.any(l.max_depth.saturating_sub(1)),
                        Some(i) => self.convert(i, l),
                    };
                    let min = s.get("minItems").and_then(OValue::as_u64).unwrap_or(0) as usize;
                    self.push(Node::Array { item, min })
                }
                _ => self.object(s, l),
            };
            alts.push(n);
        }
        if alts.len() == 1 {
            alts[0]
        } else {
            self.push(Node::Alt(alts))
        }
    }

    fn object(&mut self, s: &OValue, l: &Limits) -> usize {
        let Some(OValue::Object(props)) = s.get("properties") else {
            return self.push(Node::FreeObject(l.max_depth));
        };
        let required: Vec<&str> = match s.get("required") {
            Some(OValue::Array(r)) => r.iter().filter_map(OValue::as_str).collect(),
            _ => Vec::new(),
        };
        let mut members = Vec::new();
        for (k, sub) in props {
            let v = self.convert(sub, l);
            members.push((serde_json::Value::String(k.clone()).to_string(), v, required.contains(&k.as_str())));
        }
        self.push(Node::Object(members))
    }

    /// The shortest text of a valid value of `node` (ties: the first alternative). Strings are
    /// padded with `x` to their `minLength`; numbers are `0`.
    pub fn minimal(&self, node: usize) -> String {
        match &self.nodes[node] {
            Node::Any(_) | Node::Number => "0".into(),
            Node::FreeObject(_) => "{}".into(),
            Node::String { min } => format!("\"{}\"", "x".repeat(*min)),
            Node::Literal(alts) => shortest(alts.iter().cloned()),
            Node::Array { item, min } => {
                let it = self.minimal(*item);
                format!("[{}]", vec![it; *min].join(","))
            }
            Node::Object(props) => {
                let m: Vec<String> =
                    props.iter().filter(|p| p.2).map(|(k, v, _)| format!("{k}:{}", self.minimal(*v))).collect();
                format!("{{{}}}", m.join(","))
            }
            Node::Alt(alts) => shortest(alts.iter().map(|&a| self.minimal(a))),
        }
    }
}

fn shortest(it: impl Iterator<Item = String>) -> String {
    let mut best: Option<String> = None;
    for s in it {
        if best.as_ref().is_none_or(|b| s.len() < b.len()) {
            best = Some(s);
        }
    }
    best.unwrap_or_else(|| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(schema: &str) -> Shape {
        Shape::from_schema(&OValue::parse(schema).unwrap(), &Limits::default())
    }

    #[test]
    fn minimal_values_fill_required_keys_only() {
        let s = shape(r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"opt":{"type":"boolean"}},"required":["name","age"]}"#);
        assert_eq!(s.minimal(s.root), r#"{"name":"","age":0}"#);
        let s = shape(r#"{"type":"array","items":{"enum":["abc","d",12]},"minItems":2}"#);
        assert_eq!(s.minimal(s.root), "[12,12]");
        let s = shape(r#"{"type":"string","minLength":3}"#);
        assert_eq!(s.minimal(s.root), r#""xxx""#);
        let s = shape(r#"{"type":["string","null"],"minLength":3}"#);
        assert_eq!(s.minimal(s.root), "null");
        let s = shape(r#"{"anyOf":[{"type":"null"},{"const":{"a":1}}]}"#);
        assert_eq!(s.minimal(s.root), "null");
        let s = Shape::any_object(&Limits::default());
        assert_eq!(s.minimal(s.root), "{}");
    }

    #[test]
    fn keys_are_json_literals_in_schema_order() {
        let s = shape(r#"{"properties":{"b\"q":{"type":"string"},"a":{}},"required":["a"]}"#);
        let Node::Object(p) = &s.nodes[s.root] else { panic!("{:?}", s.nodes[s.root]) };
        assert_eq!(p[0].0, r#""b\"q""#);
        assert_eq!((p[1].0.as_str(), p[1].2), (r#""a""#, true));
        assert_eq!(s.nodes[p[1].1], Node::Any(Limits::default().max_depth));
    }
}
