//! `h2ovl bench clip`: our vision encoder side by side with llama.cpp's own clip encoder (libmtmd,
//! `clip_graph_internvl`) in one run: same mmproj GGUF, same 448×448 tile, same thread count.
//!
//! Two things are measured:
//! - **speed**: median wall and CPU time of one tile, clip (`mtmd_encode_chunk`) vs ours
//!   ([`VisionModel::encode`]), runs alternating which side goes first so load drift on a shared
//!   machine favours neither;
//! - **agreement**: per-token cosine between clip's 256 image embeddings and ours.
//!
//! Clip is given exactly one 448×448 RGB image, so its InternVL preprocessor does not slice: it
//! copies the pixels unchanged (same-size "resize" is a copy) and normalises them with the GGUF's
//! mean/std, the same formula as ours. The input pixels are therefore identical and any disagreement
//! comes from the graphs. The known one: clip appends CLS *after* the 1024 patch tokens and then
//! adds `v.position_embd` rows in stored (HF) order, so patch `k` receives HF's row `k` — the
//! position of patch `k-1`, and patch 0 gets CLS's row — while CLS receives patch 1023's row.
//! Ours follows HF (CLS first, row 0). To show that this offset is the *whole* difference, the
//! bench also runs clip once on a control copy of the mmproj whose position rows are rotated by
//! one ([`write_position_control`]: stored row `i` = HF row `i+1`, CLS row last); ViT attention
//! has no mask, so token order does not matter and clip then computes HF's function.
//!
//! Reading the ratio: it compares the two *as built here*. llama-cpp-sys-2 compiles ggml with
//! AVX2/FMA and no AVX-512 (GGML_NATIVE off, no run-time dispatch), while our kernels detect the
//! CPU at run time (int8 Q8_0 math only where `VisionMath::Auto` picks it; the report names it).
//! On a loaded machine ggml's OpenMP threads spin at every graph barrier while a descheduled
//! partner finishes, which inflates clip's CPU and wall time more than rayon's: compare on an idle
//! machine (or at one thread) before quoting a ratio.
//!
//! The mtmd part needs the optional `mtmd` cargo feature (llama.cpp rebuilt with libmtmd; a
//! separate `CARGO_TARGET_DIR` keeps the default build untouched). The pure helpers below it
//! (cosine statistics, the control-file writer) are always built and tested.
use std::ffi::CString;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use llama_cpp_sys_2 as sys;
use serde::Serialize;

/// Name of the position-embedding tensor in the mmproj (llama.cpp clip naming).
pub const POSITION_TENSOR: &str = "v.position_embd.weight";

/// Per-token agreement between two `[n_tokens, width]` row-major embedding sets.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Agreement {
    pub n_tokens: usize,
    pub width: usize,
    pub cosine_mean: f64,
    pub cosine_min: f64,
    /// Token index of the smallest cosine.
    pub cosine_min_token: usize,
    pub max_abs_diff: f64,
    /// Largest |x| of the reference side (ours), for scale.
    pub ref_abs_max: f64,
}

/// Row cosines (f64 accumulation) and the largest absolute difference of `a` vs reference `b`.
pub fn agreement(a: &[f32], b: &[f32], width: usize) -> Result<Agreement> {
    ensure!(width > 0 && a.len() == b.len() && a.len() % width == 0, "agreement: {} vs {} values in rows of {width}", a.len(), b.len());
    let n = a.len() / width;
    ensure!(n > 0, "agreement: no rows");
    let (mut sum, mut min, mut min_i, mut max_abs, mut ref_max) = (0.0, f64::INFINITY, 0, 0.0f64, 0.0f64);
    for (i, (ra, rb)) in a.chunks_exact(width).zip(b.chunks_exact(width)).enumerate() {
        for (&x, &y) in ra.iter().zip(rb) {
            let (x, y) = (x as f64, y as f64);
            max_abs = max_abs.max((x - y).abs());
            ref_max = ref_max.max(y.abs());
        }
        // Two zero rows agree; one zero row against a non-zero one does not.
        let c = crate::cosine(ra, rb);
        sum += c;
        if c < min {
            min = c;
            min_i = i;
        }
    }
    Ok(Agreement { n_tokens: n, width, cosine_mean: sum / n as f64, cosine_min: min, cosine_min_token: min_i, max_abs_diff: max_abs, ref_abs_max: ref_max })
}

/// Rotates `[n_rows, width]` position rows from HF order (CLS row first) to clip's token order
/// (patches first, CLS last): new row `i` = old row `i+1`, new last row = old row 0.
pub fn rotate_cls_row_last(rows: &mut [f32], width: usize) {
    if width > 0 && rows.len() >= width {
        rows.rotate_left(width);
    }
}

/// Byte offset and length of one tensor's data in a GGUF file (ggml's own gguf parser).
fn tensor_location(path: &Path, name: &str) -> Result<(u64, usize, sys::ggml_type)> {
    ensure!(path.is_file(), "{} does not exist or is not a file", path.display());
    let cpath = CString::new(path.to_string_lossy().as_bytes()).with_context(|| format!("path {} contains a NUL byte", path.display()))?;
    let cname = CString::new(name)?;
    let params = sys::gguf_init_params { no_alloc: true, ctx: std::ptr::null_mut() };
    // SAFETY: `cpath` is NUL-terminated; with no_alloc and a null ctx only the header is read.
    let g = unsafe { sys::gguf_init_from_file(cpath.as_ptr(), params) };
    ensure!(!g.is_null(), "{}: not a readable GGUF file", path.display());
    // SAFETY: `g` is a valid gguf context until gguf_free below; `cname` is NUL-terminated.
    let r = unsafe {
        let id = sys::gguf_find_tensor(g, cname.as_ptr());
        let r = if id < 0 {
            None
        } else {
            let off = sys::gguf_get_data_offset(g) as u64 + sys::gguf_get_tensor_offset(g, id) as u64;
            Some((off, sys::gguf_get_tensor_size(g, id), sys::gguf_get_tensor_type(g, id)))
        };
        sys::gguf_free(g);
        r
    };
    r.with_context(|| format!("{}: missing tensor {name}", path.display()))
}

/// Writes a copy of `mmproj` to `out` whose `v.position_embd.weight` rows are rotated by
/// [`rotate_cls_row_last`] — the file on which clip's CLS-last graph computes HF's (and our)
/// function. A diagnostic only: the normal mmproj keeps HF order, which our encoder reads.
pub fn write_position_control(mmproj: &Path, out: &Path) -> Result<()> {
    let (off, bytes, ty) = tensor_location(mmproj, POSITION_TENSOR)?;
    ensure!(ty == sys::GGML_TYPE_F32, "{}: {POSITION_TENSOR} is ggml type {ty}, expected F32", mmproj.display());
    let model = h2ovl_runtime::vision::VisionModel::load(mmproj)?;
    let d = model.config().hidden;
    let n_rows = model.config().n_tokens();
    ensure!(bytes == n_rows * d * 4, "{}: {POSITION_TENSOR} has {bytes} bytes, expected {n_rows}×{d} f32", mmproj.display());
    let data = std::fs::read(mmproj).with_context(|| format!("reading {}", mmproj.display()))?;
    let range = off as usize..off as usize + bytes;
    ensure!(range.end <= data.len(), "{}: {POSITION_TENSOR} lies beyond the end of the file", mmproj.display());
    let mut rows: Vec<f32> = data[range.clone()].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    rotate_cls_row_last(&mut rows, d);
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp{}", out.file_name().and_then(|s| s.to_str()).unwrap_or("control"), std::process::id()));
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.seek(SeekFrom::Start(off))?;
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out)?;
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
    .with_context(|| format!("writing the position-control mmproj {}", out.display()))
}

/// A deterministic 448-ish RGB test image with structure at several scales (smooth gradients,
/// stripes, a disc, pseudo-random texture), so the embeddings are not dominated by one colour.
pub fn synthetic_image(size: u32) -> image::RgbImage {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    image::RgbImage::from_fn(size, size, |x, y| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let noise = (s >> 59) as i32 - 16;
        let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
        let disc = ((fx - 0.6).powi(2) + (fy - 0.35).powi(2)) < 0.04;
        let stripes = ((x / 24 + y / 40) % 2) as i32 * 60;
        let r = (fx * 200.0) as i32 + stripes + noise;
        let g = (fy * 180.0) as i32 + if disc { 70 } else { 0 } + noise;
        let b = ((1.0 - fx) * 120.0 + fy * 90.0) as i32 - stripes / 2 + noise;
        image::Rgb([r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8])
    })
}

#[cfg(feature = "mtmd")]
pub use with_mtmd::{run, ClipBenchOptions, ClipEncoder, ClipImage, ClipReport};

/// Everything that calls libmtmd (only with the `mtmd` feature).
#[cfg(feature = "mtmd")]
mod with_mtmd {
    use super::*;
    use anyhow::bail;
    use std::ffi::{c_char, c_void, CStr};
    use std::path::PathBuf;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use h2ovl_runtime::llm::ffi;
    use h2ovl_runtime::vision::VisionModel;

    /// Clip's log lines (capped), so a load failure can say *why* in one error message.
    static CLIP_LOG: Mutex<String> = Mutex::new(String::new());
    static CLIP_VERBOSE: AtomicBool = AtomicBool::new(false);
    const LOG_CAP: usize = 1 << 16;

    unsafe extern "C" fn clip_log(_level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
        if text.is_null() {
            return;
        }
        // SAFETY: mtmd passes a NUL-terminated string valid for the duration of the call.
        let s = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        if CLIP_VERBOSE.load(Ordering::Relaxed) {
            eprint!("{s}");
        }
        if let Ok(mut log) = CLIP_LOG.lock() {
            log.push_str(&s);
            if log.len() > LOG_CAP {
                let cut = log.len() - LOG_CAP / 2;
                let cut = (cut..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
                log.drain(..cut);
            }
        }
    }

    /// The last `n` non-empty lines clip logged.
    fn log_tail(n: usize) -> String {
        let log = CLIP_LOG.lock().map(|l| l.clone()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// llama.cpp's clip encoder (through libmtmd) for one mmproj, paired with a text model whose
    /// width must equal the projector's output (mtmd checks it). mtmd reads the text model's
    /// width, vocabulary and rope type; the encoder never touches its (memory-mapped) weights.
    pub struct ClipEncoder {
        model: NonNull<sys::llama_model>,
        ctx: NonNull<sys::mtmd_context>,
        /// The text model's input width = clip's output width.
        pub n_embd: usize,
        pub threads: usize,
        /// What clip reported after its warm-up ("flash attention is enabled/disabled").
        pub flash_attn: bool,
    }

    /// One image preprocessed by mtmd (its tokenized chunks: `<img>`, the image, `</img>`).
    pub struct ClipImage {
        chunks: NonNull<sys::mtmd_input_chunks>,
        index: usize,
        /// Image embeddings clip will produce (256 per 448 tile).
        pub n_tokens: usize,
    }

    impl ClipEncoder {
        /// Loads `mmproj` with clip; an mmproj clip rejects is one error carrying clip's own reason.
        pub fn load(mmproj: &Path, text_model: &Path, threads: usize, flash_attn: bool, verbose: bool) -> Result<Self> {
            ensure!(mmproj.is_file(), "mmproj {} does not exist or is not a file", mmproj.display());
            CLIP_VERBOSE.store(verbose, Ordering::Relaxed);
            ffi::set_verbose(verbose);
            // Initialises the llama backend (once) and checks the text GGUF with a clear error.
            drop(ffi::Model::load(text_model, true)?);
            let cpath = |p: &Path| CString::new(p.to_string_lossy().as_bytes()).with_context(|| format!("path {} contains a NUL byte", p.display()));
            let (cm, ct) = (cpath(mmproj)?, cpath(text_model)?);
            // SAFETY: plain struct of defaults.
            let mut mp = unsafe { sys::llama_model_default_params() };
            mp.n_gpu_layers = 0;
            // Not vocab_only: such a model reports width 0 and mtmd then skips its width check.
            // The weights are memory-mapped and never touched by the encoder.
            mp.vocab_only = false;
            // SAFETY: `ct` is NUL-terminated; the model is freed in Drop (or below on error).
            let model = NonNull::new(unsafe { sys::llama_model_load_from_file(ct.as_ptr(), mp) })
                .with_context(|| format!("llama.cpp could not load {}", text_model.display()))?;
            // SAFETY: valid model.
            let n_embd = unsafe { sys::llama_model_n_embd_inp(model.as_ptr()) }.max(0) as usize;
            // SAFETY: the callback is a 'static fn; user data unused.
            unsafe { sys::mtmd_log_set(Some(clip_log), std::ptr::null_mut()) };
            if let Ok(mut l) = CLIP_LOG.lock() {
                l.clear();
            }
            // SAFETY: plain struct of defaults (its marker is a static string).
            let mut p = unsafe { sys::mtmd_context_params_default() };
            p.use_gpu = false;
            p.print_timings = false;
            p.n_threads = threads.max(1) as i32;
            p.flash_attn_type = if flash_attn { sys::LLAMA_FLASH_ATTN_TYPE_ENABLED } else { sys::LLAMA_FLASH_ATTN_TYPE_DISABLED };
            p.warmup = true; // reserves the compute graph and logs the flash-attention decision
            // SAFETY: `cm` is NUL-terminated, `model` valid; mtmd catches its C++ exceptions and
            // returns null on failure.
            let ctx = unsafe { sys::mtmd_init_from_file(cm.as_ptr(), model.as_ptr(), p) };
            let Some(ctx) = NonNull::new(ctx) else {
                // SAFETY: loaded above, not shared.
                unsafe { sys::llama_model_free(model.as_ptr()) };
                bail!(
                    "llama.cpp's clip loader rejected {} (with text model {}, n_embd {n_embd}): {}",
                    mmproj.display(),
                    text_model.display(),
                    log_tail(6)
                );
            };
            let log = CLIP_LOG.lock().map(|l| l.clone()).unwrap_or_default();
            let fa = log.lines().rev().find(|l| l.contains("flash attention is")).map(|l| l.contains("enabled")).unwrap_or(flash_attn);
            Ok(ClipEncoder { model, ctx, n_embd, threads: threads.max(1), flash_attn: fa })
        }

        /// mtmd's preprocessing of one RGB image (for a 448×448 image: one unsliced tile).
        pub fn prepare(&self, img: &image::RgbImage) -> Result<ClipImage> {
            let (w, h) = img.dimensions();
            // SAFETY: `img` holds w·h·3 bytes; mtmd copies them.
            let bmp = unsafe { sys::mtmd_bitmap_init(w, h, img.as_raw().as_ptr()) };
            ensure!(!bmp.is_null(), "mtmd could not take a {w}×{h} bitmap");
            // SAFETY: no arguments.
            let chunks = NonNull::new(unsafe { sys::mtmd_input_chunks_init() }).context("mtmd_input_chunks_init failed")?;
            let mut out = ClipImage { chunks, index: usize::MAX, n_tokens: 0 };
            // SAFETY: static NUL-terminated marker string.
            let marker = unsafe { CStr::from_ptr(sys::mtmd_default_marker()) };
            let text = sys::mtmd_input_text { text: marker.as_ptr(), text_len: marker.to_bytes().len(), add_special: false, parse_special: true };
            let bitmaps = [bmp as *const sys::mtmd_bitmap];
            // SAFETY: ctx and chunks valid; `text` and `bitmaps` outlive the call; the bitmap is
            // freed right after (mtmd_tokenize copies what it needs).
            let rc = unsafe {
                let rc = sys::mtmd_tokenize(self.ctx.as_ptr(), chunks.as_ptr(), &text, bitmaps.as_ptr(), 1);
                sys::mtmd_bitmap_free(bmp);
                rc
            };
            ensure!(rc == 0, "mtmd_tokenize failed ({rc}): {}", log_tail(4));
            // SAFETY: valid chunks; indices below size.
            unsafe {
                for i in 0..sys::mtmd_input_chunks_size(chunks.as_ptr()) {
                    let c = sys::mtmd_input_chunks_get(chunks.as_ptr(), i);
                    if sys::mtmd_input_chunk_get_type(c) == sys::MTMD_INPUT_CHUNK_TYPE_IMAGE {
                        ensure!(out.index == usize::MAX, "mtmd split the {w}×{h} image into several image chunks");
                        out.index = i;
                        out.n_tokens = sys::mtmd_input_chunk_get_n_tokens(c);
                    }
                }
            }
            ensure!(out.index != usize::MAX, "mtmd produced no image chunk for the {w}×{h} image");
            Ok(out)
        }

        /// Runs clip's encoder on the prepared image (the timed part).
        pub fn encode(&mut self, img: &ClipImage) -> Result<()> {
            // SAFETY: ctx valid; `img.index` was checked against the chunk count.
            let rc = unsafe {
                let c = sys::mtmd_input_chunks_get(img.chunks.as_ptr(), img.index);
                sys::mtmd_encode_chunk(self.ctx.as_ptr(), c)
            };
            ensure!(rc == 0, "mtmd_encode_chunk failed ({rc}): {}", log_tail(4));
            Ok(())
        }

        /// The embeddings of the last [`Self::encode`], `[img.n_tokens, n_embd]` row-major.
        pub fn output(&mut self, img: &ClipImage) -> Result<Vec<f32>> {
            // SAFETY: ctx valid; after a successful encode mtmd holds n_tokens·n_embd floats.
            let p = unsafe { sys::mtmd_get_output_embd(self.ctx.as_ptr()) };
            ensure!(!p.is_null(), "mtmd has no output embeddings");
            // SAFETY: see above; copied out before the next encode overwrites them.
            Ok(unsafe { std::slice::from_raw_parts(p, img.n_tokens * self.n_embd) }.to_vec())
        }
    }

    impl Drop for ClipImage {
        fn drop(&mut self) {
            // SAFETY: owned, freed once.
            unsafe { sys::mtmd_input_chunks_free(self.chunks.as_ptr()) };
        }
    }

    impl Drop for ClipEncoder {
        fn drop(&mut self) {
            // SAFETY: owned, freed once; the mtmd context before the model it points to.
            unsafe {
                sys::mtmd_free(self.ctx.as_ptr());
                sys::llama_model_free(self.model.as_ptr());
            }
        }
    }

    /// What to run.
    #[derive(Clone, Debug)]
    pub struct ClipBenchOptions {
        pub mmproj: PathBuf,
        /// A text GGUF whose width equals the projector output (`clip.vision.projection_dim`).
        pub text_model: PathBuf,
        /// Threads for both encoders (0 = all cores).
        pub threads: usize,
        /// Timed runs of each side after one untimed warm-up each.
        pub runs: usize,
        /// Clip's flash attention (what its AUTO mode picks on CPU: on).
        pub flash_attn: bool,
        /// Image to encode (resized to the tile size if needed); None = [`synthetic_image`].
        pub image: Option<PathBuf>,
        /// Also run clip once on a position-rotated copy (written next to `scratch_dir`) to show
        /// the CLS-order offset is the whole difference.
        pub pos_control: bool,
        /// Where the control copy goes (deleted afterwards); None = the system temp dir.
        pub scratch_dir: Option<PathBuf>,
        /// Show clip's and llama.cpp's log.
        pub verbose: bool,
    }

    /// The figures; ratio = clip time / our time (> 1: ours is faster).
    #[derive(Clone, Debug, Serialize)]
    pub struct ClipReport {
        pub mmproj: String,
        pub text_model: String,
        pub image: String,
        pub threads: usize,
        pub runs: usize,
        pub clip_flash_attn: bool,
        pub encoder_isa: String,
        /// Our encoder's arithmetic as resolved for this file and CPU ("f32 (Avx2)", "int8 (…)").
        pub encoder_math: String,
        pub n_tokens: usize,
        pub n_embd: usize,
        pub clip_wall_s_median: f64,
        pub clip_cpu_s_median: f64,
        pub ours_wall_s_median: f64,
        pub ours_cpu_s_median: f64,
        pub ratio_wall: f64,
        pub ratio_cpu: f64,
        /// Clip on the normal mmproj vs ours (CLS-order offset included).
        pub agreement: Agreement,
        /// Clip on the position-rotated control copy vs ours (None unless `pos_control`).
        pub agreement_pos_control: Option<Agreement>,
        pub load_average: String,
    }

    /// The tile both encoders see: the image (or the synthetic one) at the tile size.
    fn tile(o: &ClipBenchOptions, size: u32) -> Result<(image::RgbImage, String)> {
        match &o.image {
            None => Ok((synthetic_image(size), format!("synthetic {size}×{size}"))),
            Some(p) => {
                let img = h2ovl_runtime::preprocess::load_image(p, h2ovl_runtime::preprocess::PIL_MAX_PIXELS)?;
                let img = if img.dimensions() == (size, size) { img } else { h2ovl_runtime::preprocess::resize_bicubic(&img, size, size) };
                Ok((img, format!("{} (at {size}×{size})", p.display())))
            }
        }
    }

    pub fn run(o: &ClipBenchOptions) -> Result<ClipReport> {
        ensure!(o.runs >= 1, "--runs must be at least 1");
        let threads = if o.threads > 0 { o.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let ours = VisionModel::load(&o.mmproj)?;
        let cfg = ours.config().clone();
        let mut clip = ClipEncoder::load(&o.mmproj, &o.text_model, threads, o.flash_attn, o.verbose)?;
        ensure!(
            clip.n_embd == cfg.projection_dim,
            "{}: width {} differs from the projector output {} of {}",
            o.text_model.display(),
            clip.n_embd,
            cfg.projection_dim,
            o.mmproj.display()
        );
        let size = cfg.image_size as u32;
        let (img, image_desc) = tile(o, size)?;
        let mut px = vec![0f32; 3 * cfg.image_size * cfg.image_size];
        h2ovl_runtime::preprocess::normalize::normalize_tile(&img, cfg.image_mean, cfg.image_std, &mut px);
        let prepared = clip.prepare(&img)?;
        ensure!(prepared.n_tokens == cfg.tokens_per_tile(), "clip made {} image tokens of one {size}² tile, we make {}", prepared.n_tokens, cfg.tokens_per_tile());

        // Untimed warm-ups (page the weights in, allocate buffers); keep both outputs.
        clip.encode(&prepared)?;
        let clip_out = clip.output(&prepared)?;
        let our_out = ours.encode(&px, 1, threads)?;
        ensure!(clip_out.iter().all(|v| v.is_finite()), "clip produced non-finite embeddings");
        let agree = agreement(&clip_out, &our_out, cfg.projection_dim)?;

        let (mut cw, mut cc, mut ow, mut oc) = (vec![], vec![], vec![], vec![]);
        for i in 0..o.runs {
            for side in [i % 2, 1 - i % 2] {
                if side == 0 {
                    let (r, w, c) = super::super::timed(|| clip.encode(&prepared));
                    r?;
                    cw.push(w);
                    cc.push(c);
                } else {
                    let (r, w, c) = super::super::timed(|| ours.encode(&px, 1, threads));
                    std::hint::black_box(r?);
                    ow.push(w);
                    oc.push(c);
                }
            }
        }
        let flash_attn = clip.flash_attn;
        drop(clip);

        let agreement_pos_control = if o.pos_control {
            let dir = o.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
            let ctl = dir.join(format!("h2ovl-clip-poscontrol-{}.gguf", std::process::id()));
            struct Remove<'a>(&'a Path);
            impl Drop for Remove<'_> {
                fn drop(&mut self) {
                    let _ = std::fs::remove_file(self.0);
                }
            }
            let _guard = Remove(&ctl);
            write_position_control(&o.mmproj, &ctl)?;
            let mut c2 = ClipEncoder::load(&ctl, &o.text_model, threads, o.flash_attn, o.verbose)?;
            let p2 = c2.prepare(&img)?;
            c2.encode(&p2)?;
            Some(agreement(&c2.output(&p2)?, &our_out, cfg.projection_dim)?)
        } else {
            None
        };

        let med = super::super::median;
        Ok(ClipReport {
            mmproj: o.mmproj.display().to_string(),
            text_model: o.text_model.display().to_string(),
            image: image_desc,
            threads,
            runs: o.runs,
            clip_flash_attn: flash_attn,
            encoder_isa: format!("{:?}", h2ovl_runtime::vision::kernels::isa()),
            encoder_math: ours.resolve_math(h2ovl_runtime::vision::VisionMath::Auto)?.describe(),
            n_tokens: prepared.n_tokens,
            n_embd: cfg.projection_dim,
            clip_wall_s_median: med(&cw),
            clip_cpu_s_median: med(&cc),
            ours_wall_s_median: med(&ow),
            ours_cpu_s_median: med(&oc),
            ratio_wall: med(&cw) / med(&ow),
            ratio_cpu: med(&cc) / med(&oc),
            agreement: agree,
            agreement_pos_control,
            load_average: super::super::load_average(),
        })
    }

    impl std::fmt::Display for ClipReport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            writeln!(f, "clip bench: {} with text model {}", self.mmproj, self.text_model)?;
            writeln!(
                f,
                "one tile ({}), {} threads, {} runs each (alternating order), clip flash attention {}, our math {}, load {}",
                self.image,
                self.threads,
                self.runs,
                if self.clip_flash_attn { "on" } else { "off" },
                self.encoder_math,
                self.load_average
            )?;
            writeln!(f, "  llama.cpp clip: wall {:.3} s/tile, CPU {:.2} core-s/tile (median)", self.clip_wall_s_median, self.clip_cpu_s_median)?;
            writeln!(f, "  ours:           wall {:.3} s/tile, CPU {:.2} core-s/tile (median)", self.ours_wall_s_median, self.ours_cpu_s_median)?;
            writeln!(f, "  ratio clip/ours: wall {:.2}x, CPU {:.2}x (> 1: ours faster)", self.ratio_wall, self.ratio_cpu)?;
            let a = &self.agreement;
            write!(
                f,
                "  embeddings [{}×{}], clip vs ours: per-token cosine mean {:.5}, min {:.5} (token {}), max|Δ| {:.3e} (|ours| ≤ {:.3})",
                a.n_tokens, a.width, a.cosine_mean, a.cosine_min, a.cosine_min_token, a.max_abs_diff, a.ref_abs_max
            )?;
            if let Some(c) = &self.agreement_pos_control {
                write!(
                    f,
                    "\n  clip on the position-rotated control copy vs ours: cosine mean {:.6}, min {:.6}, max|Δ| {:.3e} \
                     (clip's CLS-after-patches order shifts every position row by one; rotated, it computes HF's function)",
                    c.cosine_mean, c.cosine_min, c.max_abs_diff
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_the_cls_row_last() {
        // 4 rows of width 2: CLS, p0, p1, p2 → p0, p1, p2, CLS.
        let mut r = vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
        rotate_cls_row_last(&mut r, 2);
        assert_eq!(r, vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 0.0, 0.5]);
    }

    #[test]
    fn agreement_of_equal_scaled_and_orthogonal_rows() {
        let a = [1.0f32, 0.0, 0.0, 2.0];
        let same = agreement(&a, &a, 2).unwrap();
        assert_eq!((same.cosine_mean, same.cosine_min, same.max_abs_diff), (1.0, 1.0, 0.0));
        let b = [2.0f32, 0.0, 1.0, 0.0];
        let g = agreement(&a, &b, 2).unwrap();
        assert!((g.cosine_mean - 0.5).abs() < 1e-12 && g.cosine_min.abs() < 1e-12 && g.cosine_min_token == 1);
        assert_eq!((g.max_abs_diff, g.ref_abs_max), (2.0, 2.0));
        assert!(agreement(&a, &b[..2], 2).is_err());
    }

    /// The control copy differs from the source only in the position rows, rotated by one.
    #[test]
    fn position_control_rotates_only_the_position_rows() {
        let dir = tempfile::tempdir().unwrap();
        let out = h2ovl_convert::convert(&h2ovl_convert::ConvertOptions {
            input: Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/checkpoints/tiny"),
            outdir: dir.path().to_path_buf(),
            quant: h2ovl_convert::LlmQuant::F32,
            vision_quant: h2ovl_convert::VisionQuant::F32,
            quiet: true,
            threads: Some(2),
        })
        .unwrap();
        let ctl = dir.path().join("control.gguf");
        write_position_control(&out.vision, &ctl).unwrap();
        let (a, b) = (std::fs::read(&out.vision).unwrap(), std::fs::read(&ctl).unwrap());
        assert_eq!(a.len(), b.len());
        let (off, n, _) = tensor_location(&out.vision, POSITION_TENSOR).unwrap();
        let r = off as usize..off as usize + n;
        assert_eq!(a[..r.start], b[..r.start]);
        assert_eq!(a[r.end..], b[r.end..]);
        let row = 64 * 4; // tiny: hidden 64, f32
        assert_eq!(b[r.start..r.end - row], a[r.start + row..r.end]);
        assert_eq!(b[r.end - row..r.end], a[r.start..r.start + row]);
        assert!(write_position_control(&dir.path().join("missing.gguf"), &ctl).is_err());
    }
}
