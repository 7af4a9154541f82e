//! OpenAI chat-completions requests → a chat job, and the OpenAI-shaped error body.
//!
//! Messages map onto the reference chat: `user`/`assistant` pairs become [`History`] turns,
//! the last `user` message is the question. Text parts are joined with newlines; `image_url`
//! parts become images in order (with `<image>` placeholders added as the pipeline does);
//! a PDF (an `image_url` with a `data:application/pdf` URL, or a `file` part with `file_data`)
//! becomes one image per page.
//! `system`/`developer` messages are accepted and ignored: the h2ogpt2 template has no system turn.
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::json::{Constraint, Limits, OValue};
use crate::llm::prompt::question_with_placeholders;
use crate::llm::{GenerationConfig, History, ImageInput, Turn};
use crate::pdf::PdfOptions;

/// An error that becomes an HTTP status + OpenAI error body.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: 400, kind: "invalid_request_error", code: None, param: None, message: message.into() }
    }

    pub fn with_param(mut self, p: &'static str) -> ApiError {
        self.param = Some(p);
        self
    }

    /// `{"error": {"message", "type", "param", "code"}}`
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields of a chat-completions request this server reads (others are ignored).
#[derive(Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Not in OpenAI's schema; llama-server and vLLM accept it (0 = off).
    pub top_k: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub seed: Option<i64>,
    stop: Option<StopField>,
    pub response_format: Option<Value>,
    pub n: Option<u32>,
    /// Not in OpenAI's schema (clients that do not send it get the server's `--pages-mode`):
    /// `auto`/`fit` lower the tile budget when the images do not fit, `off` refuses (400).
    pub pages_mode: Option<String>,
}

#[derive(Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    /// OpenAI's file input (PDFs): `{"type": "file", "file": {"file_data": "data:application/pdf;base64,…"}}`.
    File { file: FilePart },
}

#[derive(Deserialize)]
pub struct FilePart {
    #[serde(default)]
    pub file_data: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Object { url: String },
    Plain(String),
}

/// Everything the worker needs for one request.
pub struct ChatJob {
    pub images: Vec<ImageInput>,
    pub question: String,
    pub history: History,
    pub cfg: GenerationConfig,
    pub stop: Vec<String>,
    /// The request's `pages_mode` (`None`: the server's).
    pub pages_mode: Option<crate::llm::PagesMode>,
}

/// Largest `max_tokens` accepted (the model's trained context).
pub const MAX_TOKENS_LIMIT: u64 = 8192;
/// `max_tokens` when the request gives none.
pub const DEFAULT_MAX_TOKENS: usize = 1024;

impl ChatRequest {
    /// Parse and validate a request body. `raw_ordered` is the same body read with key order
    /// kept (a `json_schema`'s `properties` order is the output order).
    pub fn parse(body: &[u8]) -> Result<(ChatRequest, OValue), ApiError> {
        let req: ChatRequest = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
        let ordered: OValue = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
        Ok((req, ordered))
    }

    /// Build the job; images are decoded here (this is blocking work). PDFs with default options.
    pub fn into_job(self, ordered: &OValue, allowed_dir: Option<&Path>) -> Result<ChatJob, ApiError> {
        self.into_job_with(ordered, allowed_dir, &PdfOptions::default())
    }

    /// [`Self::into_job`] with the server's PDF options (limits, the model's tiling). MSAC (and
    /// its higher render DPI) is kept only when the whole conversation has one image part.
    pub fn into_job_with(self, ordered: &OValue, allowed_dir: Option<&Path>, pdf: &PdfOptions) -> Result<ChatJob, ApiError> {
        let n_parts: usize = self
            .messages
            .iter()
            .map(|m| match &m.content {
                Some(Content::Parts(p)) => p.iter().filter(|p| !matches!(p, Part::Text { .. })).count(),
                _ => 0,
            })
            .sum();
        let mut pdf = pdf.clone();
        pdf.pages = None; // not in OpenAI's schema: all pages, up to the page limit
        pdf.tiling.msac &= n_parts == 1;
        let pdf = &pdf;
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request("only n = 1 is supported").with_param("n"));
        }
        let mut cfg = GenerationConfig::default();
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ApiError::bad_request("temperature must be in [0, 2]").with_param("temperature"));
            }
            cfg.temperature = t;
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ApiError::bad_request("top_p must be in (0, 1]").with_param("top_p"));
            }
            cfg.top_p = p;
        }
        if let Some(k) = self.top_k {
            cfg.top_k = usize::try_from(k).map_err(|_| ApiError::bad_request("top_k is too large").with_param("top_k"))?;
        }
        let max = self.max_completion_tokens.or(self.max_tokens);
        if let Some(m) = max {
            if m == 0 || m > MAX_TOKENS_LIMIT {
                return Err(ApiError::bad_request(format!("max_tokens must be in 1..={MAX_TOKENS_LIMIT}")).with_param("max_tokens"));
            }
        }
        cfg.max_new_tokens = max.map_or(DEFAULT_MAX_TOKENS, |m| m as usize);
        cfg.seed = self.seed.unwrap_or(0) as u64;
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s],
            Some(StopField::Many(v)) => v,
        };
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty()) {
            return Err(ApiError::bad_request("stop: up to 4 non-empty strings").with_param("stop"));
        }
        let pages_mode = match &self.pages_mode {
            None => None,
            Some(m) => Some(m.parse().map_err(|e: anyhow::Error| ApiError::bad_request(e.to_string()).with_param("pages_mode"))?),
        };

        // Messages → history turns + the open question.
        let mut turns: Vec<(String, Vec<ImageInput>, Option<String>)> = Vec::new();
        for (i, m) in self.messages.into_iter().enumerate() {
            match m.role.as_str() {
                "system" | "developer" => {}
                "user" => {
                    if turns.last().is_some_and(|t| t.2.is_none()) {
                        return Err(ApiError::bad_request(format!("messages[{i}]: two user messages in a row (user and assistant must alternate)")).with_param("messages"));
                    }
                    let (text, images) = content(m.content, i, allowed_dir, pdf)?;
                    turns.push((text, images, None));
                }
                "assistant" => {
                    let Some(last) = turns.last_mut().filter(|t| t.2.is_none()) else {
                        return Err(ApiError::bad_request(format!("messages[{i}]: an assistant message must follow a user message")).with_param("messages"));
                    };
                    let (text, images) = content(m.content, i, allowed_dir, pdf)?;
                    if !images.is_empty() {
                        return Err(ApiError::bad_request(format!("messages[{i}]: assistant messages cannot carry images")).with_param("messages"));
                    }
                    last.2 = Some(text);
                }
                other => return Err(ApiError::bad_request(format!("messages[{i}]: unsupported role {other:?}")).with_param("messages")),
            }
        }
        let Some((question, images, None)) = turns.pop() else {
            return Err(ApiError::bad_request("the last message must be a user message").with_param("messages"));
        };
        cfg.constraint = response_format(self.response_format.as_ref(), ordered, &question)?;
        let mut history = History::new();
        for (q, imgs, a) in turns {
            let first = history.n_images() + 1;
            let q = question_with_placeholders(&q, imgs.len(), first).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            history.turns.push(Turn { question: q, answer: a.unwrap_or_default(), images: imgs });
        }
        Ok(ChatJob { images, question, history, cfg, stop, pages_mode })
    }
}

fn content(c: Option<Content>, i: usize, allowed_dir: Option<&Path>, pdf: &PdfOptions) -> Result<(String, Vec<ImageInput>), ApiError> {
    match c {
        None => Ok((String::new(), Vec::new())),
        Some(Content::Text(t)) => Ok((t, Vec::new())),
        Some(Content::Parts(parts)) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for (k, p) in parts.into_iter().enumerate() {
                match p {
                    Part::Text { text } => texts.push(text),
                    Part::ImageUrl { image_url } => {
                        let url = match image_url {
                            ImageUrl::Object { url } | ImageUrl::Plain(url) => url,
                        };
                        let imgs = super::images::load_images(&url, allowed_dir, pdf)
                            .map_err(|e| ApiError::bad_request(format!("messages[{i}].content[{k}]: {e}")).with_param("messages"))?;
                        images.extend(imgs);
                    }
                    Part::File { file } => {
                        let imgs = super::images::load_file_part(file.file_data.as_deref(), file.file_id.as_deref(), pdf).map_err(|e| {
                            let name = file.filename.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                            ApiError::bad_request(format!("messages[{i}].content[{k}]{name}: {e}")).with_param("messages")
                        })?;
                        images.extend(imgs);
                    }
                }
            }
            Ok((texts.join("\n"), images))
        }
    }
}

/// `response_format` → grammar: `text` (none), `json_object`, `json_schema` (`.json_schema.schema`),
/// and `json_template` (not OpenAI's: the JSON template written in the last user message, as the
/// CLI's `--json-template`; the model card's prompt guide asks for JSON that way).
fn response_format(rf: Option<&Value>, ordered: &OValue, question: &str) -> Result<Option<Constraint>, ApiError> {
    let Some(rf) = rf else { return Ok(None) };
    let limits = Limits::default();
    match rf.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::any_object(&limits))),
        Some("json_schema") => {
            let schema = ordered
                .get("response_format")
                .and_then(|r| r.get("json_schema"))
                .and_then(|j| j.get("schema"))
                .ok_or_else(|| ApiError::bad_request("response_format.json_schema.schema is missing").with_param("response_format"))?;
            Constraint::from_schema(schema, &limits)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("response_format: {e:#}")).with_param("response_format"))
        }
        Some("json_template") => Constraint::from_prompt_template(question, &limits)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("response_format json_template: {e:#}")).with_param("response_format")),
        Some(other) => Err(ApiError::bad_request(format!("unsupported response_format type {other:?}")).with_param("response_format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(body: &str) -> Result<ChatJob, ApiError> {
        let (r, o) = ChatRequest::parse(body.as_bytes())?;
        r.into_job(&o, None)
    }

    #[test]
    fn messages_become_history_and_question() {
        let j = job(r#"{"model":"x","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"Hi"},
            {"role":"assistant","content":"Hello"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
            "max_tokens":7,"temperature":0.5,"stop":"END","seed":9}"#)
        .unwrap();
        assert_eq!(j.question, "a\nb");
        assert_eq!(j.history.turns.len(), 1);
        assert_eq!((j.history.turns[0].question.as_str(), j.history.turns[0].answer.as_str()), ("Hi", "Hello"));
        assert_eq!((j.cfg.max_new_tokens, j.cfg.temperature, j.cfg.seed), (7, 0.5, 9));
        assert_eq!(j.stop, vec!["END".to_string()]);
    }

    #[test]
    fn malformed_requests_are_400s_with_a_param() {
        for (body, param) in [
            (r#"{"messages":[]}"#, Some("messages")),
            (r#"{"messages":[{"role":"assistant","content":"x"}]}"#, Some("messages")),
            (r#"{"messages":[{"role":"user","content":"x"}],"temperature":9}"#, Some("temperature")),
            (r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, Some("max_tokens")),
            (r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"nope"}}}}"#, Some("response_format")),
            (r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}"#, Some("messages")),
            (r#"{"messages":"hi"}"#, None),
            (r#"not json"#, None),
        ] {
            let e = job(body).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param, param, "{body}: {}", e.message);
        }
    }
}
