//! Ctrl-C as an ordinary error. A signal handler may only set a flag, so the long-running loops
//! (tensors in `convert`, images in `batch`, tokens in generation) poll this one and stop with
//! [`check`]'s error; the normal unwinding then runs every cleanup (`*.partial` files removed,
//! nothing half-written). The handler itself is installed by the binary
//! (`h2ovl_runtime::interrupt::install`).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Shared so it can also serve as a `GenerationConfig::cancel` flag.
static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide interrupt flag (created on first use).
pub fn flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
}

/// Raise the flag. Async-signal-safe once [`flag`] has been called (an atomic store, no allocation).
pub fn request() {
    if let Some(f) = FLAG.get() {
        f.store(true, Ordering::SeqCst);
    }
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// The error message of an interrupted command.
pub const MESSAGE: &str = "interrupted (Ctrl-C)";

/// `Err(interrupted)` once Ctrl-C was pressed.
pub fn check() -> anyhow::Result<()> {
    if requested() {
        anyhow::bail!(MESSAGE);
    }
    Ok(())
}
