//! A real C program, compiled with `-Wall -Werror` against `include/kernelpool.h`, linked to
//! the cdylib, and run; and the same program under valgrind (an ignored test, run by
//! `.ci/run`: it needs valgrind, which `scripts/setup.sh --tests` installs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding this profile's build outputs (target/<profile>).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_path_buf()
}

/// A scratch directory, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `tests/c/run_program.c` compiled and linked to the cdylib: (scratch dir, program, the
/// cdylib's directory).
fn c_program(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = profile_dir();
    assert!(
        lib_dir.join("libkernelpool.so").exists(),
        "cdylib missing in {} (cargo build --release builds it)",
        lib_dir.display()
    );
    let out_dir = std::env::temp_dir().join(format!("kp-c-abi-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("tmp dir");
    let scratch = Scratch(out_dir.clone());
    let exe = out_dir.join("run_program");
    let status = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/run_program.c"))
        .arg("-L")
        .arg(&lib_dir)
        .args(["-lkernelpool", "-o"])
        .arg(&exe)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling the C program failed");
    (scratch, exe, lib_dir)
}

fn check_output(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("1.274219991\nversion "), "{text}");
}

#[test]
fn c_program_links_to_the_cdylib() {
    let (_scratch, exe, lib_dir) = c_program("run");
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", &lib_dir)
        .output()
        .expect("run C program");
    check_output(&out, "the C program");
}

/// memcheck with a full leak check: no invalid read or write, no use of uninitialised
/// values, no leak (definite or possible) in the C program, the cdylib or the kernels.
#[test]
#[ignore = "needs valgrind: cargo test --release --test c_abi -- --ignored (.ci/run runs it)"]
fn c_program_is_clean_under_valgrind() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.as_ref().is_ok_and(|o| o.status.success()),
        "valgrind does not run ({valgrind:?}): scripts/setup.sh --tests installs it \
         (Debian/Ubuntu: sudo apt-get install valgrind)"
    );
    let (_scratch, exe, lib_dir) = c_program("valgrind");
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,possible",
            "--show-leak-kinds=definite,possible",
            "--track-origins=yes",
        ])
        .arg(&exe)
        .env("LD_LIBRARY_PATH", &lib_dir)
        .output()
        .expect("run valgrind");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    check_output(&out, "the C program under valgrind");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found errors:\n{log}"
    );
}
