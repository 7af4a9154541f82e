//! Records what the binary was built for, so `h2ovl --version` and bug reports say it, and makes the
//! binary find llama.cpp's shared libraries beside itself (`$ORIGIN` rpath): a build or `make dist`
//! folder keeps working after it is moved (runtime/build.rs puts the libraries there).
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=H2OVL_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=H2OVL_TARGET={target}");
    if target.contains("linux") {
        // DT_RPATH, not the newer DT_RUNPATH: RUNPATH applies only to the binary's own NEEDED entries,
        // and libllama/libggml need libggml-base, which must be found beside the binary too.
        println!("cargo:rustc-link-arg-bins=-Wl,--disable-new-dtags,-rpath,$ORIGIN");
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=build.rs");
}
