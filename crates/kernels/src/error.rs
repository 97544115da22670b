//! The error type of the kernels layer.

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
    /// The problem size is outside what the kernel supports.
    #[error("invalid size for {kernel}: N={n}: {reason}")]
    InvalidSize {
        /// Kernel name.
        kernel: &'static str,
        /// The size asked for.
        n: u64,
        /// Why it is refused.
        reason: String,
    },
    /// A buffer would not fit in this machine's memory.
    #[error(
        "cannot allocate {what}: {bytes} bytes is more than this machine's {available} bytes of memory"
    )]
    TooLarge {
        /// What the buffer is for.
        what: String,
        /// Bytes asked for.
        bytes: u128,
        /// Physical memory of the machine.
        available: u64,
    },
    /// The buffers passed to a step do not match what the kernel reads and writes.
    #[error("bad buffers for kernel {kernel}: {reason}")]
    BadBuffers {
        /// Kernel name.
        kernel: &'static str,
        /// What is wrong.
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
    /// The STREAM validation of `triad` failed.
    #[error("triad validation failed: {0}")]
    Validation(String),
    /// An I/O error (allocating shared memory, for instance).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The executor failed (a worker crashed, timed out, ...); the cause is kept.
    #[error("executor: {0}")]
    Executor(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
