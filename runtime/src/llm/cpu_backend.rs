//! Which build of llama.cpp's CPU backend runs the LLM, chosen at run time.
//!
//! Why: ggml's CPU kernels are compiled for one ISA level each (`libggml-cpu-<variant>.so`: x64, sse42,
//! haswell, skylakex, icelake, alderlake on x86-64; armv8.0_1, armv8.2_2, armv8.6_1 on aarch64 — the list
//! is in `.cargo/config.toml`). A single fixed build either refuses old CPUs or leaves AVX-512, VNNI and
//! `sdot` unused on new ones. Every variant exports `ggml_backend_score()` (0 = this CPU cannot run it,
//! higher = more features used); we load the best one, as llama.cpp's own release builds do.
//!
//! Why our own loader instead of `ggml_backend_load_all()`: that one looks first in the build
//! machine's OUT_DIR (baked in by llama-cpp-sys-2), so a moved install could silently run libraries of
//! the build tree; here the libraries are found next to the executable only (or in `H2OVL_LIB_DIR`),
//! and the variant can be forced (`H2OVL_LLM_CPU=haswell`) so two variants can be compared in one run.
use std::ffi::{c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use llama_cpp_sys_2 as sys;

/// File name prefix and suffix of a CPU variant library.
const PREFIX: &str = "libggml-cpu-";
const SUFFIX: &str = ".so";

/// One `libggml-cpu-<name>.so` found beside the binary.
#[derive(Clone, Debug)]
pub struct Variant {
    /// ggml's variant name (`haswell`, `icelake`, `armv8.2_2`, …).
    pub name: String,
    pub path: PathBuf,
    /// `ggml_backend_score()` on this CPU: 0 = not runnable here.
    pub score: i32,
}

/// The variant in use and everything that was on offer.
#[derive(Clone, Debug)]
pub struct Selected {
    pub variant: Variant,
    /// Forced with `H2OVL_LLM_CPU` (true) or the best score (false).
    pub forced: bool,
    /// All variants found, in name order.
    pub available: Vec<Variant>,
}

/// Folders searched for the backend libraries, in order: `H2OVL_LIB_DIR` alone if set; otherwise the
/// executable's folder and, for an installed layout (`bin/h2ovl` → `lib/h2ovl/`), `../lib/h2ovl`.
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("H2OVL_LIB_DIR") {
        return vec![PathBuf::from(d)];
    }
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        v.push(dir.join("../lib/h2ovl"));
        v.insert(0, dir);
    }
    v
}

/// Scores one library without registering it: `dlopen` (local), `ggml_backend_score`, `dlclose`.
/// Loading a variant this CPU cannot run is safe: ggml compiles the score function without the
/// variant's ISA flags, for exactly this probe.
fn score(path: &Path) -> Option<i32> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: dlopen/dlsym/dlclose with a valid NUL-terminated path and symbol name; the symbol is
    // `int ggml_backend_score(void)` in every ggml CPU variant, called only while the handle is open.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if h.is_null() {
            return None;
        }
        let f = libc::dlsym(h, c"ggml_backend_score".as_ptr());
        let s = if f.is_null() {
            None
        } else {
            let f: extern "C" fn() -> i32 = std::mem::transmute::<*mut c_void, extern "C" fn() -> i32>(f);
            Some(f())
        };
        libc::dlclose(h);
        s
    }
}

/// Every CPU variant library in the first search folder that has any (scored on this CPU).
pub fn available() -> (Vec<Variant>, Vec<PathBuf>) {
    let dirs = search_dirs();
    for d in &dirs {
        let Ok(rd) = std::fs::read_dir(d) else { continue };
        let mut found: Vec<Variant> = rd
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                let name = f.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.to_string();
                let path = e.path();
                let score = score(&path).unwrap_or(0);
                Some(Variant { name, path, score })
            })
            .collect();
        if !found.is_empty() {
            found.sort_by(|a, b| a.name.cmp(&b.name));
            return (found, dirs);
        }
    }
    (Vec::new(), dirs)
}

/// Picks the variant: `forced` by name (must exist and be runnable here), else the highest score.
pub fn choose(available: &[Variant], forced: Option<&str>) -> Result<Variant> {
    let names = || available.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(" ");
    if let Some(want) = forced {
        let v = available
            .iter()
            .find(|v| v.name == want)
            .ok_or_else(|| anyhow!("H2OVL_LLM_CPU={want}: no such llama.cpp CPU variant here (built: {})", names()))?;
        if v.score <= 0 {
            let ok: Vec<&str> = available.iter().filter(|v| v.score > 0).map(|v| v.name.as_str()).collect();
            bail!("H2OVL_LLM_CPU={want}: this CPU cannot run that variant (runnable here: {})", ok.join(" "));
        }
        return Ok(v.clone());
    }
    available
        .iter()
        .filter(|v| v.score > 0)
        .max_by_key(|v| v.score)
        .cloned()
        .ok_or_else(|| anyhow!("none of the llama.cpp CPU variants ({}) runs on this CPU", names()))
}

/// Loads (once per process) and registers the chosen CPU backend with ggml. Must run before the first
/// model is loaded; [`super::ffi`] calls it from its backend initialisation.
pub fn ensure_loaded() -> Result<&'static Selected> {
    static SEL: OnceLock<std::result::Result<Selected, String>> = OnceLock::new();
    SEL.get_or_init(|| load().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

fn load() -> Result<Selected> {
    super::ffi::init_logging();
    let (available, dirs) = available();
    if available.is_empty() {
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no llama.cpp CPU backend ({PREFIX}*{SUFFIX}) found in {}: keep the libraries that come with h2ovl \
             beside the binary (make dist), or point H2OVL_LIB_DIR at them",
            looked.join(", ")
        );
    }
    let forced_name = std::env::var("H2OVL_LLM_CPU").ok().filter(|s| !s.is_empty());
    let variant = choose(&available, forced_name.as_deref())?;
    let c = CString::new(variant.path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path; ggml keeps the library open for the process lifetime and
    // returns null (after logging) if it cannot initialise it.
    let reg = unsafe { sys::ggml_backend_load(c.as_ptr()) };
    if reg.is_null() {
        bail!("llama.cpp could not initialise its CPU backend {}", variant.path.display());
    }
    Ok(Selected { variant, forced: forced_name.is_some(), available })
}

/// One line for `--version`, `-v` and benchmark reports: the LLM's ggml variant and our vision ISA,
/// e.g. `llm: ggml-cpu icelake; vision: f32 avx2, int8 avx512vnni`.
pub fn describe() -> String {
    let llm = match ensure_loaded() {
        Ok(s) => format!("ggml-cpu {}{}", s.variant.name, if s.forced { " (forced by H2OVL_LLM_CPU)" } else { "" }),
        Err(e) => format!("unavailable ({e})"),
    };
    use crate::vision::kernels::{isa, qisa};
    let lower = |d: String| d.to_ascii_lowercase();
    format!("llm: {llm}; vision: f32 {}, int8 {}", lower(format!("{:?}", isa())), lower(format!("{:?}", qisa())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, score: i32) -> Variant {
        Variant { name: name.into(), path: PathBuf::from(format!("/x/{PREFIX}{name}{SUFFIX}")), score }
    }

    #[test]
    fn best_score_wins_and_forcing_checks_the_cpu() {
        let a = [v("x64", 1), v("haswell", 9), v("icelake", 0)];
        assert_eq!(choose(&a, None).unwrap().name, "haswell");
        assert_eq!(choose(&a, Some("x64")).unwrap().name, "x64");
        let e = choose(&a, Some("icelake")).unwrap_err().to_string();
        assert!(e.contains("cannot run") && e.contains("x64 haswell"), "{e}");
        let e = choose(&a, Some("zen9")).unwrap_err().to_string();
        assert!(e.contains("no such") && e.contains("x64 haswell icelake"), "{e}");
        assert!(choose(&[v("icelake", 0)], None).is_err());
    }

    /// The variants built for this target are present next to the test binary, and the CPU running the
    /// tests can run at least one of them (the generic x64 / armv8.0 one).
    #[test]
    fn this_build_ships_runnable_variants() {
        let (found, dirs) = available();
        assert!(!found.is_empty(), "no CPU variants in {dirs:?}");
        let base = if cfg!(target_arch = "x86_64") { "x64" } else { "armv8.0_1" };
        let b = found.iter().find(|v| v.name == base).unwrap_or_else(|| panic!("{base} missing: {found:?}"));
        assert!(b.score > 0, "{found:?}");
        let sel = ensure_loaded().unwrap();
        assert!(sel.variant.score >= b.score);
    }

    /// Under an emulated CPU (scripts/test-old-cpu.sh: qemu-x86_64 -cpu Westmere) the script says what
    /// must be chosen there: the pre-AVX llama.cpp variant and our scalar vision kernels.
    #[test]
    fn expected_choice_on_this_cpu() {
        if let Ok(want) = std::env::var("H2OVL_EXPECT_LLM_CPU") {
            assert_eq!(ensure_loaded().unwrap().variant.name, want);
        }
        if let Ok(want) = std::env::var("H2OVL_EXPECT_VISION") {
            let got = describe();
            assert!(got.ends_with(&format!("vision: {want}")), "{got}");
        }
    }
}
