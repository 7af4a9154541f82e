//! The one model instance: a thread that owns the [`Pipeline`] and runs queued jobs in order.
//!
//! The queue is a bounded channel: when it is full the handler answers 503 at once instead of
//! letting requests pile up. Each job streams [`Event`]s back; when the receiving side is gone
//! (client disconnected) the job's cancel flag is raised and generation stops at the next token.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::api::ChatJob;
use crate::llm::{ChatOutput, PageProgress, PagesOutput, Pipeline, StopReason, Timings};

/// What a running job reports.
#[derive(Debug)]
pub enum Event {
    /// New answer text.
    Delta(String),
    /// Finished: OpenAI `finish_reason`, token counts, and where the time went (the response's
    /// `timings`; `reused_tokens` are prompt positions kept from the KV cache, `image_tiles` the
    /// tiles of each image of the conversation).
    Done {
        finish_reason: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
        timings: Timings,
        reused_tokens: usize,
        image_tiles: Vec<usize>,
        /// What the images were fitted to, when the tile budget was lowered (`--pages-mode`).
        fit: Option<String>,
    },
    /// The pipeline refused the request (bad image, context overflow, …).
    Failed(String),
    /// Reading a document page by page: which group is being answered (an SSE comment).
    Progress(String),
}

pub struct Queued {
    pub job: ChatJob,
    pub events: UnboundedSender<Event>,
}

/// Handle to the model thread.
#[derive(Clone)]
pub struct Worker {
    tx: SyncSender<Queued>,
    /// Jobs queued or running (`/health` reports it: 0 once a burst has drained).
    in_flight: Arc<AtomicUsize>,
}

/// Counts a job out of [`Worker::in_flight`] however its iteration ends.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a job was not queued.
pub enum Rejected {
    Full,
    Gone,
}

impl Worker {
    /// Start the model thread with room for `queue` waiting jobs.
    pub fn start(pipeline: Pipeline, queue: usize) -> Worker {
        let (tx, rx) = sync_channel(queue);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let count = in_flight.clone();
        std::thread::Builder::new()
            .name("h2ovl-model".into())
            .spawn(move || run(pipeline, rx, &count))
            .expect("spawning the model thread");
        Worker { tx, in_flight }
    }

    pub fn submit(&self, q: Queued) -> Result<(), Rejected> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.tx.try_send(q).map_err(|e| {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => Rejected::Full,
                TrySendError::Disconnected(_) => Rejected::Gone,
            }
        })
    }

    /// Jobs waiting in the queue plus the one running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

fn run(mut pipe: Pipeline, rx: Receiver<Queued>, in_flight: &AtomicUsize) {
    while let Ok(Queued { job, events }) = rx.recv() {
        let _done = Finished(in_flight);
        if events.is_closed() {
            continue; // the client left while the job was queued
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let mut cfg = job.cfg;
        cfg.cancel = Some(cancel.clone());
        let mut filter = StopFilter::new(job.stop);
        // A panic inside one request must not take the server down with it: report it as that
        // request's error and start the next one from a clean KV cache.
        let server_mode = pipe.options().pages_mode;
        pipe.set_pages_mode(job.pages_mode.unwrap_or(server_mode));
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut on_text = |piece: &str| {
                let emit = filter.push(piece);
                if filter.hit {
                    cancel.store(true, Ordering::Relaxed);
                }
                if (!emit.is_empty() && events.send(Event::Delta(emit)).is_err()) || events.is_closed() {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            // A document that does not fit even fitted is read page by page (a new conversation only).
            if job.history.turns.is_empty() && pipe.reads_page_by_page(&job.images, &job.question, cfg.max_new_tokens)? {
                let mut progress = |p: PageProgress| {
                    let _ = events.send(Event::Progress(match p {
                        PageProgress::Group { done, groups, first, last } => format!("page group {} of {groups} (pages {first}-{last})", done + 1),
                        PageProgress::Combining => "combining the page answers".to_string(),
                    }));
                };
                pipe.answer_pages(&job.images, &job.question, &cfg, &mut progress, &mut on_text).map(Answered::from_pages)
            } else {
                pipe.chat_stream(&job.images, &job.question, &cfg, &job.history, &mut on_text).map(Answered::from_chat)
            }
        }))
        .unwrap_or_else(|_| {
            pipe.reset();
            Err(anyhow::anyhow!("internal error while generating (see the server log)"))
        });
        pipe.set_pages_mode(server_mode);
        let ev = match out {
            Ok(o) => {
                let rest = filter.finish();
                if !rest.is_empty() {
                    let _ = events.send(Event::Delta(rest));
                }
                let finish_reason = match (filter.hit, o.stop) {
                    (true, _) | (false, StopReason::EndOfAnswer) => "stop",
                    (false, StopReason::Length) => "length",
                    (false, StopReason::Cancelled) => continue, // client gone: nobody to tell
                };
                Event::Done {
                    finish_reason,
                    prompt_tokens: o.prompt_tokens,
                    completion_tokens: o.completion_tokens,
                    timings: o.timings,
                    reused_tokens: o.reused_tokens,
                    image_tiles: o.image_tiles,
                    fit: o.fit,
                }
            }
            Err(e) => Event::Failed(format!("{e:#}")),
        };
        let _ = events.send(ev);
    }
}

/// A finished request, whole or page by page, as the response reports it.
struct Answered {
    stop: StopReason,
    prompt_tokens: usize,
    completion_tokens: usize,
    timings: Timings,
    reused_tokens: usize,
    image_tiles: Vec<usize>,
    fit: Option<String>,
}

impl Answered {
    fn from_chat(o: ChatOutput) -> Self {
        Answered {
            stop: o.stop,
            prompt_tokens: o.prompt_ids.len(),
            completion_tokens: o.tokens.len(),
            timings: o.timings,
            reused_tokens: o.reused_tokens,
            image_tiles: o.image_tiles,
            fit: o.fit.map(|f| f.to_string()),
        }
    }

    /// Page by page: the tokens and times of every group plus the combining turn, summed.
    fn from_pages(o: PagesOutput) -> Self {
        let mut t = Timings::default();
        let all = o.pages.iter().map(|p| &p.timings).chain(o.combine.as_ref().map(|c| &c.timings));
        for x in all {
            t.image_encode_s += x.image_encode_s;
            t.images_encoded += x.images_encoded;
            t.prefill_s += x.prefill_s;
            t.prefill_tokens += x.prefill_tokens;
            t.decode_s += x.decode_s;
            t.decode_tokens += x.decode_tokens;
        }
        let groups: Vec<String> = o.pages.iter().map(|p| if p.first == p.last { p.first.to_string() } else { format!("{}-{}", p.first, p.last) }).collect();
        Answered {
            stop: o.stop,
            prompt_tokens: t.prefill_tokens,
            completion_tokens: t.decode_tokens,
            image_tiles: o.pages.iter().flat_map(|p| p.tiles.iter().copied()).collect(),
            fit: Some(format!("read page by page: {} groups (pages {}), then combined", o.pages.len(), groups.join(", "))),
            timings: t,
            reused_tokens: 0,
        }
    }
}

/// Holds back text that may be the start of a stop string; cuts the answer at the first one.
pub struct StopFilter {
    stops: Vec<String>,
    pending: String,
    pub hit: bool,
}

impl StopFilter {
    pub fn new(stops: Vec<String>) -> Self {
        StopFilter { stops, pending: String::new(), hit: false }
    }

    /// Text safe to emit after `piece`.
    pub fn push(&mut self, piece: &str) -> String {
        if self.hit {
            return String::new();
        }
        self.pending.push_str(piece);
        if let Some(pos) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            self.hit = true;
            let out = self.pending[..pos].to_string();
            self.pending.clear();
            return out;
        }
        // Keep the longest tail that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| s.char_indices().map(|(i, _)| i).skip(1).filter(|&k| self.pending.ends_with(&s[..k])))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        out
    }

    /// What is left at the end (nothing after a stop string).
    pub fn finish(&mut self) -> String {
        if self.hit {
            String::new()
        } else {
            std::mem::take(&mut self.pending)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_across_pieces() {
        let mut f = StopFilter::new(vec!["END".into(), "éx".into()]);
        let mut out = String::new();
        for p in ["hello E", "N", "o world é", "", "xtra"] {
            out += &f.push(p);
        }
        out += &f.finish();
        assert_eq!(out, "hello ENo world ");
        assert!(f.hit);
        let mut f = StopFilter::new(vec!["STOP".into()]);
        assert_eq!(f.push("abcST"), "abc");
        assert_eq!(f.finish(), "ST");
        let mut f = StopFilter::new(vec![]);
        assert_eq!(f.push("x"), "x");
    }
}
