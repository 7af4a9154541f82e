//! Safe RAII wrappers over the raw llama.cpp C API (`llama-cpp-sys-2`).
//!
//! The safe `llama-cpp-2` crate cannot feed precomputed input embeddings (its batch is always
//! created with `embd = 0` and its pointers are private), so the model and context are driven
//! here through raw FFI. Every `unsafe` block of the LLM side lives in this file (and the
//! dlopen probe of [`super::cpu_backend`]); the rest of
//! [`crate::llm`] only sees [`Model`], [`Context`] and [`Batch`].
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context as _, Result};
use llama_cpp_sys_2 as sys;

/// A llama.cpp token id.
pub type Token = i32;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static BACKEND: OnceLock<()> = OnceLock::new();
static LOGGING: OnceLock<()> = OnceLock::new();

/// Forwards llama.cpp/ggml log lines to stderr only when [`set_verbose`] asked for them:
/// a CLI that prints its answer on stdout should not be buried under loader chatter.
unsafe extern "C" fn log_callback(_level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if !VERBOSE.load(Ordering::Relaxed) || text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the duration of the call.
    let s = unsafe { CStr::from_ptr(text) };
    eprint!("{}", s.to_string_lossy());
}

/// Show (true) or hide (false, the default) llama.cpp's own log output.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Installs the log sink once per process (before anything of ggml can log).
pub(crate) fn init_logging() {
    LOGGING.get_or_init(|| {
        // SAFETY: takes no pointers we own; the callback is a `'static` fn and `user_data` is unused.
        unsafe { sys::llama_log_set(Some(log_callback), std::ptr::null_mut()) };
    });
}

/// `llama_backend_init` exactly once per process, after the log sink and the CPU backend variant
/// ([`super::cpu_backend`]: ggml is built with run-time-loaded backends and has none until one is loaded).
fn init_backend() -> Result<()> {
    init_logging();
    super::cpu_backend::ensure_loaded()?;
    BACKEND.get_or_init(|| {
        // SAFETY: takes no arguments; called once thanks to the OnceLock.
        unsafe { sys::llama_backend_init() };
    });
    Ok(())
}

/// A loaded GGUF language model (weights + vocabulary). Thread-safe for reading.
pub struct Model {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
}

// SAFETY: a llama_model is immutable after loading; llama.cpp shares one model between
// contexts on different threads.
unsafe impl Send for Model {}
// SAFETY: see above; all methods here only read the model.
unsafe impl Sync for Model {}

impl Model {
    /// Load a GGUF file. `vocab_only` skips the weights (tokenizer-only use).
    ///
    /// Why weights are read, not memory-mapped (unless `H2OVL_LLM_MMAP=1`): on x86 (AVX2) and ARM
    /// llama.cpp repacks Q4_0/Q4_K matrices into interleaved copies (its CPU_REPACK buffer, 223 MiB
    /// of the 0.8B Q4_0's 284 MiB); with mmap the file pages it read to repack stay resident too,
    /// so peak RSS held the repacked weights twice (measured: 952 MB for a 640 MB pair of GGUFs).
    /// Reading puts each tensor in exactly one buffer; speed is the same (same kernels).
    pub fn load(path: &Path, vocab_only: bool) -> Result<Model> {
        init_backend()?;
        if !path.is_file() {
            bail!("LLM GGUF {} does not exist or is not a file", path.display());
        }
        let cpath = CString::new(path.to_string_lossy().as_bytes())
            .with_context(|| format!("path {} contains a NUL byte", path.display()))?;
        // SAFETY: returns a plain struct of defaults; no pointers owned by us.
        let mut params = unsafe { sys::llama_model_default_params() };
        params.n_gpu_layers = 0;
        params.vocab_only = vocab_only;
        if std::env::var("H2OVL_LLM_MMAP").map(|v| v != "1").unwrap_or(true) {
            params.load_mode = sys::LLAMA_LOAD_MODE_NONE;
        }
        // SAFETY: `cpath` is a valid NUL-terminated string for the duration of the call;
        // the returned pointer is owned by us (freed in Drop) or null on failure.
        let raw = unsafe { sys::llama_model_load_from_file(cpath.as_ptr(), params) };
        let ptr = NonNull::new(raw).with_context(|| {
            format!(
                "llama.cpp could not load {} as a GGUF language model (run with --verbose to see why)",
                path.display()
            )
        })?;
        // SAFETY: `ptr` is a valid model; the vocab it returns lives as long as the model.
        let vocab = unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) };
        let vocab = NonNull::new(vocab as *mut sys::llama_vocab)
            .with_context(|| format!("{} has no vocabulary", path.display()))?;
        Ok(Model { ptr, vocab })
    }

    /// Width of an input embedding row (`llama_model_n_embd_inp`, = hidden size for llama).
    pub fn n_embd(&self) -> usize {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_embd_inp(self.ptr.as_ptr()) as usize }
    }

    /// The raw vocabulary, for llama.cpp samplers built elsewhere (the JSON grammar in
    /// `crate::json`). Valid while this model lives.
    pub fn vocab_ptr(&self) -> *const sys::llama_vocab {
        self.vocab.as_ptr()
    }

    /// Number of logits per position.
    pub fn n_vocab(&self) -> usize {
        // SAFETY: valid vocab pointer.
        unsafe { sys::llama_vocab_n_tokens(self.vocab.as_ptr()) as usize }
    }

    /// The context length the model was trained for (GGUF `llama.context_length`).
    pub fn n_ctx_train(&self) -> usize {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_ctx_train(self.ptr.as_ptr()).max(0) as usize }
    }

    /// A metadata string value, if the key exists.
    pub fn meta_str(&self, key: &str) -> Option<String> {
        let ckey = CString::new(key).ok()?;
        let mut buf = vec![0u8; 512];
        // SAFETY: `ckey` is NUL-terminated, `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            sys::llama_model_meta_val_str(self.ptr.as_ptr(), ckey.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len())
        };
        if n < 0 {
            return None;
        }
        buf.truncate((n as usize).min(buf.len().saturating_sub(1)));
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Tokenize with the GGUF vocabulary: no BOS/EOS added, special tokens (`<img>`, `<|end|>`…)
    /// recognised in the text when `parse_special`.
    pub fn tokenize(&self, text: &str, parse_special: bool) -> Result<Vec<Token>> {
        let len = i32::try_from(text.len()).context("prompt text is larger than 2 GiB")?;
        let mut out: Vec<Token> = vec![0; text.len() + 8];
        for _ in 0..2 {
            // SAFETY: `text` is valid for `len` bytes (no NUL terminator needed: length given);
            // `out` is writable for `out.len()` tokens.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr() as *const c_char,
                    len,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    false,
                    parse_special,
                )
            };
            if n >= 0 {
                out.truncate(n as usize);
                return Ok(out);
            }
            if n == i32::MIN {
                bail!("tokenization overflowed");
            }
            out.resize((-n) as usize, 0);
        }
        bail!("llama_tokenize kept asking for a larger buffer")
    }

    /// The bytes of one token. `special=false` renders control tokens as nothing.
    /// The bytes may be a partial UTF-8 sequence (byte-fallback tokens).
    pub fn token_to_piece(&self, token: Token, special: bool) -> Vec<u8> {
        // An out-of-range id would throw inside llama.cpp (abort across FFI).
        if token < 0 || token as usize >= self.n_vocab() {
            return Vec::new();
        }
        let mut buf = vec![0u8; 64];
        for _ in 0..2 {
            // SAFETY: `buf` is writable for `buf.len()` bytes.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab.as_ptr(),
                    token,
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len() as i32,
                    0,
                    special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            buf.resize((-n) as usize, 0);
        }
        Vec::new()
    }

    /// True for tokens that `skip_special_tokens` drops: control tokens (`<s>`, `</s>`,
    /// `<|end|>`, `<img>`…) and user-defined added tokens (H2OVL's added tokens are all special).
    pub fn is_special(&self, token: Token) -> bool {
        // llama.cpp aborts on out-of-range ids: guard them here first.
        if token < 0 || token as usize >= self.n_vocab() {
            return false;
        }
        // SAFETY: valid vocab pointer and an in-range id.
        let attr = unsafe { sys::llama_vocab_get_attr(self.vocab.as_ptr(), token) };
        attr & (sys::LLAMA_TOKEN_ATTR_CONTROL | sys::LLAMA_TOKEN_ATTR_USER_DEFINED | sys::LLAMA_TOKEN_ATTR_UNKNOWN)
            != 0
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: we own the model; contexts hold an Arc<Model>, so none outlives it.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

/// KV-cache element type. F16 is llama.cpp's default (half the memory); F32 is exact and is
/// what the float32 parity tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

/// Settings for one llama.cpp context.
#[derive(Clone, Debug)]
pub struct ContextParams {
    pub n_ctx: u32,
    /// Largest batch handed to one `llama_decode`; the prefill is chunked to this.
    pub n_batch: u32,
    pub n_threads: i32,
    pub kv_type: KvType,
    /// Flash attention: None = llama.cpp's choice (auto).
    pub flash_attn: Option<bool>,
}

/// One inference context (KV cache + compute buffers) over a shared [`Model`].
pub struct Context {
    ptr: NonNull<sys::llama_context>,
    model: Arc<Model>,
    n_batch: usize,
    n_ctx: usize,
}

// SAFETY: a llama_context may be moved between threads; it is never used from two at once
// (no Sync, all mutation through &mut self).
unsafe impl Send for Context {}

impl Context {
    pub fn new(model: Arc<Model>, p: &ContextParams) -> Result<Context> {
        // SAFETY: returns a plain struct of defaults.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = p.n_ctx;
        cp.n_batch = p.n_batch;
        cp.n_ubatch = p.n_batch.min(512);
        cp.n_seq_max = 1;
        cp.n_threads = p.n_threads;
        cp.n_threads_batch = p.n_threads;
        let t = match p.kv_type {
            KvType::F16 => sys::GGML_TYPE_F16,
            KvType::F32 => sys::GGML_TYPE_F32,
        };
        cp.type_k = t;
        cp.type_v = t;
        cp.flash_attn_type = match p.flash_attn {
            None => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
            Some(false) => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            Some(true) => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        };
        // SAFETY: the model pointer is valid and outlives the context (we keep the Arc).
        let raw = unsafe { sys::llama_init_from_model(model.ptr.as_ptr(), cp) };
        let ptr = NonNull::new(raw).with_context(|| {
            format!("llama.cpp could not create a context of {} tokens (out of memory?)", p.n_ctx)
        })?;
        // SAFETY: valid context pointer.
        let (n_ctx, n_batch) = unsafe { (sys::llama_n_ctx(ptr.as_ptr()), sys::llama_n_batch(ptr.as_ptr())) };
        Ok(Context { ptr, model, n_batch: n_batch as usize, n_ctx: n_ctx as usize })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn n_batch(&self) -> usize {
        self.n_batch
    }

    /// Run the model over a batch (appending it to the KV cache).
    pub fn decode(&mut self, batch: &Batch) -> Result<()> {
        if batch.raw.n_tokens == 0 {
            return Ok(());
        }
        // SAFETY: the batch was allocated by llama_batch_init and its n_tokens entries filled
        // by Batch::push_*, which bound-check against its capacity.
        let rc = unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw) };
        match rc {
            0 => Ok(()),
            1 => bail!("llama_decode: no KV-cache slot for {} positions (context full)", batch.len()),
            -1 => bail!("llama_decode: invalid batch (positions not contiguous with the KV cache?)"),
            2 => bail!("llama_decode: aborted"),
            rc => bail!("llama_decode failed with code {rc}"),
        }
    }

    /// The logits of row `i` of the last decoded batch (which must have requested them).
    pub fn logits(&mut self, i: usize) -> Result<&[f32]> {
        // SAFETY: valid context; returns null for rows without logits.
        let p = unsafe { sys::llama_get_logits_ith(self.ptr.as_ptr(), i as i32) };
        if p.is_null() {
            bail!("no logits for row {i} of the last batch");
        }
        let n = self.model.n_vocab();
        // SAFETY: llama.cpp guarantees n_vocab floats at a non-null logits row; they stay valid
        // until the next decode, which needs &mut self, so the borrow keeps them alive.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// Drop KV-cache positions `p0..` (so a new turn can rewrite a diverging tail).
    pub fn truncate_kv(&mut self, p0: usize) -> Result<()> {
        // SAFETY: valid context; memory handle belongs to it.
        let ok = unsafe {
            let mem = sys::llama_get_memory(self.ptr.as_ptr());
            sys::llama_memory_seq_rm(mem, 0, p0 as i32, -1)
        };
        if !ok {
            bail!("llama.cpp could not remove KV-cache positions from {p0}");
        }
        Ok(())
    }

    /// The KV cache of the conversation (sequence 0) as bytes, to carry it into a larger context.
    pub fn save_seq(&mut self) -> Result<Vec<u8>> {
        // SAFETY: valid context; the buffer is sized by llama.cpp's own size query.
        let n = unsafe { sys::llama_state_seq_get_size(self.ptr.as_ptr(), 0) };
        let mut buf = vec![0u8; n];
        let w = unsafe { sys::llama_state_seq_get_data(self.ptr.as_ptr(), buf.as_mut_ptr(), n, 0) };
        if w == 0 && n > 0 {
            bail!("llama.cpp could not save the KV cache ({n} bytes)");
        }
        buf.truncate(w);
        Ok(buf)
    }

    /// Restores [`Context::save_seq`]'s bytes into this (empty) context's sequence 0.
    pub fn load_seq(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: valid context; llama.cpp reads at most `data.len()` bytes and checks them.
        let r = unsafe { sys::llama_state_seq_set_data(self.ptr.as_ptr(), data.as_ptr(), data.len(), 0) };
        if r == 0 {
            bail!("llama.cpp could not restore the KV cache into the new context");
        }
        Ok(())
    }

    /// Forget everything (new conversation).
    pub fn clear_kv(&mut self) {
        // SAFETY: valid context.
        unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ptr.as_ptr()), true) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: we own the context; the model is still alive (Arc field dropped after).
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

/// A `llama_batch` of either token ids or embedding rows (llama.cpp cannot mix them in one
/// classic batch), single sequence 0.
pub struct Batch {
    raw: sys::llama_batch,
    cap: usize,
    n_embd: usize,
}

impl Batch {
    /// A batch of up to `cap` token ids.
    pub fn tokens(cap: usize) -> Batch {
        Self::alloc(cap, 0)
    }

    /// A batch of up to `cap` embedding rows of width `n_embd`.
    pub fn embeddings(cap: usize, n_embd: usize) -> Batch {
        Self::alloc(cap, n_embd)
    }

    fn alloc(cap: usize, n_embd: usize) -> Batch {
        let cap = cap.max(1);
        // SAFETY: allocates arrays for `cap` entries (embd: cap*n_embd floats when n_embd > 0,
        // else a token array); freed in Drop.
        let raw = unsafe { sys::llama_batch_init(cap as i32, n_embd as i32, 1) };
        Batch { raw, cap, n_embd }
    }

    pub fn len(&self) -> usize {
        self.raw.n_tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.raw.n_tokens == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn clear(&mut self) {
        self.raw.n_tokens = 0;
    }

    fn set_meta(&mut self, i: usize, pos: usize, logits: bool) {
        // SAFETY: i < cap (checked by callers); pos/n_seq_id/seq_id/logits arrays have `cap`
        // entries and seq_id[i] points to an array of n_seq_max = 1 ids.
        unsafe {
            *self.raw.pos.add(i) = pos as i32;
            *self.raw.n_seq_id.add(i) = 1;
            *(*self.raw.seq_id.add(i)) = 0;
            *self.raw.logits.add(i) = logits as i8;
        }
    }

    /// Append a token at position `pos`; `logits` asks for its output row.
    pub fn push_token(&mut self, token: Token, pos: usize, logits: bool) -> Result<()> {
        let i = self.len();
        if self.n_embd != 0 || i >= self.cap {
            bail!("token batch full or of the wrong kind");
        }
        // SAFETY: token array exists (n_embd == 0) and i < cap.
        unsafe { *self.raw.token.add(i) = token };
        self.set_meta(i, pos, logits);
        self.raw.n_tokens += 1;
        Ok(())
    }

    /// Append one embedding row at position `pos`.
    pub fn push_embedding(&mut self, row: &[f32], pos: usize, logits: bool) -> Result<()> {
        let i = self.len();
        if self.n_embd == 0 || i >= self.cap {
            bail!("embedding batch full or of the wrong kind");
        }
        if row.len() != self.n_embd {
            bail!("embedding row has width {} but the LLM expects {}", row.len(), self.n_embd);
        }
        // SAFETY: embd has cap*n_embd floats, i < cap, row has n_embd floats; no overlap.
        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), self.raw.embd.add(i * self.n_embd), self.n_embd) };
        self.set_meta(i, pos, logits);
        self.raw.n_tokens += 1;
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: allocated by llama_batch_init, freed once.
        unsafe { sys::llama_batch_free(self.raw) }
    }
}
