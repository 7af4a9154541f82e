//! One JSON answer from many pages (`--pages-mode each`): each page (or group of pages) answers
//! the same template or schema, and the per-page objects are merged by a written rule, so the
//! merged value keeps the shape every page answer had:
//! - arrays are concatenated in page order (line items of a 3-page invoice);
//! - objects are merged key by key, keys in first-seen order (the template's order);
//! - scalars keep the first non-empty value (`null` and `""` are empty): the invoice number
//!   printed on page 1 wins over a different reading on page 3.
//!
//! A value of another kind than the one kept so far (an object where a string was) is dropped:
//! every page answered the same shape, so this only happens for `null`/empty placeholders.
use super::ordered::OValue;

/// `null`, `""`, `[]`, `{}`, or an object whose members are all empty: nothing was found.
pub fn is_empty(v: &OValue) -> bool {
    match v {
        OValue::Null => true,
        OValue::String(s) => s.trim().is_empty(),
        OValue::Array(a) => a.is_empty(),
        OValue::Object(m) => m.iter().all(|(_, v)| is_empty(v)),
        OValue::Bool(_) | OValue::Number(_) => false,
    }
}

/// `a` (earlier pages) merged with `b` (a later page) by the module's rule.
pub fn merge(a: OValue, b: OValue) -> OValue {
    match (a, b) {
        (OValue::Array(mut x), OValue::Array(y)) => {
            // Placeholder items (`{"name": ""}` where a page had no line item) are not kept.
            x.retain(|v| !is_empty(v));
            x.extend(y.into_iter().filter(|v| !is_empty(v)));
            OValue::Array(x)
        }
        (OValue::Object(mut x), OValue::Object(y)) => {
            for (k, v) in y {
                match x.iter_mut().find(|(xk, _)| *xk == k) {
                    Some((_, xv)) => *xv = merge(std::mem::replace(xv, OValue::Null), v),
                    None => x.push((k, v)),
                }
            }
            OValue::Object(x)
        }
        (a, b) if is_empty(&a) => b,
        (a, _) => a,
    }
}

/// Merges page answers in page order; returns the value and, per top-level key, the pages whose
/// value for it was not empty (provenance for `--output json`). Pages are given as their labels
/// (1-based page numbers, or the first page of a group).
pub fn merge_pages(pages: &[(usize, OValue)]) -> (OValue, Vec<(String, Vec<usize>)>) {
    let mut out: Option<OValue> = None;
    let mut prov: Vec<(String, Vec<usize>)> = Vec::new();
    for (page, v) in pages {
        if let OValue::Object(m) = v {
            for (k, mv) in m {
                let entry = match prov.iter().position(|(pk, _)| pk == k) {
                    Some(i) => &mut prov[i].1,
                    None => {
                        prov.push((k.clone(), Vec::new()));
                        &mut prov.last_mut().expect("just pushed").1
                    }
                };
                if !is_empty(mv) {
                    entry.push(*page);
                }
            }
        }
        out = Some(match out {
            None => v.clone(),
            Some(acc) => merge(acc, v.clone()),
        });
    }
    (out.unwrap_or(OValue::Null), prov)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> OValue {
        OValue::parse(s).unwrap()
    }

    #[test]
    fn arrays_concatenate_objects_merge_scalars_keep_the_first_non_empty() {
        let a = p(r#"{"invoice": "A-1", "date": "", "items": [{"name": "tea", "price": 2}], "total": null, "seller": {"name": "Shop", "vat": ""}}"#);
        let b = p(r#"{"invoice": "A-7", "date": "2024-05-01", "items": [{"name": "cake", "price": 3}], "total": 5, "seller": {"name": "Other", "vat": "DE1"}}"#);
        let m = merge(a, b);
        assert_eq!(
            m.to_json(),
            p(r#"{"invoice": "A-1", "date": "2024-05-01", "items": [{"name": "tea", "price": 2}, {"name": "cake", "price": 3}], "total": 5, "seller": {"name": "Shop", "vat": "DE1"}}"#).to_json()
        );
    }

    #[test]
    fn empty_pages_change_nothing_and_key_order_is_the_first_seen() {
        let full = p(r#"{"b": "x", "a": [1], "c": {"d": true}}"#);
        let empty = p(r#"{"b": "", "a": [], "c": {"d": null}}"#);
        assert!(is_empty(&empty) && !is_empty(&full));
        assert_eq!(merge(empty.clone(), full.clone()).to_json(), full.to_json());
        assert_eq!(merge(full.clone(), empty).to_json(), full.to_json());
        // A key first seen on a later page is appended after the known ones.
        let later = p(r#"{"z": 1, "b": "y"}"#);
        assert_eq!(merge(full, later).to_json(), p(r#"{"b": "x", "a": [1], "c": {"d": true}, "z": 1}"#).to_json());
    }

    #[test]
    fn arrays_of_objects_and_nested_objects() {
        let pages = [
            (1, p(r#"{"rows": [{"k": "a"}], "meta": {"title": "T", "notes": []}}"#)),
            (2, p(r#"{"rows": [], "meta": {"title": "", "notes": ["n2"]}}"#)),
            (3, p(r#"{"rows": [{"k": "b"}, {"k": "c"}], "meta": {"title": "U", "notes": ["n3"]}}"#)),
        ];
        let (v, prov) = merge_pages(&pages);
        assert_eq!(v.to_json(), p(r#"{"rows": [{"k": "a"}, {"k": "b"}, {"k": "c"}], "meta": {"title": "T", "notes": ["n2", "n3"]}}"#).to_json());
        assert_eq!(prov, vec![("rows".to_string(), vec![1, 3]), ("meta".to_string(), vec![1, 2, 3])]);
    }

    #[test]
    fn conflicting_kinds_keep_what_came_first() {
        assert_eq!(merge(p(r#""x""#), p(r#"{"a": 1}"#)).to_json(), r#""x""#);
        assert_eq!(merge(p("null"), p("[1]")).to_json(), "[1]");
        assert_eq!(merge(p("0"), p("5")).to_json(), "0", "0 is a value, not empty");
        assert_eq!(merge_pages(&[]).0, OValue::Null);
    }
}
