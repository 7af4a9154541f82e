//! Replays the fuzzers' corpora on the stable toolchain: every file under `fuzz/seeds/<target>/`
//! (the hand-made starting inputs), `fuzz/corpus/<target>/` (what libFuzzer kept, minimized)
//! and `fuzz/regressions/<target>/` (inputs that once crashed, each fixed) goes through the same
//! function the libFuzzer target calls (`fuzz/src/entries.rs`). A panic names the file.
#[path = "../fuzz/src/entries.rs"]
mod entries;

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["seeds", "corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        let mut files: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
        files.sort();
        for p in files {
            let data = std::fs::read(&p).unwrap();
            if std::panic::catch_unwind(|| f(&data)).is_err() {
                panic!("fuzz input {} makes {target} panic", p.display());
            }
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_and_regression_input_is_handled() {
    let mut counts = Vec::new();
    for &(name, f) in entries::TARGETS {
        let n = replay(name, f);
        assert!(n > 0, "fuzz/seeds/{name} is empty: the seeds are missing");
        counts.push(format!("{name} {n}"));
    }
    eprintln!("replayed: {}", counts.join(", "));
}

/// Writes the seed corpora (`fuzz/seeds/<target>/seed-*`) from the golden fixtures and small
/// files built here; rerun after a format change with
/// `cargo test --release --test fuzz_replay -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    seeds::write_all(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"));
}

mod seeds {
    use std::path::Path;

    fn put(dir: &Path, target: &str, name: &str, data: &[u8]) {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), data).unwrap();
    }

    fn repo(p: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    pub fn write_all(dir: &Path) {
        gguf(dir);
        safetensors(dir);
        tokenizers(dir);
        json(dir);
        images(dir);
        pdfs(dir);
        requests(dir);
    }

    /// A micro H2OVL checkpoint (the golden `tiny` family at 28-pixel tiles and width 8)
    /// converted by our own pipeline: F32 and Q8_0 mmproj files that load all the way.
    fn gguf(dir: &Path) {
        let tmp = tempfile::tempdir().unwrap();
        let mut spec = h2ovl_models::family::tiny();
        spec.vision.hidden = 8;
        spec.vision.heads = 2;
        spec.vision.intermediate = 16;
        spec.vision.layers = 1;
        spec.vision.image_size = 28;
        let ck = tmp.path().join("micro");
        h2ovl_models::generate::generate(&spec, &ck, &Default::default()).unwrap();
        let mut f32_file = Vec::new();
        for (vq, name) in [(h2ovl_convert::VisionQuant::F32, "mmproj-f32"), (h2ovl_convert::VisionQuant::Q8_0, "mmproj-q8_0")] {
            let out = tmp.path().join(name);
            let o = h2ovl_convert::ConvertOptions {
                input: ck.clone(),
                outdir: out.clone(),
                quant: h2ovl_convert::LlmQuant::F32,
                vision_quant: vq,
                quiet: true,
                threads: Some(1),
            };
            let r = h2ovl_convert::convert(&o).unwrap();
            // The seed must reach the deepest check (every encoder tensor's shape), or the
            // fuzzer starts from a file that fails early.
            let g = h2ovl_format::gguf::GgufFile::open(&r.vision).unwrap();
            let cfg = h2ovl_runtime::vision::config::VisionConfig::from_gguf(&g).unwrap();
            h2ovl_runtime::vision::weights::VisionWeights::load(&cfg, &h2ovl_runtime::vision::weights::GgufSource(&g)).unwrap();
            let bytes = std::fs::read(&r.vision).unwrap();
            put(dir, "gguf", name, &bytes);
            if vq == h2ovl_convert::VisionQuant::F32 {
                f32_file = bytes;
            }
        }
        // Header-only variant: the reader's checks on metadata without the data section.
        put(dir, "gguf", "mmproj-f32-first-2k", &f32_file[..2048.min(f32_file.len())]);
        // The micro checkpoint's safetensors header (whole file is larger than a seed should be).
        let st = std::fs::read(ck.join("model.safetensors")).unwrap();
        let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
        put(dir, "safetensors", "micro-header-only", &st[..8 + n]);
    }

    /// Small safetensors files (three dtypes) and sharded indexes.
    fn safetensors(dir: &Path) {
        let hdr = br#"{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},"c":{"dtype":"F16","shape":[],"data_offsets":[20,22]}}"#;
        let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(hdr);
        f.extend((0..22u8).collect::<Vec<u8>>());
        put(dir, "safetensors", "three-dtypes", &f);
        put(
            dir,
            "safetensors",
            "index",
            br#"{"metadata":{"total_size":44},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
        );
    }

    /// The first 300 pieces of the golden tokenizer.model (protobuf fields cut at a field
    /// boundary) with its normalizer spec, and a tokenizer.json built from the same pieces.
    fn tokenizers(dir: &Path) {
        let b = std::fs::read(repo("quant-tests/fixtures/golden/checkpoints/tiny/tokenizer.model")).unwrap();
        let (mut pos, mut pieces, mut out) = (0usize, 0usize, Vec::new());
        let varint = |b: &[u8], p: &mut usize| {
            let (mut v, mut s) = (0u64, 0);
            loop {
                let x = b[*p];
                *p += 1;
                v |= ((x & 0x7f) as u64) << s;
                s += 7;
                if x < 0x80 {
                    return v;
                }
            }
        };
        while pos < b.len() {
            let start = pos;
            let key = varint(&b, &mut pos);
            assert_eq!(key & 7, 2, "top-level ModelProto fields are length-delimited");
            let n = varint(&b, &mut pos) as usize;
            pos += n;
            if key >> 3 != 1 || pieces < 300 {
                out.extend_from_slice(&b[start..pos]);
            }
            pieces += (key >> 3 == 1) as usize;
        }
        put(dir, "spm", "golden-300-pieces", &out);
        let m = h2ovl_convert::vocab::parse_spm(&out).unwrap();
        let vocab: serde_json::Map<String, serde_json::Value> =
            m.pieces.iter().enumerate().map(|(i, p)| (p.piece.clone(), i.into())).collect();
        let tj = serde_json::json!({
            "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 300, "content": "<|end|>", "special": true}],
            "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": vocab, "merges": ["▁ t", "e r", ["i", "n"]]}
        });
        put(dir, "tokenizer_json", "golden-300", serde_json::to_string(&tj).unwrap().as_bytes());
    }

    /// Schemas and prompt-guide templates, each followed by an answer line to scan.
    fn json(dir: &Path) {
        let schemas = [
            (r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#, r#"{"name": "Ann \"A\" \u00e9", "age": 42}"#),
            (r#"{"type":"object","properties":{"a":{"type":"string","minLength":2,"maxLength":5},"b":{"type":"array","items":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"string"}},"required":["x","y"]},"minItems":1,"maxItems":3},"c":{"enum":["red","green",1,null]},"d":{"type":["null","boolean"]},"e":{"const":"k"}},"required":["b","c"]}"#, r#"{"a":"qq","b":[{"x":1.5e3,"y":"z"}],"c":"green","d":false,"e":"k"}"#),
            (r#"{"type":"object","properties":{"v":{"anyOf":[{"type":"integer"},{"type":"object","properties":{"w":{"type":"boolean"}}}]},"f":{"type":"object"}},"additionalProperties":false}"#, r#"{"v":{"w":true},"f":{"k":[1,{"z":null}]}}"#),
            (r#"{"type":"object"}"#, r#"{"k": [1, {"z": "ab"}, -0.5e-3, true]}"#),
        ];
        for (i, (s, a)) in schemas.iter().enumerate() {
            put(dir, "json_schema", &format!("schema-{i}"), format!("{s}\n{a}").as_bytes());
        }
        let templates = [
            (r#"Extract the fields as JSON: {"name": "", "date_of_birth": "", "address": ""}"#, r#"{"name": "Jo", "date_of_birth": "1990-01-02", "address": "x"}"#),
            (r#"Read the receipt. {"items": [{"description": "", "price": 0}], "total": 0, "date": null}"#, r#"{"items": [{"description": "tea", "price": 2.5}], "total": 2.5, "date": null}"#),
            (r#"Chart → {"title": "", "x_axis": {"label": ""}, "series": [{"name": "", "points": [{"x": "", "y": 0}]}]} please"#, r#"{"title":"t","x_axis":{"label":"l"},"series":[]}"#),
            (r#"Table as [{"col": "", "ok": true}] only"#, r#"[{"col": "a", "ok": false}]"#),
            (r#"No template here {} [] {"unterminated": "#, r#"{}"#),
        ];
        for (i, (p, a)) in templates.iter().enumerate() {
            put(dir, "prompt_template", &format!("template-{i}"), format!("{p}\n{a}").as_bytes());
        }
    }

    fn encode(img: image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
        let mut c = std::io::Cursor::new(Vec::new());
        img.write_to(&mut c, fmt).unwrap();
        c.into_inner()
    }

    /// One small image per decoder we accept, plus 16-bit and odd aspect ratios.
    fn images(dir: &Path) {
        use image::{DynamicImage, ImageFormat as F};
        let rgb = DynamicImage::ImageRgb8(image::RgbImage::from_fn(9, 5, |x, y| image::Rgb([(x * 28) as u8, (y * 50) as u8, 7])));
        for (fmt, name) in [(F::Png, "png"), (F::Jpeg, "jpeg"), (F::Gif, "gif"), (F::Bmp, "bmp"), (F::Tiff, "tiff"), (F::WebP, "webp")] {
            put(dir, "image", name, &encode(rgb.clone(), fmt));
        }
        let g16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(4, 3, |x, y| image::Luma([(x * 9000 + y * 300) as u16])));
        put(dir, "image", "png-grey16", &encode(g16, F::Png));
        let rgba16 = DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(3, 2, |x, _| image::Rgba([x as u16 * 20000, 1, 65535, 30000])));
        put(dir, "image", "png-rgba16", &encode(rgba16, F::Png));
        let wide = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(300, 1, image::Rgb([1, 2, 3])));
        put(dir, "image", "png-300x1", &encode(wide, F::Png));
        let golden = std::fs::read(repo("quant-tests/fixtures/golden/images/square_448x448.jpg")).unwrap();
        put(dir, "image", "golden-square-jpeg", &golden);
    }

    /// The PDF test fixtures (written by quant-tests/scripts/make_test_pdfs.py), the small ones.
    fn pdfs(dir: &Path) {
        for name in ["text", "shapes", "rotated", "two_pages", "encrypted_nopw", "encrypted", "zero_pages", "huge_mediabox", "truncated"] {
            let b = std::fs::read(repo(&format!("runtime/tests/fixtures/pdf/{name}.pdf"))).unwrap();
            put(dir, "pdf", name, &b);
        }
    }

    /// Chat requests as the OpenAI clients send them: text, multi-turn, an image data URL, a
    /// PDF file part, each response_format.
    fn requests(dir: &Path) {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let png = encode(image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(3, 2, image::Rgb([9, 8, 7]))), image::ImageFormat::Png);
        let pdf = std::fs::read(repo("runtime/tests/fixtures/pdf/two_pages.pdf")).unwrap();
        let reqs = [
            serde_json::json!({"model": "h2ovl", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 3, "stop": ["\n"]}),
            serde_json::json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": [{"type": "text", "text": "C <image>"}, {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(&png))}}]}], "stream": true, "stream_options": {"include_usage": true}}),
            serde_json::json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "Read"}, {"type": "file", "file": {"filename": "a.pdf", "file_data": format!("data:application/pdf;base64,{}", b64(&pdf))}}]}], "max_completion_tokens": 4}),
            serde_json::json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}}}}),
            serde_json::json!({"messages": [{"role": "user", "content": "Fill {\"total\": 0, \"date\": \"\"}"}], "response_format": {"type": "json_template"}}),
            serde_json::json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}, "n": 1}),
            serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}),
        ];
        for (i, r) in reqs.iter().enumerate() {
            put(dir, "chat_request", &format!("request-{i}"), serde_json::to_string(r).unwrap().as_bytes());
        }
    }
}
