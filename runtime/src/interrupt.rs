//! Ctrl-C as an ordinary error in `h2ovl convert`, `run`, `batch` and `eval`. A signal handler may
//! only set a flag, so the first Ctrl-C raises this process-wide one and the long-running loops
//! poll it (tensors in a conversion through `h2ovl_convert::convert_cancellable` and [`check`], images in
//! `batch`, tokens through `GenerationConfig::cancel`): the command stops with one error line,
//! the normal unwinding removes its `*.partial` files and `batch` results stay resumable. A second
//! Ctrl-C exits at once (status 130) for a user who does not want to wait.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Shared so it can also serve as a `GenerationConfig::cancel` flag.
static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The error message of an interrupted command.
pub const MESSAGE: &str = "interrupted (Ctrl-C)";

/// Exit status of an interrupted command (128 + SIGINT, as shells report it).
pub const EXIT_CODE: i32 = 130;

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

/// `Err(interrupted)` once Ctrl-C was pressed (a conversion's cancel check).
pub fn check() -> anyhow::Result<()> {
    if requested() {
        anyhow::bail!(MESSAGE);
    }
    Ok(())
}

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    if requested() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_CODE) };
    }
    request();
}

/// Installs the handler (idempotent). Elsewhere than on Unix Ctrl-C keeps its default effect.
pub fn install() {
    // Created before the handler can run: the handler must not allocate.
    let _ = flag();
    #[cfg(unix)]
    // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid; the handler only
    // does an atomic store or _exit.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}
