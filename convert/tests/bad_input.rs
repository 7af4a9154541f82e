//! Broken checkpoints (built in a tempdir from the golden tiny one) must give one clear error that
//! names the problem, and leave no output file (not even a `.partial`).
mod common;
use common::*;
use h2ovl_convert::{LlmQuant, VisionQuant};
use std::path::Path;

/// Copies tiny, lets `breakit` damage the copy, converts, and returns the error text.
fn convert_broken(breakit: impl FnOnce(&Path)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let ck = copy_ckpt(&golden_ckpt("tiny"), tmp.path());
    breakit(&ck);
    let out = tmp.path().join("out");
    let err = convert(&ck, &out, LlmQuant::Q4KM, VisionQuant::Q8_0).expect_err("conversion must fail");
    assert!(files_in(&out).is_empty(), "output left behind: {:?}", files_in(&out));
    format!("{err:#}")
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn edit_header(ck: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let st = ck.join("model.safetensors");
    let (mut hdr, data) = read_safetensors(&st);
    f(&mut hdr);
    write_safetensors(&st, &hdr, &data);
}

#[test]
fn missing_files() {
    let e = convert_broken(|ck| std::fs::remove_file(ck.join("model.safetensors")).unwrap());
    assert!(e.contains("neither model.safetensors nor model.safetensors.index.json"), "{e}");
    let e = convert_broken(|ck| std::fs::remove_file(ck.join("tokenizer.model")).unwrap());
    assert!(e.contains("neither tokenizer.model nor tokenizer.json"), "{e}");
    let e = convert_broken(|ck| std::fs::remove_file(ck.join("config.json")).unwrap());
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn truncated_safetensors() {
    let e = convert_broken(|ck| {
        let st = ck.join("model.safetensors");
        let len = std::fs::metadata(&st).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&st).unwrap().set_len(len - 1000).unwrap();
    });
    assert!(e.contains("beyond the data section") && e.contains("truncated"), "{e}");
    let e = convert_broken(|ck| {
        std::fs::OpenOptions::new().write(true).open(ck.join("model.safetensors")).unwrap().set_len(100).unwrap();
    });
    assert!(e.contains("truncated safetensors file"), "{e}");
}

#[test]
fn lying_safetensors_header() {
    // Shape says more elements than data_offsets span.
    let e = convert_broken(|ck| {
        edit_header(ck, |h| h["mlp1.3.bias"]["shape"] = serde_json::json!([128]));
    });
    assert!(e.contains("mlp1.3.bias") && e.contains("data_offsets span"), "{e}");
    let e = convert_broken(|ck| {
        edit_header(ck, |h| h["mlp1.3.bias"]["data_offsets"] = serde_json::json!([10, 4]));
    });
    assert!(e.contains("mlp1.3.bias") && e.contains("reversed"), "{e}");
}

#[test]
fn wrong_dtype_and_shape() {
    let e = convert_broken(|ck| {
        edit_header(ck, |h| {
            // Same byte size, unsupported type.
            h["mlp1.3.bias"]["dtype"] = "I16".into();
        })
    });
    assert!(e.contains("mlp1.3.bias") && e.contains("unsupported dtype I16"), "{e}");
    // Consistent header, but not the shape config.json implies.
    let e = convert_broken(|ck| {
        edit_header(ck, |h| h["mlp1.3.bias"]["shape"] = serde_json::json!([8, 8]));
    });
    assert!(e.contains("mlp1.3.bias has shape [8, 8], expected [64]"), "{e}");
    let e = convert_broken(|ck| edit_json(&ck.join("config.json"), |v| v["llm_config"]["intermediate_size"] = 256.into()));
    assert!(e.contains("gate_proj.weight has shape [128, 64], expected [256, 64]"), "{e}");
}

#[test]
fn unknown_architecture() {
    let e = convert_broken(|ck| {
        edit_json(&ck.join("config.json"), |v| v["llm_config"]["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]))
    });
    assert!(e.contains("unsupported LLM architecture") && e.contains("Qwen2ForCausalLM"), "{e}");
}

#[test]
fn vocab_size_differs_from_embedding_rows() {
    let e = convert_broken(|ck| {
        edit_json(&ck.join("added_tokens.json"), |v| {
            v.as_object_mut().unwrap().remove("<|end|>");
        });
        // tokenizer_config / generation_config name <|end|>; point them at </s> so the vocab check is what fails.
        edit_json(&ck.join("tokenizer_config.json"), |v| v["eos_token"] = "</s>".into());
        edit_json(&ck.join("generation_config.json"), |v| v["eos_token_id"] = 2.into());
    });
    assert!(e.contains("vocab size 32009 (tokenizer) != 32010 embedding rows"), "{e}");
}

#[test]
fn duplicate_token_strings() {
    let e = convert_broken(|ck| {
        edit_json(&ck.join("added_tokens.json"), |v| {
            let o = v.as_object_mut().unwrap();
            o.remove("</box>");
            o.insert("<0x0A>".into(), 32008.into());
        })
    });
    assert!(e.contains("duplicate token string \"<0x0A>\""), "{e}");
}

#[test]
fn non_contiguous_added_tokens() {
    let e = convert_broken(|ck| {
        edit_json(&ck.join("added_tokens.json"), |v| v["<|end|>"] = 32050.into());
    });
    assert!(e.contains("<|end|>") && e.contains("contiguous"), "{e}");
}

#[test]
fn nan_and_inf_weights_are_refused_by_name() {
    for (bits, what) in [(0x7fc0u16, "NaN"), (0x7f80u16, "inf")] {
        let e = convert_broken(|ck| {
            let st = ck.join("model.safetensors");
            let (hdr, mut data) = read_safetensors(&st);
            let off = hdr["vision_model.encoder.layers.1.mlp.fc2.weight"]["data_offsets"][0].as_u64().unwrap() as usize;
            data[off + 20..off + 22].copy_from_slice(&bits.to_le_bytes());
            write_safetensors(&st, &hdr, &data);
        });
        assert!(e.contains("vision_model.encoder.layers.1.mlp.fc2.weight contains a non-finite value"), "{what}: {e}");
        assert!(e.contains("element 10"), "{e}");
    }
}

#[test]
fn unexpected_tensor() {
    let e = convert_broken(|ck| {
        edit_header(ck, |h| {
            let v = h["mlp1.3.bias"].clone();
            h.insert("language_model.model.layers.0.self_attn.q_proj.bias".into(), v);
        })
    });
    assert!(e.contains("unexpected LLM tensor language_model.model.layers.0.self_attn.q_proj.bias"), "{e}");
}

#[test]
fn never_writes_into_the_input_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = copy_ckpt(&golden_ckpt("tiny"), tmp.path());
    let before = files_in(&ck).len();
    let err = convert(&ck, &ck, LlmQuant::F32, VisionQuant::F32).expect_err("must refuse");
    assert!(format!("{err:#}").contains("is inside the input folder"), "{err:#}");
    let err = convert(&ck, &ck.join("gguf/sub"), LlmQuant::F32, VisionQuant::F32).expect_err("must refuse");
    assert!(format!("{err:#}").contains("is inside the input folder"), "{err:#}");
    assert_eq!(files_in(&ck).len(), before, "nothing created in the input folder");
}

#[test]
fn sharded_checkpoint_converts_like_the_single_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = copy_ckpt(&golden_ckpt("tiny"), tmp.path());
    let st = ck.join("model.safetensors");
    let (hdr, data) = read_safetensors(&st);
    // Split: vision + projector in shard 1, LLM in shard 2, each with re-based offsets.
    let mut shards = [serde_json::Map::new(), serde_json::Map::new()];
    let mut datas = [Vec::new(), Vec::new()];
    let mut weight_map = serde_json::Map::new();
    for (name, e) in &hdr {
        if name == "__metadata__" {
            continue;
        }
        let k = usize::from(name.starts_with("language_model."));
        let o = e["data_offsets"].as_array().unwrap();
        let (b, en) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
        let mut e = e.clone();
        let start = datas[k].len();
        datas[k].extend_from_slice(&data[b..en]);
        e["data_offsets"] = serde_json::json!([start, datas[k].len()]);
        shards[k].insert(name.clone(), e);
        let file = format!("model-0000{}-of-00002.safetensors", k + 1);
        weight_map.insert(name.clone(), file.into());
    }
    for k in 0..2 {
        write_safetensors(&ck.join(format!("model-0000{}-of-00002.safetensors", k + 1)), &shards[k], &datas[k]);
    }
    std::fs::remove_file(&st).unwrap();
    std::fs::write(
        ck.join("model.safetensors.index.json"),
        serde_json::to_string(&serde_json::json!({"metadata": {}, "weight_map": weight_map})).unwrap(),
    )
    .unwrap();
    let a = convert(&ck, &tmp.path().join("a"), LlmQuant::Q8_0, VisionQuant::F16).unwrap();
    let b = convert(&golden_ckpt("tiny"), &tmp.path().join("b"), LlmQuant::Q8_0, VisionQuant::F16).unwrap();
    assert_eq!(std::fs::read(&a.llm).unwrap(), std::fs::read(&b.llm).unwrap());
    assert_eq!(std::fs::read(&a.vision).unwrap(), std::fs::read(&b.vision).unwrap());
}

#[test]
fn generation_config_stop_ids_must_be_in_the_vocab() {
    let e = convert_broken(|ck| edit_json(&ck.join("generation_config.json"), |v| v["eos_token_id"] = serde_json::json!([2, 40000])));
    assert!(e.contains("generation_config.json: eos_token_id 40000 is outside the vocab"), "{e}");
}
