//! `kpool jit`: the README's command and the examples on every executor, a range kernel
//! with its own signature or a built-in contract, the cache from a fresh process (no
//! compiler runs on a hit), several processes compiling the same new source at once, the
//! cache's location and commands, and one-line errors for everything that can go wrong.

#[path = "../../../tests/support/executable.rs"]
mod executable;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("kp-cli-jit-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `kpool jit ARGS` in the repository root with the cache in `cache`.
fn kpool(cache: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpool"));
    c.arg("jit")
        .args(args)
        .current_dir(ROOT)
        .env("KERNELPOOL_CACHE_DIR", cache)
        .env_remove("CC")
        .env_remove("CXX")
        .env_remove("FC");
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run kpool")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kpool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// One `kpool: error:` and exit status 2, never a panic; the stderr.
fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("kpool: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
    err
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0)
}

const COURSE: &str = "[10000000, 40000000, 90000000]\n";

#[test]
fn the_readme_command_and_the_examples_print_the_course_result() {
    let dir = TempDir::new("readme");
    let cache = dir.join("cache");
    let out = run(kpool(
        &cache,
        &[
            "examples/jit/seed.c",
            "--symbol",
            "f",
            "--map",
            "1,2,3",
            "--exec",
            "processes",
        ],
    ));
    assert_eq!(ok(&out), COURSE);
    for (file, exec) in [
        ("examples/jit/seed.cpp", "threads"),
        ("examples/jit/seed.f90", "processes"),
        ("examples/jit/seed.c", "serial"),
    ] {
        let out = run(kpool(
            &cache,
            &[
                file,
                "--symbol",
                "f",
                "--map",
                "1,2,3",
                "--exec",
                exec,
                "--workers",
                "2",
            ],
        ));
        assert_eq!(ok(&out), COURSE, "{file} on {exec}");
    }
    assert_eq!(entries(&cache), 3);
    // The range kernel, with its own signature and a sum over the chunks.
    let out = run(kpool(
        &cache,
        &[
            "examples/jit/seed_range.c",
            "--symbol",
            "seed_sum",
            "--sig",
            "out i64[items], sum i64, iparam[0]>=0",
            "--iparam",
            "10000000",
            "--n",
            "3",
            "--exec",
            "processes",
            "--chunk",
            "1",
        ],
    ));
    assert_eq!(ok(&out), "10000000\n40000000\n90000000\n140000000\n");
    // A float element function, its type told by the values.
    let src = dir.join("half.c");
    std::fs::write(&src, "double half(double x) { return x / 2; }\n").expect("write");
    let out = run(kpool(
        &cache,
        &[
            src.to_str().expect("utf-8"),
            "--symbol",
            "half",
            "--map",
            "1,2.5,-3",
        ],
    ));
    assert_eq!(ok(&out), "[0.5, 1.25, -1.5]\n");
}

#[test]
fn a_builtin_kernel_jitted_under_its_contract_prints_the_reference_output() {
    let dir = TempDir::new("contract");
    let cache = dir.join("cache");
    let out = run(kpool(
        &cache,
        &[
            "native/fortran/kernels.f90",
            "--symbol",
            "kp_f_mandelbrot",
            "--contract",
            "mandelbrot",
            "--n",
            "200",
            "--exec",
            "processes",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want =
        std::fs::read(format!("{ROOT}/reference-outputs/mandelbrot-200.pbm")).expect("reference");
    assert!(out.stdout == want, "differs from the reference");
}

/// A compiler that logs each run to `log` and runs gcc (after `delay` seconds).
fn logging_cc(path: &Path, log: &Path, delay: &str) {
    executable::write_executable(
        path,
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = --version ]; then exec gcc --version; fi\nsleep {delay}\nexec gcc \"$@\"\n",
            log.display()
        ),
    );
}

fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

#[test]
fn a_hit_in_a_fresh_process_runs_no_compiler() {
    let dir = TempDir::new("hit");
    let cache = dir.join("cache");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    logging_cc(&cc, &log, "0");
    let args = [
        "examples/jit/seed.c",
        "--symbol",
        "f",
        "--map",
        "1,2,3",
        "--timings",
    ];
    let mut first = kpool(&cache, &args);
    first.env("CC", &cc);
    let out = run(first);
    assert_eq!(ok(&out), COURSE);
    assert!(String::from_utf8_lossy(&out.stderr).contains("compiled in"));
    let after_first = log_lines(&log);
    assert!(after_first >= 2, "--version and a compile");
    let mut second = kpool(&cache, &args);
    second.env("CC", &cc);
    let out = run(second);
    assert_eq!(ok(&out), COURSE);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cache hit") && err.contains("target CPU"),
        "{err}"
    );
    assert_eq!(log_lines(&log), after_first, "the compiler ran on a hit");
}

#[test]
fn four_processes_compiling_the_same_new_source_all_succeed_and_leave_one_entry() {
    let dir = TempDir::new("race");
    let cache = dir.join("cache");
    let (cc, log) = (dir.join("cc"), dir.join("cc.log"));
    // Each compile takes a while, so that the four overlap.
    logging_cc(&cc, &log, "0.3");
    let src = dir.join("race.c");
    let text = std::fs::read_to_string(format!("{ROOT}/examples/jit/seed.c")).expect("read");
    std::fs::write(&src, format!("{text}\n/* {} */\n", std::process::id())).expect("write");
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut c = kpool(
                &cache,
                &[
                    src.to_str().expect("utf-8"),
                    "--symbol",
                    "f",
                    "--map",
                    "1,2,3",
                    "--exec",
                    "processes",
                    "--workers",
                    "2",
                ],
            );
            c.env("CC", &cc)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn kpool")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(ok(&out), COURSE);
    }
    assert_eq!(entries(&cache), 1);
    let compiles = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter(|l| !l.starts_with("--version"))
        .count();
    assert!((1..=4).contains(&compiles), "{compiles}");
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_cache_location_info_and_clear() {
    let dir = TempDir::new("where");
    // No KERNELPOOL_CACHE_DIR: XDG_CACHE_HOME/kernelpool, else HOME/.cache/kernelpool.
    for (var, value, made) in [
        (
            "XDG_CACHE_HOME",
            dir.join("xdg"),
            dir.join("xdg/kernelpool"),
        ),
        ("HOME", dir.join("home"), dir.join("home/.cache/kernelpool")),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kpool"));
        c.args(["jit", "examples/jit/seed.c", "--symbol", "f", "--map", "2"])
            .current_dir(ROOT)
            .env_remove("KERNELPOOL_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("CC")
            .env(var, &value);
        if var == "XDG_CACHE_HOME" {
            c.env("HOME", dir.join("unused-home"));
        }
        assert_eq!(ok(&run(c)), "[40000000]\n", "{var}");
        assert_eq!(entries(&made), 1, "{}", made.display());
        let mode = std::fs::metadata(&made).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", made.display());
    }
    assert!(!dir.join("unused-home/.cache").exists());
    let cache = dir.join("xdg/kernelpool");
    let info = ok(&run(kpool(&cache, &["--cache-info"])));
    assert!(
        info.contains(&format!("cache:   {}", cache.display())) && info.contains("entries: 1"),
        "{info}"
    );
    let cleared = ok(&run(kpool(&cache, &["--clear-cache", "--cache-info"])));
    assert!(
        cleared.contains("removed 1 compiled kernels") && cleared.contains("entries: 0"),
        "{cleared}"
    );
    assert_eq!(entries(&cache), 0);
}

#[test]
fn every_error_is_one_kpool_error_line_with_its_cause() {
    let dir = TempDir::new("errors");
    let cache = dir.join("cache");
    let bad = dir.join("bad.c");
    std::fs::write(
        &bad,
        "#include <stdint.h>\n\nint64_t f(int64_t x) { return x * y; }\n",
    )
    .expect("write");
    let bad = bad.to_str().expect("utf-8");
    let err = fails(&run(kpool(&cache, &[bad, "--symbol", "f", "--map", "1"])));
    assert!(
        err.contains(&format!("{bad}:3:"))
            && (err.contains("‘y’ undeclared") || err.contains("'y' undeclared")),
        "{err}"
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["examples/jit/seed.c", "--symbol", "g", "--map", "1"],
            "the object exports: f",
        ),
        (
            &["examples/jit/seed.c", "--symbol", "f", "--map", "1,x"],
            "`x` is not a number",
        ),
        (
            &[
                "examples/jit/seed.c",
                "--symbol",
                "f",
                "--map",
                "1.5",
                "--type",
                "i64",
            ],
            "not an integer",
        ),
        (
            &["examples/jit/seed.c", "--symbol", "f", "--map", "1.5"],
            "--type i64 for the other",
        ),
        (
            &["examples/jit/seed.c", "--symbol", "f", "--n", "3"],
            "--sig SPEC",
        ),
        (
            &[
                "examples/jit/seed.c",
                "--symbol",
                "f",
                "--n",
                "3",
                "--sig",
                "out f32[items]",
            ],
            "types are i64, f64, u8",
        ),
        (
            &["examples/jit/seed.c", "--symbol", "f", "--contract", "nope"],
            "unknown kernel",
        ),
        (&["examples/jit/seed.c", "--symbol", "f"], "--map VALUES"),
        (
            &["examples/jit/missing.c", "--symbol", "f", "--map", "1"],
            "cannot read",
        ),
        (&["README.md", "--symbol", "f", "--map", "1"], "--lang"),
        (
            &[
                "examples/jit/seed.c",
                "--symbol",
                "f",
                "--map",
                "1",
                "--lang",
                "cobol",
            ],
            "unknown language",
        ),
        (
            &[
                "examples/jit/seed_range.c",
                "--symbol",
                "seed_sum",
                "--sig",
                "out i64[items], iparam[0]>=0",
                "--iparam",
                "-5",
                "--n",
                "3",
            ],
            "iparam[0] >= 0",
        ),
        (
            &[
                "examples/jit/seed_range.c",
                "--symbol",
                "seed_sum",
                "--sig",
                "out i64[*]",
                "--n",
                "3",
            ],
            "no length",
        ),
    ];
    for (args, needle) in cases {
        let err = fails(&run(kpool(&cache, args)));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A missing compiler names its package, and the variable that named it.
    let mut c = kpool(
        &cache,
        &["examples/jit/seed.f90", "--symbol", "f", "--map", "1"],
    );
    c.env("FC", "/nonexistent/gfortran-42");
    let err = fails(&run(c));
    assert!(
        err.contains("sudo apt-get install gfortran") && err.contains("$FC"),
        "{err}"
    );
    // Unsafe cache directories.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = fails(&run(kpool(
        &open,
        &["examples/jit/seed.c", "--symbol", "f", "--map", "1"],
    )));
    assert!(
        err.contains("refusing the cache directory") && err.contains("chmod 700"),
        "{err}"
    );
    let err = fails(&run(kpool(&open, &["--cache-info"])));
    assert!(err.contains("writable by group and others"), "{err}");
    // No cache directory at all.
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpool"));
    c.args(["jit", "--cache-info"])
        .env_remove("KERNELPOOL_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME");
    let err = fails(&run(c));
    assert!(err.contains("KERNELPOOL_CACHE_DIR"), "{err}");
}
