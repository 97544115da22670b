//! The threaded executor: chunks of a step on the calling thread and a private rayon pool.
//!
//! Chunks are claimed one at a time from a shared counter by the calling thread and by
//! `workers - 1` helper jobs spawned on the pool, and each chunk's partial is stored in
//! its own slot, so the partials are combined in chunk order whoever ran them. The calling
//! thread never sleeps while it can work: a trivial step is done before a helper has even
//! woken up, and then costs about what one `spawn` costs, where `install` would cost two
//! thread wake-ups.

use crate::error::PoolError;
use kernelpool_kernels::{
    Executor, Partial, Result, Step, chunk_count, chunk_range, default_chunk,
};
use std::any::Any;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

/// Busy-wait iterations before the calling thread parks (a few microseconds).
const SPINS: u32 = 2000;

/// Runs the chunks of each step on `workers` threads (the calling thread and a private
/// rayon pool; never rayon's global pool) and combines the partials in chunk order, so
/// results are bit-identical to [`Serial`](kernelpool_kernels::Serial) whatever the number
/// of threads.
///
/// ```
/// use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, programs};
/// use kernelpool_pool::Threads;
///
/// let threads = Threads::builder().workers(2).chunk(3).build()?;
/// let opts = Options::new().n(7);
/// let kernel = Kernel::get(KernelName::Fannkuch, Lang::Rust);
/// assert_eq!(programs::run(kernel.clone(), &opts, &threads)?.stdout,
///            programs::run(kernel, &opts, &Serial)?.stdout);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Threads {
    pool: rayon::ThreadPool,
    workers: usize,
    chunk: Option<u64>,
}

/// Options of a [`Threads`] executor.
///
/// ```
/// let threads = kernelpool_pool::Threads::builder().workers(2).chunk(1000).build()?;
/// # Ok::<(), kernelpool_pool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ThreadsBuilder {
    workers: usize,
    chunk: Option<u64>,
}

impl Default for ThreadsBuilder {
    fn default() -> Self {
        ThreadsBuilder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk: None,
        }
    }
}

impl ThreadsBuilder {
    /// Number of threads, the calling one included (at least 1; default: the number of
    /// CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Items per chunk of a step (at least 1; default [`default_chunk`]: about four chunks
    /// per thread).
    pub fn chunk(mut self, chunk: u64) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Check the options and start the threads.
    ///
    /// # Errors
    /// [`PoolError::InvalidOption`] for 0 workers or a chunk of 0 items,
    /// [`PoolError::ThreadPool`] when rayon cannot start the threads.
    pub fn build(self) -> Result<Threads, PoolError> {
        if self.workers == 0 {
            return Err(PoolError::invalid(
                "number of threads",
                "a thread pool needs at least 1 worker, got 0",
            ));
        }
        if self.chunk == Some(0) {
            return Err(PoolError::invalid(
                "chunk",
                "a step chunk must hold at least 1 item, got 0",
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads((self.workers - 1).max(1))
            .thread_name(|i| format!("kpool-thread-{i}"))
            .build()
            .map_err(PoolError::ThreadPool)?;
        Ok(Threads {
            pool,
            workers: self.workers,
            chunk: self.chunk,
        })
    }
}

impl Threads {
    /// An executor of `workers` threads (at least 1): the calling thread and a pool of
    /// `workers - 1` threads (1 at least), with the default chunk.
    ///
    /// # Errors
    /// As [`ThreadsBuilder::build`].
    pub fn new(workers: usize) -> Result<Threads, PoolError> {
        Threads::builder().workers(workers).build()
    }

    /// Options for a thread executor.
    pub fn builder() -> ThreadsBuilder {
        ThreadsBuilder::default()
    }

    /// The chunk size used for a step of `items` items.
    pub fn chunk_for(&self, items: u64) -> u64 {
        self.chunk
            .unwrap_or_else(|| default_chunk(items, self.workers))
    }
}

/// A step shared with helper jobs, which must be `'static`.
struct StepPtr(*const Step<'static>);

// SAFETY: `Step` is `Sync`, and the pointer is dereferenced only while `Threads::run`
// keeps the step alive (see `Job::work`).
unsafe impl Send for StepPtr {}
// SAFETY: as above.
unsafe impl Sync for StepPtr {}

/// One parallel call: the step, the chunk counter and the partial of each chunk.
struct Job {
    step: StepPtr,
    items: u64,
    chunk: u64,
    /// Index of the first chunk of the span this job runs.
    first: u64,
    count: u64,
    next: AtomicU64,
    done: AtomicU64,
    results: Box<[Mutex<Option<Result<Partial>>>]>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    caller: Thread,
}

impl Job {
    fn range(&self, i: u64) -> Range<u64> {
        chunk_range(self.items, self.chunk, self.first + i)
    }

    /// Claim and run chunks until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.count {
                return;
            }
            // SAFETY: chunk `i` is claimed and not yet done, and `Threads::run` returns
            // only once every chunk is done, so the step it borrows is still alive. Once
            // all chunks are claimed, no one dereferences the pointer any more.
            let step = unsafe { &*self.step.0 };
            match catch_unwind(AssertUnwindSafe(|| step.run_chunk(self.range(i)))) {
                Ok(r) => *lock(&self.results[i as usize]) = Some(r),
                Err(p) => {
                    lock(&self.panic).get_or_insert(p);
                }
            }
            if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
                self.caller.unpark();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Executor for Threads {
    fn describe(&self) -> String {
        match self.chunk {
            Some(c) => format!("threads({}, chunk {c})", self.workers),
            None => format!("threads({})", self.workers),
        }
    }

    fn workers(&self) -> usize {
        self.workers
    }

    /// Refuses a step cut into more than [`MAX_CHUNKS`](kernelpool_kernels::MAX_CHUNKS)
    /// chunks at this executor's chunk size.
    fn check_items(&self, items: u64) -> Result<()> {
        chunk_count(items, self.chunk_for(items)).map(drop)
    }

    fn run(&self, step: &Step<'_>) -> Result<Partial> {
        let items = step.items();
        let chunk = self.chunk_for(items);
        let count = chunk_count(items, chunk)?;
        self.run_span(step, chunk, 0..count)
    }
}

impl Threads {
    /// Run chunks `span` (indices) of `step` cut into chunks of `chunk` items, and combine
    /// their partials in chunk order: one MPI rank's share of a step, on threads.
    pub(crate) fn run_span(
        &self,
        step: &Step<'_>,
        chunk: u64,
        span: Range<u64>,
    ) -> Result<Partial> {
        let items = step.items();
        let count = span.end.saturating_sub(span.start);
        let helpers = (self.workers as u64 - 1).min(count.saturating_sub(1));
        if helpers == 0 {
            // One chunk or one thread: waking a thread would cost more than the work.
            return step.run_chunks(span.map(|i| chunk_range(items, chunk, i)));
        }
        let job = Arc::new(Job {
            // Only the lifetime is erased; see `StepPtr` and `Job::work`.
            step: StepPtr((step as *const Step<'_>).cast::<Step<'static>>()),
            items,
            chunk,
            first: span.start,
            count,
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            results: (0..count).map(|_| Mutex::new(None)).collect(),
            panic: Mutex::new(None),
            caller: std::thread::current(),
        });
        for _ in 0..helpers {
            let job = job.clone();
            self.pool.spawn(move || job.work());
        }
        job.work();
        let mut spins = 0;
        while job.done.load(Ordering::Acquire) < count {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::park();
            }
        }
        if let Some(p) = lock(&job.panic).take() {
            resume_unwind(p);
        }
        let name = step.kernel().name();
        let mut total = Partial::identity(name);
        for slot in job.results.iter() {
            let part = lock(slot).take().expect("every chunk stores its partial");
            total.combine(name, &part?);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelpool_kernels::{Kernel, KernelName, Lang, Serial, StepArgs};

    fn pi(samples: u64) -> Partial {
        let mut args = StepArgs::new(samples, samples);
        args.iparam[0] = 42;
        let step = Step::new(Kernel::get(KernelName::Pi, Lang::C), args, vec![]).expect("step");
        Serial.run(&step).expect("serial")
    }

    #[test]
    fn many_callers_at_once_get_serial_results() {
        let threads = Threads::builder()
            .workers(3)
            .chunk(5)
            .build()
            .expect("threads");
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let threads = &threads;
                s.spawn(move || {
                    for samples in (0..300).step_by(7).map(|k| k + t) {
                        let mut args = StepArgs::new(samples, samples);
                        args.iparam[0] = 42;
                        let step = Step::new(Kernel::get(KernelName::Pi, Lang::C), args, vec![])
                            .expect("step");
                        assert_eq!(
                            threads.run(&step).expect("threads"),
                            pi(samples),
                            "{samples} samples"
                        );
                    }
                });
            }
        });
    }

    #[test]
    fn reductions_over_one_item_chunks_match_serial() {
        let threads = Threads::builder()
            .workers(2)
            .chunk(1)
            .build()
            .expect("threads");
        let args = StepArgs::new(3, 6);
        let step =
            Step::new(Kernel::get(KernelName::Fannkuch, Lang::C), args, vec![]).expect("step");
        assert_eq!(
            threads.run(&step).expect("run"),
            Serial.run(&step).expect("serial")
        );
        assert_eq!(threads.describe(), "threads(2, chunk 1)");
        assert_eq!(threads.workers(), 2);
    }
}
