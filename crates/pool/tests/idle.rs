//! An idle process pool burns no CPU: workers spin only briefly after a batch, then sleep.

use kernelpool_kernels::{Kernel, KernelName, Lang, Options, programs};
use kernelpool_pool::Processes;
use std::time::Duration;

// SAFETY: runs before `main`; `init` reads one environment variable and returns, except
// in a worker, where it serves the pool and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

fn tiny(x: u64) -> u64 {
    x ^ 0x5555
}

/// Nanoseconds a process has run on a CPU (`/proc/<pid>/schedstat`, the scheduler's own
/// count). Not utime + stime: those are clock ticks (10 ms each), charged to whatever runs
/// when the tick fires, and a worker whose short timed wake-ups fall on ticks would be
/// charged whole ticks for microseconds of work.
fn on_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("on-CPU nanoseconds")
}

#[test]
fn an_idle_pool_uses_less_than_one_percent_of_a_core() {
    let pool = Processes::new(2).expect("pool");
    // Warm it up with both kinds of work, so that the workers' spin has adapted.
    pool.with_chunksize(1).map(tiny, 0..20_000).expect("map");
    let kernel = Kernel::get(KernelName::Triad, Lang::C);
    programs::run(kernel, &Options::new().n(200_000), &pool).expect("triad");
    std::thread::sleep(Duration::from_millis(100));
    let pids = pool.pids().expect("pids");
    let before: Vec<u64> = pids.iter().map(|&p| on_cpu_ns(p)).collect();
    let window = Duration::from_secs(2);
    std::thread::sleep(window);
    let after: Vec<u64> = pids.iter().map(|&p| on_cpu_ns(p)).collect();
    for ((pid, b), a) in pids.iter().zip(&before).zip(&after) {
        let used = Duration::from_nanos(a - b);
        assert!(
            used.as_secs_f64() < 0.01 * window.as_secs_f64(),
            "worker {pid} used {used:?} of CPU in {window:?} idle"
        );
    }
}
