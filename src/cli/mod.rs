//! One file per subcommand.
pub mod convert;
pub mod gen_model;
pub mod chat;
pub mod run;
pub mod run_pages;
pub mod pdf_args;
pub mod encode_image;
pub mod serve;
pub mod batch;
pub mod bench;
pub mod bench_cpu;
pub mod eval;
