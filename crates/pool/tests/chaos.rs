//! Chaos soak: `map`, `imap` and `imap_unordered` over more than a million tasks, large
//! values that travel in sealed memfds, and kernel programs (mandelbrot, pi, triad,
//! spectralnorm in all four languages), all on process pools whose workers a chaos thread
//! SIGKILLs, SIGSTOPs and SIGCONTs every few milliseconds.
//!
//! What must hold, whatever the chaos does:
//! - every call returns (each runs under a watchdog that fails the test loudly after
//!   `KERNELPOOL_SOAK_CALL_LIMIT` seconds, 60 by default);
//! - every result delivered is correct and none is delivered twice (`imap` yields task `k`
//!   as item `k`, `imap_unordered` each index once);
//! - every task either succeeds or is reported with its cause: its own error
//!   (`PoolError::task() == Some(i)`, a crash by SIGKILL or a timeout) or, for the lazy
//!   iterators, a pool failure naming it; for `map`, the call's error names a task (or the
//!   pool failed to start workers: `PoolError::Start`);
//! - a kernel program prints exactly what `Serial` prints, or fails with an executor error
//!   that says why (a crash, a timeout, or workers that could not be started);
//! - nothing is left behind: no child process (running, stopped or zombie) once the pools
//!   are dropped but the fork server, which has no children then, and no descriptor.
//!
//! A `PoolError::Start` (three replacement workers in a row killed before they were
//! ready) is an accepted, counted outcome: the pool is then replaced by a new one.
//!
//! Most pools' workers are forked by the fork server, the others exec'd; now and then the
//! chaos thread SIGKILLs the fork server itself, which takes its workers with it (their
//! tasks crash with a cause that may be unknown: only the dead server could have reaped
//! them), and the next worker starts a new server.
//!
//! Workers are found without locking the pool (`Processes::pids` waits while an operation
//! runs): the children of the fork server, and the children of this process
//! (`/proc/self/task/*/children`) whose initial environment (`/proc/<pid>/environ`, which
//! a worker's removal of the variable does not change) holds `KERNELPOOL_WORKER`. Signals
//! go through a pidfd opened before the process is checked, so a recycled pid is never
//! signalled.
//!
//! Environment: `KERNELPOOL_SOAK_SECS` (default 30; the run also goes on until 10^6 tasks
//! were submitted), `KERNELPOOL_SOAK_SEED` (the random seed, printed at the start),
//! `KERNELPOOL_SOAK_CALL_LIMIT` (seconds, default 60). The figures are printed at the end.

use kernelpool_kernels::{Error, Fault, Kernel, KernelName, Lang, Options, Serial, programs};
use kernelpool_pool::{PoolError, Processes};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// it needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

const WORKERS: usize = 3;
const TASK_TIMEOUT: Duration = Duration::from_millis(300);
const START_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_TASKS: u64 = 1_000_000;
/// Encoded size of a large value: above the 256 KiB that travel inline.
const BIG: usize = 270_000;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A task: quick (`us` = 0: a few nanoseconds), or one that runs for `us` microseconds
/// (sleeping, so that it costs no CPU), so that workers are often killed or stopped in the
/// middle of one.
fn task((x, us): (u64, u32)) -> u64 {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us.into()));
    }
    task_result(x, us)
}

fn task_result(x: u64, us: u32) -> u64 {
    mix(x) ^ u64::from(us)
}

/// Large argument and result (each travels in a sealed memfd).
fn big(v: Vec<u8>) -> Vec<u8> {
    v.into_iter().map(|b| b.wrapping_add(1)).collect()
}

fn big_arg(i: usize) -> Vec<u8> {
    vec![i as u8; BIG + 13 * i]
}

fn big_ok(i: usize, out: &[u8]) -> bool {
    out.len() == BIG + 13 * i && out.iter().all(|&b| b == (i as u8).wrapping_add(1))
}

/// A small, seedable generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// About log-uniform in `lo..=hi`.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + (b - a) * u).exp() as u64).clamp(lo, hi)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next() as usize % from.len()]
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// Straight to this process's stderr: what libtest does not capture (the watchdog's
/// message must survive the exit, and the figures are wanted in every CI log).
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

// ---------------------------------------------------------------------------------------
// Finding workers without the pool.
// ---------------------------------------------------------------------------------------

/// The children of process `pid`, from `/proc/<pid>/task/*/children` (exec'd workers
/// are the children of the pool's spawner thread, forked ones of the fork server).
fn children_of(pid: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pids;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            pids.extend(
                s.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Every process whose parent is `parent`, by a scan of `/proc` (slower than
/// [`children_of`], but exact once nothing changes: for the final check).
fn children_by_scan(parent: i32) -> Vec<(i32, char)> {
    let me = parent;
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((state, ppid)) = stat(pid) {
            if ppid == me {
                found.push((pid, state));
            }
        }
    }
    found
}

/// (state, parent pid) of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid ...`: comm may hold anything, so read after the last ')'.
    let mut rest = s[s.rfind(')')? + 1..].split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True when `pid` was started as a worker: its initial environment holds the token.
fn started_as_worker(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|&b| b == 0)
            .any(|v| v.starts_with(b"KERNELPOOL_WORKER="))
    })
}

/// Is `pid` (with parent `ppid`) a worker of ours: forked by the fork server `server`, or
/// exec'd by this process?
fn is_worker(pid: i32, ppid: i32, server: Option<u32>) -> bool {
    if server.is_some_and(|s| s as i32 == ppid) {
        return true;
    }
    ppid == std::process::id() as i32 && started_as_worker(pid)
}

/// The workers of this process's pools now, with their state (`R`, `S`, `T` stopped, ...).
fn workers() -> Vec<(i32, char)> {
    let server = kernelpool_pool::fork_server_pid();
    let mut candidates = children_of("self");
    if let Some(s) = server {
        candidates.extend(children_of(&s.to_string()));
    }
    candidates
        .into_iter()
        .filter_map(|pid| match stat(pid) {
            Some((state, ppid)) if !matches!(state, 'Z' | 'X') => {
                is_worker(pid, ppid, server).then_some((pid, state))
            }
            _ => None,
        })
        .collect()
}

/// Send `sig` to worker `pid`, if it is still one of ours: the pidfd pins the process
/// before it is checked, so a pid recycled since [`workers`] read it is never signalled.
fn signal_worker(pid: i32, sig: Signal) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
        return false;
    };
    match stat(pid) {
        Some((state, ppid))
            if !matches!(state, 'Z' | 'X')
                && is_worker(pid, ppid, kernelpool_pool::fork_server_pid()) => {}
        _ => return false,
    }
    pidfd_send_signal(&fd, sig).is_ok()
}

/// SIGKILLs sent to the fork server (after one, a crash's cause may be unknown).
static SERVER_KILLS: AtomicU64 = AtomicU64::new(0);

/// SIGKILL the fork server, if one runs (through a pidfd opened before it is checked).
fn kill_fork_server() -> bool {
    let Some(pid) = kernelpool_pool::fork_server_pid() else {
        return false;
    };
    let Some(p) = Pid::from_raw(pid as i32) else {
        return false;
    };
    let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
        return false;
    };
    if kernelpool_pool::fork_server_pid() != Some(pid) {
        return false;
    }
    SERVER_KILLS.fetch_add(1, Ordering::Relaxed);
    pidfd_send_signal(&fd, Signal::KILL).is_ok()
}

// ---------------------------------------------------------------------------------------
// Figures.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    kills: AtomicU64,
    stops: AtomicU64,
    conts: AtomicU64,
    calm_periods: AtomicU64,
}

#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    /// Tasks submitted: all of a `map`, those taken from the arguments by a lazy iterator.
    tasks: u64,
    results: u64,
    crashed: u64,
    timed_out: u64,
    pool_failed: u64,
    /// Tasks of `map` calls that failed as a whole (the call's error).
    in_failed_maps: u64,
    /// Taken by a lazy iterator the test dropped early, never looked at.
    dropped_early: u64,
    failed_map_calls: u64,
    start_failures: u64,
    build_failures: u64,
    pools_built: u64,
    kernel_runs: u64,
    kernel_ok: u64,
    kernel_crashed: u64,
    kernel_timed_out: u64,
    kernel_start_failures: u64,
    big_values: u64,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.crashed + self.timed_out + self.pool_failed + self.in_failed_maps
    }
}

// ---------------------------------------------------------------------------------------
// The watchdog: no call may hang.
// ---------------------------------------------------------------------------------------

struct Watchdog {
    current: Mutex<Option<(Instant, String)>>,
    stop: AtomicBool,
}

struct Watched<'w>(&'w Watchdog);

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        *self.0.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Watchdog {
    fn start(limit: Duration, stats: Arc<Stats>) -> (Arc<Watchdog>, std::thread::JoinHandle<()>) {
        let w = Arc::new(Watchdog {
            current: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let watch = w.clone();
        let handle = std::thread::Builder::new()
            .name("soak-watchdog".into())
            .spawn(move || {
                while !watch.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let late = watch
                        .current
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .filter(|(t, _)| t.elapsed() > limit)
                        .map(|(t, what)| (t.elapsed(), what.clone()));
                    if let Some((after, what)) = late {
                        let ws = workers();
                        say(&format!(
                            "\nchaos soak: FAILED: {what} has not returned after {after:.1?} \
                             (limit {limit:?}): the pool hangs.\n  workers now (pid, state): \
                             {ws:?}\n  signals sent: {} SIGKILL, {} SIGSTOP, {} SIGCONT",
                            stats.kills.load(Ordering::Relaxed),
                            stats.stops.load(Ordering::Relaxed),
                            stats.conts.load(Ordering::Relaxed),
                        ));
                        for (pid, _) in ws {
                            signal_worker(pid, Signal::KILL);
                        }
                        std::process::exit(101);
                    }
                }
            })
            .expect("watchdog thread");
        (w, handle)
    }

    fn watch(&self, what: String) -> Watched<'_> {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), what));
        Watched(self)
    }
}

// ---------------------------------------------------------------------------------------
// Chaos.
// ---------------------------------------------------------------------------------------

/// SIGKILL, SIGSTOP and SIGCONT random workers every 1-6 ms, with calm spells now and
/// then (so that whole kernel programs sometimes get through). At least one worker is
/// left running.
fn chaos(seed: u64, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut rng = Rng(seed);
    let mut storm_until = Instant::now() + Duration::from_millis(rng.range(100, 600));
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= storm_until {
            stats.calm_periods.fetch_add(1, Ordering::Relaxed);
            let calm = Instant::now() + Duration::from_millis(rng.range(30, 250));
            while Instant::now() < calm && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            storm_until = Instant::now() + Duration::from_millis(rng.range(100, 600));
            continue;
        }
        std::thread::sleep(Duration::from_micros(rng.range(1000, 6000)));
        if rng.chance(0.002) && kill_fork_server() {
            stats.kills.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let ws = workers();
        if ws.is_empty() {
            continue;
        }
        let stopped: Vec<i32> = ws
            .iter()
            .filter(|w| matches!(w.1, 'T' | 't'))
            .map(|w| w.0)
            .collect();
        let running: Vec<i32> = ws
            .iter()
            .filter(|w| !matches!(w.1, 'T' | 't'))
            .map(|w| w.0)
            .collect();
        // Stopped workers are seldom killed or continued here: most stay stopped until the
        // pool notices (task timeout) and kills them itself.
        let (target, sig, count) = match rng.range(0, 99) {
            0..50 => (&running, Signal::KILL, &stats.kills),
            50..51 => (&stopped, Signal::KILL, &stats.kills),
            51..59 if running.len() >= 2 => (&running, Signal::STOP, &stats.stops),
            59..60 => (&stopped, Signal::CONT, &stats.conts),
            _ => continue,
        };
        if !target.is_empty() && signal_worker(rng.pick(target), sig) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checking outcomes.
// ---------------------------------------------------------------------------------------

/// What an error of task `i` may be under chaos: its worker killed (by us, or by the pool
/// for a stopped worker: both SIGKILL), a timeout (a stopped worker), or the pool's failure
/// to start workers. Anything else fails the test.
fn classify_task_error(e: &PoolError, i: usize, t: &mut Tally) {
    assert_eq!(e.task(), Some(i), "an error of task {i} names another: {e}");
    if e.is_crash() {
        // A worker of a killed fork server died by SIGKILL too, but only that server
        // could have reaped it and told.
        let unknown_ok = SERVER_KILLS.load(Ordering::Relaxed) > 0 && e.signal().is_none();
        assert!(
            e.signal() == Some(libc_sigkill()) || unknown_ok,
            "task {i}: a crash other than by SIGKILL: {e}"
        );
        t.crashed += 1;
    } else if e.is_timeout() {
        t.timed_out += 1;
    } else if e.is_pool_failure() {
        match e {
            PoolError::PoolFailed { cause, .. } => assert!(
                matches!(**cause, PoolError::Start { .. }),
                "task {i}: the pool failed for another reason than starting workers: {e}"
            ),
            _ => unreachable!("is_pool_failure"),
        }
        t.pool_failed += 1;
    } else {
        panic!("task {i}: an error that chaos does not explain: {e:?}");
    }
}

fn libc_sigkill() -> i32 {
    Signal::KILL.as_raw()
}

/// The pool-wide failure chaos may cause (three replacement workers in a row killed
/// before they were ready); anything else fails the test.
fn assert_start_failure(e: &PoolError, what: &str) {
    assert!(
        matches!(e, PoolError::Start { .. }),
        "{what}: a failure of the pool that chaos does not explain: {e:?}"
    );
}

fn build_pool(t: &mut Tally, watchdog: &Watchdog, fork_server: bool) -> Processes {
    let _w = watchdog.watch("building a pool".into());
    for _ in 0..200 {
        match Processes::builder()
            .workers(WORKERS)
            .fork_server(fork_server)
            .task_timeout(TASK_TIMEOUT)
            .start_timeout(START_TIMEOUT)
            .build()
        {
            Ok(p) => {
                t.pools_built += 1;
                return p;
            }
            Err(e) => {
                // A worker killed (or stopped past the start timeout) before it was ready.
                assert_start_failure(&e, "building a pool");
                t.build_failures += 1;
            }
        }
    }
    panic!("200 pools in a row failed to start under chaos");
}

/// `map` of `n` quick or napping tasks: all correct, or the call's error names a task or
/// is a start failure. True when the pool must be replaced.
fn run_map(pool: &Processes, rng: &mut Rng, t: &mut Tally, watchdog: &Watchdog) -> bool {
    let (n, us) = if rng.chance(0.2) {
        (rng.log_range(1, 2_000) as usize, rng.range(20, 400) as u32)
    } else {
        (rng.log_range(1, 50_000) as usize, 0)
    };
    let base = rng.next();
    let chunksize = rng.pick(&[None, Some(1), Some(16), Some(500)]);
    let _w = watchdog.watch(format!(
        "map of {n} tasks of {us} us (chunksize {chunksize:?})"
    ));
    let args = (0..n as u64).map(|i| (base.wrapping_add(i), us));
    let r = match chunksize {
        Some(c) => pool.with_chunksize(c).map(task, args),
        None => pool.map(task, args),
    };
    t.calls += 1;
    t.tasks += n as u64;
    match r {
        Ok(v) => {
            assert_eq!(v.len(), n, "map returned {} results for {n} tasks", v.len());
            for (i, got) in v.iter().enumerate() {
                assert_eq!(
                    *got,
                    task_result(base.wrapping_add(i as u64), us),
                    "map: task {i}"
                );
            }
            t.results += n as u64;
            false
        }
        Err(e) => {
            t.failed_map_calls += 1;
            t.in_failed_maps += n as u64;
            match e.task() {
                Some(i) => {
                    assert!(i < n, "map of {n}: error of task {i}: {e}");
                    let mut scratch = Tally::default();
                    classify_task_error(&e, i, &mut scratch);
                    assert_eq!(scratch.pool_failed, 0, "map: {e}");
                    false
                }
                None => {
                    assert_start_failure(&e, "map");
                    t.start_failures += 1;
                    true
                }
            }
        }
    }
}

/// `imap` (ordered) or, with `unordered`, `imap_unordered`, of quick or napping tasks;
/// now and then the iterator is dropped early. True when the pool must be replaced.
fn run_lazy(
    pool: &Processes,
    rng: &mut Rng,
    t: &mut Tally,
    watchdog: &Watchdog,
    unordered: bool,
) -> bool {
    let napping_tasks = rng.chance(0.3);
    let n = if napping_tasks {
        rng.log_range(10, 3_000)
    } else {
        rng.log_range(1_000, 200_000)
    } as usize;
    let base = rng.next();
    let us = if napping_tasks {
        rng.range(20, 400) as u32
    } else {
        0
    };
    let chunksize = rng.pick(&[1, 1, 7, 64]);
    let stop_after = rng.chance(0.1).then(|| rng.range(0, n as u64) as usize);
    let name = if unordered { "imap_unordered" } else { "imap" };
    let what = format!("{name} of {n} tasks of {us} us (chunksize {chunksize})");
    let _w = watchdog.watch(what.clone());
    let taken = Cell::new(0usize);
    let args = (0..n).map(|i| {
        taken.set(taken.get() + 1);
        (base.wrapping_add(i as u64), us)
    });
    let mut seen = vec![false; n];
    let mut looked_at = 0usize;
    let mut mine = Tally::default();
    let mut check = |i: usize, r: Result<u64, PoolError>, mine: &mut Tally| {
        assert!(i < taken.get(), "{what}: item {i} of a task not taken yet");
        assert!(!seen[i], "{what}: task {i} delivered twice");
        seen[i] = true;
        match r {
            Ok(v) => {
                assert_eq!(
                    v,
                    task_result(base.wrapping_add(i as u64), us),
                    "{what}: task {i}"
                );
                mine.results += 1;
            }
            Err(e) => classify_task_error(&e, i, mine),
        }
    };
    let wants_more = |looked_at: usize| stop_after.is_none_or(|s| looked_at < s);
    let m = pool.with_chunksize(chunksize);
    let failure = if unordered {
        let mut it = m.imap_unordered(task, args).expect("imap_unordered");
        while wants_more(looked_at) {
            let Some((i, r)) = it.next() else { break };
            looked_at += 1;
            check(i, r, &mut mine);
        }
        it.pool_failure().map(|e| format!("{e:?}"))
    } else {
        let mut it = m.imap(task, args).expect("imap");
        while wants_more(looked_at) {
            let Some(r) = it.next() else { break };
            // Item k is task k's, whatever happened.
            check(looked_at, r, &mut mine);
            looked_at += 1;
        }
        it.pool_failure().map(|e| format!("{e:?}"))
    };
    let taken = taken.get();
    if !wants_more(looked_at) {
        // Dropped by the test: what was taken and not looked at is never delivered.
        mine.dropped_early += (taken - looked_at) as u64;
    } else {
        assert_eq!(
            looked_at, taken,
            "{what}: {taken} tasks taken, {looked_at} delivered (pool failure: {failure:?})"
        );
        if failure.is_none() {
            assert_eq!(
                taken, n,
                "{what}: ended after {taken} of {n} tasks without a failure"
            );
        }
    }
    assert_eq!(
        mine.results + mine.failures() + mine.dropped_early,
        taken as u64,
        "{what}: results + failures + dropped != tasks taken ({mine:?})"
    );
    if let Some(f) = &failure {
        assert!(f.starts_with("Start"), "{what}: the pool failed: {f}");
    }
    t.calls += 1;
    t.tasks += taken as u64;
    t.results += mine.results;
    t.crashed += mine.crashed;
    t.timed_out += mine.timed_out;
    t.pool_failed += mine.pool_failed;
    t.dropped_early += mine.dropped_early;
    if failure.is_some() {
        t.start_failures += 1;
    }
    failure.is_some()
}

/// Large values both ways (sealed memfds), through `imap_unordered`.
fn run_big(pool: &Processes, rng: &mut Rng, t: &mut Tally, watchdog: &Watchdog) -> bool {
    let n = rng.range(1, 12) as usize;
    let what = format!("imap_unordered of {n} large values");
    let _w = watchdog.watch(what.clone());
    let taken = Cell::new(0usize);
    let args = (0..n).inspect(|_| taken.set(taken.get() + 1)).map(big_arg);
    let mut it = pool.imap_unordered(big, args).expect("imap_unordered");
    let mut seen = vec![false; n];
    let mut mine = Tally::default();
    let mut delivered = 0;
    for (i, r) in it.by_ref() {
        assert!(i < n && !seen[i], "{what}: task {i} twice or out of range");
        seen[i] = true;
        delivered += 1;
        match r {
            Ok(v) => {
                assert!(big_ok(i, &v), "{what}: task {i}: wrong result");
                mine.results += 1;
            }
            Err(e) => classify_task_error(&e, i, &mut mine),
        }
    }
    let failure = it.pool_failure().map(|e| format!("{e:?}"));
    drop(it);
    assert_eq!(delivered, taken.get(), "{what}: taken and delivered differ");
    if let Some(f) = &failure {
        assert!(f.starts_with("Start"), "{what}: the pool failed: {f}");
    } else {
        assert_eq!(delivered, n, "{what}");
    }
    t.calls += 1;
    t.tasks += taken.get() as u64;
    t.big_values += taken.get() as u64;
    t.results += mine.results;
    t.crashed += mine.crashed;
    t.timed_out += mine.timed_out;
    t.pool_failed += mine.pool_failed;
    if failure.is_some() {
        t.start_failures += 1;
    }
    failure.is_some()
}

const KERNELS: [(KernelName, u64); 4] = [
    (KernelName::Mandelbrot, 240),
    (KernelName::Pi, 2_000_000),
    (KernelName::Triad, 200_000),
    (KernelName::Spectralnorm, 120),
];

/// One kernel program on the pool: exactly the serial output, or an executor error that
/// says why. True when the pool must be replaced.
fn run_kernel(
    pool: &Processes,
    rng: &mut Rng,
    t: &mut Tally,
    watchdog: &Watchdog,
    serial: &HashMap<(KernelName, Lang), Vec<u8>>,
) -> bool {
    let (name, n) = rng.pick(&KERNELS);
    let lang = rng.pick(&Lang::ALL);
    let what = format!("{name} ({lang}) N={n}");
    let _w = watchdog.watch(what.clone());
    t.kernel_runs += 1;
    match programs::run(Kernel::get(name, lang), &Options::new().n(n), pool) {
        Ok(out) => {
            assert!(
                out.stdout == serial[&(name, lang)],
                "{what}: the output differs from the serial run's"
            );
            t.kernel_ok += 1;
            false
        }
        Err(e) => {
            check_kernel_error(&e, &what);
            if e.is_crash() {
                // As for a task: unknown only after the fork server was killed.
                let unknown_ok = SERVER_KILLS.load(Ordering::Relaxed) > 0 && e.signal().is_none();
                assert!(
                    e.signal() == Some(libc_sigkill()) || unknown_ok,
                    "{what}: {e}"
                );
                t.kernel_crashed += 1;
                false
            } else if e.is_timeout() {
                t.kernel_timed_out += 1;
                false
            } else {
                t.kernel_start_failures += 1;
                t.start_failures += 1;
                true
            }
        }
    }
}

/// A failed program's error: a task's crash or timeout naming its chunk, or the pool's
/// failure to start workers.
fn check_kernel_error(e: &Error, what: &str) {
    match e.fault() {
        Some(Fault::Crashed { .. } | Fault::TimedOut { .. }) => {
            assert!(e.task().is_some(), "{what}: no task in {e}");
            assert!(e.items().is_some(), "{what}: no items in {e}");
        }
        Some(Fault::Other) => {
            let pe = e
                .executor()
                .and_then(|x| x.get_ref().downcast_ref::<PoolError>())
                .unwrap_or_else(|| panic!("{what}: {e:?}"));
            assert_start_failure(pe, what);
        }
        _ => panic!("{what}: an error that chaos does not explain: {e:?}"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn chaos_soak() {
    let secs = env_f64("KERNELPOOL_SOAK_SECS", 30.0);
    let call_limit = Duration::from_secs_f64(env_f64("KERNELPOOL_SOAK_CALL_LIMIT", 60.0));
    let seed = match std::env::var("KERNELPOOL_SOAK_SEED") {
        Ok(s) => s.trim().parse().expect("KERNELPOOL_SOAK_SEED: a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    say(&format!(
        "chaos soak: {secs} s (KERNELPOOL_SOAK_SECS) and at least {MIN_TASKS} tasks, seed \
         {seed} (KERNELPOOL_SOAK_SEED), {WORKERS} workers, task timeout {TASK_TIMEOUT:?}"
    ));
    let me = std::process::id() as i32;
    assert!(
        children_by_scan(me).is_empty(),
        "child processes before the soak"
    );
    // The fork server (and its socket) stays from the first pool on.
    drop(Processes::new(1).expect("a first pool, which starts the fork server"));
    let fds_before = open_fds();

    let mut serial = HashMap::new();
    for (name, n) in KERNELS {
        for lang in Lang::ALL {
            let out = programs::run(Kernel::get(name, lang), &Options::new().n(n), &Serial)
                .expect("serial run");
            serial.insert((name, lang), out.stdout);
        }
    }

    let stats = Arc::new(Stats::default());
    let (watchdog, watchdog_thread) = Watchdog::start(call_limit, stats.clone());
    let mut t = Tally::default();
    let mut rng = Rng(seed);

    // The finder sees exactly the pool's workers (no operation runs: `pids` does not wait).
    let mut pool = build_pool(&mut t, &watchdog, true);
    let mut pids: Vec<i32> = pool
        .pids()
        .expect("pids")
        .into_iter()
        .map(|p| p as i32)
        .collect();
    pids.sort_unstable();
    let mut found: Vec<i32> = workers().into_iter().map(|w| w.0).collect();
    found.sort_unstable();
    assert_eq!(
        found, pids,
        "workers found through /proc vs Processes::pids"
    );

    let stop = Arc::new(AtomicBool::new(false));
    struct StopChaos(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);
    impl Drop for StopChaos {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(h) = self.1.take() {
                let _ = h.join();
            }
        }
    }
    let chaos_thread = {
        let (stop, stats) = (stop.clone(), stats.clone());
        let seed = rng.next();
        std::thread::Builder::new()
            .name("soak-chaos".into())
            .spawn(move || chaos(seed, stop, stats))
            .expect("chaos thread")
    };
    let chaos_guard = StopChaos(stop, Some(chaos_thread));

    let started = Instant::now();
    let hard_limit = Duration::from_secs_f64(secs * 4.0 + 300.0);
    while started.elapsed().as_secs_f64() < secs || t.tasks < MIN_TASKS {
        assert!(
            started.elapsed() < hard_limit,
            "only {} tasks after {hard_limit:?}: {t:?}",
            t.tasks
        );
        let replace = match rng.range(0, 99) {
            0..25 => run_map(&pool, &mut rng, &mut t, &watchdog),
            25..50 => run_lazy(&pool, &mut rng, &mut t, &watchdog, false),
            50..75 => run_lazy(&pool, &mut rng, &mut t, &watchdog, true),
            75..80 => run_big(&pool, &mut rng, &mut t, &watchdog),
            _ => run_kernel(&pool, &mut rng, &mut t, &watchdog, &serial),
        };
        if replace {
            let _w = watchdog.watch("dropping a pool".into());
            drop(std::mem::replace(
                &mut pool,
                build_pool(&mut t, &watchdog, rng.chance(0.7)),
            ));
        }
    }
    let elapsed = started.elapsed();
    drop(chaos_guard);
    {
        let _w = watchdog.watch("dropping the last pool".into());
        drop(pool);
    }
    watchdog.stop.store(true, Ordering::Relaxed);
    let _ = watchdog_thread.join();

    // What is left: children of this process but the fork server, and its children.
    let server = kernelpool_pool::fork_server_pid().map(|p| p as i32);
    let mut left: Vec<(i32, char)> = children_by_scan(me)
        .into_iter()
        .filter(|c| Some(c.0) != server)
        .collect();
    if let Some(s) = server {
        left.extend(children_by_scan(s));
    }
    let fds_after = open_fds();
    let kills = stats.kills.load(Ordering::Relaxed);
    let stops = stats.stops.load(Ordering::Relaxed);
    say(&format!(
        "chaos soak figures (seed {seed}):\n\
         \x20 elapsed                 {elapsed:.1?}\n\
         \x20 calls                   {} (map {} failed as a whole)\n\
         \x20 tasks submitted         {}\n\
         \x20 results checked         {}\n\
         \x20 tasks failed: crashed   {} (SIGKILL)\n\
         \x20               timed out {}\n\
         \x20               pool failed (lazy iterators) {}\n\
         \x20               in failed map calls {}\n\
         \x20 dropped early by the test {}\n\
         \x20 large values            {}\n\
         \x20 kernel programs run     {} (ok {}, crashed {}, timed out {}, start failures {})\n\
         \x20 start failures          {} in calls, {} building pools; pools built {}\n\
         \x20 signals sent            {kills} SIGKILL ({} of them to the fork server), {stops} SIGSTOP, {} SIGCONT; {} calm spells\n\
         \x20 left behind             {} processes, {} descriptors ({fds_before} before, {fds_after} after)",
        t.calls,
        t.failed_map_calls,
        t.tasks,
        t.results,
        t.crashed,
        t.timed_out,
        t.pool_failed,
        t.in_failed_maps,
        t.dropped_early,
        t.big_values,
        t.kernel_runs,
        t.kernel_ok,
        t.kernel_crashed,
        t.kernel_timed_out,
        t.kernel_start_failures,
        t.start_failures,
        t.build_failures,
        t.pools_built,
        SERVER_KILLS.load(Ordering::Relaxed),
        stats.conts.load(Ordering::Relaxed),
        stats.calm_periods.load(Ordering::Relaxed),
        left.len(),
        fds_after.saturating_sub(fds_before),
    ));
    assert!(
        left.is_empty(),
        "processes left behind (pid, state): {left:?}"
    );
    assert_eq!(fds_after, fds_before, "descriptors left open");
    assert_eq!(
        t.results + t.failures() + t.dropped_early,
        t.tasks,
        "results + failures + dropped != tasks: {t:?}"
    );
    assert!(t.tasks >= MIN_TASKS, "{t:?}");
    if secs >= 1.0 {
        assert!(
            kills > 0 && stops > 0,
            "no chaos happened: {kills} kills, {stops} stops"
        );
    }
}
