//! A JSON value that keeps object keys in document order.
//!
//! `serde_json::Value` sorts keys (the workspace does not enable `preserve_order`, and turning it
//! on would change every crate's maps). A schema's `properties` and a template's keys decide the
//! order the model must write them in, so they are read into this type instead.
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// JSON value with ordered object members.
#[derive(Clone, Debug, PartialEq)]
pub enum OValue {
    Null,
    Bool(bool),
    /// Kept as `serde_json::Number` so literals (enum/const) print exactly as written.
    Number(serde_json::Number),
    String(String),
    Array(Vec<OValue>),
    Object(Vec<(String, OValue)>),
}

impl OValue {
    /// Parse one JSON document.
    pub fn parse(text: &str) -> serde_json::Result<OValue> {
        serde_json::from_str(text)
    }

    /// Member `key` of an object (first occurrence), `None` otherwise.
    pub fn get(&self, key: &str) -> Option<&OValue> {
        match self {
            OValue::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            OValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            OValue::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// Compact JSON text of the value (members in order).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    fn write_json(&self, out: &mut String) {
        match self {
            OValue::Null => out.push_str("null"),
            OValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            OValue::Number(n) => out.push_str(&n.to_string()),
            OValue::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
            OValue::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            OValue::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

struct OVisitor;

impl<'de> Visitor<'de> for OVisitor {
    type Value = OValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<OValue, E> {
        Ok(OValue::Null)
    }
    fn visit_none<E>(self) -> Result<OValue, E> {
        Ok(OValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<OValue, E> {
        Ok(OValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<OValue, E> {
        Ok(OValue::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<OValue, E> {
        Ok(OValue::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<OValue, E> {
        serde_json::Number::from_f64(v).map(OValue::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<OValue, E> {
        Ok(OValue::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<OValue, E> {
        Ok(OValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OValue, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(OValue::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OValue, A::Error> {
        let mut m: Vec<(String, OValue)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, OValue>()? {
            // Duplicate keys: the last one wins, as in serde_json, but keeps the first position.
            if let Some(slot) = m.iter_mut().find(|(kk, _)| *kk == k) {
                slot.1 = v;
            } else {
                m.push((k, v));
            }
        }
        Ok(OValue::Object(m))
    }
}

impl<'de> Deserialize<'de> for OValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OValue, D::Error> {
        d.deserialize_any(OVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_round_trips() {
        let v = OValue::parse(r#"{"z": 1, "a": [true, null, "x\"y"], "m": {"b": 2.5, "a": -3}}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"z":1,"a":[true,null,"x\"y"],"m":{"b":2.5,"a":-3}}"#);
        assert_eq!(v.get("m").and_then(|m| m.get("a")), Some(&OValue::Number((-3).into())));
    }
}
