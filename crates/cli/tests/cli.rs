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
fn bench_verifies_every_cell_and_writes_json_csv_and_the_report() {
    let dir = std::env::temp_dir().join(format!("kpool-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (json, csv, out) = (dir.join("r.json"), dir.join("r.csv"), dir.join("report"));
    let out_run = kpool(&[
        "bench",
        "--kernel",
        "mandelbrot,pi",
        "--lang",
        "c,rust",
        "--variant",
        "plain",
        "--execs",
        "serial,threads,processes",
        "--workers",
        "2",
        "--n",
        "200",
        "--repeat",
        "3",
        "--no-seed",
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8 temp path"),
        "--csv",
        csv.to_str().expect("utf-8 temp path"),
        "--out",
        out.to_str().expect("utf-8 temp path"),
    ]);
    assert!(
        out_run.status.success(),
        "{}",
        String::from_utf8_lossy(&out_run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written"))
            .expect("JSON parses");
    let cells = report["cells"].as_array().expect("cells");
    // 2 kernels x 2 languages x 3 executors, grouped by kernel and language.
    assert_eq!(cells.len(), 12, "{report}");
    let execs: Vec<&str> = cells[..3]
        .iter()
        .map(|r| r["exec_label"].as_str().expect("exec_label"))
        .collect();
    assert_eq!(execs, ["serial", "threads×2", "processes×2"]);
    for c in cells {
        assert!(c["failure"].is_null(), "{c}");
        assert_eq!(c["times_s"].as_array().map(Vec::len), Some(3), "{c}");
        assert!(
            c["speedup"]["median"].as_f64().is_some_and(|s| s > 0.0),
            "{c}"
        );
    }
    assert_eq!(cells[0]["kernel"], "mandelbrot");
    assert_eq!(cells[0]["check"], "reference");
    assert_eq!(report["failures"], 0);
    let csv = std::fs::read_to_string(&csv).expect("CSV written");
    assert!(
        csv.starts_with("kernel,variant,impl,lang,executor,workers,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 13);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        md.contains("](speedup.png)") && md.contains("](time.png)"),
        "{md}"
    );
    let table = String::from_utf8_lossy(&out_run.stdout);
    assert!(
        table.contains("speedup (paired)") && table.contains("mandelbrot"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_reports_a_wrong_kernel_and_exits_1() {
    let out = kpool(&[
        "bench",
        "--kernel",
        "pi",
        "--n",
        "100000",
        "--lang",
        "c,rust",
        "--variant",
        "plain",
        "--workers",
        "2",
        "--repeat",
        "3",
        "--no-seed",
        "--no-report",
        "--no-progress",
        "--sabotage",
        "pi",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{table}{err}");
    assert_eq!(
        table.matches("FAILED: line 1: expected").count(),
        3,
        "{table}"
    );
    assert!(err.contains("3 result(s) FAILED verification"), "{err}");
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
            "--repeat",
            "1",
            "--no-seed",
            "--no-peak",
            "--no-report",
            "--no-progress",
            "--csv",
            "-",
            "--variant",
            variants,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = String::from_utf8_lossy(&out.stdout).to_string();
        csv.lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{} {}", f[2], f[1])
            })
            .collect::<Vec<_>>()
    };
    // Fortran has no tuned triad: it runs plain only.
    assert_eq!(run("plain,tuned"), ["c plain", "fortran plain", "c tuned"]);
    assert_eq!(run("tuned"), ["c tuned"]);
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
