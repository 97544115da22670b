//! The control block a worker shares with the pool: a page of shared memory in which the
//! worker records which task it is running and since when (which lets the pool name the
//! task that killed a worker, enforce timeouts without extra messages, see that a worker
//! makes progress, and size its batches), and in which each side counts its writes to the
//! socket (so the other can spin on it rather than sleep).

use crate::shm::SharedMemory;
use std::sync::atomic::{AtomicU64, Ordering};

/// The control block a worker shares with the pool. Every field is an atomic: the other
/// process reads it while this one writes. Each side writes its own cache line.
#[repr(C)]
pub(crate) struct ControlBlock {
    worker: WorkerSide,
    pool: PoolSide,
}

/// Written by the worker.
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
}

/// Written by the pool.
#[repr(C, align(64))]
struct PoolSide {
    /// Bumped after each write of tasks to the socket.
    wrote: AtomicU64,
}

/// Size of the shared memory holding a control block.
pub(crate) const CTRL_BYTES: usize = 4096;
const _: () = assert!(std::mem::size_of::<ControlBlock>() <= CTRL_BYTES);

/// A mapped control block.
#[derive(Debug)]
pub(crate) struct Control {
    shm: SharedMemory,
}

impl Control {
    pub(crate) fn new(shm: SharedMemory) -> Option<Control> {
        (shm.len() >= std::mem::size_of::<ControlBlock>()).then_some(Control { shm })
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

    /// Worker: task `id` starts now.
    pub(crate) fn begin(&self, id: u64, now_ns: u64) {
        let b = &self.block().worker;
        b.started_ns.store(now_ns, Ordering::Relaxed);
        b.cur.store(2 * id + 1, Ordering::Release);
    }

    /// Worker: task `id`, started at `start_ns`, has finished.
    pub(crate) fn end(&self, id: u64, start_ns: u64, now_ns: u64) {
        let b = &self.block().worker;
        b.cur.store(2 * id, Ordering::Release);
        b.busy_ns
            .fetch_add(now_ns.saturating_sub(start_ns), Ordering::Relaxed);
        b.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Worker: task `id` is not running any more, without counting it as done (the
    /// preparation of a step, recorded as its first task, is over).
    pub(crate) fn pause(&self, id: u64) {
        self.block().worker.cur.store(2 * id, Ordering::Release);
    }

    /// Pool: (task id, running, started at) of the task the worker last started.
    pub(crate) fn current(&self) -> (u64, bool, u64) {
        let b = &self.block().worker;
        let cur = b.cur.load(Ordering::Acquire);
        (cur / 2, cur % 2 == 1, b.started_ns.load(Ordering::Relaxed))
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

/// Wait until `changed()` holds or `ns` nanoseconds have passed, spinning with short
/// pauses and yielding the CPU now and then (so that on a machine with fewer cores than
/// busy processes the spinner does not keep the one it waits for off the CPU). Returns
/// whether `changed()` held.
pub(crate) fn spin_until(ns: u64, mut changed: impl FnMut() -> bool) -> bool {
    let deadline = now_ns() + ns;
    loop {
        for _ in 0..32 {
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
        let ctrl = Control::new(SharedMemory::new(CTRL_BYTES).unwrap()).unwrap();
        assert_eq!(ctrl.current(), (0, false, 0));
        ctrl.begin(5, 100);
        assert_eq!(ctrl.current(), (5, true, 100));
        ctrl.end(5, 100, 130);
        assert_eq!(ctrl.current(), (5, false, 100));
        assert_eq!(ctrl.totals(), (30, 1));
        ctrl.begin(6, 200);
        ctrl.pause(6);
        assert_eq!(ctrl.current(), (6, false, 200));
        assert_eq!(ctrl.totals(), (30, 1), "a pause is not a task done");
        ctrl.wrote(false);
        assert_eq!((ctrl.writes(false), ctrl.writes(true)), (1, 0));
        assert!(!spin_until(10_000, || ctrl.writes(true) > 0));
        assert!(spin_until(10_000, || ctrl.writes(false) > 0));
    }
}
