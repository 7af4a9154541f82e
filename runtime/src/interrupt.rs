//! The SIGINT handler behind Ctrl-C in `h2ovl convert`, `run` and `batch`: the first Ctrl-C only
//! raises [`h2ovl_convert::interrupt`]'s flag, which the work loops poll, so the command stops
//! with one error line, removes its `*.partial` files and leaves `batch` results resumable. A
//! second Ctrl-C exits at once (status 130) for a user who does not want to wait.
pub use h2ovl_convert::interrupt::{check, flag, requested, MESSAGE};

/// Exit status of an interrupted command (128 + SIGINT, as shells report it).
pub const EXIT_CODE: i32 = 130;

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    if requested() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_CODE) };
    }
    h2ovl_convert::interrupt::request();
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
