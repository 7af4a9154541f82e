//! The built-in chat page of `h2ovl serve`, at `/` (on by default, `--no-webui` turns it off).
//!
//! Hand-written HTML + CSS + JS in `webui/`, embedded with `include_str!`: three small files with
//! no framework, no build step and no CDN are smaller and easier to review than a bundler
//! pipeline, and nothing is fetched at run time (the runtime is offline by design). The page
//! talks to the same public API as any client (`/props`, `/v1/chat/completions`), so it needs no
//! endpoint of its own. It is served without the API key (it holds no data; it asks for the key
//! on the first 401 and keeps it in the browser); everything it calls still needs the key.
//!
//! A strict Content-Security-Policy (scripts and styles from this origin only, no inline code)
//! is a second line of defence behind the page's own escaping of model output.
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("webui/index.html");
const APP_JS: &str = include_str!("webui/app.js");
const MARKDOWN_JS: &str = include_str!("webui/markdown.js");
const STYLE_CSS: &str = include_str!("webui/style.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
}

/// Adds the page and its assets to `r`.
pub fn routes<S: Clone + Send + Sync + 'static>(r: Router<S>) -> Router<S> {
    r.route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/markdown.js", get(|| async { asset("text/javascript; charset=utf-8", MARKDOWN_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}
