//! The status codes of the C ABI, and how every Rust error maps onto them.

use kernelpool_kernels::{Error, Fault};
use kernelpool_pool::PoolError;

/// Status codes of the C ABI: what every `kp_*` function that can fail returns. Values
/// are stable and never reused; new ones are only ever added. After a status other
/// than `KP_OK`, `kp_last_error_message` gives the message of the failure (on the same
/// thread), and `kp_status_str` a fixed description of the status.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum kp_status {
    /// Success.
    KP_OK = 0,
    /// A required pointer argument (a handle, a buffer, an out-parameter) was NULL.
    KP_NULL_ARGUMENT = 1,
    /// An argument was invalid: an option out of range, a zero length, a string that is
    /// not UTF-8, an unknown element type, access or reduction value, the same buffer
    /// twice in one step.
    KP_INVALID_ARGUMENT = 2,
    /// The caller's output buffer is too small (or NULL with a length of 0): nothing was
    /// written into it; the length it needs was written where the function says.
    KP_BUFFER_TOO_SMALL = 3,
    /// The kernel returned a non-zero status (`KP_KERNEL_BAD_ARGS`, an exception caught
    /// by a C++ shim, ...); the message names the kernel, the status and the items.
    KP_KERNEL_FAILED = 4,
    /// A Rust panic was caught at the boundary (a bug in kernelpool: please report it).
    KP_PANIC = 5,
    /// No built-in kernel has this `kp_kernel` value or name.
    KP_UNKNOWN_KERNEL = 6,
    /// No language has this `kp_lang` value or name.
    KP_UNKNOWN_LANG = 7,
    /// N or the items are outside what the kernel supports, or a chunk size would cut a
    /// step into too many chunks.
    KP_INVALID_SIZE = 8,
    /// The buffers of a step do not match the kernel's signature: a wrong count, element
    /// type, or a buffer shorter than the signature asks for.
    KP_BAD_BUFFERS = 9,
    /// A signature the kernel contract cannot carry (more than 4 buffers or partial
    /// slots, an empty name), or a signature spec that does not parse.
    KP_INVALID_SIGNATURE = 10,
    /// A shared object could not be loaded (no such file, not a shared object for this
    /// machine) or has no such symbol; the message holds the loader's.
    KP_LOAD_FAILED = 11,
    /// A worker process died while running a task (a signal such as SIGSEGV, `exit`, an
    /// OOM kill); the message names the task, the kernel, its items and the signal or
    /// exit status. The worker was replaced: the executor stays usable.
    KP_WORKER_CRASHED = 12,
    /// A task ran longer than the process pool's task timeout; its worker was killed and
    /// replaced. The message names the task, the kernel, its items and the timeout.
    KP_TIMED_OUT = 13,
    /// Memory could not be had: more than the machine has available, or refused by the
    /// system (`ulimit -v`, ...); the message says which.
    KP_OUT_OF_MEMORY = 14,
    /// The executor cannot do this: a kernel from a function pointer, or caller memory,
    /// on a process pool (load the kernel from a shared object; use `kp_buffer_new`).
    KP_NOT_SUPPORTED = 15,
    /// The executor failed otherwise: workers that do not start, a worker that panicked
    /// or broke the protocol, an operating-system error.
    KP_EXECUTOR_FAILED = 16,
    /// STREAM's validation of `triad` failed.
    KP_VALIDATION_FAILED = 17,
    /// A buffer is in use by another call right now (on another thread).
    KP_BUSY = 18,
    /// The JIT's compiler rejected the source (the message holds its diagnostics), or an
    /// element function does not have the signature it is called with.
    KP_COMPILE_FAILED = 19,
    /// The JIT found no compiler for the source's language (`$CC`, `$CXX`, `$FC`, else
    /// gcc, g++, gfortran); the message names the package that has it.
    KP_COMPILER_NOT_FOUND = 20,
    /// The JIT's cache directory is missing, unsafe (owned by another user, or writable
    /// by others) or cannot be written.
    KP_JIT_CACHE_FAILED = 21,
    /// A `kp_variant` value that is no variant.
    KP_UNKNOWN_VARIANT = 22,
    /// The kernel has no such variant in that language (`kpool info` lists them).
    KP_NO_VARIANT = 23,
}

/// The fixed description of each status (`kp_status_str`).
pub(crate) fn describe(status: u32) -> &'static str {
    match status {
        0 => "KP_OK: success\0",
        1 => "KP_NULL_ARGUMENT: a required pointer argument was NULL\0",
        2 => "KP_INVALID_ARGUMENT: an argument was invalid\0",
        3 => "KP_BUFFER_TOO_SMALL: the output buffer is too small\0",
        4 => "KP_KERNEL_FAILED: the kernel returned a non-zero status\0",
        5 => "KP_PANIC: a panic inside kernelpool was caught at the C boundary\0",
        6 => "KP_UNKNOWN_KERNEL: no built-in kernel has this value or name\0",
        7 => "KP_UNKNOWN_LANG: no language has this value or name\0",
        8 => "KP_INVALID_SIZE: N or the items are outside what the kernel supports\0",
        9 => "KP_BAD_BUFFERS: the buffers do not match the kernel's signature\0",
        10 => "KP_INVALID_SIGNATURE: the signature is invalid\0",
        11 => "KP_LOAD_FAILED: the shared object or its symbol could not be loaded\0",
        12 => "KP_WORKER_CRASHED: a worker process died while running a task\0",
        13 => "KP_TIMED_OUT: a task ran past the task timeout\0",
        14 => "KP_OUT_OF_MEMORY: memory could not be allocated\0",
        15 => "KP_NOT_SUPPORTED: the executor cannot run this\0",
        16 => "KP_EXECUTOR_FAILED: the executor failed\0",
        17 => "KP_VALIDATION_FAILED: the STREAM validation failed\0",
        18 => "KP_BUSY: a buffer is in use by another call\0",
        19 => "KP_COMPILE_FAILED: the JIT could not compile the source\0",
        20 => "KP_COMPILER_NOT_FOUND: the JIT found no compiler for the language\0",
        21 => "KP_JIT_CACHE_FAILED: the JIT's cache directory cannot be used\0",
        22 => "KP_UNKNOWN_VARIANT: no variant has this value\0",
        23 => "KP_NO_VARIANT: the kernel has no such variant in this language\0",
        _ => "unknown kp_status value\0",
    }
}

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: kp_status,
    pub msg: String,
}

/// What an exported body returns.
pub(crate) type Ret<T = ()> = Result<T, Fail>;

pub(crate) fn fail(status: kp_status, msg: impl Into<String>) -> Fail {
    Fail {
        status,
        msg: msg.into(),
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        use kp_status::*;
        let status = match &e {
            Error::UnknownKernel(_) => KP_UNKNOWN_KERNEL,
            Error::UnknownLang(_) => KP_UNKNOWN_LANG,
            Error::NoVariant { .. } => KP_NO_VARIANT,
            Error::InvalidSize { .. } | Error::TooManyChunks { .. } => KP_INVALID_SIZE,
            Error::TooLarge { .. } | Error::AllocFailed { .. } => KP_OUT_OF_MEMORY,
            Error::BadBuffers { .. } | Error::BadMemory { .. } => KP_BAD_BUFFERS,
            Error::KernelFailed { .. } => KP_KERNEL_FAILED,
            Error::InvalidSignature { .. } => KP_INVALID_SIGNATURE,
            Error::NoProgram { .. } => KP_INVALID_ARGUMENT,
            Error::Validation(_) => KP_VALIDATION_FAILED,
            Error::Executor(x) => match x.fault() {
                Fault::Crashed { .. } => KP_WORKER_CRASHED,
                Fault::TimedOut { .. } => KP_TIMED_OUT,
                _ => match x.get_ref().downcast_ref::<PoolError>() {
                    Some(p) => return pool_fail(p, e.to_string()),
                    None => KP_EXECUTOR_FAILED,
                },
            },
            _ => KP_EXECUTOR_FAILED,
        };
        fail(status, with_causes(&e))
    }
}

/// The error's message and those of its causes that it does not already hold (the
/// loader's own message under "dlopen failed", for instance).
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg += &format!(": {text}");
        }
        cause = c.source();
    }
    msg
}

/// The status of a pool error, with `msg` (the message it had) made to speak C.
fn pool_fail(e: &PoolError, msg: String) -> Fail {
    use kp_status::*;
    match e {
        PoolError::InvalidOption { .. } => fail(KP_INVALID_ARGUMENT, msg),
        PoolError::Crashed { .. } => fail(KP_WORKER_CRASHED, msg),
        PoolError::TimedOut { .. } => fail(KP_TIMED_OUT, msg),
        PoolError::NotShared { kernel, slot } => fail(
            KP_NOT_SUPPORTED,
            format!(
                "buffer {slot} of the {kernel} step is caller memory, which worker \
                 processes cannot reach: on a process pool use buffers from kp_buffer_new \
                 (shared memory) with kp_step_run"
            ),
        ),
        PoolError::KernelNotPortable(_) => fail(
            KP_NOT_SUPPORTED,
            format!(
                "{msg}: a process pool runs built-in kernels and kernels from kp_kernel_from_library"
            ),
        ),
        _ => fail(KP_EXECUTOR_FAILED, msg),
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Fail {
        let msg = e.to_string();
        pool_fail(&e, msg)
    }
}
