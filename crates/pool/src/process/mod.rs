//! The process pool: worker processes that run kernel steps over shared memory and plain
//! Rust functions (the `map` family, in `crate::map`), and survive workers that crash,
//! exit, get killed, hang or stop.
//!
//! One operation (a kernel step, a `map`, an `imap` iterator) runs at a time. Its tasks
//! sit in a queue; each worker gets batches of them, as many as keep about a millisecond
//! of work queued in it (measured from the control blocks), so tiny tasks travel by the
//! hundred in one write while long ones stay balanced. Each task has a wire id; a worker
//! runs its tasks in order and answers each one. When a worker dies, the control block
//! tells which task it was running: that task gets the error, the others it held go back
//! to the queue, and a new worker takes its place (and is killed in turn if it is not
//! ready within the start timeout).
//!
//! Modules: `builder` (options, start), `step` (kernel steps as an `Executor`), `task`
//! (tasks, operations, the arguments an operation stores, and batching), `sent` (the
//! tasks a worker holds), `scheduler` (the loop that sends tasks, waits and
//! reads answers), `worker_handle` (the pool's side of one worker: its process, channel
//! and control block), `faults` (dead, hung and stalled workers: who is blamed, what runs
//! again).

mod builder;
mod faults;
mod scheduler;
mod sent;
mod step;
mod task;
mod worker_handle;

pub(crate) use builder::Config;
pub use builder::ProcessesBuilder;
pub(crate) use scheduler::Engine;
pub(crate) use task::{Done, InlineBytes, Item, ItemData, Op, OpKind, Payload, StoredArgs};

use crate::error::PoolError;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// A pool of worker processes: runs kernel steps over shared memory (as an
/// [`Executor`](kernelpool_kernels::Executor)) and plain Rust functions (`map`, `starmap`, `imap`, `imap_unordered`,
/// `apply`, as Python's `multiprocessing.Pool`).
///
/// Workers are this program, forked by its fork server or started again (see
/// [`init`](crate::init) and [`ProcessesBuilder::fork_server`]), or the program given to
/// [`ProcessesBuilder::worker_program`]. A worker that crashes, exits or
/// overruns the task timeout is reported as an error of the task it was running, and
/// replaced; the other tasks are not lost, and the pool stays usable. Dropping the pool
/// tells the workers to exit, waits briefly, kills those still running, and reaps them all.
///
/// One operation runs at a time: calls from other threads wait for the pool.
pub struct Processes {
    engine: Mutex<Engine>,
    /// Token of the thread holding `engine` (0 when free), to refuse re-entry.
    holder: AtomicUsize,
    cfg: Arc<Config>,
    /// The memory of the last `map`'s stored arguments, for the next one (fresh memory
    /// costs a page fault per 4 KiB, about as much as encoding into it).
    spare_args: Mutex<StoredArgs>,
}

/// Most memory of stored arguments a pool keeps between calls.
const SPARE_ARGS_MAX: usize = 16 << 20;

impl fmt::Debug for Processes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processes")
            .field("workers", &self.cfg.workers)
            .field("program", &self.cfg.program)
            .field("chunk", &self.cfg.chunk)
            .field("chunksize", &self.cfg.chunksize)
            .field("task_timeout", &self.cfg.timeout)
            .field("max_tasks_per_worker", &self.cfg.max_tasks)
            .finish_non_exhaustive()
    }
}

fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

/// The pool, locked for one operation.
pub(crate) struct Guard<'p> {
    engine: MutexGuard<'p, Engine>,
    holder: &'p AtomicUsize,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Guard<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Processes {
    /// A pool of `workers` processes with default options.
    ///
    /// # Errors
    /// As [`ProcessesBuilder::build`].
    pub fn new(workers: usize) -> Result<Processes, PoolError> {
        Processes::builder().workers(workers).build()
    }

    /// Options for a pool.
    pub fn builder() -> ProcessesBuilder {
        ProcessesBuilder::default()
    }

    /// Process ids of the current workers.
    ///
    /// # Errors
    /// [`PoolError::Busy`] while an `imap` iterator of this thread holds the pool.
    pub fn pids(&self) -> Result<Vec<u32>, PoolError> {
        Ok(self.lock()?.pids())
    }

    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// Room for the stored arguments of a call of about `tasks` tasks (the memory of an
    /// earlier call's, when it is not in use).
    pub(crate) fn take_args_store(&self, tasks: usize) -> StoredArgs {
        let mut store = self
            .spare_args
            .try_lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        store.clear();
        store.reserve(tasks);
        store
    }

    /// Keep `store`'s memory for the next call (unless it is large).
    pub(crate) fn give_back_args_store(&self, mut store: StoredArgs) {
        if store.capacity_bytes() <= SPARE_ARGS_MAX {
            store.clear();
            if let Ok(mut s) = self.spare_args.try_lock() {
                *s = store;
            }
        }
    }

    /// Lock the pool for one operation.
    ///
    /// # Errors
    /// [`PoolError::Busy`] when this very thread holds it already (an `imap` iterator).
    pub(crate) fn lock(&self) -> Result<Guard<'_>, PoolError> {
        let me = thread_token();
        let engine = match self.engine.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if self.holder.load(Ordering::Relaxed) == me {
                    return Err(PoolError::Busy);
                }
                self.engine.lock().unwrap_or_else(|p| p.into_inner())
            }
        };
        self.holder.store(me, Ordering::Relaxed);
        Ok(Guard {
            engine,
            holder: &self.holder,
        })
    }
}
