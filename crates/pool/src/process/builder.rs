//! The options of a process pool, and starting it.

use super::scheduler::Engine;
use super::{Processes, StoredArgs};
use crate::error::PoolError;
use crate::protocol::FnRef;
use crate::spawn::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most workers in one pool.
const MAX_WORKERS: usize = 1 << 16;

/// Settings of a pool, fixed when it is built.
#[derive(Debug)]
pub(crate) struct Config {
    pub workers: usize,
    pub chunk: Option<u64>,
    pub chunksize: Option<usize>,
    pub timeout: Option<Duration>,
    pub max_tasks: Option<u64>,
    pub program: PathBuf,
    /// (device, inode) of our executable when workers run it (functions may be sent).
    pub exe: Option<(u64, u64)>,
    /// Run once in each worker before it is ready: the function and its encoded argument.
    pub init: Option<(FnRef, Vec<u8>)>,
    pub start_timeout: Duration,
    /// The caller runs chunks of built-in kernels' steps too.
    pub caller_runs_chunks: bool,
    /// CPUs this process may run on (when the pool was built).
    pub cores: usize,
    /// How workers are started.
    pub start: StartMethod,
}

/// Options of a [`Processes`] pool.
///
/// ```no_run
/// use kernelpool_pool::Processes;
/// use std::time::Duration;
///
/// kernelpool_pool::init(); // first thing in main
/// let pool = Processes::builder()
///     .workers(4)
///     .task_timeout(Duration::from_secs(10))
///     .max_tasks_per_worker(1000)
///     .build()?;
/// # Ok::<(), kernelpool_pool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessesBuilder {
    workers: usize,
    chunk: Option<u64>,
    chunksize: Option<usize>,
    timeout: Option<Duration>,
    max_tasks: Option<u64>,
    program: Option<PathBuf>,
    start_timeout: Duration,
    /// The initializer, or why it cannot be used (reported by `build`).
    init: Option<Result<(FnRef, Vec<u8>), String>>,
    caller_runs_chunks: bool,
    fork_server: bool,
    /// CPUs to assume instead of those this process may run on (tests).
    cores: Option<usize>,
}

impl Default for ProcessesBuilder {
    fn default() -> Self {
        ProcessesBuilder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk: None,
            chunksize: None,
            timeout: None,
            max_tasks: None,
            program: None,
            start_timeout: Duration::from_secs(10),
            init: None,
            caller_runs_chunks: true,
            fork_server: true,
            cores: None,
        }
    }
}

impl ProcessesBuilder {
    /// Number of worker processes (at least 1, at most 65,536; default: the number of
    /// CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Items per chunk of a kernel step (at least 1; default
    /// [`default_chunk`](kernelpool_kernels::default_chunk): about four chunks per process
    /// that runs the step's chunks, the caller included when it takes part; see
    /// [`Processes::chunk_for`]).
    pub fn chunk(mut self, chunk: u64) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Default `chunksize` of the map family (at least 1). Unset, `map` and `starmap`
    /// use about four chunks per worker, as Python's `Pool.map`, and `imap` and
    /// `imap_unordered` use 1.
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize);
        self
    }

    /// Longest a single task may run, and longest a worker that holds tasks may go without
    /// making progress on them (stopped by SIGSTOP or a debugger, frozen): a worker that
    /// exceeds it is killed and replaced. A task that was running is reported as
    /// [`PoolError::TimedOut`]; tasks that had not started run on another worker.
    /// It counts from the task's start, as the worker's control block says; for a task
    /// that follows tiny ones in the same batch (a worker times those a few at a time),
    /// from when the pool first saw it running, which can be a few milliseconds later.
    /// Default: no limit (then a stopped worker holds its tasks until it resumes).
    /// The chunks the calling thread runs itself (see
    /// [`caller_runs_chunks`](Self::caller_runs_chunks)) have no limit, and while it runs
    /// one the pool does not look at its workers: a worker's overrun (or death) is then
    /// seen when that chunk ends, up to one chunk late.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Replace each worker after it has been given this many tasks (at least 1; default:
    /// never).
    pub fn max_tasks_per_worker(mut self, max: u64) -> Self {
        self.max_tasks = Some(max);
        self
    }

    /// Let the calling thread run chunks of kernel steps too, as rayon's calling thread
    /// does, instead of sleeping while the workers run them (default: on). It runs a
    /// step's last chunks, those no worker has taken yet, so a step of `c` chunks on `w`
    /// workers leaves it about `c / (w + 1)` of them (a step of one chunk, all of it); the
    /// partials are combined in chunk order as always, so the result is the same. Out of
    /// chunks of its own, it takes back the last chunk a worker holds and has not
    /// started, rather than wait for that worker to get to it (a word in the worker's
    /// control block, changed by compare-and-swap from either side, makes sure exactly
    /// one of them runs it).
    ///
    /// A step the caller takes part in is sent to no more workers than leave the caller
    /// a CPU of its own (at least one worker): on a machine of 2 CPUs a pool of 2 runs it
    /// on the caller and one worker, as `Threads::new(2)` runs it on the caller and one
    /// thread, because three processes taking turns on two CPUs would cost more (a
    /// trivial step about 9-11 µs instead of 3). The other workers run `map` tasks and
    /// the steps the caller does not take part in.
    ///
    /// Only built-in kernels run in the caller: kernels from shared objects (a user's, a
    /// JIT-compiled one) always run in workers, on all of them. Turn it off for built-in
    /// kernels too when fault isolation matters more than a few microseconds a step: a
    /// built-in kernel that crashed in the caller would take the program down, where in
    /// a worker it is a reported error, and the task timeout does not apply to the
    /// caller's chunks.
    pub fn caller_runs_chunks(mut self, on: bool) -> Self {
        self.caller_runs_chunks = on;
        self
    }

    /// Assume `cores` CPUs instead of those this process may run on.
    #[cfg(test)]
    pub(crate) fn cores(mut self, cores: usize) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Start workers by forking the fork server (default: on), a process of this program
    /// that the first pool starts (one exec) and that then forks every worker of every
    /// pool, about 0.2 ms each instead of an exec of about 1 ms (more for a large binary),
    /// as Python's "forkserver" start method. Off, every worker is an exec of the program.
    ///
    /// What differs: a forked worker has the environment, working directory and standard
    /// output and error that the program had when the fork server started (its first
    /// process pool), not at the time of this pool; turn this off when workers must see
    /// later changes. The fork server stays up until the program exits (it sleeps in a
    /// read: no CPU); if it dies, the workers it forked die with it (reported as crashes,
    /// and replaced), and the next worker starts a new one. Where it cannot fork safely
    /// (`init` ran after another thread was started, or no pidfds: Linux before 5.3),
    /// workers are exec'd. A [`worker_program`](Self::worker_program) is always exec'd.
    pub fn fork_server(mut self, on: bool) -> Self {
        self.fork_server = on;
        self
    }

    /// Start this program as the worker instead of the current executable, for hosts that
    /// cannot call [`init`](crate::init) at the top of `main` (Python over the C ABI):
    /// `kpool-worker`, built with this crate, is such a program. Such a pool runs kernels
    /// but not Rust functions (`map` and friends return
    /// [`PoolError::NotSameExecutable`]).
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// How long a worker may take to start, at build and when it replaces another
    /// (default 10 s); one that takes longer is killed.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Run `f(arg)` once in each worker when it starts, before it takes tasks (Python's
    /// `Pool(initializer=f, initargs=(arg,))`): to load a large table or open a file once
    /// per worker rather than once per task, keeping it in a `static` (a `OnceLock`) that
    /// tasks read. Replacement workers run it too. Workers stay up between calls, so what
    /// it sets up serves every later call of the pool. A panic in it is reported by
    /// [`build`](Self::build) (or by the call during which a replacement worker failed) as
    /// [`PoolError::Start`], naming the initializer and the panic.
    ///
    /// ```no_run
    /// use std::sync::OnceLock;
    ///
    /// static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
    ///
    /// fn load_table(len: usize) {
    ///     TABLE.get_or_init(|| (0..len as u64).map(|i| i * i).collect());
    /// }
    ///
    /// fn lookup(i: usize) -> u64 {
    ///     TABLE.get().expect("the initializer ran")[i]
    /// }
    ///
    /// kernelpool_pool::init(); // first thing in main
    /// let pool = kernelpool_pool::Processes::builder()
    ///     .workers(2)
    ///     .initializer(load_table, 1000)
    ///     .build()?;
    /// assert_eq!(pool.map(lookup, [3, 999])?, vec![9, 998_001]);
    /// # Ok::<(), kernelpool_pool::PoolError>(())
    /// ```
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        self.init = Some(FnRef::of1(f).map_err(|e| e.to_string()).and_then(|fun| {
            let (encoded, named) = crate::shared_array::collect(|| postcard::to_stdvec(&arg));
            let encoded =
                encoded.map_err(|e| format!("cannot encode the initializer's argument: {e}"))?;
            if !named.arrays.is_empty() {
                return Err(
                    "its argument cannot hold shared arrays (pass them to the tasks)".into(),
                );
            }
            Ok((fun, encoded))
        }));
        self
    }

    /// Check the options, start the workers and wait until every one is ready.
    ///
    /// # Errors
    /// [`PoolError::InvalidOption`] for an option out of range, [`PoolError::Start`] when
    /// a worker does not start or is not ready within the start timeout (or when this
    /// process is itself one that a pool started and [`init`](crate::init) did not run
    /// first in `main`), [`PoolError::Io`]
    /// when the current executable cannot be found or a socket cannot be made.
    pub fn build(self) -> Result<Processes, PoolError> {
        if self.workers == 0 {
            return Err(PoolError::invalid(
                "number of workers",
                "a process pool needs at least 1 worker, got 0",
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(PoolError::invalid(
                "number of workers",
                format!(
                    "{} workers are more than a process pool allows ({MAX_WORKERS})",
                    self.workers
                ),
            ));
        }
        if self.chunk == Some(0) {
            return Err(PoolError::invalid(
                "chunk",
                "a step chunk must hold at least 1 item, got 0",
            ));
        }
        if self.chunksize == Some(0) {
            return Err(PoolError::invalid(
                "chunksize",
                "chunksize must be at least 1, got 0",
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(PoolError::invalid(
                "task timeout",
                "a task timeout must be longer than 0",
            ));
        }
        if self.max_tasks == Some(0) {
            return Err(PoolError::invalid(
                "max tasks per worker",
                "must be at least 1, got 0",
            ));
        }
        if crate::worker::started_by_a_pool() {
            return Err(PoolError::Start {
                program: std::env::current_exe()
                    .map_or_else(|_| "this program".into(), |p| p.display().to_string()),
                reason: "this process was started by a process pool to be its worker (or \
                         its fork server) and did not become one, so it cannot start a pool \
                         of its own: kernelpool_pool::init() must run first thing in main"
                    .into(),
                exit: None,
            });
        }
        let init = self
            .init
            .transpose()
            .map_err(|reason| PoolError::invalid("initializer", reason))?;
        let custom_program = self.program.is_some();
        if custom_program && init.is_some() {
            return Err(PoolError::invalid(
                "initializer",
                "an initializer runs in workers that run this executable, not in a \
                 worker_program",
            ));
        }
        let program = match self.program {
            Some(p) => p,
            None => std::env::current_exe()
                .map_err(|e| PoolError::io("cannot find the current executable", e))?,
        };
        let exe = if custom_program {
            None
        } else {
            crate::func::exe_identity()
        };
        let cfg = Arc::new(Config {
            workers: self.workers,
            chunk: self.chunk,
            chunksize: self.chunksize,
            timeout: self.timeout,
            max_tasks: self.max_tasks,
            program,
            exe,
            init,
            start_timeout: self.start_timeout,
            caller_runs_chunks: self.caller_runs_chunks,
            cores: self
                .cores
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            start: if self.fork_server && !custom_program {
                StartMethod::ForkServer
            } else {
                StartMethod::Exec
            },
        });
        let engine = Engine::start(cfg.clone())?;
        Ok(Processes {
            engine: Mutex::new(engine),
            holder: AtomicUsize::new(0),
            cfg,
            spare_args: Mutex::new(StoredArgs::default()),
        })
    }
}
