//! Puts llama.cpp's shared libraries where the binaries that use them look: beside them.
//!
//! Why: llama-cpp-sys-2's `dynamic-backends` build makes llama.cpp shared libraries (libllama, libggml,
//! libggml-base) plus one `libggml-cpu-<variant>.so` per ISA level, in its own OUT_DIR. Our binaries find
//! the core libraries through an `$ORIGIN` rpath and the CPU variants by scanning the executable's
//! folder (runtime/src/llm/cpu_backend.rs), so a build is relocatable: everything it needs sits in
//! `target/<profile>/` (the `h2ovl` binary) and `target/<profile>/deps/` (test binaries), which is also
//! what `make dist` packs. Files are replaced atomically (copy to a temp name, rename): the crate's own
//! hard links into target/ share inodes with its OUT_DIR and must not be written through.
use std::path::{Path, PathBuf};

fn is_runtime_lib(name: &str) -> bool {
    // Core libraries by their SONAME (`libllama.so.0`), variants by their module name (`libggml-cpu-x64.so`).
    // libllama-common is built (llama-cpp-2 enables the sys crate's default `common` feature) and not
    // linked by anything of ours, but it is copied too: the sys crate leaves a `libllama-common.so`
    // symlink in target/ that must not dangle (its build script fails on a dangling one when re-run).
    let soname = name.starts_with("lib")
        && name.rsplit_once(".so.").is_some_and(|(_, v)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
    soname || (name.starts_with("libggml-cpu-") && name.ends_with(".so"))
}

fn copy_atomic(src: &Path, dir: &Path, name: &str) {
    let dst = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), tmp.display()));
    std::fs::rename(&tmp, &dst).unwrap_or_else(|e| panic!("rename {}: {e}", dst.display()));
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR").map(PathBuf::from) else {
        return; // llama-cpp-sys-2 built without dynamic backends: nothing to place.
    };
    let lib = backends.parent().expect("backends dir has a parent").join("lib");
    println!("cargo:rerun-if-changed={}", backends.display());
    println!("cargo:rerun-if-changed={}", lib.display());
    // OUT_DIR = target/<triple>/<profile>/build/<pkg>-<hash>/out → the profile dir is 3 levels up.
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let profile_dir = out.ancestors().nth(3).expect("OUT_DIR depth").to_path_buf();
    // examples/ too: the sys crate links its `lib*.so` symlinks there as well, and they must resolve.
    let dests = [profile_dir.clone(), profile_dir.join("deps"), profile_dir.join("examples")];
    for src_dir in [&lib, &backends] {
        let Ok(rd) = std::fs::read_dir(src_dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_runtime_lib(&name) {
                continue;
            }
            for d in &dests {
                std::fs::create_dir_all(d).unwrap();
                copy_atomic(&e.path(), d, &name);
            }
        }
    }
}
