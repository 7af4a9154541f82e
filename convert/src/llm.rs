//! The LLM GGUF (arch `llama`, for stock llama.cpp): HF → GGUF tensor names, shape checks, the rope
//! permutation of q/k, and the `general.*` / `llama.*` / `tokenizer.*` metadata with the exact
//! value types llama.cpp's loader requires (u32 counts, f32 eps/theta). gguf-llama-conversion.md §2–4.
use crate::config::H2ovlConfig;
use h2ovl_format::gguf::{GgufValue, GgufWriter};
use crate::job::{reversed, sort_jobs, TensorJob, Transform};
use crate::preset::{llm_tensor_type, LlmQuant};
use crate::safetensors::Checkpoint;
use crate::vocab::Vocab;
use anyhow::{bail, ensure, Result};
use std::io::Write;

/// Prefix of the LLM tensors inside an H2OVL checkpoint.
pub const HF_PREFIX: &str = "language_model.";

/// Per-layer HF suffix → GGUF suffix.
const LAYER_MAP: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

/// Plans every LLM tensor (names, expected HF shapes, types), refusing missing, misshapen or
/// unexpected tensors and a vocab that does not match the embedding rows.
pub fn plan(cfg: &H2ovlConfig, ck: &Checkpoint, vocab: &Vocab, q: LlmQuant) -> Result<Vec<TensorJob>> {
    let l = &cfg.llm_config;
    let (h, nl, ff) = (l.hidden_size, l.num_hidden_layers, l.intermediate_size);
    let hd = l.head_dim();
    let (nh, nkv) = (l.num_attention_heads, l.n_kv_heads());
    let emb = ck.require(&format!("{HF_PREFIX}model.embed_tokens.weight"))?;
    let n_vocab = emb.shape.first().copied().unwrap_or(0);
    ensure!(
        vocab.len() == n_vocab,
        "vocab size {} (tokenizer) != {} embedding rows of {HF_PREFIX}model.embed_tokens.weight",
        vocab.len(),
        n_vocab
    );
    ensure!(
        l.vocab_size == n_vocab,
        "llm_config.vocab_size {} != {} embedding rows of {HF_PREFIX}model.embed_tokens.weight",
        l.vocab_size,
        n_vocab
    );

    let mut want: Vec<(String, String, Vec<usize>, Transform)> = vec![
        ("model.embed_tokens.weight".into(), "token_embd.weight".into(), vec![n_vocab, h], Transform::None),
        ("model.norm.weight".into(), "output_norm.weight".into(), vec![h], Transform::None),
    ];
    let has_lm_head = ck.get(&format!("{HF_PREFIX}lm_head.weight")).is_some();
    if has_lm_head {
        want.push(("lm_head.weight".into(), "output.weight".into(), vec![n_vocab, h], Transform::None));
    }
    for i in 0..nl {
        for (hf, gg) in LAYER_MAP {
            let shape = match *gg {
                "attn_norm.weight" | "ffn_norm.weight" => vec![h],
                "attn_q.weight" => vec![nh * hd, h],
                "attn_k.weight" | "attn_v.weight" => vec![nkv * hd, h],
                "attn_output.weight" => vec![h, nh * hd],
                "ffn_gate.weight" | "ffn_up.weight" => vec![ff, h],
                "ffn_down.weight" => vec![h, ff],
                _ => unreachable!("every LAYER_MAP entry has a shape"),
            };
            let tr = match *gg {
                "attn_q.weight" => Transform::RopePermute { heads: nh },
                "attn_k.weight" => Transform::RopePermute { heads: nkv },
                _ => Transform::None,
            };
            want.push((format!("model.layers.{i}.{hf}"), format!("blk.{i}.{gg}"), shape, tr));
        }
    }

    let mut jobs = Vec::with_capacity(want.len());
    for (hf, gg, shape, tr) in want {
        let hf = format!("{HF_PREFIX}{hf}");
        let t = ck.require(&hf)?;
        ensure!(t.shape == shape, "tensor {hf} has shape {:?}, expected {shape:?} from config.json", t.shape);
        let ne = reversed(&shape);
        let ty = llm_tensor_type(q, &gg, &ne, nl);
        jobs.push(TensorJob { gguf_name: gg, hf_name: hf, ty, ne, transform: tr });
    }
    // Anything else under language_model. would be silently lost: refuse instead.
    for name in ck.names().filter(|n| n.starts_with(HF_PREFIX)) {
        if name.ends_with(".rotary_emb.inv_freq") || jobs.iter().any(|j| j.hf_name == name) {
            continue;
        }
        bail!("unexpected LLM tensor {name} (not part of a {} model)", cfg.llm_arch());
    }
    sort_jobs(&mut jobs);
    Ok(jobs)
}

/// Writes the LLM metadata into `w`.
pub fn metadata<W: Write>(w: &mut GgufWriter<W>, cfg: &H2ovlConfig, vocab: &Vocab, name: &str, q: LlmQuant) -> Result<()> {
    let l = &cfg.llm_config;
    let u = |x: usize| -> Result<GgufValue> { Ok(GgufValue::U32(u32::try_from(x)?)) };
    w.add_kv("general.architecture", GgufValue::String("llama".into()))?;
    w.add_kv("general.type", GgufValue::String("model".into()))?;
    w.add_kv("general.name", GgufValue::String(name.into()))?;
    w.add_kv("general.file_type", GgufValue::U32(q.file_type()))?;
    w.add_kv("general.quantization_version", GgufValue::U32(2))?;
    w.add_kv("llama.context_length", u(l.max_position_embeddings)?)?;
    w.add_kv("llama.embedding_length", u(l.hidden_size)?)?;
    w.add_kv("llama.block_count", u(l.num_hidden_layers)?)?;
    w.add_kv("llama.feed_forward_length", u(l.intermediate_size)?)?;
    w.add_kv("llama.attention.head_count", u(l.num_attention_heads)?)?;
    w.add_kv("llama.attention.head_count_kv", u(l.n_kv_heads())?)?;
    w.add_kv("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(l.rms_norm_eps as f32))?;
    w.add_kv("llama.rope.dimension_count", u(l.head_dim())?)?;
    w.add_kv("llama.rope.freq_base", GgufValue::F32(l.rope_theta as f32))?;
    w.add_kv("llama.vocab_size", u(vocab.len())?)?;
    if l.head_dim() * l.num_attention_heads != l.hidden_size {
        w.add_kv("llama.attention.key_length", u(l.head_dim())?)?;
        w.add_kv("llama.attention.value_length", u(l.head_dim())?)?;
    }
    w.add_kv("tokenizer.ggml.model", GgufValue::String("llama".into()))?;
    w.add_kv("tokenizer.ggml.pre", GgufValue::String("default".into()))?;
    w.add_kv("tokenizer.ggml.tokens", GgufValue::str_array(&vocab.tokens))?;
    w.add_kv("tokenizer.ggml.scores", GgufValue::f32_array(&vocab.scores))?;
    w.add_kv("tokenizer.ggml.token_type", GgufValue::i32_array(&vocab.types))?;
    w.add_kv("tokenizer.ggml.bos_token_id", GgufValue::U32(vocab.bos))?;
    w.add_kv("tokenizer.ggml.eos_token_id", GgufValue::U32(vocab.eos))?;
    w.add_kv("tokenizer.ggml.unknown_token_id", GgufValue::U32(vocab.unk))?;
    w.add_kv("tokenizer.ggml.padding_token_id", GgufValue::U32(vocab.pad))?;
    w.add_kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(vocab.add_bos))?;
    w.add_kv("tokenizer.ggml.add_eos_token", GgufValue::Bool(vocab.add_eos))?;
    w.add_kv("tokenizer.ggml.add_space_prefix", GgufValue::Bool(vocab.add_space_prefix))?;
    let template = match (&vocab.chat_template, cfg.template.as_str()) {
        (Some(t), _) => Some(t.clone()),
        (None, "h2ogpt2") => Some(crate::vocab::H2OGPT2_CHAT_TEMPLATE.to_string()),
        (None, _) => None,
    };
    if let Some(t) = template {
        w.add_kv("tokenizer.chat_template", GgufValue::String(t))?;
    }
    Ok(())
}
