//! Fuzz targets of h2ovl-edge (cargo-fuzz). The bodies live in `entries.rs`, shared with the
//! stable replay test `tests/fuzz_replay.rs`; see `docs/robustness.md` for what was run.
mod entries;
pub use entries::*;
