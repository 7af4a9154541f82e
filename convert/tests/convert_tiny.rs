//! Converts the golden tiny checkpoints and reads the GGUFs back with our reader: metadata types
//! and values, tensor names/shapes/types, and the tensor data against the bf16 source (rope
//! permutation, qkv split, position embedding row order).
mod common;
use common::*;
use h2ovl_format::gguf::{GgmlType, GgufFile, GgufValue};
use h2ovl_format::quant::dequantize;
use h2ovl_convert::{LlmQuant, VisionQuant};

fn f32_tensor(g: &GgufFile, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap();
    dequantize(t.ty, t.data, t.numel())
}

#[test]
fn tiny_f32_llm_metadata_and_tensors() {
    let ck = golden_ckpt("tiny");
    let out = tempfile::tempdir().unwrap();
    let r = convert(&ck, out.path(), LlmQuant::F32, VisionQuant::F32).unwrap();
    assert_eq!(r.llm.file_name().unwrap(), "tiny-F32.gguf");
    assert_eq!(r.vision.file_name().unwrap(), "mmproj-tiny-F32.gguf");
    let g = GgufFile::open(&r.llm).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_str("general.name").unwrap(), "tiny");
    assert_eq!(g.get_u32("general.file_type").unwrap(), 0);
    assert_eq!(g.get_u32("llama.context_length").unwrap(), 8192);
    assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 64);
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(g.get_u32("llama.feed_forward_length").unwrap(), 128);
    assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 4);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 2);
    assert_eq!(g.get_u32("llama.rope.dimension_count").unwrap(), 16);
    assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(), 1e-5);
    assert!(g.get_u32("llama.attention.layer_norm_rms_epsilon").is_err(), "typed getters must check the type");
    assert_eq!(g.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 1);
    assert_eq!(g.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 32009);
    assert_eq!(g.get_u32("tokenizer.ggml.unknown_token_id").unwrap(), 0);
    assert_eq!(g.get_u32("tokenizer.ggml.padding_token_id").unwrap(), 0);
    assert!(!g.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!g.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert!(g.get_bool("tokenizer.ggml.add_space_prefix").unwrap());
    assert!(g.get_str("tokenizer.chat_template").unwrap().contains("<|prompt|>"));
    let Some(GgufValue::Array(tokens)) = g.get("tokenizer.ggml.tokens") else { panic!("tokens") };
    let Some(GgufValue::Array(types)) = g.get("tokenizer.ggml.token_type") else { panic!("types") };
    assert_eq!(tokens.len(), 32010);
    assert_eq!(tokens[32009], GgufValue::String("<|end|>".into()));
    assert_eq!(tokens[32002], GgufValue::String("<IMG_CONTEXT>".into()));
    assert_eq!(tokens[13], GgufValue::String("<0x0A>".into()));
    assert_eq!(types[0], GgufValue::I32(2), "<unk> UNKNOWN");
    assert_eq!(types[1], GgufValue::I32(3), "<s> CONTROL");
    assert_eq!(types[13], GgufValue::I32(6), "<0x0A> BYTE");
    assert_eq!(types[1000], GgufValue::I32(1), "NORMAL");
    assert!((32000..32010).all(|i| types[i] == GgufValue::I32(3)), "added tokens CONTROL");

    // 2 + lm_head + 9 per layer, in llama-quantize order.
    let names: Vec<&str> = g.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 21);
    assert_eq!(&names[..4], &["output.weight", "output_norm.weight", "token_embd.weight", "blk.0.attn_k.weight"]);
    assert!(g.tensors().iter().all(|t| t.ty == GgmlType::F32));
    assert_eq!(g.tensor("token_embd.weight").unwrap().ne, &[64, 32010]);
    assert_eq!(g.tensor("blk.1.attn_k.weight").unwrap().ne, &[64, 32]);
    assert_eq!(g.tensor("blk.1.ffn_down.weight").unwrap().ne, &[128, 64]);

    let st = ck.join("model.safetensors");
    let (_, emb) = bf16_tensor(&st, "language_model.model.embed_tokens.weight");
    assert_eq!(f32_tensor(&g, "token_embd.weight"), emb);
    let (_, v) = bf16_tensor(&st, "language_model.model.layers.1.self_attn.v_proj.weight");
    assert_eq!(f32_tensor(&g, "blk.1.attn_v.weight"), v);
    // q: 4 heads of 16 rows; GGUF row h*16 + 2i + j = HF row h*16 + j*8 + i.
    let (_, q) = bf16_tensor(&st, "language_model.model.layers.0.self_attn.q_proj.weight");
    let gq = f32_tensor(&g, "blk.0.attn_q.weight");
    for h in 0..4 {
        for i in 0..8 {
            for j in 0..2 {
                let (dst, src) = (h * 16 + 2 * i + j, h * 16 + j * 8 + i);
                assert_eq!(gq[dst * 64..(dst + 1) * 64], q[src * 64..(src + 1) * 64], "q row {dst}");
            }
        }
    }
    let (_, k) = bf16_tensor(&st, "language_model.model.layers.1.self_attn.k_proj.weight");
    let gk = f32_tensor(&g, "blk.1.attn_k.weight");
    assert_eq!(gk[64..128], k[8 * 64..9 * 64], "k row 1 = HF row D/2");
}

#[test]
fn tiny_vision_metadata_and_tensors() {
    let ck = golden_ckpt("tiny");
    let out = tempfile::tempdir().unwrap();
    let r = convert(&ck, out.path(), LlmQuant::Q8_0, VisionQuant::F32).unwrap();
    let g = GgufFile::open(&r.vision).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "clip");
    assert_eq!(g.get_str("clip.projector_type").unwrap(), "internvl");
    assert!(g.get_bool("clip.has_vision_encoder").unwrap());
    assert!(g.get_bool("clip.use_gelu").unwrap());
    assert_eq!(g.get_u32("clip.vision.image_size").unwrap(), 448);
    assert_eq!(g.get_u32("clip.vision.patch_size").unwrap(), 14);
    assert_eq!(g.get_u32("clip.vision.embedding_length").unwrap(), 64);
    assert_eq!(g.get_u32("clip.vision.feed_forward_length").unwrap(), 256);
    assert_eq!(g.get_u32("clip.vision.block_count").unwrap(), 2);
    assert_eq!(g.get_u32("clip.vision.attention.head_count").unwrap(), 4);
    assert_eq!(g.get_f32("clip.vision.attention.layer_norm_epsilon").unwrap(), 1e-6);
    assert_eq!(g.get_u32("clip.vision.projection_dim").unwrap(), 64);
    assert_eq!(g.get_f32_array("clip.vision.image_mean").unwrap(), vec![0.485, 0.456, 0.406]);
    assert_eq!(g.get_f32_array("clip.vision.image_std").unwrap(), vec![0.229, 0.224, 0.225]);
    assert_eq!(g.get_u32("clip.vision.projector.scale_factor").unwrap(), 2);
    assert_eq!(g.get_u32("clip.vision.preproc_min_tiles").unwrap(), 1);
    assert_eq!(g.get_u32("clip.vision.preproc_max_tiles").unwrap(), 6);
    assert!(!g.get_bool("h2ovl.use_msac").unwrap());
    assert_eq!(g.get_u32("h2ovl.min_dynamic_patch").unwrap(), 1);
    assert_eq!(g.get_u32("h2ovl.max_dynamic_patch").unwrap(), 6);
    assert!(g.get_bool("h2ovl.use_thumbnail").unwrap());
    assert_eq!(g.get_f32("h2ovl.downsample_ratio").unwrap(), 0.5);
    assert_eq!(g.get_str("h2ovl.ps_version").unwrap(), "v2");
    assert_eq!(g.get_i32("h2ovl.select_layer").unwrap(), -1);
    assert_eq!(g.get_str("h2ovl.template").unwrap(), "h2ogpt2");
    assert_eq!(g.get_f32("h2ovl.projector.layer_norm_epsilon").unwrap(), 1e-5);
    assert_eq!(g.get_f32("h2ovl.vision.layer_norm_epsilon").unwrap(), 1e-6);
    assert_eq!(g.get_str("h2ovl.llm_arch").unwrap(), "LlamaForCausalLM");
    assert_eq!(g.get_u32("h2ovl.image_token_count").unwrap(), 256);

    // 4 embeddings + 18 per layer (ln1, ln2, q, k, v, out, up, down: weight+bias; ls1, ls2) + 6 projector.
    assert_eq!(g.tensors().len(), 4 + 2 * 18 + 6);
    assert_eq!(g.tensor("v.patch_embd.weight").unwrap().ne, &[14, 14, 3, 64]);
    assert_eq!(g.tensor("v.position_embd.weight").unwrap().ne, &[64, 1025]);
    assert_eq!(g.tensor("v.class_embd").unwrap().ne, &[64]);
    assert_eq!(g.tensor("mm.model.mlp.1.weight").unwrap().ne, &[256, 64]);
    assert!(g.tensors().iter().all(|t| t.ty == GgmlType::F32));

    let st = ck.join("model.safetensors");
    let (_, qkv) = bf16_tensor(&st, "vision_model.encoder.layers.1.attn.qkv.weight");
    let n = 64 * 64;
    assert_eq!(f32_tensor(&g, "v.blk.1.attn_q.weight"), qkv[..n]);
    assert_eq!(f32_tensor(&g, "v.blk.1.attn_k.weight"), qkv[n..2 * n]);
    assert_eq!(f32_tensor(&g, "v.blk.1.attn_v.weight"), qkv[2 * n..]);
    let (_, qkvb) = bf16_tensor(&st, "vision_model.encoder.layers.0.attn.qkv.bias");
    assert_eq!(f32_tensor(&g, "v.blk.0.attn_v.bias"), qkvb[128..]);
    let (_, pos) = bf16_tensor(&st, "vision_model.embeddings.position_embedding");
    assert_eq!(f32_tensor(&g, "v.position_embd.weight"), pos, "CLS row first, HF order kept");
    let (_, ls2) = bf16_tensor(&st, "vision_model.encoder.layers.0.ls2");
    assert_eq!(f32_tensor(&g, "v.blk.0.ls2.weight"), ls2);
}

#[test]
fn tiny_2b_presets_pick_llama_quantize_types() {
    let ck = golden_ckpt("tiny-2b");
    let out = tempfile::tempdir().unwrap();
    let r = convert(&ck, out.path(), LlmQuant::Q4KM, VisionQuant::Q8_0).unwrap();
    assert_eq!(r.llm.file_name().unwrap(), "tiny-2b-Q4_K_M.gguf");
    let g = GgufFile::open(&r.llm).unwrap();
    assert_eq!(g.get_u32("general.file_type").unwrap(), 15);
    assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
    let ty = |n: &str| g.tensor(n).unwrap().ty;
    // hidden 96: Q4_K → Q5_0, Q6_K → Q8_0; ffn_down rows are 256 wide so keep K-quants.
    assert_eq!(ty("token_embd.weight"), GgmlType::Q5_0);
    assert_eq!(ty("output.weight"), GgmlType::Q8_0);
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q5_0);
    // n_layer 3: use_more_bits is true only for layer 2 (i >= 7*3/8 = 2).
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q5_0);
    assert_eq!(ty("blk.2.attn_v.weight"), GgmlType::Q8_0, "Q6_K bumped, then 96 % 256 != 0 -> Q8_0");
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q4_K, "ffn_down rows are 256 wide: no fallback");
    assert_eq!(ty("blk.1.ffn_down.weight"), GgmlType::Q4_K);
    assert_eq!(ty("blk.2.ffn_down.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.0.attn_norm.weight"), GgmlType::F32);

    let v = GgufFile::open(&r.vision).unwrap();
    assert_eq!(v.get_u32("general.file_type").unwrap(), 7);
    assert!(v.get_bool("h2ovl.use_msac").unwrap());
    assert_eq!(v.get_str("h2ovl.llm_arch").unwrap(), "MistralForCausalLM");
    assert_eq!(v.tensor("v.patch_embd.weight").unwrap().ty, GgmlType::F16);
    assert_eq!(v.tensor("v.position_embd.weight").unwrap().ty, GgmlType::F32);
    assert_eq!(v.tensor("v.blk.2.attn_q.weight").unwrap().ty, GgmlType::Q8_0);
    assert_eq!(v.tensor("v.blk.2.ffn_down.weight").unwrap().ty, GgmlType::Q8_0);
    assert_eq!(v.tensor("v.blk.2.ffn_down.bias").unwrap().ty, GgmlType::F32);
    assert_eq!(v.tensor("mm.model.mlp.0.weight").unwrap().ty, GgmlType::F32);

    // Quantized data decodes close to the source: Q8_0 error ≤ d/2 plus 127 × the f16 rounding of d
    // (d = amax/127, f16 relative error ≤ 2^-11).
    let st = ck.join("model.safetensors");
    let (_, src) = bf16_tensor(&st, "vision_model.encoder.layers.2.attn.proj.weight");
    let got = f32_tensor(&v, "v.blk.2.attn_out.weight");
    for (bs, bg) in src.chunks(32).zip(got.chunks(32)) {
        let amax = bs.iter().fold(0f32, |a, x| a.max(x.abs()));
        for (a, b) in bs.iter().zip(bg) {
            assert!((a - b).abs() <= amax / 254.0 + amax / 2048.0 + 1e-7, "{a} vs {b} (amax {amax})");
        }
    }
}

#[test]
fn file_names_follow_llama_cpp_labels() {
    let (a, b) = h2ovl_convert::pipeline::output_names("h2ovl-mississippi-2b", LlmQuant::Q4KM, VisionQuant::Q8_0);
    assert_eq!(a, "h2ovl-mississippi-2b-Q4_K_M.gguf");
    assert_eq!(b, "mmproj-h2ovl-mississippi-2b-Q8_0.gguf");
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let ck = golden_ckpt("tiny-2b");
    let out = tempfile::tempdir().unwrap();
    let a = convert(&ck, &out.path().join("a"), LlmQuant::Q4KM, VisionQuant::Q8_0).unwrap();
    let b = h2ovl_convert::convert(&h2ovl_convert::ConvertOptions {
        input: ck.clone(),
        outdir: out.path().join("b"),
        quant: LlmQuant::Q4KM,
        vision_quant: VisionQuant::Q8_0,
        quiet: true,
        threads: Some(1),
    })
    .unwrap();
    assert_eq!(std::fs::read(&a.llm).unwrap(), std::fs::read(&b.llm).unwrap());
    assert_eq!(std::fs::read(&a.vision).unwrap(), std::fs::read(&b.vision).unwrap());
    assert!(h2ovl_convert::convert(&h2ovl_convert::ConvertOptions {
        input: ck,
        outdir: out.path().join("c"),
        quant: LlmQuant::F32,
        vision_quant: VisionQuant::F32,
        quiet: true,
        threads: Some(0),
    })
    .is_err());
}
