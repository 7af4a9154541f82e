//! Structured output: constrain generation to JSON.
//!
//! - [`gbnf`]: JSON Schema → GBNF grammar (bounded strings/arrays so the value always closes).
//! - [`template`]: a JSON template from the prompt (the model card's prompt guide) → schema.
//! - [`ordered`]: a JSON value that keeps key order (schemas and templates fix the output order).
//! - [`merge`]: per-page answers of a document merged into one (`--pages-mode each`).
//! - [`shape`]: the same schema as a tree, for [`scanner`] (follows the answer as it is written)
//!   and [`budget`] (closes every open value before `max_new_tokens`, so the answer always parses).
//!
//! Pure text and token logic, no model: a [`Constraint`] goes into
//! [`crate::llm::GenerationConfig::constraint`], and the LLM side (`llm::grammar`: llama.cpp's
//! grammar sampler as a logit mask, the model's vocabulary for [`budget`]) applies it to each
//! step's logits and stops when the JSON value is complete. `llm` depends on `json`, never the
//! reverse.
pub mod budget;
pub mod gbnf;
pub mod merge;
pub mod ordered;
pub mod scanner;
pub mod shape;
pub mod template;

use anyhow::{Context as _, Result};

pub use gbnf::{Limits, SchemaError};
pub use ordered::OValue;
pub use shape::Shape;

/// A compiled-to-text grammar the output must follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// GBNF text (llama.cpp grammar format).
    pub gbnf: String,
    /// Name of the start rule.
    pub root: String,
    /// The same constraint as a tree (for closing the answer within the token budget).
    pub shape: Shape,
}

impl Constraint {
    fn from_gbnf(gbnf: String, shape: Shape) -> Constraint {
        Constraint { gbnf, root: "root".to_string(), shape }
    }

    /// Any JSON object (`--json`, OpenAI `response_format: {"type": "json_object"}`).
    pub fn any_object(limits: &Limits) -> Constraint {
        Self::from_gbnf(gbnf::any_object_grammar(limits), Shape::any_object(limits))
    }

    /// Instances of a JSON Schema given as text.
    pub fn from_schema_text(schema: &str, limits: &Limits) -> Result<Constraint> {
        let v = OValue::parse(schema).context("the JSON schema is not valid JSON")?;
        Self::from_schema(&v, limits)
    }

    /// Instances of a JSON Schema.
    pub fn from_schema(schema: &OValue, limits: &Limits) -> Result<Constraint> {
        Ok(Self::from_gbnf(gbnf::schema_grammar(schema, limits)?, Shape::from_schema(schema, limits)))
    }

    /// Exactly the shape of a JSON template (see [`template`]).
    pub fn from_template(t: &OValue, limits: &Limits) -> Result<Constraint> {
        Self::from_schema(&template::template_schema(t)?, limits)
    }

    /// The template embedded in `prompt`; an error when the prompt has none.
    pub fn from_prompt_template(prompt: &str, limits: &Limits) -> Result<Constraint> {
        let (t, _) = template::find_template(prompt).context(
            "--json-template: the prompt contains no JSON template (e.g. {\"name\": \"\", \"date_of_birth\": \"\"})",
        )?;
        Self::from_template(&t, limits)
    }
}

/// The constraint asked for by the CLI flags `--json`, `--json-schema FILE`, `--json-template`
/// (at most one), with the default [`Limits`]. `prompt` is searched for the template.
pub fn from_cli_flags(json: bool, schema_file: Option<&std::path::Path>, template: bool, prompt: &str) -> Result<Option<Constraint>> {
    let n = json as usize + schema_file.is_some() as usize + template as usize;
    if n > 1 {
        anyhow::bail!("use only one of --json, --json-schema, --json-template");
    }
    let limits = Limits::default();
    if json {
        return Ok(Some(Constraint::any_object(&limits)));
    }
    if let Some(f) = schema_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading the JSON schema {}", f.display()))?;
        return Constraint::from_schema_text(&text, &limits).with_context(|| format!("JSON schema {}", f.display())).map(Some);
    }
    if template {
        return Constraint::from_prompt_template(prompt, &limits).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_flags_pick_one_constraint() {
        assert_eq!(from_cli_flags(false, None, false, "x").unwrap(), None);
        assert_eq!(from_cli_flags(true, None, false, "x").unwrap(), Some(Constraint::any_object(&Limits::default())));
        let t = from_cli_flags(false, None, true, r#"Fill {"a": ""}"#).unwrap().unwrap();
        assert!(t.gbnf.contains(r#""\"a\"""#), "{}", t.gbnf);
        assert!(from_cli_flags(true, None, true, "{}").unwrap_err().to_string().contains("only one"));
        assert!(format!("{:#}", from_cli_flags(false, None, true, "no template").unwrap_err()).contains("no JSON template"));
        let e = from_cli_flags(false, Some(std::path::Path::new("/no/such/schema.json")), false, "").unwrap_err();
        assert!(format!("{e:#}").contains("/no/such/schema.json"), "{e:#}");
    }
}
