//! Reading a document page by page (`--pages-mode each`, and `auto` when even the fitted floor
//! does not fit): the question is answered on each group of consecutive pages that fits the
//! context at full resolution, then the answers are combined:
//! - free text: one last, text-only turn gets the page answers (`Page 3: …`) and the question;
//! - JSON (a template or schema constraint): the per-page values are merged by
//!   [`crate::json::merge`]'s rule (arrays concatenated, objects key by key, first non-empty
//!   scalar), with the pages behind each top-level field.
//!
//! Each group is a fresh conversation (the reference's format puts the image before the
//! question, so pages share only the turn opener: the KV prefix logic reuses that by itself), and
//! the embedding cache is emptied after each group, so memory holds one group's tiles at a time.
use anyhow::{bail, Result};

use super::images::ImageInput;
use super::prompt::IMAGE_PLACEHOLDER;
use super::sampling::GenerationConfig;
use super::session::{ChatOutput, History, Pipeline, StopReason, Timings};
use super::PagesMode;
use crate::json::merge::merge_pages;
use crate::json::ordered::OValue;

/// One group's answer.
#[derive(Clone, Debug)]
pub struct PageAnswer {
    /// 1-based first and last page (image) of the group.
    pub first: usize,
    pub last: usize,
    pub answer: String,
    pub tiles: Vec<usize>,
    pub timings: Timings,
}

/// What [`Pipeline::answer_pages`] produced.
#[derive(Clone, Debug)]
pub struct PagesOutput {
    /// The combined answer (streamed through `on_text`).
    pub answer: String,
    pub stop: StopReason,
    pub pages: Vec<PageAnswer>,
    /// JSON only: per top-level field, the pages (first page of each group) whose value it holds.
    pub provenance: Vec<(String, Vec<usize>)>,
    /// The text-only combining turn (free text with several groups).
    pub combine: Option<ChatOutput>,
}

/// Progress of a page-by-page answer, for progress bars and the server's events.
#[derive(Clone, Copy, Debug)]
pub enum PageProgress {
    /// Group `done + 1` of `groups` (pages `first..=last`) is being answered.
    Group { done: usize, groups: usize, first: usize, last: usize },
    /// Every group is answered; the answers are being combined.
    Combining,
}

impl Pipeline {
    /// Whether a one-question request about `images` should be read page by page: always under
    /// `each`, under `auto` when even the fitted floor does not fit, never under `fit`/`off`.
    pub fn reads_page_by_page(&mut self, images: &[ImageInput], question: &str, max_new: usize) -> Result<bool> {
        Ok(!images.is_empty()
            && match self.options().pages_mode {
                PagesMode::Each => true,
                PagesMode::Auto => !self.fits(images, question, max_new, true)?,
                PagesMode::Fit | PagesMode::Off => false,
            })
    }

    /// Consecutive groups of `images` that fit the context with `question` and `max_new` at
    /// the requested tiling (a page that does not fit alone is its own group, fitted later).
    pub fn page_groups(&mut self, images: &[ImageInput], question: &str, max_new: usize) -> Result<Vec<(usize, usize)>> {
        let mut groups = Vec::new();
        let mut i = 0;
        while i < images.len() {
            let mut j = i + 1;
            while j < images.len() && self.fits(&images[i..=j], question, max_new, false)? {
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        Ok(groups)
    }

    /// Answers `question` about a many-page document page group by page group, then combines
    /// (module docs). `cfg.cancel` stops at the next group and returns what is finished.
    pub fn answer_pages(
        &mut self,
        images: &[ImageInput],
        question: &str,
        cfg: &GenerationConfig,
        on_progress: &mut dyn FnMut(PageProgress),
        on_text: &mut dyn FnMut(&str),
    ) -> Result<PagesOutput> {
        if question.contains(IMAGE_PLACEHOLDER) {
            bail!("reading page by page asks the same question of every page: drop the `<image>` placeholders from it");
        }
        if images.is_empty() {
            bail!("reading page by page needs at least one page or image");
        }
        let groups = self.page_groups(images, question, cfg.max_new_tokens)?;
        let mode = self.options().pages_mode;
        // A page too large on its own is fitted (its tile budget lowered), never refused.
        self.set_pages_mode(PagesMode::Fit);
        let r = self.answer_groups(images, &groups, question, cfg, on_progress, on_text);
        self.set_pages_mode(mode);
        r
    }

    fn answer_groups(
        &mut self,
        images: &[ImageInput],
        groups: &[(usize, usize)],
        question: &str,
        cfg: &GenerationConfig,
        on_progress: &mut dyn FnMut(PageProgress),
        on_text: &mut dyn FnMut(&str),
    ) -> Result<PagesOutput> {
        let mut pages = Vec::with_capacity(groups.len());
        let mut stop = StopReason::EndOfAnswer;
        for (done, &(i, j)) in groups.iter().enumerate() {
            if cfg.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                stop = StopReason::Cancelled;
                break;
            }
            on_progress(PageProgress::Group { done, groups: groups.len(), first: i + 1, last: j });
            self.reset();
            let o = self.chat_stream(&images[i..j], question, cfg, &History::new(), &mut |_| {})?;
            self.forget_images();
            if o.stop == StopReason::Cancelled {
                stop = StopReason::Cancelled;
                break;
            }
            pages.push(PageAnswer { first: i + 1, last: j, answer: o.answer, tiles: o.image_tiles, timings: o.timings });
        }
        if stop == StopReason::Cancelled || pages.is_empty() {
            return Ok(PagesOutput { answer: String::new(), stop: StopReason::Cancelled, pages, provenance: Vec::new(), combine: None });
        }
        on_progress(PageProgress::Combining);
        if cfg.constraint.is_some() {
            let values: Vec<(usize, OValue)> = pages.iter().filter_map(|p| OValue::parse(&p.answer).ok().map(|v| (p.first, v))).collect();
            let (merged, provenance) = merge_pages(&values);
            let answer = merged.to_json();
            on_text(&answer);
            return Ok(PagesOutput { answer, stop: StopReason::EndOfAnswer, pages, provenance, combine: None });
        }
        if pages.len() == 1 {
            let answer = pages[0].answer.clone();
            on_text(&answer);
            return Ok(PagesOutput { answer, stop: StopReason::EndOfAnswer, pages, provenance: Vec::new(), combine: None });
        }
        self.reset();
        let c = self.chat_stream(&[], &combine_question(question, &pages), cfg, &History::new(), on_text)?;
        Ok(PagesOutput { answer: c.answer.clone(), stop: c.stop, pages, provenance: Vec::new(), combine: Some(c) })
    }
}

/// The text-only combining turn: each group's answer, labelled by its pages, then the question.
pub fn combine_question(question: &str, pages: &[PageAnswer]) -> String {
    let mut s = format!("A document of {} pages was read page by page. What each page says about the question:\n", pages.last().map_or(0, |p| p.last));
    for p in pages {
        let label = if p.first == p.last { format!("Page {}", p.first) } else { format!("Pages {}-{}", p.first, p.last) };
        s.push_str(&format!("{label}: {}\n", p.answer.trim()));
    }
    s.push_str(&format!("\nUsing these answers, answer the question for the whole document: {question}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combining_turn_lists_every_group_then_asks() {
        let p = |first, last, a: &str| PageAnswer { first, last, answer: a.into(), tiles: vec![], timings: Timings::default() };
        let q = combine_question("Total?", &[p(1, 2, "No total. "), p(3, 3, "Total: 42")]);
        assert_eq!(
            q,
            "A document of 3 pages was read page by page. What each page says about the question:\nPages 1-2: No total.\nPage 3: Total: 42\n\nUsing these answers, answer the question for the whole document: Total?"
        );
        assert!(!q.contains(IMAGE_PLACEHOLDER), "text only");
    }
}
