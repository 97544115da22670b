//! Large arguments and results travel in sealed memfds rather than through the socket:
//! they arrive intact in both directions, mixed with small ones, many to a batch, and
//! again after a crash of the worker that held them; and no descriptor or mapping of
//! theirs is left behind, in the pool or in its workers.
//!
//! One test per binary: it counts this process's descriptors, which other tests running
//! alongside would disturb.

use kernelpool_pool::{PoolError, Processes};
use std::time::{Duration, Instant};

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process.
// It needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

/// A value of `len` items that differs from every other (`seed`).
fn value(seed: u64, len: usize) -> Vec<u64> {
    (0..len as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed)
        .collect()
}

/// A result as large as its argument, that depends on every item.
fn transform(v: Vec<u64>) -> Vec<u64> {
    v.iter().rev().map(|x| x.rotate_left(7) ^ 0x55).collect()
}

fn expected(v: &[u64]) -> Vec<u64> {
    v.iter().rev().map(|x| x.rotate_left(7) ^ 0x55).collect()
}

/// Like `transform`, but the worker dies on the value whose first item is 3.
fn transform_or_die(v: Vec<u64>) -> Vec<u64> {
    if v.first() == Some(&3) {
        std::process::exit(7);
    }
    transform(v)
}

fn fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/pid/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

/// Descriptors and mappings of sealed values held by process `pid`.
fn sealed_left(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    fds(pid)
        .iter()
        .filter(|f| f.contains("kernelpool-value"))
        .count()
        + maps
            .lines()
            .filter(|l| l.contains("kernelpool-value"))
            .count()
}

#[test]
fn large_values_round_trip_through_shared_memory_and_leave_nothing() {
    const MIB: usize = 1 << 20;
    let me = std::process::id();
    // The first pool starts the fork server, whose socket stays.
    drop(Processes::new(1).expect("pool"));
    let fds_before = fds(me);
    {
        let pool = Processes::new(2).expect("pool");
        // A worker closes a result's memfd just after sending it: give it a moment.
        let check_clean = |pool: &Processes| {
            assert_eq!(sealed_left(me), 0, "pool: {:?}", fds(me));
            for pid in pool.pids().expect("pids") {
                let deadline = Instant::now() + Duration::from_secs(2);
                while sealed_left(pid) > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(sealed_left(pid), 0, "worker {pid}: {:?}", fds(pid));
            }
        };

        // Several MiB each way, with small values (which stay in the socket) between.
        let lens = [3 * MIB / 8, 5, 6 * MIB / 8, 40_000, 32_769, 2 * MIB / 8];
        let args: Vec<Vec<u64>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| value(i as u64 + 10, n))
            .collect();
        let want: Vec<Vec<u64>> = args.iter().map(|a| expected(a)).collect();
        assert_eq!(pool.map(transform, args.clone()).expect("map"), want);
        assert_eq!(
            pool.with_chunksize(6)
                .map(transform, args.clone())
                .expect("one batch"),
            want
        );
        let sums: Vec<u64> = pool
            .starmap(
                |a: Vec<u64>, b: Vec<u64>| a.iter().chain(&b).fold(0, |s, x| s ^ x),
                args.iter().map(|a| (a.clone(), a.clone())),
            )
            .expect("starmap");
        assert!(sums.iter().all(|&s| s == 0), "{sums:?}");
        check_clean(&pool);

        // More sealed values than one frame carries, in one chunk.
        let many: Vec<Vec<u64>> = (0..20).map(|i| value(i + 100, 40_000)).collect();
        let want: Vec<Vec<u64>> = many.iter().map(|a| expected(a)).collect();
        assert_eq!(
            pool.with_chunksize(20)
                .map(transform, many)
                .expect("many in a chunk"),
            want
        );
        check_clean(&pool);

        // A worker dies holding large values: its task fails, the others it held are
        // sent again (with new descriptors) and come back intact.
        let args: Vec<Vec<u64>> = (0..8u64)
            .map(|i| {
                let mut v = value(i + 1000, MIB / 8);
                v[0] = i;
                v
            })
            .collect();
        let r: Vec<_> = pool
            .with_chunksize(1)
            .imap(transform_or_die, args.clone())
            .expect("imap")
            .collect();
        for (i, (r, a)) in r.iter().zip(&args).enumerate() {
            if i == 3 {
                assert!(
                    matches!(r, Err(PoolError::Crashed { task: 3, .. })),
                    "{r:?}"
                );
            } else {
                assert_eq!(r.as_ref().ok(), Some(&expected(a)), "task {i}");
            }
        }
        check_clean(&pool);
    }
    let fds_after = fds(me);
    assert_eq!(
        fds_after.len(),
        fds_before.len(),
        "before {fds_before:?}\nafter {fds_after:?}"
    );
}
