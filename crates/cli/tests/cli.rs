//! The `kpool` binary: canonical stdout, one-line errors with a non-zero exit, never a panic.

use std::process::{Command, Output};

fn kpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpool"))
        .args(args)
        .output()
        .expect("run kpool")
}

fn reference(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../reference-outputs")
            .join(name),
    )
    .expect("reference file")
}

#[test]
fn run_prints_the_canonical_output_in_every_language() {
    let cases = [
        ("nbody", "1000", "nbody-1000.out"),
        ("spectralnorm", "100", "spectralnorm-100.out"),
        ("mandelbrot", "200", "mandelbrot-200.pbm"),
        ("fannkuch", "7", "fannkuchredux-7.out"),
    ];
    for lang in ["c", "cpp", "fortran", "rust"] {
        for (kernel, n, file) in cases {
            for variant in ["plain", "tuned"] {
                let out = kpool(&[
                    "run",
                    kernel,
                    "--lang",
                    lang,
                    "--n",
                    n,
                    "--variant",
                    variant,
                ]);
                assert!(
                    out.status.success(),
                    "{kernel}/{lang}/{variant}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.stdout == reference(file),
                    "{kernel}/{lang}/{variant} stdout differs from {file}"
                );
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains(&format!("{kernel}/{lang}/{variant}")),
                    "stderr names the variant: {err}"
                );
            }
            let out = kpool(&["run", kernel, "--lang", lang, "--n", n]);
            assert!(
                out.stdout == reference(file),
                "{kernel}/{lang} stdout differs from {file}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("kpool:") && err.contains(kernel),
                "timing goes to stderr: {err}"
            );
        }
        let out = kpool(&["run", "seed", "--lang", lang, "--n", "3"]);
        assert_eq!(out.stdout, b"10000000\n40000000\n90000000\n");
        let out = kpool(&["run", "triad", "--lang", lang, "--n", "5000"]);
        assert!(out.status.success());
        assert!(out.stdout.starts_with(b"Solution Validates"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Triad: best rate"));
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let cases: &[&[&str]] = &[
        &["run", "nope"],
        &["run", "pi", "--lang", "cobol"],
        &["run", "seed", "--n", "0"],
        &["run", "fannkuch", "--n", "13"],
        &["run", "mandelbrot", "--n", "100000000"],
        &["run", "triad", "--n", "18446744073709551615"],
        &["run", "nbody", "--systems", "0"],
        &["run", "pi", "--workers", "0", "--exec", "threads"],
        &["run", "pi", "--chunk", "0"],
        // 10^11 chunks of one sample: refused before any memory is spent on them.
        &[
            "run",
            "pi",
            "--n",
            "100000000000",
            "--exec",
            "threads",
            "--chunk",
            "1",
        ],
        &[
            "run",
            "pi",
            "--n",
            "100000000000",
            "--exec",
            "processes",
            "--chunk",
            "1",
        ],
    ];
    for args in cases {
        let out = kpool(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("kpool: error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // a variant that does not exist (seed has no tuned one; Fortran no tuned triad) or
    // has no such name: the message names what was asked for
    for (args, needles) in [
        (
            &["run", "seed", "--variant", "tuned"][..],
            &["seed", "tuned", "c"][..],
        ),
        (
            &["run", "triad", "--lang", "fortran", "--variant", "tuned"][..],
            &["triad", "tuned", "fortran"][..],
        ),
        (&["run", "pi", "--variant", "fastest"][..], &["fastest"][..]),
    ] {
        let out = kpool(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
    // clap's own errors (not a number) are refused too, with its usage text
    let out = kpool(&["run", "pi", "--n", "-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn info_lists_kernels_languages_and_compilers() {
    let out = kpool(&["info"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "seed",
        "nbody",
        "spectralnorm",
        "mandelbrot",
        "fannkuch",
        "triad",
        "pi",
        "fortran",
        "GNU Fortran",
        "rustc",
        "tuned variant in",
    ] {
        assert!(text.contains(word), "info lacks {word}: {text}");
    }
    // the tuned column: every language for mandelbrot, none for seed, no Fortran triad
    let row = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no row for {k}: {text}"))
            .to_string()
    };
    assert!(row("mandelbrot").ends_with("rust     c, cpp, fortran, rust"));
    assert!(row("seed").ends_with(" -"), "{}", row("seed"));
    assert!(row("triad").ends_with("  c, cpp, rust"), "{}", row("triad"));
}

#[test]
fn quick_bench_verifies_every_cell() {
    let out = kpool(&[
        "bench",
        "--quick",
        "--kernel",
        "fannkuch,spectralnorm",
        "--n",
        "7",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("| reference |"))
            .count(),
        // 2 kernels x 4 languages x 2 variants x 3 executors (all by default).
        48,
        "{table}"
    );
    assert!(!table.contains("| NO |"));
}

#[test]
fn bench_compares_executors_and_writes_json() {
    let json = std::env::temp_dir().join(format!("kpool-bench-{}.json", std::process::id()));
    let out = kpool(&[
        "bench",
        "--quick",
        "--kernel",
        "mandelbrot,pi",
        "--lang",
        "c,rust",
        "--execs",
        "serial,threads,processes",
        "--workers",
        "2",
        "--n",
        "64",
        "--json",
        json.to_str().expect("utf-8 temp path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("JSON written");
    let _ = std::fs::remove_file(&json);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // 2 kernels x 2 languages x 2 variants x 3 executors, grouped by kernel, language
    // and variant.
    assert_eq!(rows.len(), 24, "{text}");
    let execs: Vec<&str> = rows[..3]
        .iter()
        .map(|r| r["executor"].as_str().expect("executor"))
        .collect();
    assert_eq!(execs, ["serial", "threads(2)", "processes(2)"], "{text}");
    for r in &rows {
        assert_eq!(r["agrees"], true, "{r}");
        assert!(r["best_s"].as_f64().expect("best_s") > 0.0, "{r}");
        let speedup = r["speedup"].as_f64().expect("speedup with serial present");
        if r["executor"] == "serial" {
            assert_eq!(speedup, 1.0);
        } else {
            assert!(speedup > 0.0 && speedup.is_finite(), "{r}");
        }
    }
    assert_eq!(rows[0]["kernel"], "mandelbrot");
    assert_eq!(rows[0]["lang"], "c");
    assert_eq!(rows[0]["variant"], "plain");
    assert_eq!(rows[3]["variant"], "tuned");
    assert_eq!(rows[3]["verified"], "reference");
    assert_eq!(rows[0]["verified"], "reference");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| speedup |"), "{table}");
}

#[test]
fn bench_variant_filter_takes_a_list() {
    let run = |variants: &str| {
        let out = kpool(&[
            "bench",
            "--quick",
            "--kernel",
            "triad",
            "--lang",
            "c,fortran",
            "--execs",
            "serial",
            "--n",
            "1000",
            "--variant",
            variants,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        table
            .lines()
            .filter(|l| l.starts_with("| triad |"))
            .map(|l| {
                l.split('|')
                    .nth(3)
                    .expect("variant column")
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    // Fortran has no tuned triad: it runs plain only
    assert_eq!(run("plain,tuned"), ["plain", "tuned", "plain"]);
    assert_eq!(run("tuned"), ["tuned"]);
    let out = kpool(&["bench", "--variant", "quick"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quick"));
}

#[test]
fn bench_rejects_nonsense() {
    for (args, needle) in [
        (&["bench", "--repeat", "0"][..], "--repeat"),
        (
            &["bench", "--workers", "0", "--execs", "threads"][..],
            "--workers",
        ),
        (
            &["bench", "--kernel", "nbody", "--systems", "0"][..],
            "--systems",
        ),
        (&["bench", "--kernel", "quicksort"][..], "quicksort"),
    ] {
        let out = kpool(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn every_executor_prints_the_serial_output() {
    for (kernel, n) in [
        ("mandelbrot", "200"),
        ("fannkuch", "7"),
        ("spectralnorm", "100"),
        ("pi", "100000"),
    ] {
        let serial = kpool(&["run", kernel, "--lang", "fortran", "--n", n]);
        assert!(serial.status.success());
        for exec in [
            &["--exec", "threads", "--workers", "2"][..],
            &["--exec", "processes", "--workers", "2", "--chunk", "3"][..],
        ] {
            let mut args = vec!["run", kernel, "--lang", "fortran", "--n", n];
            args.extend_from_slice(exec);
            let out = kpool(&args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout == serial.stdout, "{args:?} differs from serial");
        }
    }
}

/// `MemAvailable` of /proc/meminfo in KiB.
fn mem_available_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let line = text
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .expect("MemAvailable");
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse().ok())
        .expect("a number")
}

#[test]
fn an_allocation_refused_under_ulimit_names_the_limit_not_the_machine() {
    for exec in ["serial", "processes"] {
        allocation_refused_under_ulimit(exec);
    }
}

fn allocation_refused_under_ulimit(exec: &str) {
    // Each STREAM array takes a sixth of the memory available and the address space is
    // limited to a quarter: all three fit in memory, the second one not under the limit.
    let avail = mem_available_kib();
    let n = avail * 1024 / 6 / 8;
    let limit = avail / 4;
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit} && exec \"$0\" run triad --n {n} --exec {exec}"
        ))
        .arg(env!("CARGO_BIN_EXE_kpool"))
        .output()
        .expect("run bash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("kpool: error: cannot allocate STREAM"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "address space is limited to {} bytes (ulimit -v)",
            limit * 1024
        )),
        "{err}"
    );
    assert!(
        !err.contains("this machine's") && !err.contains("available now"),
        "{err}"
    );
}

#[test]
fn nbody_with_2_pow_63_steps_is_refused_in_every_language() {
    // `n as i64` used to wrap: C, C++ and Fortran printed the initial energy twice and
    // exited 0, Rust ran "forever".
    for lang in ["c", "cpp", "fortran", "rust"] {
        let out = kpool(&["run", "nbody", "--lang", lang, "--n", "9223372036854775808"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{lang}: {err}");
        assert!(out.stdout.is_empty(), "{lang} printed on stdout");
        assert!(
            err.contains("nbody")
                && err.contains("N=9223372036854775808")
                && err.contains("up to 9223372036854775807"),
            "{lang}: {err}"
        );
    }
}

#[test]
fn too_many_chunks_are_refused_before_the_buffers_are_allocated() {
    // Under an address-space limit that the second STREAM array exceeds, the step size
    // (more than 2^24 chunks of one item) must be refused first: TooManyChunks, not an
    // allocation error.
    let avail = mem_available_kib();
    let n = avail * 1024 / 6 / 8;
    assert!(n > 1 << 24, "too little memory for this test: {avail} KiB");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" run triad --n {n} --exec threads --workers 2 --chunk 1",
            avail / 4
        ))
        .arg(env!("CARGO_BIN_EXE_kpool"))
        .output()
        .expect("run bash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("use a larger chunk"), "{err}");
    assert!(!err.contains("cannot allocate"), "{err}");
}
