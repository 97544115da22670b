//! Workers that stop making progress (SIGSTOP, a debugger, a frozen container), pools that
//! fail in the middle of a lazy iterator, and what a task's children inherit.

use kernelpool_pool::{PoolError, Processes};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// While this file exists, exec'd workers started by the test process whose pid it names
/// hang before they are ready (replacements then never get ready).
fn hang_marker(pool_pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("kp-stalls-hang-{pool_pid}"))
}

// SAFETY: runs before `main`; it reads a file name and the environment, and in a worker
// serves the pool on its inherited socket and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    if std::env::var_os("KERNELPOOL_WORKER").is_some() {
        let parent = std::os::unix::process::parent_id();
        if hang_marker(parent).exists() {
            std::thread::sleep(Duration::from_secs(120));
        }
    }
    kernelpool_pool::init();
}

/// The tests of this file run one at a time: the hang marker concerns every pool of the
/// process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn triple(x: u64) -> u64 {
    x.wrapping_mul(3)
}

fn nap_then_triple(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x.wrapping_mul(3)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

#[test]
fn a_worker_stopped_between_tasks_is_replaced_and_imap_unordered_completes() {
    let _serial = serial();
    // The repro, scaled to the test suite: a worker stopped while it holds queued
    // tasks used to hang the call forever, whatever the task timeout.
    let pool = Processes::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(1000))
        .build()
        .expect("pool");
    let victim = pool.pids().expect("pids")[0];
    let n = 1_000_000u64;
    let started = Instant::now();
    let mut seen = HashSet::new();
    let mut errors = 0;
    for (i, r) in pool.imap_unordered(triple, 0..n).expect("imap") {
        if seen.len() == 10_000 {
            // Both workers hold queued tasks by now.
            signal(victim, rustix::process::Signal::STOP);
        }
        assert!(seen.insert(i), "task {i} delivered twice");
        match r {
            Ok(v) => assert_eq!(v, triple(i as u64), "task {i}"),
            Err(e) => {
                // A stopped worker runs nothing: no task is to blame, but a task it held
                // may have been running when it was stopped.
                assert!(e.is_timeout(), "task {i}: {e}");
                assert_eq!(e.task(), Some(i));
                errors += 1;
            }
        }
    }
    assert_eq!(seen.len() as u64, n, "every task delivered");
    assert!(errors <= 1, "{errors} tasks reported as timed out");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let now = pool.pids().expect("pids");
    assert!(!now.contains(&victim), "the stopped worker was replaced");
    assert!(
        !std::path::Path::new(&format!("/proc/{victim}")).exists(),
        "the stopped worker was killed and reaped"
    );
}

#[test]
fn a_worker_stopped_in_a_task_times_that_task_out_and_the_rest_run() {
    let _serial = serial();
    let pool = Processes::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(500))
        .build()
        .expect("pool");
    let victim = pool.pids().expect("pids")[1];
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        signal(victim, rustix::process::Signal::STOP);
    });
    let results: Vec<_> = pool
        .with_chunksize(1)
        .imap(nap_then_triple, 0..400u64)
        .expect("imap")
        .collect();
    stopper.join().expect("stopper");
    assert_eq!(results.len(), 400);
    let mut timed_out = 0;
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, 3 * i as u64),
            Err(e) => {
                assert!(e.is_timeout(), "task {i}: {e}");
                assert_eq!(e.task(), Some(i), "item {i} is task {i}'s");
                timed_out += 1;
            }
        }
    }
    assert!(timed_out <= 1, "{timed_out}");
    assert!(!pool.pids().expect("pids").contains(&victim));
}

#[test]
fn a_pool_that_fails_mid_imap_reports_every_task_it_had_taken() {
    let _serial = serial();
    let marker = hang_marker(std::process::id());
    let _ = std::fs::remove_file(&marker);
    let pool = Processes::builder()
        .workers(2)
        .fork_server(false)
        .start_timeout(Duration::from_millis(300))
        .build()
        .expect("pool");
    let pids = pool.pids().expect("pids");
    // From now on, replacement workers (exec'd) never get ready.
    std::fs::write(&marker, b"").expect("marker");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        for pid in pids {
            signal(pid, rustix::process::Signal::KILL);
        }
    });
    let mut it = pool
        .with_chunksize(1)
        .imap(nap_then_triple, 0..1_000_000u64)
        .expect("imap");
    let mut count = 0;
    let mut not_run = 0;
    for (i, r) in it.by_ref().enumerate() {
        match r {
            Ok(v) => assert_eq!(v, 3 * i as u64),
            Err(e) => {
                assert_eq!(e.task(), Some(i), "item {i} belongs to task {i}: {e}");
                if e.is_pool_failure() {
                    not_run += 1;
                } else {
                    assert!(e.is_crash(), "{e}");
                }
            }
        }
        count += 1;
    }
    killer.join().expect("killer");
    std::fs::remove_file(&marker).expect("remove marker");
    assert!(not_run > 0, "tasks taken when the pool failed are reported");
    assert!(count < 1_000_000, "the iterator ended early");
    match it.pool_failure() {
        Some(PoolError::Start { .. }) => {}
        other => panic!("the pool's failure is kept: {other:?}"),
    }
}

fn tokens_seen_by_a_child(_: u32) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "echo ${KERNELPOOL_WORKER:-none} ${KERNELPOOL_FORK_SERVER:-none}",
        ])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn programs_started_by_a_task_do_not_inherit_the_worker_token() {
    let _serial = serial();
    for fork_server in [true, false] {
        let pool = Processes::builder()
            .workers(1)
            .fork_server(fork_server)
            .build()
            .expect("pool");
        assert_eq!(
            pool.apply(tokens_seen_by_a_child, 0).expect("apply"),
            "none none",
            "fork server {fork_server}"
        );
    }
}

/// A fork server that stops answering (SIGSTOP) fails the starts that wait for it within
/// the start timeout; it is then killed, its workers die with it, and the pool that had
/// them replaces them from a new server.
#[test]
fn a_stopped_fork_server_fails_starts_in_time_and_is_replaced() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    assert_eq!(pool.map(triple, 0..10u64).expect("map")[9], 27);
    let old_workers = pool.pids().expect("pids");
    let server = kernelpool_pool::fork_server_pid().expect("a fork server");
    signal(server, rustix::process::Signal::STOP);
    let t = Instant::now();
    let e = Processes::builder()
        .workers(1)
        .start_timeout(Duration::from_millis(300))
        .build()
        .expect_err("a start while the fork server is stopped");
    assert!(matches!(e, PoolError::Start { .. }), "{e}");
    assert!(e.to_string().contains("fork server"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The next start has a new server.
    let other = Processes::new(1).expect("a pool from a new fork server");
    let new_server = kernelpool_pool::fork_server_pid().expect("a fork server");
    assert_ne!(new_server, server);
    assert_eq!(other.map(triple, 0..4u64).expect("map"), vec![0, 3, 6, 9]);
    // The first pool's workers died with the old server; it replaces them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while old_workers
        .iter()
        .any(|&p| std::path::Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = pool
        .map(triple, 0..100u64)
        .expect("map after the server died");
    assert_eq!(r[99], 297);
    let now = pool.pids().expect("pids");
    assert!(
        now.iter().all(|p| !old_workers.contains(p)),
        "{now:?} {old_workers:?}"
    );
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A fork server killed while its workers run tasks takes the workers with it: those tasks
/// are crashes, by SIGKILL or of unknown cause (only the dead server could have reaped
/// them; the kernel tells the cause through the worker's pidfd once `init` has reaped it,
/// on Linux 6.15 and later, which this VM's `init` does not do promptly), and the tasks
/// that had not started run on replacements from a new server.
#[test]
fn a_killed_fork_server_takes_its_workers_and_their_tasks_are_crashes() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    assert_eq!(pool.map(triple, [1u64]).expect("map"), vec![3]);
    let server = kernelpool_pool::fork_server_pid().expect("a fork server");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        signal(server, rustix::process::Signal::KILL);
    });
    let args = [2_000u64, 2_000, 1, 1, 1, 1];
    let results: Vec<_> = pool
        .with_chunksize(1)
        .imap(sleep_ms, args)
        .expect("imap")
        .collect();
    killer.join().expect("killer");
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, args[i], "task {i}"),
            Err(e) => {
                assert!(i < 2, "only the running tasks fail: task {i}: {e}");
                assert!(e.is_crash(), "task {i}: {e}");
                assert!(matches!(e.signal(), Some(9) | None), "task {i}: {e}");
            }
        }
    }
    assert!(
        results[..2].iter().all(|r| r.is_err()),
        "the two long tasks ran when the server died: {results:?}"
    );
    assert_ne!(
        kernelpool_pool::fork_server_pid(),
        Some(server),
        "a new server"
    );
}
