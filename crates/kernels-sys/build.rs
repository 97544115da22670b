//! Compiles the native kernels in `native/` (C with gcc, C++ with g++, Fortran with gfortran)
//! into one static library, and provides the raw bindings (committed `src/bindings.rs`, or a
//! fresh bindgen run with `--features bindgen`).
//!
//! Every kernel is built with `-O3 -ffp-contract=off` (Fortran also `-fwrapv`) and the same
//! `-march` as the Rust code (taken from `-C target-cpu=` in the rustflags), so that the four
//! languages agree bit for bit.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags shared by the three native languages.
const COMMON_FLAGS: &[&str] = &["-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let native = manifest
        .join("../../native")
        .canonicalize()
        .unwrap_or_else(|e| {
            fail(&format!(
                "native sources not found next to the workspace ({e})"
            ))
        });
    let include = native.join("include");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    for var in [
        "CC",
        "CXX",
        "FC",
        "CFLAGS",
        "CXXFLAGS",
        "FFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let c_sources = sources(&native.join("c"), "c");
    let cpp_sources = sources(&native.join("cpp"), "cpp");
    let f_sources = sources(&native.join("fortran"), "f90");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("kernels.h").display()
    );

    let cpu = target_cpu();
    let march = cpu.as_ref().map(|cpu| format!("-march={cpu}"));
    println!(
        "cargo:rustc-env=KERNELPOOL_TARGET_CPU={}",
        cpu.as_deref().unwrap_or("")
    );
    // Under AddressSanitizer (nightly `-Zsanitizer=address`, scripts/sanitize.sh) the
    // native kernels are instrumented too; rustc links its ASan runtime, which serves them.
    println!("cargo:rerun-if-env-changed=CARGO_CFG_SANITIZE");
    let asan = env::var("CARGO_CFG_SANITIZE")
        .is_ok_and(|s| s.split(',').any(|sanitizer| sanitizer == "address"));

    let cc = env::var("CC").unwrap_or_else(|_| "gcc".into());
    let cxx = env::var("CXX").unwrap_or_else(|_| "g++".into());
    let fc = env::var("FC").unwrap_or_else(|_| "gfortran".into());
    require_compiler(&cc, "gcc");
    require_compiler(&cxx, "g++");
    require_compiler(&fc, "gfortran");

    let mut c = cc::Build::new();
    c.compiler(&cc)
        .std("c11")
        .include(&include)
        .files(&c_sources);
    let mut cpp = cc::Build::new();
    cpp.cpp(true)
        // libstdc++ is linked below, statically unless under ASan.
        .cpp_link_stdlib(if asan { Some("stdc++") } else { None })
        .compiler(&cxx)
        .std("c++17")
        .include(&include)
        .files(&cpp_sources);
    let mut fortran = cc::Build::new();
    fortran
        .compiler(&fc)
        .files(&f_sources)
        .flag("-fwrapv")
        .flag("-J")
        .flag(out.to_str().expect("OUT_DIR is UTF-8"));
    for build in [&mut c, &mut cpp, &mut fortran] {
        build.opt_level(3).warnings(false).extra_warnings(false);
        for flag in COMMON_FLAGS {
            build.flag(flag);
        }
        if let Some(m) = &march {
            build.flag(m);
        }
        if asan {
            build
                .flag("-fsanitize=address")
                .flag("-fno-omit-frame-pointer");
        }
    }
    for (var, exe) in [("CC", &cc), ("CXX", &cxx), ("FC", &fc)] {
        println!(
            "cargo:rustc-env=KERNELPOOL_{var}_VERSION={}",
            version_line(exe)
        );
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!(
        "cargo:rustc-env=KERNELPOOL_RUSTC_VERSION={}",
        version_line(&rustc)
    );
    println!(
        "cargo:rustc-env=KERNELPOOL_MARCH={}",
        march.as_deref().unwrap_or("(compiler default)")
    );
    c.compile("kpkernels_c");
    cpp.compile("kpkernels_cpp");
    fortran.compile("kpkernels_fortran");

    // libgfortran: found through the Fortran compiler, as netlib-src does.
    if let Some(dir) = library_file(&fc, "libgfortran.so").parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    // libstdc++ statically: every worker process execs this program, and loading and
    // relocating libstdc++.so cost about 1.1 ms of each exec on the development VM (a
    // pool of 2 started in 2.9 ms with it, 1.6 ms without). `-bundle`: the archive is
    // named at the final link, not copied into this crate's rlib. Under ASan the shared
    // one stays, so that the sanitizer's `operator new` is the one that is called.
    if !asan {
        if let Some(dir) = library_file(&cxx, "libstdc++.a").parent() {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
        println!("cargo:rustc-link-lib=static:-bundle=stdc++");
    }
    println!("cargo:rustc-link-lib=dylib=gfortran");
    println!("cargo:rustc-link-lib=dylib=m");
    println!("cargo:include={}", include.display());

    bindings(&include, &manifest, &out);
}

/// The `target-cpu` in the rustflags, so C, C++ and Fortran use the Rust code's CPU.
fn target_cpu() -> Option<String> {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let mut cpu = None;
    for (i, f) in flags.iter().enumerate() {
        let value = if let Some(v) = f.strip_prefix("-Ctarget-cpu=") {
            Some(v)
        } else if *f == "-C" {
            flags.get(i + 1).and_then(|v| v.strip_prefix("target-cpu="))
        } else {
            f.strip_prefix("target-cpu=")
                .filter(|_| i > 0 && flags[i - 1] == "-C")
        };
        if let Some(v) = value {
            cpu = Some(v.to_string());
        }
    }
    // rustc's generic x86-64 baseline is gcc's `x86-64` too; both know `native`.
    cpu
}

/// Sorted list of the sources with `ext` in `dir`, each registered for rerun.
fn sources(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    files
}

/// First line of `exe --version`.
/// The absolute path of `file` in `compiler`'s library directories (`-print-file-name`).
fn library_file(compiler: &str, file: &str) -> PathBuf {
    Command::new(compiler)
        .arg(format!("-print-file-name={file}"))
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            fail(&format!(
                "`{compiler} -print-file-name={file}` found no library"
            ))
        })
}

fn version_line(exe: &str) -> String {
    Command::new(exe)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn require_compiler(exe: &str, package: &str) {
    let ok = Command::new(exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        fail(&format!(
            "the compiler `{exe}` was not found; install it (Debian/Ubuntu: \
             `sudo apt-get install {package}`), or run scripts/setup.sh"
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: kernelpool-kernels-sys: {msg}");
    println!("cargo:warning=kernelpool-kernels-sys: {msg}");
    std::process::exit(1);
}

#[cfg(not(feature = "bindgen"))]
fn bindings(_include: &Path, manifest: &Path, out: &Path) {
    let committed = manifest.join("src/bindings.rs");
    println!("cargo:rerun-if-changed={}", committed.display());
    std::fs::copy(&committed, out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", committed.display())));
}

#[cfg(feature = "bindgen")]
fn bindings(include: &Path, manifest: &Path, out: &Path) {
    let header = include.join("kernels.h");
    let generated = bindgen::Builder::default()
        .header(header.to_str().expect("UTF-8 path"))
        .allowlist_function("kp_.*")
        .allowlist_type("kp_.*")
        .allowlist_var("KP_.*")
        .layout_tests(true)
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bindgen failed ({e}); it needs libclang (Debian/Ubuntu: `sudo apt-get install libclang-dev`)"
            ))
        });
    let text = format!(
        "// Generated by bindgen from native/include/kernels.h; do not edit.\n\
         // Regenerate: KERNELPOOL_UPDATE_BINDINGS=1 cargo build -p kernelpool-kernels-sys --features bindgen\n\
         {generated}"
    );
    std::fs::write(out.join("bindings.rs"), &text).expect("write bindings");
    println!("cargo:rerun-if-env-changed=KERNELPOOL_UPDATE_BINDINGS");
    if env::var_os("KERNELPOOL_UPDATE_BINDINGS").is_some() {
        std::fs::write(manifest.join("src/bindings.rs"), &text).expect("update committed bindings");
    }
}
