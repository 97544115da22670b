//! The error type of the kernels layer, and the typed faults executors report through it.

use crate::buffer::Elem;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// Everything that can go wrong when choosing, preparing or running a kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No kernel has this name.
    #[error(
        "unknown kernel `{0}` (known: seed, nbody, spectralnorm, mandelbrot, fannkuch, triad, pi)"
    )]
    UnknownKernel(String),
    /// No language has this name.
    #[error("unknown language `{0}` (known: c, cpp, fortran, rust)")]
    UnknownLang(String),
    /// No variant has this name.
    #[error("unknown variant `{0}` (known: plain, tuned)")]
    UnknownVariant(String),
    /// The kernel exists, but not in this variant in this language.
    #[error(
        "kernel {kernel} has no {variant} variant in {lang} (it has: {available}); `kpool info` lists them"
    )]
    NoVariant {
        /// Kernel name.
        kernel: &'static str,
        /// Language.
        lang: &'static str,
        /// The variant asked for.
        variant: &'static str,
        /// The variants it has in that language, comma separated.
        available: String,
    },
    /// The problem size is outside what the kernel supports.
    #[error("invalid size for {kernel}: N={n}: {reason}")]
    InvalidSize {
        /// Kernel name.
        kernel: &'static str,
        /// The size asked for.
        n: u64,
        /// Why it is refused, naming the limit.
        reason: String,
    },
    /// A buffer would not fit in the memory this machine has available now.
    #[error(
        "cannot allocate {what}: {bytes} bytes is more than the {available} bytes of memory \
         available now (of {total} bytes on this machine)"
    )]
    TooLarge {
        /// What the buffer is for.
        what: String,
        /// Bytes asked for.
        bytes: u128,
        /// Memory available when the check was made (`MemAvailable` of /proc/meminfo).
        available: u64,
        /// Physical memory of the machine (`MemTotal`).
        total: u64,
    },
    /// The allocator refused a buffer that the machine's memory could hold (an address
    /// space limit such as `ulimit -v`, a cgroup limit, fragmentation, ...).
    #[error("cannot allocate {what} ({bytes} bytes): {reason}")]
    AllocFailed {
        /// What the buffer is for.
        what: String,
        /// Bytes asked for.
        bytes: u128,
        /// What the allocator or the operating system said.
        reason: String,
    },
    /// The buffers passed to a step do not match what the kernel reads and writes.
    #[error("bad buffers for kernel {kernel}: {reason}")]
    BadBuffers {
        /// Kernel name.
        kernel: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Memory given to [`Buffer::from_memory`](crate::Buffer::from_memory), or a buffer
    /// returned by an [`Executor::alloc`](crate::Executor::alloc), cannot serve as the
    /// buffer asked for.
    #[error("{what}: memory of {bytes} bytes cannot serve as {len} x {elem:?}: {reason}")]
    BadMemory {
        /// What the buffer is for.
        what: String,
        /// Element type asked for.
        elem: Elem,
        /// Elements asked for.
        len: usize,
        /// Size of the memory that was given.
        bytes: usize,
        /// What is wrong (too small, misaligned, wrong element type or length).
        reason: String,
    },
    /// The kernel returned a non-zero status.
    #[error("kernel {kernel} ({lang}) failed with status {code} on items {begin}..{end}")]
    KernelFailed {
        /// Kernel name.
        kernel: String,
        /// Language.
        lang: String,
        /// Status returned by the kernel.
        code: i32,
        /// First item of the failing chunk.
        begin: u64,
        /// One past the last item of the failing chunk.
        end: u64,
    },
    /// A chunk size that cuts a step into more chunks than an executor keeps track of.
    #[error(
        "chunk size {chunk} cuts {items} items into {count} chunks, more than the {max} an executor keeps per step: use a larger chunk"
    )]
    TooManyChunks {
        /// Items of the step.
        items: u64,
        /// The chunk size asked for.
        chunk: u64,
        /// Chunks it would make.
        count: u64,
        /// The most chunks per step ([`crate::MAX_CHUNKS`]).
        max: u64,
    },
    /// A kernel signature the contract cannot carry, or a spec that does not parse.
    #[error("invalid signature for kernel {name}: {reason}")]
    InvalidSignature {
        /// The signature's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A kernel with a signature of its own has no benchmark program: run it as a
    /// [`Step`](crate::Step) on an executor.
    #[error(
        "kernel {kernel} has a signature of its own and no program: run it as a step on an executor"
    )]
    NoProgram {
        /// The kernel's name.
        kernel: String,
    },
    /// The STREAM validation of `triad` failed.
    #[error("triad validation failed: {0}")]
    Validation(String),
    /// An I/O error (allocating shared memory, loading a library, for instance).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The executor failed (a worker crashed, timed out, panicked, ...): the fault is typed
    /// ([`ExecutorError::fault`]) and the executor's own error is kept as the source.
    #[error("{0}")]
    Executor(#[source] ExecutorError),
}

impl Error {
    /// The executor's error, for [`Error::Executor`].
    pub fn executor(&self) -> Option<&ExecutorError> {
        match self {
            Error::Executor(e) => Some(e),
            _ => None,
        }
    }

    /// The fault an executor reported, for [`Error::Executor`].
    pub fn fault(&self) -> Option<&Fault> {
        self.executor().map(ExecutorError::fault)
    }

    /// True when a worker died while running a task (signal, exit, OOM kill).
    pub fn is_crash(&self) -> bool {
        matches!(self.fault(), Some(Fault::Crashed { .. }))
    }

    /// True when a task exceeded the executor's per-task timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.fault(), Some(Fault::TimedOut { .. }))
    }

    /// True when a task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.fault(), Some(Fault::Panicked { .. }))
    }

    /// The signal that killed the worker, for crashes by signal.
    pub fn signal(&self) -> Option<i32> {
        match self.fault() {
            Some(Fault::Crashed {
                cause: WorkerExit::Signal(sig),
                ..
            }) => Some(*sig),
            _ => None,
        }
    }

    /// The exit status of the worker, for crashes by `exit`.
    pub fn exit_status(&self) -> Option<i32> {
        match self.fault() {
            Some(Fault::Crashed {
                cause: WorkerExit::Status(code),
                ..
            }) => Some(*code),
            _ => None,
        }
    }

    /// The index of the task an executor error belongs to, when it belongs to one.
    pub fn task(&self) -> Option<usize> {
        self.executor().and_then(ExecutorError::task)
    }

    /// The items of the chunk that failed: those of a failing kernel call, or of the
    /// task of a kernel step that an executor lost.
    pub fn items(&self) -> Option<Range<u64>> {
        match self {
            Error::KernelFailed { begin, end, .. } => Some(*begin..*end),
            Error::Executor(e) => e.items(),
            _ => None,
        }
    }
}

impl From<ExecutorError> for Error {
    fn from(e: ExecutorError) -> Self {
        Error::Executor(e)
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerExit {
    /// Killed by this signal (SIGSEGV = 11, SIGABRT = 6, SIGKILL = 9, ...).
    Signal(i32),
    /// Exited on its own with this status.
    Status(i32),
    /// The exit could not be observed (the child was reaped elsewhere).
    Unknown,
}

impl WorkerExit {
    /// The cause of a finished child.
    pub fn from_status(status: std::process::ExitStatus) -> WorkerExit {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return WorkerExit::Signal(sig);
            }
        }
        match status.code() {
            Some(code) => WorkerExit::Status(code),
            None => WorkerExit::Unknown,
        }
    }
}

/// Conventional name of a signal number (`SIGSEGV`), or `None`.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerExit::Signal(sig) => match signal_name(sig) {
                Some(name) => write!(f, "was killed by signal {sig} ({name})"),
                None => write!(f, "was killed by signal {sig}"),
            },
            WorkerExit::Status(code) => write!(f, "exited with status {code}"),
            WorkerExit::Unknown => f.write_str("ended for an unknown reason"),
        }
    }
}

/// What went wrong in an executor, in terms any executor can report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The worker running the task died (signal, `exit`, OOM kill).
    Crashed {
        /// Process id of the worker.
        pid: u32,
        /// How it ended.
        cause: WorkerExit,
    },
    /// The task ran longer than the per-task timeout; its worker was killed.
    TimedOut {
        /// Process id of the worker.
        pid: u32,
        /// The timeout that was exceeded.
        timeout: Duration,
    },
    /// The task panicked (its worker survives).
    Panicked {
        /// The panic message and location.
        message: String,
    },
    /// The task failed in its worker for another reason.
    Failed {
        /// What the worker reported.
        message: String,
    },
    /// Anything else (bad options, transport, a worker that would not start, ...): see
    /// the executor's error, [`ExecutorError::get_ref`].
    Other,
}

/// An executor's failure: the typed [`Fault`], the task and items it hit when known, and
/// the executor's own error (its `Display` is this error's, and it is the
/// [`source`](std::error::Error::source), which callers may still downcast).
///
/// ```
/// use kernelpool_kernels::{Error, ExecutorError, Fault, WorkerExit};
///
/// let e: Error = ExecutorError::new(
///     Fault::Crashed { pid: 42, cause: WorkerExit::Signal(11) },
///     "worker 42 was killed by signal 11 (SIGSEGV)",
/// )
/// .with_task(3)
/// .with_items(300..400)
/// .into();
/// assert!(e.is_crash() && !e.is_timeout());
/// assert_eq!(e.signal(), Some(11));
/// assert_eq!(e.items(), Some(300..400));
/// ```
#[derive(Debug)]
pub struct ExecutorError {
    fault: Fault,
    task: Option<usize>,
    items: Option<Range<u64>>,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl ExecutorError {
    /// An executor error with this fault and the executor's own error (anything that
    /// converts into a boxed error, a `String` or `&str` included).
    pub fn new(
        fault: Fault,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> ExecutorError {
        ExecutorError {
            fault,
            task: None,
            items: None,
            source: source.into(),
        }
    }

    /// The same error, naming the task (its index) it belongs to.
    #[must_use]
    pub fn with_task(mut self, task: usize) -> ExecutorError {
        self.task = Some(task);
        self
    }

    /// The same error, naming the items of the kernel step chunk the task ran.
    #[must_use]
    pub fn with_items(mut self, items: Range<u64>) -> ExecutorError {
        self.items = Some(items);
        self
    }

    /// What went wrong.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// The index of the task it belongs to, if known.
    pub fn task(&self) -> Option<usize> {
        self.task
    }

    /// The items of the kernel step chunk the task ran, if known.
    pub fn items(&self) -> Option<Range<u64>> {
        self.items.clone()
    }

    /// The executor's own error (downcast it for executor-specific details).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The executor's own error, by value.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.source
    }
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for ExecutorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pool says: task 2 timed out")]
    struct PoolLike;

    #[test]
    fn executor_errors_are_typed_and_keep_their_source() {
        let e: Error = ExecutorError::new(
            Fault::TimedOut {
                pid: 7,
                timeout: Duration::from_millis(500),
            },
            PoolLike,
        )
        .with_task(2)
        .into();
        assert!(e.is_timeout() && !e.is_crash() && !e.is_panic());
        assert_eq!(e.task(), Some(2));
        assert_eq!(e.items(), None);
        assert_eq!(e.signal(), None);
        assert_eq!(e.to_string(), "pool says: task 2 timed out");
        let x = e.executor().expect("executor error");
        assert_eq!(x.to_string(), "pool says: task 2 timed out");
        assert!(x.get_ref().downcast_ref::<PoolLike>().is_some());
        let src = std::error::Error::source(x).expect("source");
        assert!(src.downcast_ref::<PoolLike>().is_some());

        let exited: Error = ExecutorError::new(
            Fault::Crashed {
                pid: 9,
                cause: WorkerExit::Status(3),
            },
            "exited",
        )
        .with_items(5..9)
        .into();
        assert!(exited.is_crash());
        assert_eq!(exited.exit_status(), Some(3));
        assert_eq!(exited.signal(), None);
        assert_eq!(exited.items(), Some(5..9));
        let failed = Error::KernelFailed {
            kernel: "pi".into(),
            lang: "c".into(),
            code: -1,
            begin: 4,
            end: 8,
        };
        assert_eq!(failed.items(), Some(4..8));
        assert!(!failed.is_crash());
    }

    #[test]
    fn worker_exits_read_as_causes() {
        assert_eq!(
            WorkerExit::Signal(11).to_string(),
            "was killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(
            WorkerExit::Signal(99).to_string(),
            "was killed by signal 99"
        );
        assert_eq!(WorkerExit::Status(3).to_string(), "exited with status 3");
        assert_eq!(signal_name(9), Some("SIGKILL"));
        let status = std::process::Command::new("sh")
            .args(["-c", "exit 4"])
            .status()
            .expect("sh runs");
        assert_eq!(WorkerExit::from_status(status), WorkerExit::Status(4));
    }
}
