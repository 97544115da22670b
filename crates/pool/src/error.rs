//! The error type of the executors: bad options, worker faults (crash, timeout, panic) with
//! the task they hit and their cause, and transport failures.

use kernelpool_kernels::{KernelName, Lang};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// How a worker process ended, and signal names: defined in the kernels crate, so that
/// [`kernelpool_kernels::Error`] carries them typed.
pub use kernelpool_kernels::{WorkerExit, signal_name};

/// The chunk of a kernel step that a failed task was running: which kernel, which items.
///
/// Errors of the tasks of a kernel step on [`Processes`](crate::Processes) carry it (see
/// [`PoolError::chunk`]), so that a crash names the items as
/// [`Error::KernelFailed`](kernelpool_kernels::Error::KernelFailed) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepChunk {
    /// The kernel of the step.
    pub kernel: KernelName,
    /// Its language.
    pub lang: Lang,
    /// The items of the chunk.
    pub items: Range<u64>,
}

impl fmt::Display for StepChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel {} ({}) on items {}..{}",
            self.kernel, self.lang, self.items.start, self.items.end
        )
    }
}

/// `", kernel pi (c) on items 500..600"` after a task's index, or nothing.
struct InChunk<'a>(&'a Option<StepChunk>);

impl fmt::Display for InChunk<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, ", {c}"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong in an executor of this crate.
///
/// A task that brings its worker down is reported with the task's index (the position of
/// its argument for `map` and friends, the chunk number for a kernel step, whose kernel and
/// items come in `chunk`) and the cause; the worker is replaced and the pool stays usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// An option is out of range (0 workers, chunk size 0, ...).
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// Which option.
        option: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// rayon could not build the thread pool.
    #[error("cannot build the thread pool: {0}")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker process could not be started or did not become ready.
    #[error("worker process {program} did not start: {reason}")]
    Start {
        /// The program that was started.
        program: String,
        /// What happened.
        reason: String,
        /// How it ended, if it did.
        exit: Option<WorkerExit>,
    },
    /// The worker running the task died (signal, `exit`, OOM kill).
    #[error("task {task}{}: worker process {pid} {cause}", InChunk(.chunk))]
    Crashed {
        /// Index of the task.
        task: usize,
        /// The kernel and items of the task, for a chunk of a kernel step.
        chunk: Option<StepChunk>,
        /// Process id of the worker.
        pid: u32,
        /// How the worker ended.
        cause: WorkerExit,
    },
    /// The task ran longer than the per-task timeout; its worker was killed.
    #[error(
        "task {task}{} timed out after {timeout:?}; worker process {pid} was killed",
        InChunk(.chunk)
    )]
    TimedOut {
        /// Index of the task.
        task: usize,
        /// The kernel and items of the task, for a chunk of a kernel step.
        chunk: Option<StepChunk>,
        /// Process id of the worker.
        pid: u32,
        /// The timeout that was exceeded.
        timeout: Duration,
    },
    /// The task's function panicked (the worker survives).
    #[error("task {task}{} panicked: {message}", InChunk(.chunk))]
    Panicked {
        /// Index of the task.
        task: usize,
        /// The kernel and items of the task, for a chunk of a kernel step.
        chunk: Option<StepChunk>,
        /// The panic message and location.
        message: String,
    },
    /// The task failed in the worker for another reason (its argument could not be decoded,
    /// its result could not be encoded, a kernel step could not be rebuilt).
    #[error("task {task}{} failed in its worker: {message}", InChunk(.chunk))]
    Remote {
        /// Index of the task.
        task: usize,
        /// The kernel and items of the task, for a chunk of a kernel step.
        chunk: Option<StepChunk>,
        /// What the worker reported.
        message: String,
    },
    /// A task's argument could not be serialised, or its result could not be decoded.
    #[error("task {task}: {message}")]
    Codec {
        /// Index of the task.
        task: usize,
        /// What failed.
        message: String,
    },
    /// A buffer of a step is not shared memory, so worker processes cannot reach it.
    #[error(
        "buffer {slot} of the {kernel} step is not shared memory: allocate buffers with the \
         process pool's `alloc` (or use `SharedMemory`)"
    )]
    NotShared {
        /// Kernel name.
        kernel: &'static str,
        /// Buffer slot.
        slot: usize,
    },
    /// The kernel cannot be named in another process (not a built-in, no known origin).
    #[error(
        "kernel {0} cannot be named in a worker process (built-in kernels and kernels \
         loaded from a shared object can)"
    )]
    KernelNotPortable(String),
    /// Functions cross to workers as offsets in the executable, which needs the workers to
    /// run this very executable (pools started through `init()`).
    #[error(
        "functions can only be sent to workers that run the same executable as the caller \
         (start the pool from a program that calls kernelpool_pool::init(); a pool built \
         with worker_program({0}) can run kernels only)"
    )]
    NotSameExecutable(String),
    /// The pool is in use by an `imap` iterator of this thread (finish or drop it first).
    #[error("the process pool is busy with an imap iterator held by this thread")]
    Busy,
    /// A function to send to workers lives outside the executable (in a shared library or
    /// a plugin), where workers cannot find it.
    #[error("{0}")]
    FunctionNotInExecutable(String),
    /// The task never ran to the end because the pool itself failed (workers could not be
    /// started, a worker broke the protocol); `cause` says how. Lazy iterators yield it for
    /// every task they had taken, then end.
    #[error("task {task} was not run: the pool failed: {cause}")]
    PoolFailed {
        /// Index of the task.
        task: usize,
        /// The failure of the pool.
        #[source]
        cause: std::sync::Arc<PoolError>,
    },
    /// Two tasks of one call were given overlapping ranges of an output array
    /// ([`SharedChunkMut`](crate::SharedChunkMut)): `map` runs nothing; a lazy iterator
    /// yields this for the later task. (An argument whose `Serialize` names other ranges
    /// each time is checked as it is sent: `map` then fails only the later task, which is
    /// not sent.)
    #[error("task {task} was given an output range that overlaps the one of task {other}")]
    OverlappingOutput {
        /// Index of the task refused.
        task: usize,
        /// Index of the task that holds the range.
        other: usize,
    },
    /// A bug in kernelpool: an invariant of the pool did not hold.
    #[error("internal error of the process pool: {0}")]
    Internal(String),
    /// A worker sent something that is not a valid message.
    #[error("protocol error with worker process {pid}: {message}")]
    Protocol {
        /// Process id of the worker.
        pid: u32,
        /// What was wrong.
        message: String,
    },
}

impl PoolError {
    /// True when a worker died while running the task (signal, exit, OOM kill).
    pub fn is_crash(&self) -> bool {
        matches!(self, PoolError::Crashed { .. })
    }

    /// True when the task exceeded the per-task timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::TimedOut { .. })
    }

    /// True when the task's function panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, PoolError::Panicked { .. })
    }

    /// True when the task did not fail on its own: the pool failed (see
    /// [`PoolError::PoolFailed`]).
    pub fn is_pool_failure(&self) -> bool {
        matches!(self, PoolError::PoolFailed { .. })
    }

    /// The index of the task the error belongs to, if it belongs to one. Errors of the
    /// pool as a whole (bad options, workers that cannot start, a protocol violation)
    /// belong to none.
    pub fn task(&self) -> Option<usize> {
        match *self {
            PoolError::Crashed { task, .. }
            | PoolError::TimedOut { task, .. }
            | PoolError::Panicked { task, .. }
            | PoolError::Remote { task, .. }
            | PoolError::Codec { task, .. }
            | PoolError::PoolFailed { task, .. }
            | PoolError::OverlappingOutput { task, .. } => Some(task),
            _ => None,
        }
    }

    /// The kernel and items of the task, for a task of a kernel step.
    pub fn chunk(&self) -> Option<&StepChunk> {
        match self {
            PoolError::Crashed { chunk, .. }
            | PoolError::TimedOut { chunk, .. }
            | PoolError::Panicked { chunk, .. }
            | PoolError::Remote { chunk, .. } => chunk.as_ref(),
            _ => None,
        }
    }

    /// The same error, naming the kernel step chunk its task ran.
    pub(crate) fn in_chunk(mut self, step_chunk: StepChunk) -> PoolError {
        match &mut self {
            PoolError::Crashed { chunk, .. }
            | PoolError::TimedOut { chunk, .. }
            | PoolError::Panicked { chunk, .. }
            | PoolError::Remote { chunk, .. } => *chunk = Some(step_chunk),
            _ => {}
        }
        self
    }

    /// The signal that killed the worker, for crashes by signal.
    pub fn signal(&self) -> Option<i32> {
        match *self {
            PoolError::Crashed {
                cause: WorkerExit::Signal(sig),
                ..
            } => Some(sig),
            _ => None,
        }
    }

    /// The exit status of the worker, for crashes by `exit`.
    pub fn exit_status(&self) -> Option<i32> {
        match *self {
            PoolError::Crashed {
                cause: WorkerExit::Status(code),
                ..
            } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> PoolError {
        PoolError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(option: &'static str, reason: impl Into<String>) -> PoolError {
        PoolError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}

impl From<PoolError> for kernelpool_kernels::Error {
    /// The typed executor error: the fault of each variant, the task and the items of the
    /// kernel step chunk it ran, with the `PoolError` itself as the source.
    fn from(e: PoolError) -> Self {
        use kernelpool_kernels::{ExecutorError, Fault};
        let fault = match &e {
            PoolError::Crashed { pid, cause, .. } => Fault::Crashed {
                pid: *pid,
                cause: *cause,
            },
            PoolError::TimedOut { pid, timeout, .. } => Fault::TimedOut {
                pid: *pid,
                timeout: *timeout,
            },
            PoolError::Panicked { message, .. } => Fault::Panicked {
                message: message.clone(),
            },
            PoolError::Remote { message, .. } => Fault::Failed {
                message: message.clone(),
            },
            _ => Fault::Other,
        };
        let (task, items) = (e.task(), e.chunk().map(|c| c.items.clone()));
        let mut x = ExecutorError::new(fault, e);
        if let Some(task) = task {
            x = x.with_task(task);
        }
        if let Some(items) = items {
            x = x.with_items(items);
        }
        kernelpool_kernels::Error::Executor(x)
    }
}
