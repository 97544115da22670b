//! The threaded executor: chunks of a step on a private rayon pool.

use crate::error::PoolError;
use kernelpool_kernels::{Executor, Partial, Result, Step, chunks, default_chunk};
use rayon::prelude::*;

/// Runs the chunks of each step on a private rayon thread pool (never rayon's global
/// pool) and combines the partials in chunk order, so results are bit-identical to
/// [`Serial`](kernelpool_kernels::Serial) whatever the number of threads.
///
/// ```
/// use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, programs};
/// use kernelpool_pool::Threads;
///
/// let threads = Threads::new(2)?.with_chunk(3);
/// let opts = Options { n: Some(7), ..Options::default() };
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

impl Threads {
    /// A pool of `workers` threads (at least 1).
    pub fn new(workers: usize) -> Result<Threads, PoolError> {
        if workers == 0 {
            return Err(PoolError::invalid(
                "number of threads",
                "a thread pool needs at least 1 worker, got 0",
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("kpool-thread-{i}"))
            .build()
            .map_err(PoolError::ThreadPool)?;
        Ok(Threads {
            pool,
            workers,
            chunk: None,
        })
    }

    /// Split steps into chunks of `chunk` items (0 restores the default,
    /// [`default_chunk`]: about four chunks per thread).
    pub fn with_chunk(mut self, chunk: u64) -> Threads {
        self.chunk = (chunk > 0).then_some(chunk);
        self
    }

    /// The chunk size used for a step of `items` items.
    pub fn chunk_for(&self, items: u64) -> u64 {
        self.chunk
            .unwrap_or_else(|| default_chunk(items, self.workers))
    }
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

    fn run(&self, step: &Step<'_>) -> Result<Partial> {
        let items = step.items();
        let chunk = self.chunk_for(items);
        let count = items.div_ceil(chunk);
        if count <= 1 {
            // One chunk: waking a thread would cost more than the work.
            return step.run_chunks(chunks(items, chunk));
        }
        let parts: Vec<Result<Partial>> = self.pool.install(|| {
            (0..count)
                .into_par_iter()
                .map(|i| step.run_chunk(i * chunk..((i + 1) * chunk).min(items)))
                .collect()
        });
        let name = step.kernel().name();
        let mut total = Partial::identity(name);
        for part in parts {
            total.combine(name, &part?);
        }
        Ok(total)
    }
}
