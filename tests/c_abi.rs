//! The C ABI as C, C++, Python and CMake users get it: the library is built
//! (`kernelpool-capi`, and `kpool-worker`) and installed into a scratch prefix with
//! `scripts/install.sh`; real C and C++ programs are compiled against the installed
//! headers with `-Wall -Wextra -Werror`, linked once to the shared and once to the static
//! library (flags from the installed `kernelpool.pc`), run and checked; the examples in
//! `examples/c`, `examples/cpp`, `examples/python` and `examples/cmake` run too. The C
//! test under valgrind is an ignored test (`.ci/run` runs it).
//!
//! The library is built by this test (`cargo build -p kernelpool-capi -p
//! kernelpool-pool` with this test's profile and target directory), so that
//! `cargo test` alone never runs C programs against a stale library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>, the directory of this test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_path_buf()
}

/// The scratch prefix the library is installed in, and the directory of the test
/// programs (built once per test process).
struct Setup {
    prefix: PathBuf,
    dir: PathBuf,
    userkernels: PathBuf,
}

fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let profile_dir = profile_dir();
        let target = profile_dir.parent().expect("target dir").to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile name")
            .to_string();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(root())
            .args(["build", "-p", "kernelpool-capi", "-p", "kernelpool-pool"])
            .arg("--target-dir")
            .arg(&target);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            p => {
                build.args(["--profile", p]);
            }
        }
        run_ok(&mut build, "building the C ABI");
        let dir = target.join("c-abi-tests");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let prefix = dir.join("prefix");
        run_ok(
            Command::new("bash")
                .current_dir(root())
                .args(["scripts/install.sh", "--no-build"])
                .env("PREFIX", &prefix)
                .env("CARGO_TARGET_DIR", &target)
                .env("KERNELPOOL_PROFILE", &profile),
            "scripts/install.sh",
        );
        let userkernels = dir.join("libuserkernels.so");
        run_ok(
            Command::new("gcc")
                .args([
                    "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I",
                ])
                .arg(prefix.join("include"))
                .arg(root().join("tests/c/userkernels.c"))
                .arg("-o")
                .arg(&userkernels),
            "compiling tests/c/userkernels.c",
        );
        Setup {
            prefix,
            dir,
            userkernels,
        }
    })
}

/// `pkg-config ARGS kernelpool` against the scratch prefix, split into words.
fn pkg_config(args: &[&str]) -> Vec<String> {
    let s = setup();
    let out = run_ok(
        Command::new("pkg-config")
            .args(args)
            .arg("kernelpool")
            .env("PKG_CONFIG_PATH", s.prefix.join("lib/pkgconfig")),
        "pkg-config (scripts/setup.sh --tests installs it)",
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

/// Compile `sources` with `compiler` and `std`, warnings as errors, linked as `link`.
fn compile(compiler: &str, std: &str, sources: &[PathBuf], name: &str, link: Link) -> PathBuf {
    let s = setup();
    let exe = s.dir.join(name);
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .args(pkg_config(&["--cflags"]))
        .args(sources)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared => {
            cmd.args(pkg_config(&["--libs"]))
                .arg(format!("-Wl,-rpath,{}", s.prefix.join("lib").display()));
        }
        Link::Static => {
            cmd.arg(s.prefix.join("lib/libkernelpool.a")).args(
                pkg_config(&["--static", "--libs-only-l"])
                    .into_iter()
                    .filter(|l| l != "-lkernelpool"),
            );
        }
    }
    cmd.arg("-lm");
    run_ok(&mut cmd, &format!("compiling {name}"));
    exe
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tests/c/abi.c: every executor, built-in and user kernels, the table of bad inputs.
fn c_abi_program(link: Link) -> PathBuf {
    compile(
        "gcc",
        "c11",
        &[root().join("tests/c/abi.c")],
        &format!("abi-{link:?}"),
        link,
    )
}

fn check_abi_run(out: &Output, min_bad_inputs: usize) {
    let t = text(out);
    println!("{t}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "abi exited {}:\n{t}", out.status);
    let last = t.lines().last().unwrap_or_default();
    assert!(last.ends_with(" checks, 0 failed"), "{last}");
    assert!(t.matches("bad input: ").count() >= min_bad_inputs, "{t}");
}

fn run_abi(exe: &Path) -> Output {
    let s = setup();
    Command::new(exe)
        .arg(root().join("reference-outputs"))
        .arg(&s.userkernels)
        .env("KERNELPOOL_CACHE_DIR", s.dir.join("jit-cache"))
        .output()
        .expect("run abi")
}

#[test]
fn c_program_on_the_shared_library() {
    let exe = c_abi_program(Link::Shared);
    check_abi_run(&run_abi(&exe), 60);
}

#[test]
fn c_program_on_the_static_library() {
    let exe = c_abi_program(Link::Static);
    check_abi_run(&run_abi(&exe), 60);
}

/// memcheck: no invalid read or write, no definite leak, in the C program, the library
/// or the kernels. Without the process pools: rustix reads the vDSO to read the clock,
/// which valgrind does not map (rustix issue 1559), so a pool's start crashes there.
/// Without the JIT: valgrind 3.19 does not decode the SHA-NI instructions that sha2 (the
/// JIT's cache key) uses on CPUs that have them.
#[test]
#[ignore = "needs valgrind and a build it decodes: RUSTFLAGS=\"-C target-cpu=x86-64-v2\" \
            cargo test --release --target-dir target/valgrind --test c_abi -- --ignored \
            (.ci/run runs it)"]
fn c_program_is_clean_under_valgrind() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.as_ref().is_ok_and(|o| o.status.success()),
        "valgrind does not run ({valgrind:?}): scripts/setup.sh --tests installs it \
         (Debian/Ubuntu: sudo apt-get install valgrind)"
    );
    let exe = c_abi_program(Link::Shared);
    let s = setup();
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ])
        .arg(&exe)
        .arg(root().join("reference-outputs"))
        .arg(&s.userkernels)
        .arg("--no-processes")
        .arg("--no-jit")
        .env("KERNELPOOL_CACHE_DIR", s.dir.join("jit-cache"))
        .output()
        .expect("run valgrind");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("unhandled instruction bytes"),
        "valgrind cannot decode an instruction of this build (AVX-512 or SHA-NI with \
         target-cpu=native): build it for x86-64-v2, as .ci/run does:\n{log}"
    );
    check_abi_run(&out, 50);
    assert!(
        log.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found errors:\n{log}"
    );
}

/// The first C ABI's program still builds and runs against the installed header.
#[test]
fn the_first_c_program_still_runs() {
    let exe = compile(
        "gcc",
        "c11",
        &[root().join("tests/c/run_program.c")],
        "run_program",
        Link::Shared,
    );
    let out = run_ok(&mut Command::new(&exe), "run_program");
    assert!(
        text(&out).starts_with("1.274219991\nversion "),
        "{}",
        text(&out)
    );
}

#[test]
fn the_header_compiles_as_c11_and_cpp17() {
    let s = setup();
    let src = s.dir.join("header.c");
    std::fs::write(
        &src,
        "#include <kernelpool.h>\nint main(void) { return KP_OK; }\n",
    )
    .expect("write");
    let cpp = s.dir.join("header.cpp");
    std::fs::write(
        &cpp,
        "#include <kernelpool.h>\n#include <kernelpool.hpp>\nint main() { return KP_OK; }\n",
    )
    .expect("write");
    for (cc, std, file) in [
        ("gcc", "c11", &src),
        ("g++", "c++17", &cpp),
        ("g++", "c++20", &cpp),
    ] {
        run_ok(
            Command::new(cc)
                .arg(format!("-std={std}"))
                .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "-o"])
                .arg(s.dir.join(format!("header-{std}.o")))
                .args(pkg_config(&["--cflags"]))
                .arg(file),
            &format!("the header as {std}"),
        );
    }
}

#[test]
fn cpp_program_on_both_libraries() {
    for (std, link) in [("c++17", Link::Shared), ("c++20", Link::Static)] {
        let exe = compile(
            "g++",
            std,
            &[root().join("tests/cpp/abi.cpp")],
            &format!("abi-cpp-{std}-{link:?}"),
            link,
        );
        let out = run_abi(&exe);
        let t = text(&out);
        println!("{t}");
        assert!(
            out.status.success(),
            "{std} {link:?}: {}\n{t}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(t.ends_with("C++: all checks passed\n"), "{t}");
    }
}

/// examples/c: a process pool, a built-in kernel's program, a kernel from a shared object.
#[test]
fn c_example_runs() {
    let s = setup();
    let so = s.dir.join("libsquare.so");
    run_ok(
        Command::new("gcc")
            .args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"])
            .args(pkg_config(&["--cflags"]))
            .arg(root().join("examples/c/square.c"))
            .arg("-o")
            .arg(&so),
        "compiling examples/c/square.c",
    );
    for link in [Link::Shared, Link::Static] {
        let exe = compile(
            "gcc",
            "c11",
            &[root().join("examples/c/pool.c")],
            &format!("pool-c-{link:?}"),
            link,
        );
        let out = run_ok(Command::new(&exe).arg(&so), "examples/c/pool.c");
        assert_eq!(text(&out), "1.274219991\n1 4 9\n", "{link:?}");
    }
}

#[test]
fn cpp_example_runs() {
    let exe = compile(
        "g++",
        "c++17",
        &[root().join("examples/cpp/pool.cpp")],
        "pool-cpp",
        Link::Shared,
    );
    let out = run_ok(&mut Command::new(&exe), "examples/cpp/pool.cpp");
    let t = text(&out);
    assert!(
        t.starts_with("-0.169075164\n-0.169087605\nout[99] 200 sum 5050\nerror 4: "),
        "{t}"
    );
    assert!(t.contains("failed with status -2"), "{t}");
}

/// examples/python: `with mp.Pool() as p: print(p.map(f, [1, 2, 3]))` with the seed
/// kernel on worker processes (kpool-worker, found beside the installed library).
#[test]
fn python_example_runs() {
    let s = setup();
    let out = run_ok(
        Command::new("python3")
            .arg(root().join("examples/python/pool_map.py"))
            .env("KERNELPOOL_LIB", s.prefix.join("lib/libkernelpool.so"))
            .env_remove("KERNELPOOL_WORKER"),
        "examples/python/pool_map.py",
    );
    assert_eq!(
        text(&out),
        "[10000000, 40000000, 90000000]\n-0.169075164 -0.169087605\n"
    );
}

/// examples/cmake: a CMake project finds the installed kernelpool through pkg-config,
/// builds the C and C++ examples, and they run.
#[test]
fn cmake_example_builds_and_runs() {
    let s = setup();
    let cmake = Command::new("cmake").arg("--version").output();
    assert!(
        cmake.as_ref().is_ok_and(|o| o.status.success()),
        "cmake does not run ({cmake:?}): scripts/setup.sh --tests installs it \
         (Debian/Ubuntu: sudo apt-get install cmake)"
    );
    let build = s.dir.join("cmake-build");
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(root().join("examples/cmake"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", s.prefix.display()))
            .env_remove("PKG_CONFIG_PATH"),
        "cmake configure",
    );
    run_ok(
        Command::new("cmake").arg("--build").arg(&build),
        "cmake --build",
    );
    let out = run_ok(
        Command::new(build.join("pool_c")).arg(build.join("libsquare.so")),
        "pool_c built by CMake",
    );
    assert_eq!(text(&out), "1.274219991\n1 4 9\n");
    let out = run_ok(&mut Command::new(build.join("pool_cpp")), "pool_cpp");
    assert!(text(&out).starts_with("-0.169075164\n"), "{}", text(&out));
}
