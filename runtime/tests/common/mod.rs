//! Shared by the runtime's integration tests: where the golden fixtures are, the tiny golden
//! checkpoint converted (F32 LLM + F32 vision) once per test process, and an in-process
//! `h2ovl serve` on an ephemeral loopback port.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use h2ovl_convert::{ConvertOptions, ConvertOutput, LlmQuant, VisionQuant};
use h2ovl_runtime::llm::Pipeline;
use h2ovl_runtime::serve::{serve, ServeOptions};

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

/// Serves `pipe` with `opts` on 127.0.0.1 (ephemeral port) from its own thread and tokio runtime,
/// for the rest of the test process; returns the address once it is listening.
pub fn start_server(pipe: Pipeline, opts: ServeOptions) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send addr");
            serve(l, pipe, opts).await.expect("serve");
        })
    });
    rx.recv_timeout(std::time::Duration::from_secs(120)).expect("server started")
}
