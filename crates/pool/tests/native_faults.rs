//! Faults in native kernels run on the process pool: a C kernel that, in the chunk holding
//! one chosen item, dereferences NULL, calls `abort`, calls `_exit(3)`, raises SIGKILL (as
//! the OOM killer does) or hangs. Each is reported as a typed error of that chunk (its
//! task index, kernel and items) with its cause (signal, exit status or timeout); the
//! worker is replaced and the same pool then gives the serial result; nothing hangs, and
//! no core file or temporary file is left behind.
//!
//! The faulty kernels are compiled from C at test time into a shared object of their own
//! and follow pi's contract (`partial[0]` is a sum over the range; `iparam[0]`, pi's seed,
//! is the faulty item here).

use kernelpool_kernels::{
    Error, Executor, Kernel, KernelName, Lang, Options, Serial, Step, StepArgs, programs,
};
use kernelpool_pool::{PoolError, Processes, StepChunk, WorkerExit};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// it needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

const SOURCE: &str = r#"
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include "kernels.h"

/* Does [begin, end) hold the faulty item (pi's seed slot, iparam[0])? */
static int holds_the_bad_item(const kp_kargs *a, uint64_t begin, uint64_t end) {
    uint64_t bad = (uint64_t)a->iparam[0];
    return begin <= bad && bad < end;
}

/* A deliberate crash leaves no core file, whatever the machine's core_pattern. */
static void no_core_dump(void) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Read through a volatile pointer, so the compiler cannot turn the store into a trap. */
int *volatile kp_test_nowhere = 0;

#define FAULTY(name, fault)                                              \
    int32_t name(const kp_kargs *a, uint64_t begin, uint64_t end) {      \
        if (holds_the_bad_item(a, begin, end)) {                         \
            fault;                                                       \
        }                                                                \
        a->partial[0] += (int64_t)(end - begin);                         \
        return 0;                                                        \
    }

FAULTY(segfaults, no_core_dump(); *kp_test_nowhere = 1)
FAULTY(aborts, no_core_dump(); abort())
FAULTY(exits, _exit(3))
FAULTY(sigkills, raise(SIGKILL))
FAULTY(hangs, for (;;) pause())

/* The same kernel without a fault. */
int32_t counts(const kp_kargs *a, uint64_t begin, uint64_t end) {
    a->partial[0] += (int64_t)(end - begin);
    return 0;
}
"#;

/// A temporary directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compile [`SOURCE`] into `libfaulty.so` in a fresh temporary directory.
fn build_library(test: &str) -> (TempDir, PathBuf) {
    let dir = TempDir(
        std::env::temp_dir().join(format!("kpool-native-faults-{}-{test}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let src = dir.0.join("faulty.c");
    let lib = dir.0.join("libfaulty.so");
    std::fs::write(&src, SOURCE).expect("write the C source");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../native/include");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(&include)
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, lib)
}

fn load(lib: &Path, symbol: &str) -> Kernel {
    // SAFETY: every symbol of SOURCE has the kernel signature and follows pi's contract:
    // it reads no buffer and only adds to partial[0] (when it does not crash or hang,
    // which is the point here, and which can only take down the worker running it).
    unsafe { Kernel::load(lib, symbol, KernelName::Pi, Lang::C) }.expect("load the kernel")
}

const ITEMS: u64 = 1000;
const CHUNK: u64 = 100;
const TIMEOUT: Duration = Duration::from_millis(500);

fn options(bad_item: u64) -> Options {
    Options::new().n(ITEMS).seed(bad_item)
}

/// The pool error inside a kernels error (the tests check its `StepChunk`, which names the
/// kernel and language too).
fn pool_error(e: &Error) -> &PoolError {
    e.executor()
        .unwrap_or_else(|| panic!("not an executor error: {e:?}"))
        .get_ref()
        .downcast_ref::<PoolError>()
        .unwrap_or_else(|| panic!("not a PoolError: {e}"))
}

/// No core file of these workers in the directory they ran in.
fn assert_no_core_files(pids: &[u32]) {
    for pid in pids {
        for name in [format!("core.{pid}"), "core".to_string()] {
            let path = std::env::current_dir().expect("cwd").join(&name);
            assert!(!path.exists(), "a crash left {}", path.display());
        }
    }
}

/// Run the faulty kernel `symbol` on a pool with the bad item in the first, a middle and
/// the last chunk; `check` checks the cause. After each fault the pool must give the
/// serial result of a correct kernel, with one worker replaced.
fn fault_case(symbol: &str, check: impl Fn(&PoolError)) {
    let (_dir, lib) = build_library(symbol);
    let faulty = load(&lib, symbol);
    let counts = load(&lib, "counts");
    let pool = Processes::builder()
        .workers(2)
        .chunk(CHUNK)
        .task_timeout(TIMEOUT)
        .build()
        .expect("pool");
    let mut dead = Vec::new();
    for bad in [0, 505, ITEMS - 1] {
        let before = pool.pids().expect("pids");
        let t = Instant::now();
        let err = programs::run(faulty.clone(), &options(bad), &pool)
            .expect_err("the faulty chunk must fail the step");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let e = pool_error(&err);
        let first = bad / CHUNK * CHUNK;
        let items = first..first + CHUNK;
        assert_eq!(e.task(), Some((bad / CHUNK) as usize), "{e}");
        // The kernels error says as much without a downcast.
        assert_eq!(err.task(), e.task(), "{err}");
        assert_eq!(err.items(), Some(items.clone()), "{err}");
        assert_eq!(
            (
                err.is_crash(),
                err.is_timeout(),
                err.signal(),
                err.exit_status()
            ),
            (e.is_crash(), e.is_timeout(), e.signal(), e.exit_status()),
            "{err}"
        );
        assert_eq!(
            e.chunk(),
            Some(&StepChunk {
                kernel: KernelName::Pi,
                lang: Lang::C,
                items: items.clone()
            }),
            "{e}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("task {}", bad / CHUNK))
                && text.contains(&format!(
                    "kernel pi (c) on items {}..{}",
                    items.start, items.end
                )),
            "{text}"
        );
        check(e);

        // The same pool, at full strength with a new worker, gives the serial result.
        let want = programs::run(counts.clone(), &options(bad), &Serial).expect("serial");
        let got = programs::run(counts.clone(), &options(bad), &pool).expect("after a fault");
        assert_eq!(got.stdout, want.stdout);
        let after = pool.pids().expect("pids");
        assert_eq!(after.len(), 2, "{after:?}");
        let gone: Vec<u32> = before
            .iter()
            .copied()
            .filter(|p| !after.contains(p))
            .collect();
        assert!(
            !gone.is_empty(),
            "no worker was replaced: {before:?} {after:?}"
        );
        dead.extend(gone);
    }

    // A step built by hand, on a pool with the default chunks: the chunk named is the one
    // that holds the bad item.
    let pool = Processes::builder()
        .workers(2)
        .task_timeout(TIMEOUT)
        .build()
        .expect("pool");
    let mut args = StepArgs::new(ITEMS, ITEMS);
    args.iparam[0] = 777;
    let err = pool
        .run(&Step::new(faulty, args, vec![]).expect("step"))
        .expect_err("the faulty chunk must fail the step");
    let e = pool_error(&err);
    let items = &e.chunk().expect("the chunk is named").items;
    assert!(items.contains(&777), "{e}");
    check(e);
    let step = Step::new(counts, args, vec![]).expect("step");
    assert_eq!(
        pool.run(&step).expect("after a fault"),
        Serial.run(&step).expect("serial")
    );
    assert_no_core_files(&dead);
}

#[test]
fn a_kernel_that_dereferences_null_is_a_crash_by_sigsegv() {
    fault_case("segfaults", |e| {
        assert!(e.is_crash() && !e.is_timeout(), "{e}");
        assert_eq!(e.signal(), Some(11), "{e}");
        assert!(e.to_string().contains("signal 11 (SIGSEGV)"), "{e}");
    });
}

#[test]
fn a_kernel_that_aborts_is_a_crash_by_sigabrt() {
    fault_case("aborts", |e| {
        assert!(e.is_crash(), "{e}");
        assert_eq!(e.signal(), Some(6), "{e}");
        assert!(e.to_string().contains("signal 6 (SIGABRT)"), "{e}");
    });
}

#[test]
fn a_kernel_that_exits_is_a_crash_with_its_status() {
    fault_case("exits", |e| {
        assert!(
            matches!(
                e,
                PoolError::Crashed {
                    cause: WorkerExit::Status(3),
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.exit_status(), Some(3), "{e}");
        assert!(e.to_string().contains("exited with status 3"), "{e}");
    });
}

#[test]
fn a_kernel_killed_by_sigkill_is_a_crash_by_sigkill() {
    fault_case("sigkills", |e| {
        assert!(e.is_crash(), "{e}");
        assert_eq!(e.signal(), Some(9), "{e}");
        assert!(e.to_string().contains("signal 9 (SIGKILL)"), "{e}");
    });
}

#[test]
fn a_kernel_that_hangs_times_out() {
    let t = Instant::now();
    fault_case("hangs", |e| {
        assert!(e.is_timeout() && !e.is_crash(), "{e}");
        assert!(
            matches!(e, PoolError::TimedOut { timeout, .. } if *timeout == TIMEOUT),
            "{e}"
        );
        assert!(e.to_string().contains("timed out after 500ms"), "{e}");
    });
    // Four hangs of 0.5 s each.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// A shared object whose initialiser hangs when a worker loads it (here: once a marker
/// file exists, made after the test process has loaded it): loading is part of the
/// first chunk the worker was given, so the timeout covers it.
#[test]
fn a_library_that_hangs_while_a_worker_loads_it_times_out() {
    let dir = TempDir(
        std::env::temp_dir().join(format!("kpool-native-faults-{}-init", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let marker = dir.0.join("hang");
    let src = dir.0.join("init.c");
    let lib = dir.0.join("libinit.so");
    std::fs::write(
        &src,
        format!(
            "#include <stdint.h>\n#include <unistd.h>\n#include \"kernels.h\"\n\
             __attribute__((constructor)) static void hang_if_told(void) {{\n\
                 if (access(\"{}\", F_OK) == 0) for (;;) pause();\n\
             }}\n\
             int32_t counts(const kp_kargs *a, uint64_t begin, uint64_t end) {{\n\
                 a->partial[0] += (int64_t)(end - begin);\n\
                 return 0;\n\
             }}\n",
            marker.display()
        ),
    )
    .expect("write the C source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../native/include"))
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("run the C compiler");
    assert!(status.success());
    let kernel = load(&lib, "counts");
    std::fs::write(&marker, "").expect("marker");
    let pool = Processes::builder()
        .workers(2)
        .chunk(CHUNK)
        .task_timeout(TIMEOUT)
        .build()
        .expect("pool");
    let t = Instant::now();
    let err = programs::run(kernel, &options(0), &pool).expect_err("workers cannot load it");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let e = pool_error(&err);
    assert!(e.is_timeout(), "{e}");
    assert!(e.chunk().is_some(), "{e}");
    // The pool is usable.
    let builtin = Kernel::get(KernelName::Pi, Lang::C);
    assert_eq!(
        programs::run(builtin.clone(), &options(0), &pool)
            .expect("after a hang")
            .stdout,
        programs::run(builtin, &options(0), &Serial)
            .expect("serial")
            .stdout
    );
}
