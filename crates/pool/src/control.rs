//! The control block a worker shares with the pool: a page of shared memory in which the
//! worker records which task it is running and since when (which lets the pool name the
//! task that killed a worker, enforce timeouts without extra messages, see that a worker
//! makes progress, and size its batches), in which each side counts what it has sent (so
//! the other can spin on it, then sleep on it with a futex, rather than in a system call
//! on the socket), and which holds the two rings of frames without descriptors (see
//! [`crate::ring`]) that spare both sides the socket when a step is sent and answered.
//!
//! The pool sleeps on a [`Doorbell`] that all its workers share instead: a futex can wait
//! on one word, and a pool waits for any of its workers.

use crate::ring::{RingIndex, RingRx, RingTx};
use crate::shm::SharedMemory;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The control block a worker shares with the pool. Every field is an atomic: the other
/// process reads it while this one writes. Each side writes its own cache line.
#[repr(C)]
pub(crate) struct ControlBlock {
    worker: WorkerSide,
    pool: PoolSide,
    /// Written by both.
    claim: ClaimWord,
    /// Frames to the worker.
    to_worker: RingIndex,
    /// Frames to the pool.
    to_pool: RingIndex,
}

/// Written by the worker.
/// The bit of `started_ns` that says it is only a time before the task started.
const INEXACT: u64 = 1 << 63;

#[repr(C, align(64))]
struct WorkerSide {
    /// `2 * id + 1` while task `id` runs, `2 * id` once it has finished.
    cur: AtomicU64,
    /// CLOCK_MONOTONIC nanoseconds at which the current task started.
    started_ns: AtomicU64,
    /// Nanoseconds spent in tasks, in total.
    busy_ns: AtomicU64,
    /// Tasks finished, in total.
    done: AtomicU64,
    /// Bumped after each write of results to the socket.
    wrote: AtomicU64,
    /// Bumped after each batch of frames sent (ring or socket): the futex word the pool's
    /// doorbell stands for.
    sent: AtomicU32,
    /// Non-zero while the worker sleeps on the pool's `sent` (the pool must wake it).
    sleeping: AtomicU32,
}

/// Written by the pool.
#[repr(C, align(64))]
struct PoolSide {
    /// Bumped after each write of tasks to the socket.
    wrote: AtomicU64,
    /// Bumped after each batch of frames sent (ring or socket): the worker's futex word.
    sent: AtomicU32,
    /// Set when the pool has let the worker go (it is to exit).
    closed: AtomicU32,
}

/// Who owns the worker's step chunks: the last one the worker started, or one the pool
/// took back before it started (see [`Control::claim`] and [`Control::take_back`]).
/// `(id + 1) << 1` for task `id` started by the worker, `| 1` for task `id` taken back by
/// the pool; 0 for neither. It only grows.
#[repr(C, align(64))]
struct ClaimWord {
    word: AtomicU64,
}

/// Bytes of data of each ring.
pub(crate) const RING_BYTES: usize = 64 * 1024;
/// Where the rings' data start (the block itself takes the first page).
const RINGS_AT: usize = 4096;
/// Size of the shared memory holding a control block and its rings.
pub(crate) const CTRL_BYTES: usize = RINGS_AT + 2 * RING_BYTES;
const _: () = assert!(std::mem::size_of::<ControlBlock>() <= RINGS_AT);

/// A mapped control block.
#[derive(Debug)]
pub(crate) struct Control {
    shm: SharedMemory,
    /// The pool's side (which lets the worker go when dropped).
    pool: bool,
}

impl Drop for Control {
    fn drop(&mut self) {
        if self.pool {
            // The worker may be asleep on its futex rather than on the socket: tell it.
            let b = self.block();
            b.pool.closed.store(1, Ordering::SeqCst);
            b.pool.sent.fetch_add(1, Ordering::SeqCst);
            let _ = rustix::thread::futex::wake(
                &b.pool.sent,
                rustix::thread::futex::Flags::empty(),
                u32::MAX,
            );
        }
    }
}

impl Control {
    /// The control block in `shm`, for the pool (`pool == true`) or the worker.
    pub(crate) fn new(shm: SharedMemory, pool: bool) -> Option<Control> {
        (shm.len() >= CTRL_BYTES).then_some(Control { shm, pool })
    }

    /// This side's ends of the rings: (to send on, to receive from).
    pub(crate) fn rings(&self) -> (RingTx, RingRx) {
        let b = self.block();
        let base = self.shm.inner().ptr();
        let (tx_index, rx_index, tx_at, rx_at) = if self.pool {
            (&b.to_worker, &b.to_pool, RINGS_AT, RINGS_AT + RING_BYTES)
        } else {
            (&b.to_pool, &b.to_worker, RINGS_AT + RING_BYTES, RINGS_AT)
        };
        // SAFETY: the indices are in the block, the data areas are RING_BYTES each inside
        // the mapping (CTRL_BYTES long, checked in `new`), which `self` keeps alive and
        // whose owner keeps the rings beside it (both live in the pool's `WorkerHandle`,
        // or in the `Worker`, and are dropped together); each side takes one producer
        // and one consumer.
        let (tx, _) = unsafe { crate::ring::sides(tx_index, base.add(tx_at), RING_BYTES) };
        // SAFETY: as above.
        let (_, rx) = unsafe { crate::ring::sides(rx_index, base.add(rx_at), RING_BYTES) };
        (tx, rx)
    }

    /// Count of batches sent by the other side (the word this side sleeps on).
    pub(crate) fn peer_sent(&self) -> u32 {
        let b = self.block();
        let w = if self.pool {
            &b.worker.sent
        } else {
            &b.pool.sent
        };
        w.load(Ordering::SeqCst)
    }

    /// This side has sent a batch of frames (on the ring or the socket): bump its count
    /// and, for the pool, wake the worker if it sleeps. (A worker rings the pool's
    /// [`Doorbell`] as well.)
    pub(crate) fn notify(&self) {
        let b = self.block();
        if self.pool {
            b.pool.sent.fetch_add(1, Ordering::SeqCst);
            if b.worker.sleeping.load(Ordering::SeqCst) != 0 {
                let _ = rustix::thread::futex::wake(
                    &b.pool.sent,
                    rustix::thread::futex::Flags::empty(),
                    1,
                );
            }
        } else {
            b.worker.sent.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Worker: the pool has let it go.
    pub(crate) fn closed(&self) -> bool {
        self.block().pool.closed.load(Ordering::SeqCst) != 0
    }

    /// Worker: sleep until the pool's count differs from `seen` (or the pool lets it go),
    /// at most `timeout`.
    pub(crate) fn sleep(&self, seen: u32, timeout: Duration) {
        let b = self.block();
        b.worker.sleeping.store(1, Ordering::SeqCst);
        if b.pool.sent.load(Ordering::SeqCst) == seen && !self.closed() {
            futex_wait(&b.pool.sent, seen, timeout);
        }
        b.worker.sleeping.store(0, Ordering::SeqCst);
    }

    pub(crate) fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    fn block(&self) -> &ControlBlock {
        // SAFETY: the mapping is page aligned, at least `size_of::<ControlBlock>()` long
        // (checked in `new`), zero-initialised (a valid ControlBlock: all atomics), and
        // lives as long as `self`. Only atomics are accessed through it, so the other
        // process writing at the same time is not a data race.
        unsafe { &*(self.shm.inner().ptr() as *const ControlBlock) }
    }

    /// Worker: task `id` starts now (`exact`), or at some time after `now_ns` that was
    /// not read (a run of tiny tasks reads the clock only now and then).
    pub(crate) fn begin(&self, id: u64, now_ns: u64, exact: bool) {
        let b = &self.block().worker;
        let inexact = if exact { 0 } else { INEXACT };
        b.started_ns
            .store(now_ns & !INEXACT | inexact, Ordering::Relaxed);
        b.cur.store(2 * id + 1, Ordering::Release);
    }

    /// Worker: task `id`, started at `start_ns`, has finished.
    pub(crate) fn end(&self, id: u64, start_ns: u64, now_ns: u64) {
        let b = &self.block().worker;
        b.cur.store(2 * id, Ordering::Release);
        // The worker is the only writer of its counters: a load and a store each, not a
        // locked read-modify-write (tasks of a few dozen nanoseconds feel the difference).
        let busy = b.busy_ns.load(Ordering::Relaxed);
        b.busy_ns.store(
            busy.wrapping_add(now_ns.saturating_sub(start_ns)),
            Ordering::Relaxed,
        );
        let done = b.done.load(Ordering::Relaxed);
        b.done.store(done.wrapping_add(1), Ordering::Relaxed);
    }

    /// Worker: task `id` is not running any more, without counting it as done (the
    /// preparation of a step, recorded as its first task, is over).
    pub(crate) fn pause(&self, id: u64) {
        self.block().worker.cur.store(2 * id, Ordering::Release);
    }

    /// Worker: may step task `id` (its chunks are claimed in increasing id order) run?
    /// `false` when the pool took it back ([`Control::take_back`]): it must not run, the
    /// pool's caller runs it.
    pub(crate) fn claim(&self, id: u64) -> bool {
        let w = &self.block().claim.word;
        let mine = (id + 1) << 1;
        let mut cur = w.load(Ordering::Acquire);
        loop {
            if cur == mine | 1 {
                // Taken back: passed over now, so that the pool may take back another.
                w.store(mine, Ordering::Release);
                return false;
            }
            if cur >> 1 > id {
                // A later task is taken back (only one at a time is): this one cannot be.
                return true;
            }
            match w.compare_exchange_weak(cur, mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Pool: take step task `id` back from the worker, unless it has started it (or a
    /// later one), or has not yet passed over the last task taken back. After `true` the
    /// worker skips it (see [`Control::claim`]) and answers it as taken back.
    pub(crate) fn take_back(&self, id: u64) -> bool {
        let w = &self.block().claim.word;
        let mut cur = w.load(Ordering::Acquire);
        loop {
            if cur & 1 == 1 || cur >> 1 > id {
                return false;
            }
            match w.compare_exchange_weak(
                cur,
                ((id + 1) << 1) | 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Pool: the task the worker last started: (task id, running, started at, whether
    /// that is when it started or only a time before it).
    pub(crate) fn current(&self) -> (u64, bool, u64, bool) {
        let b = &self.block().worker;
        let cur = b.cur.load(Ordering::Acquire);
        let started = b.started_ns.load(Ordering::Relaxed);
        (
            cur / 2,
            cur % 2 == 1,
            started & !INEXACT,
            started & INEXACT == 0,
        )
    }

    /// Pool: (busy nanoseconds, tasks done) so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let b = &self.block().worker;
        (
            b.busy_ns.load(Ordering::Relaxed),
            b.done.load(Ordering::Relaxed),
        )
    }

    /// Count of writes by the worker (`worker == true`) or by the pool.
    pub(crate) fn writes(&self, worker: bool) -> u64 {
        let b = self.block();
        let counter = if worker {
            &b.worker.wrote
        } else {
            &b.pool.wrote
        };
        counter.load(Ordering::Acquire)
    }

    /// Record a write to the socket by the worker (`worker == true`) or by the pool.
    pub(crate) fn wrote(&self, worker: bool) {
        let b = self.block();
        let counter = if worker {
            &b.worker.wrote
        } else {
            &b.pool.wrote
        };
        counter.fetch_add(1, Ordering::Release);
    }
}

/// Sleep on the futex word `word` while it holds `seen`, at most `timeout` (a wake-up, a
/// change, a timeout and a signal all end it).
fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = rustix::thread::futex::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // A shared (not PRIVATE) futex: the word is in memory another process maps.
    let _ =
        rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), seen, Some(&ts));
}

/// What a pool sleeps on while its workers run: one word that every worker bumps (and
/// wakes the pool through, when it sleeps) after it sends anything.
#[repr(C, align(64))]
struct DoorbellBlock {
    rung: AtomicU32,
    /// Non-zero while the pool sleeps on `rung`.
    sleeping: AtomicU32,
}

/// Size of the shared memory holding a doorbell.
pub(crate) const DOORBELL_BYTES: usize = 64;

/// A mapped doorbell.
#[derive(Debug)]
pub(crate) struct Doorbell {
    shm: SharedMemory,
}

impl Doorbell {
    pub(crate) fn new(shm: SharedMemory) -> Option<Doorbell> {
        (shm.len() >= std::mem::size_of::<DoorbellBlock>()).then_some(Doorbell { shm })
    }

    pub(crate) fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    fn block(&self) -> &DoorbellBlock {
        // SAFETY: the mapping is page aligned, large enough (checked in `new`), zeroed or
        // written only through these atomics, and lives as long as `self`.
        unsafe { &*(self.shm.inner().ptr() as *const DoorbellBlock) }
    }

    /// Times it has been rung.
    pub(crate) fn rung(&self) -> u32 {
        self.block().rung.load(Ordering::SeqCst)
    }

    /// Worker: ring it, waking the pool if it sleeps.
    pub(crate) fn ring(&self) {
        let b = self.block();
        b.rung.fetch_add(1, Ordering::SeqCst);
        if b.sleeping.load(Ordering::SeqCst) != 0 {
            let _ = rustix::thread::futex::wake(&b.rung, rustix::thread::futex::Flags::empty(), 1);
        }
    }

    /// Pool: sleep until it has been rung since `seen` was read, at most `timeout`.
    pub(crate) fn sleep(&self, seen: u32, timeout: Duration) {
        let b = self.block();
        b.sleeping.store(1, Ordering::SeqCst);
        if b.rung.load(Ordering::SeqCst) == seen {
            futex_wait(&b.rung, seen, timeout);
        }
        b.sleeping.store(0, Ordering::SeqCst);
    }
}

/// Looks at the condition between two yields of [`spin_until`] (a fraction of a
/// microsecond: on a machine with fewer cores than busy processes, the process spun for
/// waits for the spinner's CPU, and a trivial step on two workers sped up from about 12
/// to about 8 µs when this went from 32 to 8).
const SPINS_PER_YIELD: u32 = 8;

/// Wait until `changed()` holds or `ns` nanoseconds have passed, spinning with short
/// pauses and yielding the CPU every few looks (so that on a machine with fewer cores than
/// busy processes the spinner does not keep the one it waits for off the CPU; with a core
/// of its own, a yield is a system call that returns at once). Returns whether
/// `changed()` held.
pub(crate) fn spin_until(ns: u64, mut changed: impl FnMut() -> bool) -> bool {
    let deadline = now_ns() + ns;
    loop {
        for _ in 0..SPINS_PER_YIELD {
            if changed() {
                return true;
            }
            std::hint::spin_loop();
        }
        if now_ns() >= deadline {
            return changed();
        }
        rustix::thread::sched_yield();
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock in every process of the machine).
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_block_reports_the_running_task() {
        let ctrl = Control::new(SharedMemory::new(CTRL_BYTES).unwrap(), false).unwrap();
        assert_eq!(ctrl.current(), (0, false, 0, true));
        ctrl.begin(5, 100, true);
        assert_eq!(ctrl.current(), (5, true, 100, true));
        ctrl.end(5, 100, 130);
        assert_eq!(ctrl.current(), (5, false, 100, true));
        assert_eq!(ctrl.totals(), (30, 1));
        ctrl.begin(6, 200, false);
        assert_eq!(ctrl.current(), (6, true, 200, false));
        ctrl.pause(6);
        assert_eq!(ctrl.current(), (6, false, 200, false));
        assert_eq!(ctrl.totals(), (30, 1), "a pause is not a task done");
        ctrl.wrote(false);
        assert_eq!((ctrl.writes(false), ctrl.writes(true)), (1, 0));
        assert!(!spin_until(10_000, || ctrl.writes(true) > 0));
        assert!(spin_until(10_000, || ctrl.writes(false) > 0));
    }

    #[test]
    fn a_step_task_runs_in_the_worker_or_is_taken_back_never_both() {
        let pool = Control::new(SharedMemory::new(CTRL_BYTES).unwrap(), false).unwrap();
        let worker = &pool;
        assert!(worker.claim(0), "nothing taken back yet");
        assert!(!pool.take_back(0), "started");
        assert!(pool.take_back(2), "not started");
        assert!(!pool.take_back(4), "one taken back at a time");
        assert!(worker.claim(1), "an earlier task than the one taken back");
        assert!(!pool.take_back(1), "started");
        assert!(!pool.take_back(2), "taken back once");
        assert!(!worker.claim(2), "taken back");
        assert!(worker.claim(3), "a later task");
        assert!(!pool.take_back(3), "started");
        assert!(pool.take_back(7));
        assert!(!pool.take_back(9), "7 not passed over yet");
        assert!(worker.claim(5) && worker.claim(6) && !worker.claim(7) && worker.claim(8));
        assert!(pool.take_back(9) && !worker.claim(9));
        // Both sides at once, the pool always going for the worker's next task: each
        // task has exactly one owner.
        const TASKS: u64 = 5_000;
        let mut taken = 0;
        for _ in 0..20 {
            let shm = SharedMemory::new(CTRL_BYTES).unwrap();
            let pool = Control::new(shm, false).unwrap();
            let start = std::sync::Barrier::new(2);
            let done = std::sync::atomic::AtomicBool::new(false);
            let (ran, took) = std::thread::scope(|s| {
                let w = s.spawn(|| {
                    start.wait();
                    let ran: Vec<u64> = (0..TASKS)
                        .filter(|&id| {
                            // A task takes a moment, as a chunk does.
                            (0..50).for_each(|_| std::hint::spin_loop());
                            pool.claim(id)
                        })
                        .collect();
                    done.store(true, Ordering::Release);
                    ran
                });
                let p = s.spawn(|| {
                    start.wait();
                    let mut took = Vec::new();
                    while !done.load(Ordering::Acquire) {
                        // The id after the last one started or taken back.
                        let next = pool.block().claim.word.load(Ordering::Acquire) >> 1;
                        if next < TASKS && pool.take_back(next) {
                            took.push(next);
                        }
                    }
                    took
                });
                (w.join().unwrap(), p.join().unwrap())
            });
            taken += took.len();
            let mut all: Vec<u64> = ran.iter().chain(&took).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..TASKS).collect::<Vec<_>>(),
                "{} taken back",
                took.len()
            );
        }
        assert!(taken > 0, "the pool never took a task back");
    }
}
