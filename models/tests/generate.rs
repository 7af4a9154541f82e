//! End-to-end checks of the checkpoint generator: the generated `tiny` has the golden tiny's exact
//! tensor inventory and metadata files (with different values), `small` matches its spec, the
//! output is reproducible from the seed, and the random init stays in the intended ranges.

use h2ovl_models::safetensors::{read_header, HeaderEntry};
use h2ovl_models::{generate, inventory, GenerateOptions, ModelSpec, Preset};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/checkpoints").join(name)
}

fn gen(preset: Preset, dir: &Path, seed: u64) -> PathBuf {
    let out = dir.join(preset.name());
    let opts = GenerateOptions { seed, ..Default::default() };
    let g = generate(&preset.spec(), &out, &opts).unwrap();
    assert_eq!(g.dir, out);
    out
}

/// name → (dtype, shape)
fn inventory_of(entries: &[HeaderEntry]) -> BTreeMap<String, (String, Vec<usize>)> {
    entries.iter().map(|e| (e.name.clone(), (e.dtype.clone(), e.shape.clone()))).collect()
}

fn tensor_f32(dir: &Path, e: &HeaderEntry) -> Vec<f32> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = &bytes[8 + n + e.begin as usize..8 + n + e.end as usize];
    data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
}

#[test]
fn tiny_matches_golden_inventory_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = gen(Preset::Tiny, tmp.path(), 1);
    let golden = golden_dir("tiny");

    let ours = read_header(&out.join("model.safetensors")).unwrap();
    let theirs = read_header(&golden.join("model.safetensors")).unwrap();
    assert_eq!(ours.len(), 59);
    assert_eq!(inventory_of(&ours), inventory_of(&theirs));
    // Same storage order and offsets too (both sorted by name, back to back).
    assert_eq!(ours, theirs);
    // ...but our own random values.
    let a = std::fs::read(out.join("model.safetensors")).unwrap();
    let b = std::fs::read(golden.join("model.safetensors")).unwrap();
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);

    for f in ["tokenizer.model", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(golden.join(f)).unwrap(), "{f}");
    }
    let cfg = |d: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap() };
    assert_eq!(cfg(&out), cfg(&golden));
    assert!(std::fs::read_to_string(out.join("SYNTHETIC.txt")).unwrap().contains("--preset tiny --seed 1"));
}

#[test]
fn tiny_2b_matches_golden_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = gen(Preset::Tiny2b, tmp.path(), 2);
    let ours = read_header(&out.join("model.safetensors")).unwrap();
    let theirs = read_header(&golden_dir("tiny-2b").join("model.safetensors")).unwrap();
    assert_eq!(ours.len(), 82);
    assert_eq!(ours, theirs);
}

#[test]
fn small_matches_its_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let out = gen(Preset::Small, tmp.path(), 0);
    let spec: ModelSpec = Preset::Small.spec();
    let entries = read_header(&out.join("model.safetensors")).unwrap();
    let want: BTreeMap<_, _> =
        inventory::tensors(&spec).into_iter().map(|t| (t.name, ("BF16".to_string(), t.shape))).collect();
    assert_eq!(inventory_of(&entries), want);
    // vision 4 + 14·L, projector 6, llm 1 + 9·L + 2
    assert_eq!(entries.len(), 4 + 14 * spec.vision.layers + 6 + 3 + 9 * spec.llm.layers);
    let total: u64 = entries.iter().map(|e| e.end - e.begin).sum();
    assert_eq!(total, spec.bf16_bytes());

    // The init lands where the inventory says (bf16-rounded): spot-check a few kinds.
    let get = |name: &str| tensor_f32(&out, entries.iter().find(|e| e.name == name).unwrap());
    let stats = |v: &[f32]| {
        let n = v.len() as f64;
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (m, (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt())
    };
    let (m, s) = stats(&get("language_model.model.layers.0.mlp.up_proj.weight"));
    assert!(m.abs() < 1e-3 && (s - 1.0 / 16.0).abs() < 1e-3, "up_proj mean {m} std {s}");
    let (m, _) = stats(&get("vision_model.encoder.layers.1.ls2"));
    assert!((m - 0.1).abs() < 0.01, "ls2 mean {m}");
    let (m, s) = stats(&get("language_model.model.norm.weight"));
    assert!((m - 1.0).abs() < 0.01 && s < 0.05, "norm mean {m} std {s}");
    let all = std::fs::read(out.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(all[..8].try_into().unwrap()) as usize;
    assert!(all[8 + n..].chunks_exact(2).all(|b| half::bf16::from_le_bytes([b[0], b[1]]).is_finite()));
}

#[test]
fn same_seed_same_bytes_any_thread_count_other_seed_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = gen(Preset::Tiny, &tmp.path().join("a"), 7);
    let b = gen(Preset::Tiny, &tmp.path().join("b"), 7);
    let c = gen(Preset::Tiny, &tmp.path().join("c"), 8);
    // The bytes do not depend on how many threads fill the blocks.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let d = one.install(|| gen(Preset::Tiny, &tmp.path().join("d"), 7));
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_eq!(read(&a), read(&d));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn refuses_to_clobber_and_leaves_no_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"x").unwrap();
    let spec = Preset::Tiny.spec();
    let err = generate(&spec, &out, &GenerateOptions::default()).unwrap_err().to_string();
    assert!(err.contains("already exists") && err.contains("ck"), "{err}");
    assert!(out.join("keep.txt").exists());

    // --force replaces it atomically; only the final folder remains in the parent.
    generate(&spec, &out, &GenerateOptions { force: true, ..Default::default() }).unwrap();
    assert!(!out.join("keep.txt").exists() && out.join("model.safetensors").exists());
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["ck"]);
}
