//! Shared by the runtime's integration tests: where the golden fixtures are, and the tiny golden
//! checkpoint converted (F32 LLM + F32 vision) once per test process.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use h2ovl_convert::{ConvertOptions, ConvertOutput, LlmQuant, VisionQuant};

pub fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden")
}

/// `checkpoints/tiny` converted with `--quant f32 --vision-quant f32` into a temp folder kept for the
/// life of the test process.
pub fn tiny_f32() -> &'static ConvertOutput {
    static OUT: OnceLock<ConvertOutput> = OnceLock::new();
    OUT.get_or_init(|| {
        convert_f32("tiny", &tempfile::tempdir().expect("tempdir").keep())
    })
}

/// Golden checkpoint `name` (`tiny`, `tiny-2b`) converted to an F32 LLM + F32 vision GGUF in `outdir`.
pub fn convert_f32(name: &str, outdir: &Path) -> ConvertOutput {
    h2ovl_convert::convert(&ConvertOptions {
        input: golden().join("checkpoints").join(name),
        outdir: outdir.to_path_buf(),
        quant: LlmQuant::F32,
        vision_quant: VisionQuant::F32,
        quiet: true,
        threads: Some(2),
    })
    .unwrap_or_else(|e| panic!("converting the {name} checkpoint: {e:#}"))
}

/// The LLM GGUF of [`tiny_f32`].
pub fn tiny_llm() -> &'static Path {
    &tiny_f32().llm
}
