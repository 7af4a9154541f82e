//! `h2ovl eval`: what a quantization preset does to *your* images and prompts.
//!
//! Every image × prompt is answered by a reference pair (F16 or F32 LLM + vision) and by each
//! candidate pair; the candidates are then compared with the reference where it matters to a
//! user: the image embeddings (per-token cosine), the next-token distributions along the
//! reference's own answer (teacher-forced KL, top-1 agreement, log-likelihood), the free-running
//! answers (common greedy prefix, JSON fields), and speed, memory and file size.
//!
//! - [`metrics`]: the comparisons as plain functions (KL in f64 over the full vocabulary, …).
//! - [`engine`]: runs the pairs case by case, reference data kept on disk, resumable.
//! - [`report`]: `report.json` (finished cases + per-pair summary) and the stdout table.
//! - [`html`]: `report.html`, the same summary with inline-SVG charts.
pub mod engine;
pub mod html;
pub mod metrics;
pub mod report;

pub use engine::{run, CaseSpec, EvalJob, PairSpec};
pub use report::{Fingerprint, Report, Summary};
