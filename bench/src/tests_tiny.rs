//! Each bench runs end to end on the converted golden tiny checkpoint with minimal sizes.
use std::path::{Path, PathBuf};

use h2ovl_convert::{LlmQuant, VisionQuant};

use super::{convert, llm, vision};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../quant-tests/fixtures/golden/checkpoints/tiny")
}

#[test]
fn benches_run_on_the_tiny_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let c = convert::run(&convert::ConvertBenchOptions {
        input: tiny(),
        outdir: Some(dir.path().to_path_buf()),
        quant: LlmQuant::F32,
        vision_quant: VisionQuant::F32,
        threads: Some(2),
    })
    .unwrap();
    assert!(c.wall_s > 0.0 && c.llm_bytes > 0 && c.vision_bytes > 0 && c.input_bytes > 0, "{c:?}");
    #[cfg(target_os = "linux")]
    assert!(c.peak_rss_bytes > 0);
    let (llm_gguf, mmproj) = (PathBuf::from(&c.llm), PathBuf::from(&c.vision));

    let v = vision::run(&vision::VisionBenchOptions { mmproj, tiles: 2, threads: 2, runs: 2, fma_iters: 100_000 }).unwrap();
    assert!(v.gflop_per_tile > 0.0 && v.wall_s_per_tile_median > 0.0 && v.gflops_wall.is_finite(), "{v:?}");
    assert!(v.wall_s_per_tile_min <= v.wall_s_per_tile_median);
    assert!(serde_json::to_string(&v).unwrap().contains("\"pct_of_peak_wall\""));

    let l = llm::run(&llm::LlmBenchOptions {
        model: llm_gguf,
        threads: 2,
        prompt_tokens: 24,
        gen: 4,
        long_prefix: 80,
        runs: 2,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(l.cases.len(), 2);
    for case in &l.cases {
        assert!(case.ours_decode_tok_s > 0.0 && case.bare_decode_tok_s > 0.0, "{case:?}");
        assert!(case.prefill_ratio.is_finite() && case.decode_ratio.is_finite(), "{case:?}");
    }
    // The requested lengths are approximate (chat template) but in the right range.
    assert!(l.cases[0].prompt_tokens >= 12 && l.cases[0].prompt_tokens <= 48, "{:?}", l.cases[0]);
    assert!(l.cases[1].prompt_tokens > l.cases[0].prompt_tokens);
}
