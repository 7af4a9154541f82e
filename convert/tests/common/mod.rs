//! Helpers shared by the converter's integration tests: the golden tiny checkpoints (in-repo copies)
//! and a minimal safetensors header editor for building broken inputs.
#![allow(dead_code)]
use h2ovl_convert::{ConvertOptions, ConvertOutput, LlmQuant, VisionQuant};
use std::path::{Path, PathBuf};

pub fn golden_ckpt(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/checkpoints").join(name)
}

pub fn convert(input: &Path, outdir: &Path, q: LlmQuant, vq: VisionQuant) -> anyhow::Result<ConvertOutput> {
    h2ovl_convert::convert(&ConvertOptions {
        input: input.to_path_buf(),
        outdir: outdir.to_path_buf(),
        quant: q,
        vision_quant: vq,
        quiet: true,
        threads: None,
    })
}

/// Copies a checkpoint folder (flat) into `dst/<name>`.
pub fn copy_ckpt(src: &Path, dst_root: &Path) -> PathBuf {
    let dst = dst_root.join(src.file_name().unwrap());
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// (header JSON, data section) of a safetensors file.
pub fn read_safetensors(path: &Path) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let hdr: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (hdr.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

pub fn write_safetensors(path: &Path, hdr: &serde_json::Map<String, serde_json::Value>, data: &[u8]) {
    let h = serde_json::to_vec(hdr).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// The tensor's values widened from bf16 (the golden checkpoints are bf16).
pub fn bf16_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let (hdr, data) = read_safetensors(path);
    let e = &hdr[name];
    assert_eq!(e["dtype"], "BF16");
    let shape: Vec<usize> = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let o = e["data_offsets"].as_array().unwrap();
    let (b, en) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
    let vals = data[b..en].chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect();
    (shape, vals)
}

/// Files left in a folder (to prove no partial output).
pub fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}
