//! Turning generated token bytes into text while streaming.
//!
//! Byte-fallback tokens (`<0xF0>`…) can split a UTF-8 character across tokens, so bytes are
//! held back until they form complete characters. Leading whitespace is dropped (the reference
//! `.strip()`s the answer; SentencePiece's first piece usually starts with `▁`).

/// Incremental UTF-8 assembler.
#[derive(Default, Debug)]
pub struct TextStream {
    pending: Vec<u8>,
    started: bool,
    text: String,
}

impl TextStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the bytes of one token; returns the newly complete text (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => {
                // An invalid byte (not merely an unfinished sequence) can never complete:
                // emit it as U+FFFD rather than holding everything back.
                if e.error_len().is_some() {
                    let upto = e.valid_up_to() + e.error_len().unwrap_or(1);
                    let chunk: Vec<u8> = self.pending.drain(..upto).collect();
                    let s = String::from_utf8_lossy(&chunk).into_owned();
                    return self.emit(s) + &self.push(&[]);
                }
                e.valid_up_to()
            }
        };
        let chunk: Vec<u8> = self.pending.drain(..valid).collect();
        // Validated above, so this never falls back.
        let s = String::from_utf8(chunk).unwrap_or_default();
        self.emit(s)
    }

    fn emit(&mut self, s: String) -> String {
        let s = if self.started { s } else { s.trim_start().to_string() };
        if !s.is_empty() {
            self.started = true;
        }
        self.text.push_str(&s);
        s
    }

    /// Flush whatever is left (an unfinished sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        let s = String::from_utf8_lossy(&rest).into_owned();
        self.emit(s)
    }

    /// Everything emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_split_characters() {
        let mut s = TextStream::new();
        assert_eq!(s.push(b" Hi"), "Hi");
        // 🤖 = F0 9F A4 96 as four byte tokens.
        assert_eq!(s.push(&[0xF0]), "");
        assert_eq!(s.push(&[0x9F, 0xA4]), "");
        assert_eq!(s.push(&[0x96]), "🤖");
        assert_eq!(s.push(" café".as_bytes()), " café");
        assert_eq!(s.finish(), "");
        assert_eq!(s.text(), "Hi🤖 café");
    }

    #[test]
    fn strips_leading_whitespace_only() {
        let mut s = TextStream::new();
        assert_eq!(s.push(b" "), "");
        assert_eq!(s.push(b"\n a"), "a");
        assert_eq!(s.push(b" b "), " b ");
    }

    #[test]
    fn invalid_bytes_do_not_block_the_stream() {
        let mut s = TextStream::new();
        assert_eq!(s.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        assert_eq!(s.push(&[0xE2, 0x82]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
