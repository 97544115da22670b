//! `kpool ... --exec mpi` under Open MPI's `mpirun` (built only with the `mpi` feature,
//! which scripts/test.sh and .ci/run turn on): every kernel prints exactly what serial
//! prints, for 1 (no mpirun), 2 and 3 ranks (more ranks than this machine's 2 cores:
//! `--oversubscribe`), and with threads inside the ranks; a kernel that fails, or
//! crashes, on one rank only ends the whole job with a non-zero status that names the
//! rank and the cause, and never hangs.
//!
//! These tests need `mpirun`: when it is missing they fail, naming the fix
//! (`scripts/setup.sh --mpi` installs Open MPI); they are never skipped. The kernels that
//! fail on one rank are JIT-compiled from `tests/mpi_faults.c`: they fail (or write
//! through a null pointer) on the chunks that begin at item `iparam[0]` or later, which
//! the test picks so that only the last rank owns them. No hook is built into kpool.

#[path = "../../../tests/support/executable.rs"]
mod executable;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No MPI job in these tests takes more than a few seconds: past this it hangs.
const DEADLINE: Duration = Duration::from_secs(180);

fn kpool() -> &'static str {
    env!("CARGO_BIN_EXE_kpool")
}

/// A private JIT cache for the fault kernels (mode 0700, as the cache requires).
fn cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kp-mpi-test-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cache dir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod cache dir");
    dir
}

/// Run `cmd` to completion, killing it (and failing the test) past [`DEADLINE`].
fn run(mut cmd: Command, what: &str) -> Output {
    cmd.env("KERNELPOOL_CACHE_DIR", cache_dir())
        // This machine runs the tests as root; Open MPI refuses that unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {DEADLINE:?}: the MPI job hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: reader.join().unwrap().expect("stdout"),
        stderr: err_reader.join().unwrap().expect("stderr"),
    }
}

/// `mpirun`, or a failure that says how to get it.
fn mpirun_path() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("mpirun"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mpirun is not on PATH: these tests need Open MPI (scripts/setup.sh --mpi \
                 installs libopenmpi-dev and openmpi-bin)"
            )
        })
}

/// `mpirun -n ranks [--oversubscribe] kpool args...`.
fn mpirun(ranks: usize, args: &[&str]) -> Output {
    let mut cmd = Command::new(mpirun_path());
    cmd.args(["-n", &ranks.to_string()]);
    if ranks > 2 {
        cmd.arg("--oversubscribe");
    }
    cmd.arg(kpool()).args(args);
    run(cmd, &format!("mpirun -n {ranks} kpool {}", args.join(" ")))
}

/// `kpool args...`, without mpirun.
fn alone(args: &[&str]) -> Output {
    let mut cmd = Command::new(kpool());
    cmd.args(args);
    run(cmd, &format!("kpool {}", args.join(" ")))
}

fn ok(out: &Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// (kernel, language, extra arguments) covered under MPI.
const CASES: &[(&str, &str, &[&str])] = &[
    ("laplace", "c", &["--n", "96"]),
    ("laplace", "fortran", &["--n", "61"]),
    ("pi", "rust", &["--n", "200000"]),
    ("mandelbrot", "cpp", &["--n", "201"]),
    ("fannkuch", "fortran", &["--n", "8"]),
    ("nbody", "c", &["--n", "1000", "--systems", "7"]),
    ("spectralnorm", "rust", &["--n", "100"]),
    ("triad", "c", &["--n", "100000"]),
    ("seed", "cpp", &["--n", "5"]),
];

fn serial(kernel: &str, lang: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["run", kernel, "--lang", lang];
    args.extend_from_slice(extra);
    let out = ok(&alone(&args), &format!("serial {kernel}/{lang}"));
    assert!(!out.is_empty());
    out
}

fn on_mpi(ranks: usize, kernel: &str, lang: &str, extra: &[&str], threads: Option<&str>) {
    let want = serial(kernel, lang, extra);
    let mut args = vec!["run", kernel, "--lang", lang, "--exec", "mpi"];
    args.extend_from_slice(extra);
    if let Some(t) = threads {
        args.extend_from_slice(&["--threads-per-rank", t]);
    }
    let what = format!("{kernel}/{lang} {extra:?} on {ranks} ranks (threads {threads:?})");
    let out = if ranks == 0 {
        alone(&args)
    } else {
        mpirun(ranks, &args)
    };
    let got = ok(&out, &what);
    assert!(got == want, "{what}: stdout differs from serial");
    // Rank 0 alone reports (one timing line, not one per rank).
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("kpool: ").count(),
        1 + usize::from(kernel == "triad") * 4,
        "{what}: {err}"
    );
}

#[test]
fn two_ranks_print_what_serial_prints() {
    for (k, l, extra) in CASES {
        on_mpi(2, k, l, extra, None);
    }
}

#[test]
fn three_ranks_oversubscribed_print_what_serial_prints() {
    for (k, l, extra) in CASES {
        on_mpi(3, k, l, extra, None);
    }
}

#[test]
fn threads_inside_ranks_print_what_serial_prints() {
    for (k, l, extra) in [CASES[0], CASES[2], CASES[4], CASES[6]] {
        on_mpi(2, k, l, extra, Some("2"));
    }
}

#[test]
fn a_one_rank_job_needs_no_mpirun() {
    for (k, l, extra) in [CASES[0], CASES[3], CASES[6]] {
        on_mpi(0, k, l, extra, None);
    }
    let out = ok(&alone(&["run", "pi", "--exec", "mpi"]), "singleton");
    assert_eq!(out, serial("pi", "c", &[]));
}

#[test]
fn laplace_1024_on_two_ranks_prints_what_serial_prints() {
    on_mpi(2, "laplace", "c", &["--n", "1024"], None);
}

fn faults() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mpi_faults.c")
}

fn fault_job(ranks: usize, symbol: &str, from: u64) -> Output {
    let src = faults();
    let from = from.to_string();
    let args = [
        "jit",
        src.to_str().expect("utf-8 path"),
        "--symbol",
        symbol,
        "--sig",
        "out i64[items]",
        "--n",
        "100",
        "--iparam",
        &from,
        "--exec",
        "mpi",
    ];
    if ranks == 0 {
        alone(&args)
    } else {
        mpirun(ranks, &args)
    }
}

#[test]
fn the_fault_kernels_work_where_they_do_not_fault() {
    // Past the last item they never fault: every rank count gives i*i.
    let want: String = (0..100u64).map(|i| format!("{}\n", i * i)).collect();
    for ranks in [0, 2, 3] {
        for symbol in ["fails_late", "crashes_late"] {
            let out = ok(&fault_job(ranks, symbol, 1000), symbol);
            assert_eq!(
                String::from_utf8_lossy(&out),
                want,
                "{symbol} on {ranks} ranks"
            );
        }
    }
}

#[test]
fn a_kernel_failing_on_one_rank_fails_the_job_naming_the_rank() {
    // 100 items in 8 chunks of 13 on 2 ranks: rank 1 owns items 52..100.
    let out = fault_job(2, "fails_late", 50);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "MPI rank 1 of 2: kernel fails_late (c) failed with status -7 on items 52..65"
        ),
        "{err}"
    );
    assert!(!err.contains("MPI rank 0"), "{err}");
    assert!(out.stdout.is_empty(), "a failed job printed results");
    // 12 chunks of 9 on 3 ranks: rank 2 owns items 72..100.
    let out = fault_job(3, "fails_late", 70);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("MPI rank 2 of 3: kernel fails_late (c) failed with status -7"),
        "{err}"
    );
    assert_eq!(
        err.matches("kpool: error").count(),
        1,
        "only rank 0 reports: {err}"
    );
}

#[test]
fn a_kernel_crashing_on_one_rank_ends_the_job_naming_the_rank_and_signal() {
    let out = fault_job(2, "crashes_late", 50);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("rank 1"), "{err}");
    assert!(err.contains("signal 11 (Segmentation fault)"), "{err}");
    let out = fault_job(3, "crashes_late", 70);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("rank 2"), "{err}");
}

#[test]
fn a_written_buffer_without_per_item_layout_is_refused_clearly() {
    let src = faults();
    let out = mpirun(
        2,
        &[
            "jit",
            src.to_str().expect("utf-8 path"),
            "--symbol",
            "fails_late",
            "--sig",
            "out i64[100]",
            "--n",
            "100",
            "--iparam",
            "1000",
            "--exec",
            "mpi",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("buffer 0 of fails_late (out i64[100]) is written but its length does not say which item owns which element"),
        "{err}"
    );
}

/// `kpool bench` runs its MPI cells as `mpirun` jobs of its own (`kpool mpi-serve`),
/// interleaved with the other cells, every run checked against serial Rust.
#[test]
fn bench_runs_mpi_cells_and_checks_them() {
    mpirun_path();
    let args = [
        "bench",
        "--kernel",
        "pi,laplace",
        "--lang",
        "c,fortran",
        "--execs",
        "serial,mpi",
        "--workers",
        "2,3",
        "--variant",
        "plain",
        "--n",
        "96",
        "--repeat",
        "2",
        "--no-seed",
        "--no-report",
        "--no-progress",
        "--csv",
        "-",
    ];
    let out = alone(&args);
    let csv = String::from_utf8_lossy(&ok(&out, "bench --execs serial,mpi")).to_string();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    // 2 kernels x 2 languages x (serial, mpi×2, mpi×3 oversubscribed): named, MPI runs
    // in every native language's group.
    assert_eq!(rows.len(), 12, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}: {csv}"))
    };
    let (exec, workers) = (col("executor"), col("workers"));
    let mpi: Vec<&Vec<&str>> = rows.iter().filter(|r| r[exec] == "mpi").collect();
    assert_eq!(mpi.len(), 8, "{csv}");
    assert!(mpi.iter().any(|r| r[workers] == "3"), "{csv}");
    // Every run agreed with serial Rust (the status is the last field: `ok`, `"ok, noisy
    // (not ranked)"`, ...; a failed cell says FAILED).
    assert!(!csv.contains("FAILED"), "{csv}");
}

/// An MPI job that cannot start fails its cells, with mpirun's words, and the bench
/// exits 1 with every other cell measured: nothing hangs.
#[test]
fn bench_reports_an_mpi_job_that_fails_to_start() {
    let dir = std::env::temp_dir().join(format!("kpool-fake-mpirun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let fake = dir.join("mpirun");
    executable::write_executable(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'fake mpirun: no slots' >&2\nexit 3\n",
    );
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(kpool());
    cmd.args([
        "bench",
        "--kernel",
        "pi",
        "--lang",
        "c",
        "--execs",
        "serial,mpi",
        "--workers",
        "2",
        "--variant",
        "plain",
        "--n",
        "1000",
        "--repeat",
        "1",
        "--no-seed",
        "--no-report",
        "--no-progress",
    ])
    .env("PATH", path);
    let out = run(cmd, "kpool bench with a failing mpirun");
    let _ = std::fs::remove_dir_all(&dir);
    let table = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{table}{err}");
    assert!(table.contains("fake mpirun: no slots"), "{table}");
    assert!(table.contains("mpi×2"), "{table}");
    assert!(err.contains("1 result(s) FAILED"), "{err}");
}

#[test]
fn bad_mpi_options_are_clear_errors() {
    let out = alone(&["run", "pi", "--exec", "mpi", "--threads-per-rank", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads-per-rank must be at least 1"));
    let out = alone(&["run", "pi", "--exec", "threads", "--threads-per-rank", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--threads-per-rank applies to --exec mpi only")
    );
}
