//! The process pool's map family, its options, and its behaviour when workers crash,
//! exit, are killed, hang or panic: the failing task is named with its cause, every other
//! task's result arrives, and the same pool goes on working.

#[path = "../../../tests/support/executable.rs"]
mod executable;

use executable::write_executable;
use kernelpool_kernels::{Buffer, Elem, Executor, Kernel, KernelName, Lang, Step, StepArgs};
use kernelpool_pool::{PoolError, Processes, SharedMemory, Threads, WorkerExit};
use std::collections::HashMap;
use std::time::{Duration, Instant};

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// it needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn describe(s: String) -> (usize, String) {
    (s.len(), s.to_uppercase())
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

/// How a task of `faulty` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Fault {
    None,
    Segfault,
    Abort,
    Exit,
    Kill,
    Hang,
    Panic,
}

/// A deliberate crash leaves no core file, whatever the machine's core_pattern (a piped
/// one ignores the size limit; a process that is not dumpable never dumps).
fn no_core_dump() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
}

/// A fresh temporary directory, removed when dropped (also when the test fails).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("kpool-test-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn faulty((fault, x): (Fault, u32)) -> u32 {
    match fault {
        Fault::None => {}
        Fault::Segfault => {
            no_core_dump();
            // SAFETY: none: this write through a null pointer is deliberate, to make the
            // worker die of SIGSEGV as a buggy native kernel would.
            unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
        }
        Fault::Abort => {
            no_core_dump();
            std::process::abort();
        }
        Fault::Exit => std::process::exit(3),
        Fault::Kill => {
            // As the OOM killer does.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        Fault::Hang => std::thread::sleep(Duration::from_secs(60)),
        Fault::Panic => panic!("boom at {x}"),
    }
    2 * x
}

const N: u32 = 24;
const BAD: usize = 7;

fn tasks(fault: Fault) -> Vec<(Fault, u32)> {
    (0..N)
        .map(|i| {
            if i as usize == BAD {
                (fault, i)
            } else {
                (Fault::None, i)
            }
        })
        .collect()
}

fn pool_for_faults() -> Processes {
    Processes::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(400))
        .build()
        .expect("pool")
}

/// Everything a fault must leave intact, checked with `imap`, `imap_unordered` and `map`
/// at two chunk sizes; `expect` checks the failed task's error.
fn fault_case(fault: Fault, expect: impl Fn(&PoolError)) {
    let pool = pool_for_faults();
    for chunksize in [1, 5] {
        let mapper = pool.with_chunksize(chunksize);
        // imap: every task's own result, in order.
        let results: Vec<_> = mapper.imap(faulty, tasks(fault)).expect("imap").collect();
        assert_eq!(results.len(), N as usize);
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert!(i != BAD && *v == 2 * i as u32, "task {i}: {v}"),
                Err(e) => {
                    assert_eq!(i, BAD, "task {i} failed: {e}");
                    assert_eq!(e.task(), Some(BAD), "{e}");
                    expect(e);
                }
            }
        }
        assert!(
            results[BAD].is_err(),
            "{fault:?} at chunksize {chunksize} went unnoticed"
        );

        // imap_unordered: every index once.
        let mut seen: Vec<_> = mapper
            .imap_unordered(faulty, tasks(fault))
            .expect("imap_unordered")
            .collect();
        seen.sort_by_key(|(i, _)| *i);
        assert_eq!(
            seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..N as usize).collect::<Vec<_>>()
        );
        for (i, r) in &seen {
            assert_eq!(r.is_err(), *i == BAD, "task {i}: {r:?}");
        }

        // map: the failed task's error.
        let err = mapper.map(faulty, tasks(fault)).expect_err("map must fail");
        assert_eq!(err.task(), Some(BAD), "{err}");
        expect(&err);
        // The same, far into a long map: among the arguments encoded while tasks run.
        let long = (0..5000).map(|i| (if i == 3000 { fault } else { Fault::None }, i));
        let err = mapper.map(faulty, long).expect_err("map must fail");
        assert_eq!(err.task(), Some(3000), "{err}");
        expect(&err);

        // The same pool still works.
        assert_eq!(
            pool.map(square, 0..40u64).expect("map after a fault"),
            (0..40u64).map(square).collect::<Vec<_>>()
        );
    }
    assert_eq!(pool.pids().expect("pids").len(), 2, "workers were replaced");
}

#[test]
fn segfault_is_a_crash_by_sigsegv() {
    fault_case(Fault::Segfault, |e| {
        assert!(e.is_crash() && !e.is_timeout(), "{e}");
        assert_eq!(e.signal(), Some(11), "{e}");
        assert!(e.to_string().contains("SIGSEGV"), "{e}");
    });
}

#[test]
fn abort_is_a_crash_by_sigabrt() {
    fault_case(Fault::Abort, |e| {
        assert!(e.is_crash(), "{e}");
        assert_eq!(e.signal(), Some(6), "{e}");
    });
}

#[test]
fn exit_is_a_crash_with_its_status() {
    fault_case(Fault::Exit, |e| {
        assert!(e.is_crash(), "{e}");
        assert_eq!(e.exit_status(), Some(3), "{e}");
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
    });
}

#[test]
fn sigkill_is_a_crash_by_sigkill() {
    fault_case(Fault::Kill, |e| {
        assert!(e.is_crash(), "{e}");
        assert_eq!(e.signal(), Some(9), "{e}");
    });
}

#[test]
fn hang_is_a_timeout() {
    let t = Instant::now();
    fault_case(Fault::Hang, |e| {
        assert!(e.is_timeout() && !e.is_crash(), "{e}");
        assert!(
            matches!(e, PoolError::TimedOut { timeout, .. } if *timeout == Duration::from_millis(400)),
            "{e}"
        );
    });
    // Six hangs of 0.4 s each, not six minutes.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn panic_is_reported_and_the_worker_survives() {
    let pool = Processes::new(2).expect("pool");
    let before = pool.pids().expect("pids");
    fault_case(Fault::Panic, |e| {
        assert!(e.is_panic() && !e.is_crash(), "{e}");
        assert!(
            matches!(e, PoolError::Panicked { message, task, .. }
                if message.contains(&format!("boom at {task}"))),
            "{e}"
        );
    });
    let err = pool.apply(faulty, (Fault::Panic, 1)).expect_err("panics");
    assert!(err.to_string().contains("boom at 1"), "{err}");
    assert_eq!(
        pool.pids().expect("pids"),
        before,
        "a panic does not cost a worker"
    );
}

#[test]
fn map_starmap_apply_give_results_in_order() {
    let pool = Processes::new(2).expect("pool");
    let want: Vec<u64> = (0..200u64).map(square).collect();
    assert_eq!(pool.map(square, 0..200u64).expect("map"), want);
    for chunksize in [1, 2, 3, 64, 1000] {
        assert_eq!(
            pool.with_chunksize(chunksize)
                .map(square, 0..200u64)
                .expect("map"),
            want,
            "chunksize {chunksize}"
        );
        let got: Vec<u64> = pool
            .with_chunksize(chunksize)
            .imap(square, 0..200u64)
            .expect("imap")
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want, "imap chunksize {chunksize}");
        let mut un: Vec<(usize, u64)> = pool
            .with_chunksize(chunksize)
            .imap_unordered(square, 0..200u64)
            .expect("imap_unordered")
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        un.sort_unstable();
        assert_eq!(
            un,
            want.iter().copied().enumerate().collect::<Vec<_>>(),
            "imap_unordered chunksize {chunksize}"
        );
    }
    let pairs: Vec<(i64, i64)> = (0..50).map(|i| (i, -3 * i)).collect();
    assert_eq!(
        pool.starmap(add, pairs.clone()).expect("starmap"),
        pairs.iter().map(|(a, b)| a + b).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.with_chunksize(7)
            .starmap(add, pairs)
            .expect("starmap")
            .len(),
        50
    );
    assert_eq!(pool.apply(square, 12).expect("apply"), 144);
    assert_eq!(
        pool.apply(describe, "héllo".to_string()).expect("apply"),
        (6, "HÉLLO".to_string())
    );
    assert!(
        pool.map(square, Vec::<u64>::new())
            .expect("empty map")
            .is_empty()
    );
    assert_eq!(
        pool.imap(square, Vec::<u64>::new())
            .expect("empty imap")
            .count(),
        0
    );
}

#[test]
fn imap_is_lazy_and_can_stop_early() {
    let pool = Processes::new(2).expect("pool");
    let pulled = std::cell::Cell::new(0u64);
    let first: Vec<u64> = pool
        .imap(square, (0u64..).inspect(|_| pulled.set(pulled.get() + 1)))
        .expect("imap over an endless iterator")
        .take(5)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, vec![0, 1, 4, 9, 16]);
    // Lazy: far from the endless iterator's end. How far ahead it reads depends on the
    // load (a worker that is slow to answer task 0 lets the other take more batches of
    // up to 1024 tasks), so the bound is loose.
    assert!(pulled.get() < 200_000, "pulled {} arguments", pulled.get());
    // Dropped early: the pool is free again and nothing stale leaks into the next call.
    assert_eq!(
        pool.map(square, 0..10u64).expect("map"),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

#[test]
fn the_pool_refuses_reentry_from_an_imap_of_the_same_thread() {
    let pool = Processes::new(1).expect("pool");
    let mut it = pool.imap(square, 0..3u64).expect("imap");
    assert_eq!(it.next().expect("one").expect("ok"), 0);
    assert!(matches!(pool.map(square, [1u64]), Err(PoolError::Busy)));
    drop(it);
    assert_eq!(pool.map(square, [3u64]).expect("map"), vec![9]);
}

#[test]
fn workers_are_replaced_after_max_tasks() {
    let pool = Processes::builder()
        .workers(2)
        .max_tasks_per_worker(3)
        .build()
        .expect("pool");
    let first = pool.pids().expect("pids");
    let pids = pool.with_chunksize(1).map(pid, 0..12u32).expect("map");
    let mut count: HashMap<u32, usize> = HashMap::new();
    for p in &pids {
        *count.entry(*p).or_default() += 1;
    }
    assert!(count.values().all(|&c| c <= 3), "{count:?}");
    assert!(count.len() >= 4, "{count:?}");
    // Every worker of the start has been replaced (it reached 3 tasks).
    pool.map(pid, 0..2u32).expect("map");
    let now = pool.pids().expect("pids");
    assert!(first.iter().all(|p| !now.contains(p)), "{first:?} {now:?}");
}

#[test]
fn bad_options_are_clear_errors() {
    let invalid = |r: Result<Processes, PoolError>, what: &str| match r {
        Err(e @ PoolError::InvalidOption { .. }) => assert!(e.to_string().contains(what), "{e}"),
        other => panic!("{what}: {other:?}"),
    };
    invalid(Processes::new(0), "at least 1 worker");
    invalid(Processes::builder().workers(1).chunk(0).build(), "chunk");
    invalid(
        Processes::builder().workers(1).chunksize(0).build(),
        "chunksize",
    );
    invalid(
        Processes::builder()
            .workers(1)
            .task_timeout(Duration::ZERO)
            .build(),
        "timeout",
    );
    invalid(
        Processes::builder()
            .workers(1)
            .max_tasks_per_worker(0)
            .build(),
        "max tasks",
    );
    assert!(matches!(
        Threads::new(0),
        Err(PoolError::InvalidOption { .. })
    ));

    let pool = Processes::new(1).expect("pool");
    let e = pool
        .with_chunksize(0)
        .map(square, [1u64])
        .expect_err("chunksize 0");
    assert!(
        matches!(e, PoolError::InvalidOption { .. }) && e.to_string().contains("chunksize"),
        "{e}"
    );
    assert!(pool.with_chunksize(0).imap(square, [1u64]).is_err());
}

#[test]
fn a_program_that_is_not_a_worker_fails_to_start() {
    let t = Instant::now();
    let e = Processes::builder()
        .workers(1)
        .worker_program("/bin/true")
        .build()
        .expect_err("not a worker");
    assert!(
        matches!(
            e,
            PoolError::Start {
                exit: Some(WorkerExit::Status(0)),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("init()"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = Processes::builder()
        .workers(1)
        .worker_program("/nonexistent/kpool")
        .build()
        .expect_err("missing");
    assert!(matches!(e, PoolError::Start { .. }), "{e}");
}

#[test]
fn functions_need_the_same_executable() {
    let pool = Processes::builder()
        .workers(1)
        .worker_program(env!("CARGO_BIN_EXE_kpool-worker"))
        .build()
        .expect("pool of kpool-worker");
    let e = pool
        .map(square, [1u64])
        .expect_err("kpool-worker cannot run test functions");
    assert!(matches!(e, PoolError::NotSameExecutable(_)), "{e}");
    assert!(pool.apply(square, 2).is_err());
}

#[test]
fn steps_need_shared_memory() {
    let pool = Processes::new(1).expect("pool");
    let kernel = Kernel::get(KernelName::Seed, Lang::C);
    let mut heap = Buffer::heap(Elem::I64, 4, "heap").expect("heap");
    let mut args = StepArgs::new(4, 4);
    args.iparam[0] = 10;
    let step = Step::new(kernel.clone(), args, vec![&mut heap]).expect("step");
    let e = pool
        .run(&step)
        .expect_err("heap memory cannot reach workers");
    // Not a fault of a task: the pool's own error says what it is.
    assert_eq!(e.fault(), Some(&kernelpool_kernels::Fault::Other), "{e}");
    let inner = e
        .executor()
        .and_then(|x| x.get_ref().downcast_ref::<PoolError>())
        .unwrap_or_else(|| panic!("not a PoolError: {e}"));
    assert!(
        matches!(inner, PoolError::NotShared { slot: 0, .. }),
        "{inner}"
    );

    // Shared memory made by hand works, and the workers write into it.
    let mut shared =
        Buffer::from_memory(Elem::I64, 4, Box::new(SharedMemory::new(32).expect("shm")))
            .expect("buffer");
    pool.run(&Step::new(kernel.clone(), args, vec![&mut shared]).expect("step"))
        .expect("run");
    let mut serial = Buffer::heap(Elem::I64, 4, "heap").expect("heap");
    kernelpool_kernels::Serial
        .run(&Step::new(kernel, args, vec![&mut serial]).expect("step"))
        .expect("serial");
    assert_eq!(shared.as_slice::<i64>(), serial.as_slice::<i64>());
    assert_ne!(serial.as_slice::<i64>().expect("i64")[3], 0);
}

#[test]
fn kernels_from_a_shared_object_cross_to_workers() {
    // A kernel with pi's contract (partial[0] = a sum over the range), in its own library.
    let tmp = TempDir::new("count");
    let dir = &tmp.0;
    let src = dir.join("count.c");
    let lib = dir.join("libcount.so");
    std::fs::write(
        &src,
        r#"#include <stdint.h>
        typedef struct { uint64_t n, items; int64_t iparam[4]; double fparam[4];
                         void *buf[4]; uint64_t len[4]; int64_t *partial; } kp_kargs;
        int32_t count_sevens(const kp_kargs *a, uint64_t begin, uint64_t end) {
            int64_t s = 0;
            for (uint64_t i = begin; i < end; i++) s += ((i * 2654435761u) % 7 == 0) * (int64_t)(i % 5 + 1);
            a->partial[0] += s;
            return 0;
        }
        int32_t fails_at_500(const kp_kargs *a, uint64_t begin, uint64_t end) {
            if (begin <= 500 && 500 < end) return -7;
            a->partial[0] += (int64_t)(end - begin);
            return 0;
        }"#,
    )
    .expect("write source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("run the C compiler");
    assert!(status.success());
    // SAFETY: `count_sevens` has the kernel signature and follows pi's contract (it reads
    // no buffer and adds to partial[0] only).
    let kernel =
        unsafe { Kernel::load(&lib, "count_sevens", KernelName::Pi, Lang::C) }.expect("load");
    let opts = kernelpool_kernels::Options::new().n(100_000);
    let want =
        kernelpool_kernels::programs::run(kernel.clone(), &opts, &kernelpool_kernels::Serial)
            .expect("serial");
    let pool = Processes::new(2).expect("pool");
    let got = kernelpool_kernels::programs::run(kernel, &opts, &pool).expect("processes");
    assert_eq!(got.stdout, want.stdout);

    // A kernel's error status comes back as the same typed error from every executor,
    // naming the chunk that failed.
    // SAFETY: as above; `fails_at_500` returns -7 for the chunk holding item 500.
    let failing =
        unsafe { Kernel::load(&lib, "fails_at_500", KernelName::Pi, Lang::C) }.expect("load");
    let opts = kernelpool_kernels::Options::new().n(1000);
    let chunked = Processes::builder()
        .workers(2)
        .chunk(100)
        .build()
        .expect("pool");
    let threads = Threads::builder()
        .workers(2)
        .chunk(100)
        .build()
        .expect("threads");
    let execs: [&dyn Executor; 4] = [&kernelpool_kernels::Serial, &pool, &chunked, &threads];
    for exec in execs {
        match kernelpool_kernels::programs::run(failing.clone(), &opts, exec) {
            Err(kernelpool_kernels::Error::KernelFailed {
                code: -7,
                begin,
                end,
                ..
            }) => {
                assert!(
                    begin <= 500 && 500 < end,
                    "{}: {begin}..{end}",
                    exec.describe()
                );
                if exec.describe().contains("chunk 100") {
                    assert_eq!((begin, end), (500, 600), "{}", exec.describe());
                }
            }
            other => panic!("{}: {other:?}", exec.describe()),
        }
    }
    // The pool is fine afterwards.
    assert_eq!(
        kernelpool_kernels::programs::run(kernel_ok(&lib), &opts, &chunked)
            .expect("ok")
            .stdout,
        {
            kernelpool_kernels::programs::run(kernel_ok(&lib), &opts, &kernelpool_kernels::Serial)
                .expect("serial")
                .stdout
        }
    );
}

fn kernel_ok(lib: &std::path::Path) -> Kernel {
    // SAFETY: `count_sevens` follows pi's contract (see above).
    unsafe { Kernel::load(lib, "count_sevens", KernelName::Pi, Lang::C) }.expect("load")
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// The timeout is per task, counted from its start, not from when it was queued: eight
/// 60 ms tasks queued in one worker take 480 ms, longer than the 250 ms timeout, and
/// none of them times out.
#[test]
fn the_timeout_counts_from_each_task_start() {
    let pool = Processes::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(250))
        .build()
        .expect("pool");
    let t = Instant::now();
    assert_eq!(
        pool.with_chunksize(8)
            .map(nap, [60u64; 8])
            .expect("no timeout"),
        vec![60; 8]
    );
    assert!(t.elapsed() >= Duration::from_millis(480));
}

/// The same among tiny tasks, which a worker times a few at a time: two 300 ms tasks in a
/// row after twenty tiny ones, all in one batch, are 600 ms past the last reading of the
/// clock before them, and neither times out at 500 ms; a 900 ms one among them does.
#[test]
fn the_timeout_counts_from_each_task_start_among_tiny_tasks() {
    let pool = Processes::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .expect("pool");
    // Tiny tasks first: the pool learns they are short and sends them by the hundred.
    for _ in 0..3 {
        pool.with_chunksize(1)
            .map(nap, [0u64; 2000])
            .expect("warm-up");
    }
    let mut naps = vec![0u64; 20];
    naps.extend([300, 300]);
    naps.extend([0; 5]);
    let t = Instant::now();
    assert_eq!(
        pool.with_chunksize(1)
            .map(nap, naps.clone())
            .expect("no timeout"),
        naps
    );
    assert!(t.elapsed() >= Duration::from_millis(600));
    naps[21] = 900;
    let r: Vec<_> = pool.imap(nap, naps).expect("imap").collect();
    assert!(r[21].as_ref().is_err_and(|e| e.is_timeout()), "{:?}", r[21]);
    assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 26, "{r:?}");
}

/// The arguments of a `map` may come from the pool itself: they are all taken before the
/// pool is (thousands of them too).
#[test]
fn map_arguments_may_use_the_pool() {
    let pool = Processes::new(2).expect("pool");
    let args = (0..6000u64).map(|i| {
        if i % 1000 == 999 {
            pool.apply(square, i)
                .expect("apply while the arguments are taken")
        } else {
            i
        }
    });
    let want: Vec<u64> = (0..6000u64)
        .map(|i| {
            if i % 1000 == 999 {
                square(square(i))
            } else {
                square(i)
            }
        })
        .collect();
    assert_eq!(pool.map(square, args).expect("map"), want);
}

/// A worker that dies between operations (OOM killer, an operator) is replaced without
/// any task failing.
#[test]
fn a_worker_killed_while_idle_is_replaced_silently() {
    let pool = Processes::new(2).expect("pool");
    let victim = pool.pids().expect("pids")[0];
    let pid = rustix::process::Pid::from_raw(victim as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..3 {
        assert_eq!(
            pool.with_chunksize(1).map(square, 0..50u64).expect("map"),
            (0..50u64).map(square).collect::<Vec<_>>()
        );
    }
    let now = pool.pids().expect("pids");
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&victim), "{now:?}");
}

/// Callers on several threads share one pool; each gets its own results.
#[test]
fn several_threads_share_a_pool() {
    let pool = Processes::new(2).expect("pool");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    for round in 0..5u64 {
                        let base = 1000 * t + 100 * round;
                        let got = pool.map(square, base..base + 30).expect("map");
                        assert_eq!(got, (base..base + 30).map(square).collect::<Vec<_>>());
                        let k = Kernel::get(KernelName::Pi, Lang::Rust);
                        let opts = kernelpool_kernels::Options::new().n(3000 + t);
                        let want = kernelpool_kernels::programs::run(
                            k.clone(),
                            &opts,
                            &kernelpool_kernels::Serial,
                        )
                        .expect("serial");
                        assert_eq!(
                            kernelpool_kernels::programs::run(k, &opts, pool)
                                .expect("pi")
                                .stdout,
                            want.stdout
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    });
}

/// A value postcard cannot encode when `bad` (a sequence of unknown length).
#[derive(Debug, Clone, PartialEq)]
struct Picky {
    bad: bool,
    v: Vec<u32>,
}

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.bad {
            s.collect_seq(self.v.iter().filter(|_| true))
        } else {
            s.collect_seq(self.v.iter())
        }
    }
}

impl<'de> serde::Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Picky {
            bad: false,
            v: Vec::deserialize(d)?,
        })
    }
}

fn picky_len(p: Picky) -> usize {
    p.v.len()
}

fn make_picky(n: u32) -> Picky {
    Picky {
        bad: n == 2,
        v: (0..n).collect(),
    }
}

#[test]
fn values_that_cannot_cross_are_errors_of_their_task() {
    let pool = Processes::new(2).expect("pool");
    let args: Vec<Picky> = (0..5)
        .map(|i| Picky {
            bad: i == 3,
            v: vec![1; i],
        })
        .collect();
    let r: Vec<_> = pool.imap(picky_len, args.clone()).expect("imap").collect();
    for (i, r) in r.iter().enumerate() {
        match r {
            Ok(len) => assert!(i != 3 && *len == i, "{i}: {len}"),
            Err(e) => assert!(
                i == 3 && matches!(e, PoolError::Codec { task: 3, .. }),
                "{i}: {e}"
            ),
        }
    }
    assert!(matches!(
        pool.map(picky_len, args),
        Err(PoolError::Codec { task: 3, .. })
    ));
    // A result the worker cannot encode.
    let r: Vec<_> = pool.imap(make_picky, 0..4u32).expect("imap").collect();
    assert!(
        matches!(&r[2], Err(PoolError::Remote { task: 2, message, .. }) if message.contains("encode")),
        "{:?}",
        r[2]
    );
    assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 3);
}

/// An endless argument iterator whose values cannot be encoded: each yields its own
/// error, lazily, rather than the pool pulling arguments forever.
#[test]
fn imap_over_endless_unencodable_arguments_stays_lazy() {
    let pool = Processes::new(1).expect("pool");
    let bad = (0..).map(|i| Picky {
        bad: true,
        v: vec![i],
    });
    let t = Instant::now();
    let first: Vec<_> = pool.imap(picky_len, bad).expect("imap").take(3).collect();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for (i, r) in first.iter().enumerate() {
        assert!(
            matches!(r, Err(PoolError::Codec { task, .. }) if *task == i),
            "{i}: {r:?}"
        );
    }
    let un: Vec<_> = pool
        .imap_unordered(
            picky_len,
            (0..).map(|i| Picky {
                bad: i % 2 == 1,
                v: vec![7; i],
            }),
        )
        .expect("imap_unordered")
        .take(6)
        .collect();
    assert_eq!(un.len(), 6);
    assert_eq!(pool.map(square, [4u64]).expect("map"), vec![16]);
}

fn text_len(s: String) -> usize {
    s.len()
}

fn text_of(n: usize) -> String {
    "x".repeat(n)
}

/// Arguments and results larger than a message may carry (1 GiB) are clear errors of
/// their task (batches of arguments that together exceed it are split: see the unit test
/// `batches_stay_within_the_byte_limit`).
#[test]
fn values_too_large_for_a_message_are_errors_of_their_task() {
    const GIB: usize = 1 << 30;
    let pool = Processes::new(1).expect("pool");
    let pid = pool.pids().expect("pids");
    let r: Vec<_> = pool
        .imap(text_len, [text_of(3), text_of(GIB + 1), text_of(5)])
        .expect("imap")
        .collect();
    assert_eq!(r[0].as_ref().ok(), Some(&3));
    assert!(
        matches!(&r[1], Err(PoolError::Codec { task: 1, message }) if message.contains("the argument takes 1073741830 bytes") && message.contains("more than")),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2].as_ref().ok(), Some(&5));

    let r: Vec<_> = pool
        .imap(text_of, [3, GIB + 1, 5])
        .expect("imap")
        .map(|r| r.map(|s| s.len()))
        .collect();
    assert_eq!(r[0].as_ref().ok(), Some(&3));
    assert!(
        matches!(&r[1], Err(PoolError::Remote { task: 1, message, .. }) if message.contains("the result takes") && message.contains("more than")),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2].as_ref().ok(), Some(&5));
    assert_eq!(pool.pids().expect("pids"), pid, "the worker lives on");
    assert_eq!(pool.map(text_len, [text_of(7)]).expect("map"), vec![7]);
}

/// A replacement worker that never gets ready (here: a worker program that hangs from its
/// second start on) is given up after `start_timeout`, with an error, not waited for.
#[test]
fn replacement_workers_that_never_get_ready_are_an_error() {
    let tmp = TempDir::new("ready");
    let dir = &tmp.0;
    let script = dir.join("worker.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\nif mkdir '{}' 2>/dev/null; then exec '{}'; fi\nexec sleep 60\n",
            dir.join("started").display(),
            env!("CARGO_BIN_EXE_kpool-worker")
        ),
    );
    // Every chunk in the worker: the step must need a replacement to finish.
    let pool = Processes::builder()
        .workers(1)
        .caller_runs_chunks(false)
        .worker_program(&script)
        .start_timeout(Duration::from_millis(500))
        .build()
        .expect("the first start works");
    let kernel = Kernel::get(KernelName::Pi, Lang::C);
    let opts = kernelpool_kernels::Options::new().n(1000);
    let want =
        kernelpool_kernels::programs::run(kernel.clone(), &opts, &kernelpool_kernels::Serial)
            .expect("serial");
    assert_eq!(
        kernelpool_kernels::programs::run(kernel.clone(), &opts, &pool)
            .expect("processes")
            .stdout,
        want.stdout
    );
    let victim = pool.pids().expect("pids")[0];
    let pid = rustix::process::Pid::from_raw(victim as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    let t = Instant::now();
    let e =
        kernelpool_kernels::programs::run(kernel, &opts, &pool).expect_err("no worker can start");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Not a fault of a task: the pool's own error says what it is.
    assert_eq!(e.fault(), Some(&kernelpool_kernels::Fault::Other), "{e}");
    let inner = e
        .executor()
        .and_then(|x| x.get_ref().downcast_ref::<PoolError>())
        .unwrap_or_else(|| panic!("not a PoolError: {e}"));
    assert!(matches!(inner, PoolError::Start { .. }), "{inner}");
    assert!(inner.to_string().contains("ready"), "{inner}");
}

/// An `imap` dropped while a faulty task is still out: the fault (crash, hang, panic)
/// happens during the next call, which must neither see it nor lose a result.
#[test]
fn a_fault_left_behind_by_a_dropped_imap_does_not_reach_the_next_call() {
    let pool = pool_for_faults();
    for fault in [Fault::Segfault, Fault::Hang, Fault::Panic, Fault::Exit] {
        let args: Vec<(Fault, u32)> = (0..N)
            .map(|i| (if i == 1 { fault } else { Fault::None }, i))
            .collect();
        let mut it = pool.with_chunksize(1).imap(faulty, args).expect("imap");
        assert_eq!(it.next().expect("one").expect("ok"), 0);
        drop(it);
        assert_eq!(
            pool.with_chunksize(1).map(square, 0..40u64).expect("map"),
            (0..40u64).map(square).collect::<Vec<_>>(),
            "after {fault:?}"
        );
        let got: Vec<u64> = pool
            .imap(square, 0..10u64)
            .expect("imap")
            .map(|r| r.expect("ok"))
            .collect();
        assert_eq!(got, (0..10u64).map(square).collect::<Vec<_>>());
    }
    assert_eq!(pool.pids().expect("pids").len(), 2);
}

/// Workers load a kernel from a shared object again, by its path. When the file at that
/// path has been replaced since the pool loaded it (rebuilt, say), the workers must not
/// run the new file's symbol under the old one's contract: the step fails, clearly.
#[test]
fn a_shared_object_replaced_after_loading_is_not_run_by_workers() {
    let tmp = TempDir::new("replaced");
    let lib = tmp.0.join("libk.so");
    let build = |body: &str, out: &std::path::Path| {
        let src = tmp.0.join("k.c");
        std::fs::write(
            &src,
            format!(
                "#include <stdint.h>\n#include \"kernels.h\"\n\
                 int32_t k(const kp_kargs *a, uint64_t begin, uint64_t end) {{ {body} return 0; }}\n"
            ),
        )
        .expect("write source");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = std::process::Command::new(cc)
            .args(["-shared", "-fPIC", "-O2", "-I"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../native/include"))
            .arg("-o")
            .arg(out)
            .arg(&src)
            .status()
            .expect("run the C compiler");
        assert!(status.success());
    };
    build("a->partial[0] += (int64_t)(end - begin);", &lib);
    // SAFETY: `k` has the kernel signature and follows pi's contract (no buffers; it adds
    // to partial[0] only).
    let kernel = unsafe { Kernel::load(&lib, "k", KernelName::Pi, Lang::C) }.expect("load");
    let opts = kernelpool_kernels::Options::new().n(1000);
    let want =
        kernelpool_kernels::programs::run(kernel.clone(), &opts, &kernelpool_kernels::Serial)
            .expect("serial");
    // Rebuilt at the same path (a new file renamed over the old one, as compilers and
    // build tools do): this one follows no contract the caller vouched for.
    let next = tmp.0.join("libk.so.new");
    build("a->partial[0] += 7 * (int64_t)(end - begin);", &next);
    std::fs::rename(&next, &lib).expect("replace the library");
    let pool = Processes::new(2).expect("pool");
    match kernelpool_kernels::programs::run(kernel.clone(), &opts, &pool) {
        Err(e) => assert!(
            e.to_string().contains("not the one") && e.to_string().contains("libk.so"),
            "{e}"
        ),
        Ok(got) => panic!(
            "workers ran another library: {:?} (the pool's gives {:?})",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&want.stdout)
        ),
    }
    // The pool is fine, and the library now at the path runs once loaded again (after the
    // old one is unloaded: while it is loaded, loading the same path gives it again).
    drop(kernel);
    // SAFETY: as above, the new `k` follows pi's contract.
    let again = unsafe { Kernel::load(&lib, "k", KernelName::Pi, Lang::C) }.expect("load");
    assert_eq!(
        kernelpool_kernels::programs::run(again.clone(), &opts, &pool)
            .expect("processes")
            .stdout,
        kernelpool_kernels::programs::run(again, &opts, &kernelpool_kernels::Serial)
            .expect("serial")
            .stdout
    );
}

/// Extreme option values are clear errors or work; none crashes the caller.
#[test]
fn extreme_options_are_errors_or_work() {
    match Processes::builder().workers(usize::MAX).build() {
        Err(e @ PoolError::InvalidOption { .. }) => {
            assert!(e.to_string().contains("workers"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let pool = Processes::builder()
        .workers(1)
        .start_timeout(Duration::MAX)
        .task_timeout(Duration::MAX)
        .max_tasks_per_worker(u64::MAX)
        .chunk(u64::MAX)
        .build()
        .expect("pool");
    assert_eq!(
        pool.with_chunksize(usize::MAX)
            .map(square, 0..10u64)
            .expect("map"),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
    let k = Kernel::get(KernelName::Pi, Lang::C);
    let opts = kernelpool_kernels::Options::new().n(1000);
    assert_eq!(
        kernelpool_kernels::programs::run(k.clone(), &opts, &pool)
            .expect("pi")
            .stdout,
        kernelpool_kernels::programs::run(k, &opts, &kernelpool_kernels::Serial)
            .expect("serial")
            .stdout
    );
}
