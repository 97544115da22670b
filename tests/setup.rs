//! `scripts/setup.sh --check`: what it decides is missing, on fake library directories and
//! fake compilers, so that the answer does not depend on this machine.
//!
//! The libclang search is pointed at the fake directories with `KERNELPOOL_LIBCLANG_DIRS`
//! (which replaces clang-sys's search outside `LIBCLANG_PATH`). The compilers are fake
//! scripts named by `CC`, `CXX` and `FC`, `valgrind`, `cmake`, `pkg-config`, `mpicc`
//! (answers `-show`) and `mpirun` (answers `--version`) are fakes first on PATH, `rustup` is a
//! fake that reports rustfmt and clippy installed, and `apt-get` is a fake that records any
//! call (`--check` must never make one).

#[path = "support/executable.rs"]
mod executable;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A 64-bit ELF header start: what clang-sys's `validate_library` reads.
const ELF64: &[u8] = b"\x7fELF\x02\x01\x01\x00not really a library";

/// A fresh, empty directory of its own for each call.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kp-setup-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A directory holding `files` (name, contents).
fn lib_dir(files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch("lib");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write fake library");
    }
    dir
}

fn script(path: &Path, body: &str) {
    executable::write_executable(path, &format!("#!/bin/sh\n{body}\n"));
}

/// Fake tools: compilers `cc`, `c++`, `fortran` and `valgrind` (each answers `--version`),
/// Open MPI's `mpicc` (answers `-show`, as the mpi crate's build asks) and `mpirun`,
/// `python3` (with a venv module),
/// `rustup` (rustfmt and clippy installed) and `apt-get` (records its arguments in
/// `apt-get.log`).
struct Fakes {
    bin: PathBuf,
}

impl Fakes {
    fn new() -> Self {
        let bin = scratch("bin");
        for exe in ["cc", "c++", "fortran"] {
            script(&bin.join(exe), "echo fake compiler");
        }
        script(&bin.join("valgrind"), "echo valgrind-3.19.0");
        for exe in ["cmake", "pkg-config"] {
            script(&bin.join(exe), "echo fake 1.0");
        }
        // python3 with its venv module: `-c 'import ensurepip, venv'` succeeds.
        script(
            &bin.join("python3"),
            "case \"$1\" in --version) echo Python 3.11.7 ;; -c) exit 0 ;; esac",
        );
        script(
            &bin.join("mpicc"),
            "[ \"$1\" = -show ] && echo gcc -I/usr/lib/x86_64-linux-gnu/openmpi/include -lmpi",
        );
        script(
            &bin.join("mpirun"),
            "[ \"$1\" = --version ] && echo 'mpirun (Open MPI) 4.1.4'",
        );
        script(
            &bin.join("rustup"),
            "echo rustfmt-x86_64-unknown-linux-gnu; echo clippy-x86_64-unknown-linux-gnu",
        );
        let log = bin.join("apt-get.log");
        script(
            &bin.join("apt-get"),
            &format!("echo \"$@\" >> '{}'", log.display()),
        );
        Fakes { bin }
    }

    fn apt_get_calls(&self) -> String {
        std::fs::read_to_string(self.bin.join("apt-get.log")).unwrap_or_default()
    }

    /// `bash scripts/setup.sh --check --tests`, the fakes first on PATH, searching only
    /// `dirs` for libclang; `env` is applied last (a value of `None` removes the variable).
    fn check(&self, dirs: &[&Path], env: &[(&str, Option<&str>)]) -> (bool, String) {
        self.check_for(&["--tests"], dirs, env)
    }

    /// `check`, with `args` after `--check` in place of `--tests` (`&[]`: what the bench's
    /// set-up, `scripts/setup.sh` alone, asks for).
    fn check_for(
        &self,
        args: &[&str],
        dirs: &[&Path],
        env: &[(&str, Option<&str>)],
    ) -> (bool, String) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let mut cmd = Command::new(system_tool("bash"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["scripts/setup.sh", "--check"])
            .args(args)
            .env("PATH", path)
            .env("KERNELPOOL_LIBCLANG_DIRS", dirs.join(":"))
            .env("CC", self.bin.join("cc"))
            .env("CXX", self.bin.join("c++"))
            .env("FC", self.bin.join("fortran"))
            .env_remove("MPICC")
            .env_remove("LIBCLANG_PATH")
            .env_remove("LLVM_CONFIG_PATH");
        apply(&mut cmd, env);
        report(cmd.output().expect("bash runs"))
    }
}

fn apply(cmd: &mut Command, env: &[(&str, Option<&str>)]) {
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
}

/// (exit status 0, stdout and stderr together), echoed for the test log.
fn report(out: Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- setup.sh ({}):\n{text}", out.status);
    (out.status.success(), text)
}

fn found_line(lib: &Path) -> String {
    format!("libclang (what bindgen loads): {}", lib.display())
}

/// A real libclang-cpp.so.14 is a loadable ELF: only its name rules it out.
#[test]
fn libclang_cpp_alone_is_not_libclang() {
    let fakes = Fakes::new();
    let dir = lib_dir(&[("libclang-cpp.so.14", ELF64)]);
    let (ok, out) = fakes.check(&[&dir], &[]);
    assert!(
        !ok,
        "only libclang-cpp.so.14, yet setup --check passed:\n{out}"
    );
    assert!(out.contains("missing: libclang-dev"), "{out}");
    assert!(out.contains("apt-get install libclang-dev"), "{out}");
    assert!(!out.contains("libclang (what bindgen loads)"), "{out}");
    assert_eq!(fakes.apt_get_calls(), "", "--check ran apt-get");
}

#[test]
fn libclang_so_n_is_found_beside_libclang_cpp() {
    let fakes = Fakes::new();
    let dir = lib_dir(&[("libclang-cpp.so.14", ELF64), ("libclang.so.14", ELF64)]);
    let (ok, out) = fakes.check(&[&dir], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&found_line(&dir.join("libclang.so.14"))),
        "{out}"
    );
    assert!(!out.contains("libclang-dev"), "{out}");
    assert!(out.contains("nothing missing"), "{out}");
}

#[test]
fn the_highest_version_is_the_one_bindgen_loads() {
    let fakes = Fakes::new();
    let old = lib_dir(&[("libclang.so.13", ELF64)]);
    let new = lib_dir(&[("libclang-14.so.1", ELF64)]);
    let (ok, out) = fakes.check(&[&old, &new], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&found_line(&new.join("libclang-14.so.1"))),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_a_64_bit_elf_does_not_count() {
    let fakes = Fakes::new();
    let dir = lib_dir(&[
        ("libclang.so.14", b""),
        ("libclang-15.so.1", b"\x7fELF\x01\x01\x01\x00 32-bit"),
    ]);
    let (ok, out) = fakes.check(&[&dir], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: libclang-dev"), "{out}");
}

#[test]
fn libclang_path_is_honoured() {
    let fakes = Fakes::new();
    let bad = lib_dir(&[("libclang-cpp.so.14", ELF64)]);
    let good = lib_dir(&[("libclang-14.so.1", ELF64)]);
    let lib = good.join("libclang-14.so.1");

    // A directory.
    let (ok, out) = fakes.check(&[&bad], &[("LIBCLANG_PATH", good.to_str())]);
    assert!(ok, "{out}");
    assert!(out.contains(&found_line(&lib)), "{out}");
    assert!(!out.contains("libclang-dev"), "{out}");

    // The library file itself.
    let (ok, out) = fakes.check(&[&bad], &[("LIBCLANG_PATH", lib.to_str())]);
    assert!(ok, "{out}");
    assert!(out.contains(&found_line(&lib)), "{out}");

    // Set to a directory without libclang: bindgen looks nowhere else, and installing
    // libclang-dev would not help, so setup says so (even though `good` is searchable).
    let (ok, out) = fakes.check(&[&good], &[("LIBCLANG_PATH", bad.to_str())]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "LIBCLANG_PATH={} holds no libclang",
            bad.display()
        )),
        "{out}"
    );
    assert!(!out.contains("apt-get install"), "{out}");
}

#[test]
fn a_missing_named_compiler_is_reported_by_name() {
    let fakes = Fakes::new();
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let (ok, out) = fakes.check(&[&good], &[("FC", Some("/nonexistent/gfortran"))]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "error: FC=/nonexistent/gfortran: `/nonexistent/gfortran --version` does not run"
        ),
        "{out}"
    );
    // No package replaces a compiler the user named.
    assert!(!out.contains("apt-get install"), "{out}");
    assert!(!out.contains("missing: gfortran"), "{out}");
    assert!(out.contains("C compiler: CC="), "{out}");
}

#[test]
fn a_missing_default_compiler_is_a_package() {
    let fakes = Fakes::new();
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    // FC unset, and no gfortran on a PATH of only the fakes and what the script needs.
    let (ok, out) = without_system_path(&fakes, &[&good], &[("FC", None)]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: gfortran"), "{out}");
    assert!(out.contains("apt-get install gfortran"), "{out}");
}

#[test]
fn without_apt_get_it_names_the_tools() {
    let fakes = Fakes::new();
    std::fs::remove_file(fakes.bin.join("apt-get")).expect("rm fake apt-get");
    let bad = lib_dir(&[("libclang-cpp.so.14", ELF64)]);
    let (ok, out) = without_system_path(&fakes, &[&bad], &[("CXX", None)]);
    assert!(!ok, "{out}");
    assert!(out.contains("apt-get was not found"), "{out}");
    assert!(out.contains("- g++ (a C++ compiler; CXX is unset"), "{out}");
    assert!(
        out.contains("- libclang, the shared library bindgen loads"),
        "{out}"
    );
    assert!(
        out.contains("on Debian/Ubuntu the packages are: g++ libclang-dev"),
        "{out}"
    );
    assert!(!out.contains("sudo apt-get install"), "{out}");
}

#[test]
fn a_missing_valgrind_is_a_package() {
    let fakes = Fakes::new();
    std::fs::remove_file(fakes.bin.join("valgrind")).expect("rm fake valgrind");
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: valgrind"), "{out}");
    assert!(out.contains("apt-get install valgrind"), "{out}");
    // Found, it is named.
    let fakes = Fakes::new();
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "valgrind: {}",
            fakes.bin.join("valgrind").display()
        )),
        "{out}"
    );
}

#[test]
fn a_missing_cmake_or_pkg_config_is_a_package() {
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    for tool in ["cmake", "pkg-config"] {
        let fakes = Fakes::new();
        std::fs::remove_file(fakes.bin.join(tool)).expect("rm fake");
        let (ok, out) = without_system_path(&fakes, &[&good], &[]);
        assert!(!ok, "{out}");
        assert!(out.contains(&format!("missing: {tool}")), "{out}");
        assert!(out.contains(&format!("apt-get install {tool}")), "{out}");
        assert_eq!(fakes.apt_get_calls(), "", "--check ran apt-get");
    }
    let fakes = Fakes::new();
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("cmake: {}", fakes.bin.join("cmake").display())),
        "{out}"
    );
}

#[test]
fn open_mpi_is_found_where_the_build_and_the_tests_look() {
    let fakes = Fakes::new();
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "MPI compiler wrapper: {}",
            fakes.bin.join("mpicc").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "mpirun: {} (mpirun (Open MPI) 4.1.4)",
            fakes.bin.join("mpirun").display()
        )),
        "{out}"
    );
}

#[test]
fn a_missing_open_mpi_is_two_packages() {
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    // No mpicc: the headers and the wrapper come with libopenmpi-dev.
    let fakes = Fakes::new();
    std::fs::remove_file(fakes.bin.join("mpicc")).expect("rm fake mpicc");
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: libopenmpi-dev"), "{out}");
    assert!(out.contains("apt-get install libopenmpi-dev"), "{out}");
    assert_eq!(fakes.apt_get_calls(), "", "--check ran apt-get");
    // An mpicc that does not answer `-show` (what the build runs) does not count.
    let fakes = Fakes::new();
    script(&fakes.bin.join("mpicc"), "exit 1");
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: libopenmpi-dev"), "{out}");
    // No mpirun: openmpi-bin.
    let fakes = Fakes::new();
    std::fs::remove_file(fakes.bin.join("mpirun")).expect("rm fake mpirun");
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: openmpi-bin"), "{out}");
    // Neither, and no apt-get: both tools are named, with the package names.
    let fakes = Fakes::new();
    for f in ["mpicc", "mpirun", "apt-get"] {
        std::fs::remove_file(fakes.bin.join(f)).expect("rm fake");
    }
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("- mpicc, an MPI compiler wrapper"), "{out}");
    assert!(out.contains("- mpirun, the MPI launcher"), "{out}");
    assert!(
        out.contains("on Debian/Ubuntu the packages are: libopenmpi-dev openmpi-bin"),
        "{out}"
    );
}

#[test]
fn a_python3_without_venv_is_a_package() {
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let fakes = Fakes::new();
    // Debian's python3 without python3-venv: the import fails.
    script(
        &fakes.bin.join("python3"),
        "case \"$1\" in --version) echo Python 3.11.7 ;; -c) exit 1 ;; esac",
    );
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: python3-venv"), "{out}");
    assert!(out.contains("apt-get install python3-venv"), "{out}");
    assert_eq!(fakes.apt_get_calls(), "", "--check ran apt-get");
    // With it, python3 is named.
    let fakes = Fakes::new();
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "python3 with venv: {}",
            fakes.bin.join("python3").display()
        )),
        "{out}"
    );
}

#[test]
fn a_named_mpicc_that_does_not_run_is_reported_by_name() {
    let fakes = Fakes::new();
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let (ok, out) = fakes.check(&[&good], &[("MPICC", Some("/nonexistent/mpicc"))]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("error: MPICC=/nonexistent/mpicc: `/nonexistent/mpicc -show` does not run"),
        "{out}"
    );
    // No package replaces a wrapper the user named.
    assert!(!out.contains("libopenmpi-dev"), "{out}");
}

#[test]
fn without_python3_only_the_tests_need_it() {
    let good = lib_dir(&[("libclang.so.14", ELF64)]);
    let fakes = Fakes::new();
    std::fs::remove_file(fakes.bin.join("python3")).expect("rm fake python3");
    // The bench's set-up: the Python rows say "not available", nothing is missing.
    let (ok, out) = without_system_path_for(&fakes, &[], &[&good], &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("python3"), "{out}");
    // The tests run the seed section with Python for real: python3 and its venv module.
    let (ok, out) = without_system_path(&fakes, &[&good], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("missing: python3 python3-venv"), "{out}");
    assert_eq!(fakes.apt_get_calls(), "", "--check ran apt-get");
}

/// `check`, with PATH holding only the fakes and links to the few system tools the script
/// uses, so that no system compiler (or apt-get) is found.
fn without_system_path(
    fakes: &Fakes,
    dirs: &[&Path],
    env: &[(&str, Option<&str>)],
) -> (bool, String) {
    without_system_path_for(fakes, &["--tests"], dirs, env)
}

/// `without_system_path`, with `args` after `--check` in place of `--tests`.
fn without_system_path_for(
    fakes: &Fakes,
    args: &[&str],
    dirs: &[&Path],
    env: &[(&str, Option<&str>)],
) -> (bool, String) {
    let tools = scratch("tools");
    for tool in ["head", "od", "getconf", "id", "grep"] {
        std::os::unix::fs::symlink(system_tool(tool), tools.join(tool)).expect("symlink tool");
    }
    let path = format!("{}:{}", fakes.bin.display(), tools.display());
    let mut env = env.to_vec();
    env.insert(0, ("PATH", Some(path.as_str())));
    fakes.check_for(args, dirs, &env)
}

/// `tool` in /usr/bin or /bin (an absolute path: the tests change the child's PATH).
fn system_tool(tool: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} not found in /usr/bin or /bin"))
}
