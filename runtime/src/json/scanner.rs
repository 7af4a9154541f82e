//! An incremental JSON scanner that follows a constrained answer byte by byte and says what the
//! shortest text finishing it is.
//!
//! It keeps a stack of open values (objects with the schema keys written so far, arrays with
//! their item counts, a string with its escape / UTF-8 state and length, a number, a literal) and
//! reads the bytes of every generated token. [`Scanner::completion`] drives a copy of the
//! scanner with the cheapest continuation at every point: finish an escape or a UTF-8 sequence,
//! pad a string to its `minLength` and close it, finish a number (`-` → `-0`), the rest of a
//! literal or schema key, the minimal values of the required keys still missing, the missing
//! array items, and every closing bracket. The grammar ([`super::grammar`]) decides what is
//! allowed, so the scanner is lenient; when the text leaves the shape it knows (e.g. an `anyOf`
//! of two object schemas taking the second branch) it stops tracking ([`Scanner::is_tracking`])
//! instead of guessing.
use super::shape::{Node, Shape};

/// Where an object is between its members. The index is the property just written (schema
/// objects; 0 for free objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    NeedKey,
    AfterKey(usize),
    AfterColon(usize),
    AfterValue(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArrPhase {
    Open,
    NeedItem,
    AfterItem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Frame {
    /// A schema object; `last` = the last property whose key was written.
    Obj { node: usize, last: Option<usize>, phase: Phase },
    /// A free-form object whose values are `Any(depth - 1)`.
    Free { depth: usize, phase: Phase },
    Arr { item: usize, min: usize, count: usize, phase: ArrPhase },
    /// Inside a string: characters so far, escape state (1 = after `\`, 2..=5 = `\u` with
    /// `esc - 2` hex digits), the lead byte of an unfinished UTF-8 sequence and how many
    /// continuation bytes it still needs; `key` = a free object's key.
    Str { min: usize, chars: usize, esc: u8, lead: u8, left: u8, key: bool },
    Num { last: u8 },
    Lit { alts: Vec<String>, typed: Vec<u8> },
    /// A schema object's key being written (`typed` includes the opening quote).
    Key { node: usize, last: Option<usize>, typed: Vec<u8> },
}

/// Follows one JSON value of a [`Shape`].
#[derive(Clone, Debug, Default)]
pub struct Scanner {
    stack: Vec<Frame>,
    started: bool,
    done: bool,
    lost: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn utf8_len(lead: u8) -> u8 {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// The properties a schema object may write next: after `last`, up to the first required one.
fn candidates(props: &[(String, usize, bool)], last: Option<usize>) -> std::ops::Range<usize> {
    let start = last.map_or(0, |l| l + 1);
    let end = (start..props.len()).find(|&j| props[j].2).map_or(props.len(), |r| r + 1);
    start..end.max(start)
}

/// Bytes of the members still required after property `j` (exclusive): `,"k":v` each.
fn required_after(sh: &Shape, props: &[(String, usize, bool)], from: usize) -> usize {
    props.iter().skip(from).filter(|p| p.2).map(|(k, v, _)| 2 + k.len() + sh.minimal(*v).len()).sum()
}

/// The node among `node`'s alternatives that a value starting with byte `b` belongs to.
/// Generic types are preferred over literals: a literal's text is also a valid generic value.
fn resolve(sh: &Shape, node: usize, b: u8) -> Option<usize> {
    let ok = match &sh.nodes[node] {
        Node::Alt(alts) => {
            let generic = alts.iter().filter(|&&a| !matches!(sh.nodes[a], Node::Literal(_)));
            let literal = alts.iter().filter(|&&a| matches!(sh.nodes[a], Node::Literal(_)));
            return generic.chain(literal).find_map(|&a| resolve(sh, a, b));
        }
        Node::Any(d) => b == b'"' || b == b'-' || b.is_ascii_digit() || matches!(b, b't' | b'f' | b'n') || (*d > 0 && matches!(b, b'{' | b'[')),
        Node::FreeObject(_) | Node::Object(_) => b == b'{',
        Node::String { .. } => b == b'"',
        Node::Number => b == b'-' || b.is_ascii_digit(),
        Node::Literal(alts) => alts.iter().any(|a| a.as_bytes().first() == Some(&b)),
        Node::Array { .. } => b == b'[',
    };
    ok.then_some(node)
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The root value is complete (only the end of generation may follow).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// False once the text left the shape the scanner knows; then it has no completion.
    pub fn is_tracking(&self) -> bool {
        !self.lost
    }

    /// Read the bytes of one token.
    pub fn push(&mut self, sh: &Shape, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(sh, b);
        }
    }

    /// A value of `node` starts with byte `b` (consumed).
    fn start_value(&mut self, sh: &Shape, node: usize, b: u8) -> bool {
        let Some(n) = resolve(sh, node, b) else { return false };
        let str_frame = |min| Frame::Str { min, chars: 0, esc: 0, lead: 0, left: 0, key: false };
        let f = match &sh.nodes[n] {
            Node::Any(d) => match b {
                b'{' => Frame::Free { depth: *d, phase: Phase::Open },
                b'[' => Frame::Arr { item: sh.any(d.saturating_sub(1)), min: 0, count: 0, phase: ArrPhase::Open },
                b'"' => str_frame(0),
                b't' | b'f' | b'n' => Frame::Lit { alts: vec!["true".into(), "false".into(), "null".into()], typed: vec![b] },
                _ => Frame::Num { last: b },
            },
            Node::FreeObject(d) => Frame::Free { depth: *d, phase: Phase::Open },
            Node::String { min } => str_frame(*min),
            Node::Number => Frame::Num { last: b },
            Node::Literal(alts) => Frame::Lit { alts: alts.clone(), typed: vec![b] },
            Node::Array { item, min } => Frame::Arr { item: *item, min: *min, count: 0, phase: ArrPhase::Open },
            Node::Object(_) => Frame::Obj { node: n, last: None, phase: Phase::Open },
            Node::Alt(_) => return false,
        };
        self.stack.push(f);
        true
    }

    /// The top value just ended (its frame is popped).
    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.done = true;
        }
    }

    fn push_byte(&mut self, sh: &Shape, b: u8) {
        if self.lost {
            return;
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                if self.done || self.started {
                    self.lost = true;
                } else if !is_ws(b) {
                    self.started = true;
                    self.lost = !self.start_value(sh, sh.root, b);
                }
                return;
            };
            match top {
                Frame::Str { chars, esc, lead, left, key, .. } => {
                    if *esc == 1 {
                        *esc = if b == b'u' { 2 } else { 0 };
                    } else if *esc >= 2 {
                        *esc = if *esc == 5 { 0 } else { *esc + 1 };
                    } else if *left > 0 {
                        *left -= 1;
                    } else if b == b'"' {
                        let key = *key;
                        self.stack.pop();
                        match self.stack.last_mut() {
                            Some(Frame::Free { phase, .. }) if key => *phase = Phase::AfterKey(0),
                            None => self.done = true,
                            _ => {}
                        }
                    } else {
                        *chars += 1;
                        if b == b'\\' {
                            *esc = 1;
                        } else if b >= 0xC0 {
                            *lead = b;
                            *left = utf8_len(b) - 1;
                        }
                    }
                    return;
                }
                Frame::Num { last } => {
                    if b.is_ascii_digit() || b"+-.eE".contains(&b) {
                        *last = b;
                        return;
                    }
                    self.pop();
                    continue; // the byte belongs to the parent
                }
                Frame::Lit { alts, typed } => {
                    typed.push(b);
                    if alts.iter().any(|a| a.as_bytes().starts_with(typed)) {
                        return;
                    }
                    typed.pop();
                    if alts.iter().any(|a| a.as_bytes() == typed.as_slice()) {
                        self.pop();
                        continue;
                    }
                    self.lost = true;
                    return;
                }
                Frame::Key { node, last, typed } => {
                    typed.push(b);
                    let Node::Object(props) = &sh.nodes[*node] else {
                        self.lost = true;
                        return;
                    };
                    let range = candidates(props, *last);
                    if let Some(j) = range.clone().find(|&j| props[j].0.as_bytes() == typed.as_slice()) {
                        self.stack.pop();
                        if let Some(Frame::Obj { last, phase, .. }) = self.stack.last_mut() {
                            *last = Some(j);
                            *phase = Phase::AfterKey(j);
                        }
                    } else if !range.clone().any(|j| props[j].0.as_bytes().starts_with(typed)) {
                        self.lost = true;
                    }
                    return;
                }
                Frame::Obj { node, last, phase } => {
                    if is_ws(b) {
                        return;
                    }
                    let Node::Object(props) = &sh.nodes[*node] else {
                        self.lost = true;
                        return;
                    };
                    match (*phase, b) {
                        (Phase::Open, b'}') | (Phase::AfterValue(_), b'}') => self.pop(),
                        (Phase::Open | Phase::NeedKey, b'"') => {
                            let f = Frame::Key { node: *node, last: *last, typed: Vec::new() };
                            self.stack.push(f);
                            continue; // the Key frame reads the quote
                        }
                        (Phase::AfterKey(j), b':') => *phase = Phase::AfterColon(j),
                        (Phase::AfterColon(j), _) => {
                            *phase = Phase::AfterValue(j);
                            let v = props[j].1;
                            self.lost = !self.start_value(sh, v, b);
                        }
                        (Phase::AfterValue(_), b',') => *phase = Phase::NeedKey,
                        _ => self.lost = true,
                    }
                    return;
                }
                Frame::Free { depth, phase } => {
                    if is_ws(b) {
                        return;
                    }
                    match (*phase, b) {
                        (Phase::Open, b'}') | (Phase::AfterValue(_), b'}') => self.pop(),
                        (Phase::Open | Phase::NeedKey, b'"') => {
                            self.stack.push(Frame::Str { min: 0, chars: 0, esc: 0, lead: 0, left: 0, key: true })
                        }
                        (Phase::AfterKey(_), b':') => *phase = Phase::AfterColon(0),
                        (Phase::AfterColon(_), _) => {
                            *phase = Phase::AfterValue(0);
                            let v = sh.any(depth.saturating_sub(1));
                            self.lost = !self.start_value(sh, v, b);
                        }
                        (Phase::AfterValue(_), b',') => *phase = Phase::NeedKey,
                        _ => self.lost = true,
                    }
                    return;
                }
                Frame::Arr { item, count, phase, .. } => {
                    if is_ws(b) {
                        return;
                    }
                    match (*phase, b) {
                        (ArrPhase::Open, b']') | (ArrPhase::AfterItem, b']') => self.pop(),
                        (ArrPhase::Open | ArrPhase::NeedItem, _) => {
                            *phase = ArrPhase::AfterItem;
                            *count += 1;
                            let it = *item;
                            self.lost = !self.start_value(sh, it, b);
                        }
                        (ArrPhase::AfterItem, b',') => *phase = ArrPhase::NeedItem,
                        _ => self.lost = true,
                    }
                    return;
                }
            }
        }
    }

    /// The schema key to finish or start: among the properties allowed next whose key starts
    /// with `typed`, the one with the cheapest completion (its rest, its minimal value and the
    /// required members after it).
    fn choose_key(sh: &Shape, node: usize, last: Option<usize>, typed: &[u8]) -> Option<usize> {
        let Node::Object(props) = &sh.nodes[node] else { return None };
        candidates(props, last)
            .filter(|&j| props[j].0.as_bytes().starts_with(typed))
            .min_by_key(|&j| props[j].0.len() + 1 + sh.minimal(props[j].1).len() + required_after(sh, props, j + 1))
    }

    /// The shortest text that completes the value from here (`None` when not tracking). Empty
    /// once the value is complete.
    pub fn completion(&self, sh: &Shape) -> Option<Vec<u8>> {
        let mut s = self.clone();
        let mut out = Vec::new();
        // Every step writes at least one byte or closes a frame; the bound only guards bugs.
        for _ in 0..1_000_000 {
            if s.lost {
                return None;
            }
            if s.done {
                return Some(out);
            }
            let step: Vec<u8> = match s.stack.last() {
                None => sh.minimal(sh.root).into_bytes(),
                Some(Frame::Str { min, chars, esc, lead, left, .. }) => {
                    if *esc == 1 {
                        b"n".to_vec()
                    } else if *esc >= 2 {
                        b"0".to_vec()
                    } else if *left > 0 {
                        // The smallest continuation byte that keeps the sequence valid UTF-8.
                        let first = *left == utf8_len(*lead) - 1;
                        vec![match (*lead, first) {
                            (0xE0, true) => 0xA0,
                            (0xF0, true) => 0x90,
                            _ => 0x80,
                        }]
                    } else if chars < min {
                        b"x".to_vec()
                    } else {
                        b"\"".to_vec()
                    }
                }
                Some(Frame::Num { last }) => {
                    if b"+-.eE".contains(last) {
                        b"0".to_vec()
                    } else {
                        s.pop();
                        continue;
                    }
                }
                Some(Frame::Lit { alts, typed }) => {
                    if alts.iter().any(|a| a.as_bytes() == typed.as_slice()) {
                        s.pop();
                        continue;
                    }
                    let best = alts.iter().filter(|a| a.as_bytes().starts_with(typed)).min_by_key(|a| a.len())?;
                    best.as_bytes()[typed.len()..].to_vec()
                }
                Some(Frame::Key { node, last, typed }) => {
                    let j = Self::choose_key(sh, *node, *last, typed)?;
                    let Node::Object(props) = &sh.nodes[*node] else { return None };
                    props[j].0.as_bytes()[typed.len()..].to_vec()
                }
                Some(Frame::Obj { node, phase, .. }) => {
                    let Node::Object(props) = &sh.nodes[*node] else { return None };
                    match *phase {
                        Phase::Open if !props.iter().any(|p| p.2) => b"}".to_vec(),
                        Phase::Open | Phase::NeedKey => b"\"".to_vec(),
                        Phase::AfterKey(_) => b":".to_vec(),
                        Phase::AfterColon(j) => sh.minimal(props[j].1).into_bytes(),
                        Phase::AfterValue(j) if props[j + 1..].iter().any(|p| p.2) => b",".to_vec(),
                        Phase::AfterValue(_) => b"}".to_vec(),
                    }
                }
                Some(Frame::Free { depth, phase }) => match *phase {
                    Phase::Open | Phase::AfterValue(_) => b"}".to_vec(),
                    Phase::NeedKey => b"\"".to_vec(),
                    Phase::AfterKey(_) => b":".to_vec(),
                    Phase::AfterColon(_) => sh.minimal(sh.any(depth.saturating_sub(1))).into_bytes(),
                },
                Some(Frame::Arr { item, min, count, phase }) => match *phase {
                    ArrPhase::Open | ArrPhase::AfterItem if count >= min => b"]".to_vec(),
                    ArrPhase::AfterItem => b",".to_vec(),
                    ArrPhase::Open | ArrPhase::NeedItem => sh.minimal(*item).into_bytes(),
                },
            };
            s.push(sh, &step);
            out.extend_from_slice(&step);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::gbnf::Limits;
    use crate::json::ordered::OValue;

    fn schema(s: &str) -> Shape {
        Shape::from_schema(&OValue::parse(s).unwrap(), &Limits::default())
    }

    /// Completion after feeding `prefix` (as text), and a check that prefix + completion parses.
    fn complete(sh: &Shape, prefix: &[u8]) -> String {
        let mut sc = Scanner::new();
        sc.push(sh, prefix);
        let c = sc.completion(sh).unwrap_or_else(|| panic!("lost after {:?}", String::from_utf8_lossy(prefix)));
        let mut full = prefix.to_vec();
        full.extend_from_slice(&c);
        let text = String::from_utf8(full).expect("completion keeps UTF-8 valid");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let mut again = Scanner::new();
        again.push(sh, text.as_bytes());
        assert!(again.is_done() || again.completion(sh).is_some_and(|c| c.is_empty()), "not complete: {text}");
        String::from_utf8_lossy(&c).into_owned()
    }

    const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#;

    #[test]
    fn closes_a_schema_object_at_every_prefix() {
        let sh = schema(PERSON);
        let answer = r#"{ "name": "Jo\"\u00e9 ü", "age": -12 }"#.as_bytes();
        for n in 0..=answer.len() {
            complete(&sh, &answer[..n]);
        }
        assert_eq!(complete(&sh, b""), r#"{"name":"","age":0}"#);
        assert_eq!(complete(&sh, br#"{"name": "Jo"#), r#"","age":0}"#);
        assert_eq!(complete(&sh, br#"{"na"#), r#"me":"","age":0}"#);
        assert_eq!(complete(&sh, br#"{"name":"a\u00"#), r#"00","age":0}"#);
        assert_eq!(complete(&sh, br#"{"name":"a\"#), r#"n","age":0}"#);
        assert_eq!(complete(&sh, br#"{"name":"a","age":-"#), "0}");
        assert_eq!(complete(&sh, br#"{"name":"a","age":1"#), "}");
    }

    #[test]
    fn split_utf8_is_finished_before_the_quote() {
        let sh = schema(PERSON);
        // "é" is C3 A9; "€" is E2 82 AC; "𝄞" is F0 9D 84 9E: cut after the lead byte.
        for lead in [0xC3u8, 0xE2, 0xE0, 0xF0, 0xED] {
            let mut p = br#"{"name":"a"#.to_vec();
            p.push(lead);
            complete(&sh, &p);
        }
    }

    #[test]
    fn required_keys_after_optional_ones_and_min_items() {
        let sh = schema(
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"array","items":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"string","minLength":2}},"required":["x","y"]},"minItems":2},"c":{"enum":["red","green"]},"d":{"type":["null","boolean"]}},"required":["b","c"]}"#,
        );
        assert_eq!(complete(&sh, b""), r#"{"b":[{"x":0,"y":"xx"},{"x":0,"y":"xx"}],"c":"red"}"#);
        assert_eq!(complete(&sh, br#"{"a":"q","b":[{"x":1.5e"#), r#"0,"y":"xx"},{"x":0,"y":"xx"}],"c":"red"}"#);
        assert_eq!(complete(&sh, br#"{"b":[{"x":1,"y":"z"}, {"x":2,"y":"zz"}, "#), r#"{"x":0,"y":"xx"}],"c":"red"}"#);
        assert_eq!(complete(&sh, br#"{"b":[{"x":1,"y":"zz"},{"x":2,"y":"zz"}],"c":"gr"#), r#"een"}"#);
        assert_eq!(complete(&sh, br#"{"b":[{"x":1,"y":"zz"},{"x":2,"y":"zz"}],"c":"red","d":f"#), "alse}");
        assert_eq!(complete(&sh, br#"{"b":[{"x":1,"y":"zz"},{"x":2,"y":"zz"}],"c":"red","#), r#""d":null}"#);
    }

    #[test]
    fn free_objects_and_any_values() {
        let limits = Limits::default();
        let sh = Shape::any_object(&limits);
        assert_eq!(complete(&sh, b""), "{}");
        assert_eq!(complete(&sh, br#"{"k"#), r#"":0}"#);
        assert_eq!(complete(&sh, br#"{"k": [1, {"z": tr"#), "ue}]}");
        assert_eq!(complete(&sh, br#"{"k": [1, {"z": "ab"}, "#), "0]}");
        assert_eq!(complete(&sh, br#"{"k": nu"#), "ll}");
        assert_eq!(complete(&sh, br#"{"k": 3,"#), r#""":0}"#);
    }

    #[test]
    fn template_shapes_close_everywhere() {
        for t in [
            r#"{"items": [{"description": "", "price": 0}], "total": 0}"#,
            r#"{"title": "", "x_axis": {"label": ""}, "series": [{"name": "", "points": [{"x": "", "y": 0}]}]}"#,
            r#"{"person": {"name": "", "nationality": ""}, "document": {"number": "", "expiry": {"month": 0, "year": 0}}, "tag": null}"#,
        ] {
            let s = crate::json::template::template_schema(&OValue::parse(t).unwrap()).unwrap();
            let sh = Shape::from_schema(&s, &Limits::default());
            let full = complete(&sh, b"");
            for n in 0..=full.len() {
                complete(&sh, &full.as_bytes()[..n]);
            }
            // A longer answer with whitespace, cut everywhere.
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            let pretty = serde_json::to_string_pretty(&fill(&v)).unwrap();
            let ordered = reorder(&pretty, t);
            for n in 0..=ordered.len() {
                complete(&sh, &ordered.as_bytes()[..n]);
            }
        }
    }

    /// The template with its values filled in (strings "v é", numbers 7, one array item).
    fn fill(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as V;
        match v {
            V::String(_) | V::Null => V::String("v é".into()),
            V::Number(_) => 7.into(),
            V::Array(a) => V::Array(a.iter().map(fill).collect()),
            V::Object(m) => V::Object(m.iter().map(|(k, v)| (k.clone(), fill(v))).collect()),
            b => b.clone(),
        }
    }

    /// serde_json sorts keys; put them back in template order by re-serialising through OValue.
    fn reorder(pretty: &str, template: &str) -> String {
        let filled = OValue::parse(pretty).unwrap();
        let t = OValue::parse(template).unwrap();
        fn go(t: &OValue, f: &OValue) -> OValue {
            match (t, f) {
                (OValue::Object(tm), OValue::Object(_)) => {
                    OValue::Object(tm.iter().map(|(k, tv)| (k.clone(), go(tv, f.get(k).unwrap()))).collect())
                }
                (OValue::Array(ta), OValue::Array(fa)) => OValue::Array(fa.iter().map(|x| go(&ta[0], x)).collect()),
                (_, f) => f.clone(),
            }
        }
        let v = go(&t, &filled).to_json();
        // Add whitespace the grammar allows: after every comma and colon.
        v.replace(",\"", ", \"").replace("\":", "\": ")
    }

    #[test]
    fn text_outside_the_shape_stops_tracking() {
        let sh = schema(PERSON);
        let mut sc = Scanner::new();
        sc.push(&sh, br#"{"nope"#);
        assert!(!sc.is_tracking());
        assert_eq!(sc.completion(&sh), None);
        let mut sc = Scanner::new();
        sc.push(&sh, br#"{"name":"a","age":1} x"#);
        assert!(!sc.is_tracking());
    }
}
