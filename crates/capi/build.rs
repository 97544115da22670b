//! The C ABI's build script: names the shared library (SONAME `libkernelpool.so.MAJOR`),
//! and with `--features cbindgen` generates `include/kernelpool.h` from this crate with
//! cbindgen into `$OUT_DIR` (and into `include/` itself when `KERNELPOOL_UPDATE_HEADER`
//! is set); the test `header_is_fresh` compares the committed header with that fresh one.
//! A cbindgen failure fails the build. Without the feature nothing else is done, so a
//! plain build never compiles cbindgen.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("CARGO_PKG_VERSION_MAJOR");
    // Only the cdylib gets it; the target is ELF (the pool is Linux-only).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkernelpool.so.{major}");
    #[cfg(feature = "cbindgen")]
    header();
}

#[cfg(feature = "cbindgen")]
fn header() {
    use std::path::PathBuf;
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=KERNELPOOL_UPDATE_HEADER");
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
    // The version macros are Cargo.toml's version (a bump makes the committed header
    // stale, which the drift test reports).
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    config.after_includes = Some(format!(
        "\n/* The version of this header (kp_version() gives the library's). */\n\
         #define KP_VERSION_MAJOR {}\n#define KP_VERSION_MINOR {}\n#define KP_VERSION_PATCH {}\n\
         #define KP_VERSION_STRING \"{}\"\n",
        var("CARGO_PKG_VERSION_MAJOR"),
        var("CARGO_PKG_VERSION_MINOR"),
        var("CARGO_PKG_VERSION_PATCH"),
        var("CARGO_PKG_VERSION"),
    ));
    // lib.rs: cbindgen follows its `mod` declarations.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate include/kernelpool.h: {e}"));
    bindings.write_to_file(out.join("kernelpool.h"));
    if std::env::var_os("KERNELPOOL_UPDATE_HEADER").is_some() {
        bindings.write_to_file(dir.join("../../include/kernelpool.h"));
    }
}
