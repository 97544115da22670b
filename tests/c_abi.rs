//! A real C program, compiled with `-Wall -Werror` against `include/kernelpool.h`, linked to
//! the cdylib, and run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this profile's build outputs (target/<profile>).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_path_buf()
}

#[test]
fn c_program_links_to_the_cdylib() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = profile_dir();
    assert!(
        lib_dir.join("libkernelpool.so").exists(),
        "cdylib missing in {}",
        lib_dir.display()
    );
    let out_dir = std::env::temp_dir().join(format!("kp-c-abi-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("tmp dir");
    let exe = out_dir.join("run_program");
    let status = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/run_program.c"))
        .arg("-L")
        .arg(&lib_dir)
        .args(["-lkernelpool", "-o"])
        .arg(&exe)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling the C program failed");
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", &lib_dir)
        .output()
        .expect("run C program");
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        out.status.success(),
        "C program exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("1.274219991\nversion "), "{text}");
}
