//! Acceptance test of the LLM GGUF: stock llama.cpp (the copy vendored by llama-cpp-sys-2) loads the
//! converted golden tiny checkpoints at every preset; its tokenization (parse_special, no BOS) of
//! each golden prompt equals the reference `input_ids`; and with `--quant f32` its logits match the
//! reference within the golden README's 5e-3 and the greedy continuation is identical — for the
//! text-only case (Llama) and, feeding the reference image embeddings, for the tiny-2b MSAC case
//! (Mistral).
//!
//! llama.cpp is driven through llama-cpp-sys-2's raw API behind a small wrapper: this crate depends
//! on the sys crate only, and image embeddings cannot go through llama-cpp-2's safe batch anyway.
use h2ovl_convert::{ConvertOptions, LlmQuant, VisionQuant};
use llama_cpp_sys_2 as sys;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Golden README: prompt/gen logits, max abs diff.
const LOGIT_TOL: f32 = 5e-3;
const IMG_CONTEXT: &str = "<IMG_CONTEXT>";

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

// ---------------------------------------------------------------------------------------------
// A minimal safe wrapper over the llama.cpp C API.

unsafe extern "C" fn quiet_log(_: sys::ggml_log_level, _: *const std::os::raw::c_char, _: *mut std::os::raw::c_void) {}

/// llama.cpp's backend may be initialised once per process: every test goes through this.
/// ggml is built with run-time-loaded CPU variants: the runtime's loader registers the best one first.
fn backend() {
    static INIT: OnceLock<()> = OnceLock::new();
    h2ovl_runtime::llm::cpu_backend::ensure_loaded().expect("llama.cpp CPU backend");
    INIT.get_or_init(|| unsafe {
        sys::llama_log_set(Some(quiet_log), std::ptr::null_mut());
        sys::llama_backend_init();
    });
}

struct Model(*mut sys::llama_model);
// SAFETY: a llama_model is read-only after loading; llama.cpp allows contexts on several threads.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    fn load(path: &Path) -> Model {
        backend();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let m = unsafe { sys::llama_model_load_from_file(c.as_ptr(), sys::llama_model_default_params()) };
        assert!(!m.is_null(), "llama.cpp failed to load {}", path.display());
        Model(m)
    }

    /// llama.cpp's end-of-generation set membership.
    fn is_eog(&self, id: i32) -> bool {
        unsafe { sys::llama_vocab_is_eog(sys::llama_model_get_vocab(self.0), id) }
    }

    fn bos_eos(&self) -> (i32, i32) {
        let v = unsafe { sys::llama_model_get_vocab(self.0) };
        unsafe { (sys::llama_vocab_bos(v), sys::llama_vocab_eos(v)) }
    }

    fn n_vocab(&self) -> usize {
        unsafe { sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(self.0)) as usize }
    }

    /// llama.cpp's tokenizer: add_special = false (no BOS), parse_special = true.
    fn tokenize(&self, text: &str) -> Vec<i64> {
        let vocab = unsafe { sys::llama_model_get_vocab(self.0) };
        let mut out = vec![0i32; text.len() + 8];
        let n = unsafe {
            sys::llama_tokenize(vocab, text.as_ptr().cast(), text.len() as i32, out.as_mut_ptr(), out.len() as i32, false, true)
        };
        assert!(n >= 0, "tokenize: buffer too small ({n})");
        out.truncate(n as usize);
        out.into_iter().map(i64::from).collect()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::llama_model_free(self.0) }
    }
}

/// One sequence, f32 KV cache and no flash attention, so the f32 model is as exact as ggml allows.
struct Ctx<'m> {
    ctx: *mut sys::llama_context,
    model: &'m Model,
    pos: i32,
}

/// One decode input row.
enum Row<'a> {
    Token(i64),
    Embd(&'a [f32]),
}

impl<'m> Ctx<'m> {
    fn new(model: &'m Model, n_ctx: u32) -> Self {
        let mut p = unsafe { sys::llama_context_default_params() };
        p.n_ctx = n_ctx;
        p.n_batch = n_ctx;
        p.n_ubatch = 512;
        p.n_threads = 2;
        p.n_threads_batch = 2;
        p.type_k = sys::GGML_TYPE_F32;
        p.type_v = sys::GGML_TYPE_F32;
        p.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
        let ctx = unsafe { sys::llama_init_from_model(model.0, p) };
        assert!(!ctx.is_null(), "llama_init_from_model failed");
        Ctx { ctx, model, pos: 0 }
    }

    /// Decodes a run of rows of one kind (llama_batch holds tokens or embeddings, not both) and
    /// returns the logits of the rows flagged in `want`.
    fn decode(&mut self, rows: &[Row], want: &[bool]) -> Vec<Vec<f32>> {
        let n = rows.len();
        let embd_dim = match rows.first() {
            Some(Row::Embd(e)) => e.len(),
            _ => 0,
        };
        let n_vocab = self.model.n_vocab();
        let mut out = Vec::new();
        unsafe {
            let b = sys::llama_batch_init(n as i32, embd_dim as i32, 1);
            for (i, r) in rows.iter().enumerate() {
                match r {
                    Row::Token(t) => *b.token.add(i) = *t as i32,
                    Row::Embd(e) => {
                        assert_eq!(e.len(), embd_dim);
                        std::ptr::copy_nonoverlapping(e.as_ptr(), b.embd.add(i * embd_dim), embd_dim)
                    }
                }
                *b.pos.add(i) = self.pos + i as i32;
                *b.n_seq_id.add(i) = 1;
                *(*b.seq_id.add(i)) = 0;
                *b.logits.add(i) = want[i] as i8;
            }
            let mut b = b;
            b.n_tokens = n as i32;
            let rc = sys::llama_decode(self.ctx, b);
            assert_eq!(rc, 0, "llama_decode failed ({rc})");
            for (i, &w) in want.iter().enumerate() {
                if w {
                    let p = sys::llama_get_logits_ith(self.ctx, i as i32);
                    assert!(!p.is_null());
                    out.push(std::slice::from_raw_parts(p, n_vocab).to_vec());
                }
            }
            sys::llama_batch_free(b);
        }
        self.pos += n as i32;
        out
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        unsafe { sys::llama_free(self.ctx) }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// Converted LLM GGUFs, once per (checkpoint, preset) for the whole test binary.
fn converted(ckpt: &str, q: LlmQuant) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = dir.path().join(format!("{ckpt}-{}", q.label()));
    let path = out.join(format!("{ckpt}-{}.gguf", q.label()));
    if !path.exists() {
        let r = h2ovl_convert::convert(&ConvertOptions {
            input: golden().join("checkpoints").join(ckpt),
            outdir: out.clone(),
            quant: q,
            vision_quant: VisionQuant::F16,
            quiet: true,
            threads: None,
        })
        .unwrap_or_else(|e| panic!("converting {ckpt} at {}: {e:#}", q.label()));
        assert_eq!(r.llm, path.canonicalize().unwrap());
    }
    path
}

struct Case {
    dir: PathBuf,
    summary: serde_json::Value,
}

impl Case {
    fn load(name: &str) -> Case {
        let dir = golden().join("cases").join(name);
        let summary = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        Case { dir, summary }
    }

    fn checkpoint(&self) -> &str {
        self.summary["checkpoint"].as_str().unwrap().trim_start_matches("checkpoints/")
    }

    /// The exact prompt text: summary's prompt with `<IMG_CONTEXT>` × 256·tiles inserted after each `<img>`.
    fn prompt(&self) -> String {
        let text = self.summary["prompt_text_without_image_tokens"].as_str().unwrap();
        let tiles: Vec<u64> = match self.summary["n_tiles_per_image"].as_array() {
            Some(a) => a.iter().map(|t| t.as_u64().unwrap()).collect(),
            None => Vec::new(),
        };
        let parts: Vec<&str> = text.split("<img>").collect();
        assert_eq!(parts.len(), tiles.len() + 1, "one <img> per image");
        let mut s = parts[0].to_string();
        for (t, part) in tiles.iter().zip(&parts[1..]) {
            s.push_str("<img>");
            s.push_str(&IMG_CONTEXT.repeat(256 * *t as usize));
            s.push_str(part);
        }
        s
    }

    fn ids(&self, file: &str) -> Vec<i64> {
        let (_, b) = read_npy(&self.dir.join(file), "<i8");
        b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn f32s(&self, file: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, b) = read_npy(&self.dir.join(file), "<f4");
        (shape, b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    }
}

/// Minimal .npy reader (v1–3, C order) for the fixtures: (shape, raw little-endian data).
fn read_npy(path: &Path, descr: &str) -> (Vec<usize>, Vec<u8>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
    let (hlen, start) = if b[6] == 1 { (u16::from_le_bytes([b[8], b[9]]) as usize, 10) } else { (u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize, 12) };
    let hdr = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(hdr.contains(&format!("'descr': '{descr}'")) && hdr.contains("'fortran_order': False"), "{}: {hdr}", path.display());
    let sh = &hdr[hdr.find("'shape': (").unwrap() + 10..];
    let shape = sh[..sh.find(')').unwrap()].split(',').filter_map(|d| d.trim().parse().ok()).collect();
    (shape, b[start + hlen..].to_vec())
}

const CASES: [&str; 4] = ["tiny_single_640x480", "tiny2b_msac_300x900", "tiny_multi_640x480_448x448", "tiny_text_only"];

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Lowest index wins ties (the reference's rule).
fn argmax(v: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as i64
}

/// Teacher-forced greedy: after the prompt, feed the reference ids one by one; each step's logits
/// must match `gen_logits` and their argmax must be the reference id.
fn check_generation(ctx: &mut Ctx, case: &Case, last_prompt_logits: Vec<f32>) -> f32 {
    let gen_ids = case.ids("gen_ids.npy");
    let (shape, gen_logits) = case.f32s("gen_logits.npy");
    let nv = shape[1];
    let mut logits = last_prompt_logits;
    let mut worst = 0f32;
    for (k, &id) in gen_ids.iter().enumerate() {
        let d = max_abs_diff(&logits, &gen_logits[k * nv..(k + 1) * nv]);
        assert!(d <= LOGIT_TOL, "gen step {k}: max |Δlogit| {d}");
        assert_eq!(argmax(&logits), id, "greedy id at step {k}");
        worst = worst.max(d);
        logits = ctx.decode(&[Row::Token(id)], &[true]).pop().unwrap();
    }
    worst
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn every_preset_loads_and_tokenizes_the_golden_prompts() {
    let cases: Vec<Case> = CASES.iter().map(|c| Case::load(c)).collect();
    let text = Case::load("tiny_text_only");
    for ckpt in ["tiny", "tiny-2b"] {
        for q in [LlmQuant::F32, LlmQuant::Q8_0, LlmQuant::Q4KM, LlmQuant::Q4_0] {
            let model = Model::load(&converted(ckpt, q));
            assert_eq!(model.n_vocab(), 32010);
            assert_eq!(model.bos_eos(), (1, 32009));
            // generation_config.json stops on [2, 32009]: both are end-of-generation for llama.cpp.
            assert!(model.is_eog(32009) && model.is_eog(2) && !model.is_eog(32002));
            for case in cases.iter().filter(|c| c.checkpoint() == ckpt || c.checkpoint() == "tiny" && ckpt == "tiny-2b") {
                let got = model.tokenize(&case.prompt());
                let want = case.ids("input_ids.npy");
                assert_eq!(got.len(), want.len(), "{ckpt} {}: token count", case.dir.display());
                assert_eq!(got, want, "{ckpt} {}: ids", case.dir.display());
            }
            // The quantized weights run: the text prompt decodes to finite logits.
            let ids = text.ids("input_ids.npy");
            let mut ctx = Ctx::new(&model, 64);
            let rows: Vec<Row> = ids.iter().map(|&t| Row::Token(t)).collect();
            let mut want = vec![false; rows.len()];
            *want.last_mut().unwrap() = true;
            let logits = ctx.decode(&rows, &want).pop().unwrap();
            assert!(logits.iter().all(|x| x.is_finite()), "{ckpt} {}: non-finite logits", q.label());
        }
    }
}

#[test]
fn f32_text_only_logits_and_greedy_match_reference() {
    let case = Case::load("tiny_text_only");
    let model = Model::load(&converted("tiny", LlmQuant::F32));
    let ids = case.ids("input_ids.npy");
    assert_eq!(model.tokenize(&case.prompt()), ids);
    let (shape, ref_logits) = case.f32s("logits_prompt.npy");
    assert_eq!(shape, vec![ids.len(), 32010]);
    let mut ctx = Ctx::new(&model, 64);
    let rows: Vec<Row> = ids.iter().map(|&t| Row::Token(t)).collect();
    let logits = ctx.decode(&rows, &vec![true; rows.len()]);
    let mut worst = 0f32;
    for (p, l) in logits.iter().enumerate() {
        let d = max_abs_diff(l, &ref_logits[p * 32010..(p + 1) * 32010]);
        assert!(d <= LOGIT_TOL, "prompt position {p}: max |Δlogit| {d}");
        worst = worst.max(d);
    }
    let g = check_generation(&mut ctx, &case, logits.last().unwrap().clone());
    eprintln!("text-only f32: worst |Δlogit| prompt {worst:.2e}, generation {g:.2e}");
}

#[test]
fn f32_2b_msac_case_with_reference_image_embeddings_matches() {
    let case = Case::load("tiny2b_msac_300x900");
    let model = Model::load(&converted("tiny-2b", LlmQuant::F32));
    let ids = case.ids("input_ids.npy");
    let (eshape, embeds) = case.f32s("image_embeds.npy");
    let h = eshape[1];
    let img_ctx = 32002;
    let first = ids.iter().position(|&t| t == img_ctx).unwrap();
    let n_img = ids.iter().filter(|&&t| t == img_ctx).count();
    assert_eq!(n_img, eshape[0]);
    assert!(ids[first..first + n_img].iter().all(|&t| t == img_ctx), "one contiguous image run");
    let sel_pos = case.ids("logits_prompt_pos.npy");
    let (_, sel) = case.f32s("logits_prompt_sel.npy");

    let mut ctx = Ctx::new(&model, 2304);
    let mut got: Vec<(usize, Vec<f32>)> = Vec::new();
    // Three decodes: text before, the image rows, text after (a llama_batch is tokens or embeddings).
    let segments = [(0, first, false), (first, first + n_img, true), (first + n_img, ids.len(), false)];
    for (a, b, is_img) in segments {
        let rows: Vec<Row> = (a..b)
            .map(|p| if is_img { Row::Embd(&embeds[(p - first) * h..(p - first + 1) * h]) } else { Row::Token(ids[p]) })
            .collect();
        let want: Vec<bool> = (a..b).map(|p| sel_pos.contains(&(p as i64)) || p == ids.len() - 1).collect();
        let positions: Vec<usize> = (a..b).filter(|&p| sel_pos.contains(&(p as i64)) || p == ids.len() - 1).collect();
        got.extend(positions.into_iter().zip(ctx.decode(&rows, &want)));
    }
    let mut worst = 0f32;
    for (k, &p) in sel_pos.iter().enumerate() {
        let l = &got.iter().find(|(q, _)| *q == p as usize).unwrap().1;
        let d = max_abs_diff(l, &sel[k * 32010..(k + 1) * 32010]);
        assert!(d <= LOGIT_TOL, "prompt position {p}: max |Δlogit| {d}");
        worst = worst.max(d);
    }
    let last = got.iter().find(|(q, _)| *q == ids.len() - 1).unwrap().1.clone();
    let g = check_generation(&mut ctx, &case, last);
    eprintln!("tiny-2b MSAC f32: worst |Δlogit| prompt {worst:.2e}, generation {g:.2e}");
}

/// Our presets, fallbacks, tensor order and quantizers against llama.cpp's own `llama-quantize`
/// (`llama_model_quantize`) run on our F32 GGUF: tensor infos and data must be byte-identical.
#[test]
fn presets_are_byte_identical_to_llama_quantize() {
    use h2ovl_format::gguf::GgufFile;
    backend();
    let tmp = tempfile::tempdir().unwrap();
    for ckpt in ["tiny", "tiny-2b"] {
        let f32_path = converted(ckpt, LlmQuant::F32);
        for (q, ftype) in [
            (LlmQuant::Q8_0, sys::LLAMA_FTYPE_MOSTLY_Q8_0),
            (LlmQuant::Q4_0, sys::LLAMA_FTYPE_MOSTLY_Q4_0),
            (LlmQuant::Q4KM, sys::LLAMA_FTYPE_MOSTLY_Q4_K_M),
        ] {
            let theirs = tmp.path().join(format!("{ckpt}-{}-llama-quantize.gguf", q.label()));
            let mut p = unsafe { sys::llama_model_quantize_default_params() };
            p.nthread = 2;
            p.ftype = ftype;
            let (a, b) = (std::ffi::CString::new(f32_path.to_str().unwrap()).unwrap(), std::ffi::CString::new(theirs.to_str().unwrap()).unwrap());
            let rc = unsafe { sys::llama_model_quantize(a.as_ptr(), b.as_ptr(), &p) };
            assert_eq!(rc, 0, "llama_model_quantize {ckpt} {}", q.label());
            let ours = GgufFile::open(&converted(ckpt, q)).unwrap();
            let theirs = GgufFile::open(&theirs).unwrap();
            let names = |g: &GgufFile| g.tensors().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&ours), names(&theirs), "{ckpt} {}: tensor order", q.label());
            for t in theirs.tensors() {
                let (a, b) = (ours.tensor(&t.name).unwrap(), theirs.tensor(&t.name).unwrap());
                assert_eq!((a.ty, a.ne), (b.ty, b.ne), "{ckpt} {} {}: type/shape", q.label(), t.name);
                assert!(a.data == b.data, "{ckpt} {} {}: data differs from llama-quantize", q.label(), t.name);
            }
            assert_eq!(ours.get_u32("general.file_type").unwrap(), theirs.get_u32("general.file_type").unwrap());
        }
    }
}

/// A folder with `tokenizer.json` instead of `tokenizer.model` (an SPM-derived byte-fallback BPE,
/// built here from the golden tokenizer.model the way HF's SentencePieceExtractor does: one merge
/// per split of a piece into two pieces, ordered by the piece's score) converts to a vocab that
/// llama.cpp tokenizes exactly like the reference.
#[test]
fn tokenizer_json_vocab_tokenizes_like_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let src = golden().join("checkpoints/tiny");
    let ck = tmp.path().join("tiny-hfjson");
    std::fs::create_dir_all(&ck).unwrap();
    for f in ["config.json", "model.safetensors", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json"] {
        std::fs::copy(src.join(f), ck.join(f)).unwrap();
    }
    let spm = h2ovl_convert::vocab::parse_spm(&std::fs::read(src.join("tokenizer.model")).unwrap()).unwrap();
    let ids: std::collections::HashMap<&str, usize> = spm.pieces.iter().enumerate().map(|(i, p)| (p.piece.as_str(), i)).collect();
    let mut merges: Vec<(f32, usize, &str, &str)> = Vec::new();
    for (id, p) in spm.pieces.iter().enumerate() {
        for (k, _) in p.piece.char_indices().skip(1) {
            let (a, b) = p.piece.split_at(k);
            if ids.contains_key(a) && ids.contains_key(b) {
                merges.push((p.score, id, a, b));
            }
        }
    }
    merges.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let vocab: serde_json::Map<String, serde_json::Value> = spm.pieces.iter().enumerate().map(|(i, p)| (p.piece.clone(), i.into())).collect();
    let added: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&std::fs::read_to_string(src.join("added_tokens.json")).unwrap())
        .unwrap()
        .into_iter()
        .map(|(c, id)| serde_json::json!({"id": id, "content": c, "special": true}))
        .chain(["<unk>", "<s>", "</s>"].iter().enumerate().map(|(i, c)| serde_json::json!({"id": i, "content": c, "special": true})))
        .collect();
    let tj = serde_json::json!({
        "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": vocab,
                  "merges": merges.iter().map(|m| serde_json::json!([m.2, m.3])).collect::<Vec<_>>()},
        "added_tokens": added,
    });
    std::fs::write(ck.join("tokenizer.json"), serde_json::to_vec(&tj).unwrap()).unwrap();
    let out = h2ovl_convert::convert(&ConvertOptions {
        input: ck,
        outdir: tmp.path().join("out"),
        quant: LlmQuant::F32,
        vision_quant: VisionQuant::F32,
        quiet: true,
        threads: None,
    })
    .unwrap();
    let model = Model::load(&out.llm);
    for c in CASES {
        let case = Case::load(c);
        assert_eq!(model.tokenize(&case.prompt()), case.ids("input_ids.npy"), "{c}");
    }
}

/// Full-size check, run by hand after `convert_bench` (see convert/README.md):
/// `H2OVL_LLM_GGUF=/path/model-Q4_K_M.gguf cargo test --release -p h2ovl-quant-tests --test llm_gguf_llama -- --ignored`
#[test]
#[ignore = "needs a full-size converted GGUF (H2OVL_LLM_GGUF)"]
fn full_size_gguf_loads_and_decodes() {
    let path = PathBuf::from(std::env::var("H2OVL_LLM_GGUF").expect("set H2OVL_LLM_GGUF"));
    let model = Model::load(&path);
    let case = Case::load("tiny_text_only");
    let ids = model.tokenize(&case.prompt());
    assert_eq!(ids, case.ids("input_ids.npy"));
    let mut ctx = Ctx::new(&model, 64);
    let rows: Vec<Row> = ids.iter().map(|&t| Row::Token(t)).collect();
    let mut want = vec![false; rows.len()];
    *want.last_mut().unwrap() = true;
    let logits = ctx.decode(&rows, &want).pop().unwrap();
    assert!(logits.iter().all(|x| x.is_finite()));
}
