//! Executors from C: serial, threads, and process pools with their builder.

use crate::boundary::{boundary, copy_text_out, guard, handle, str_arg, write_out};
use crate::status::{Ret, fail, kp_status, kp_status::*};
use kernelpool_kernels::{Executor, Serial};
use kernelpool_pool::{Processes, ProcessesBuilder, Threads};
use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An executor: runs kernel programs and steps serially, on threads, or on worker
/// processes. Made by `kp_serial_new`, `kp_threads_new`, `kp_processes_new` or
/// `kp_processes_builder_build`; released by `kp_executor_free`. Usable from several
/// threads at once (a process pool runs one call at a time; the others wait).
#[derive(Debug)]
pub struct kp_executor {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Serial(Serial),
    Threads(Threads),
    Processes(Box<Processes>),
}

impl kp_executor {
    pub(crate) fn get(&self) -> &dyn Executor {
        match &self.kind {
            Kind::Serial(s) => s,
            Kind::Threads(t) => t,
            Kind::Processes(p) => &**p,
        }
    }
}

/// Box `exec` into `*out`.
///
/// # Safety
/// `out` is valid for a write (checked non-null by the caller).
unsafe fn give(kind: Kind, out: *mut *mut kp_executor) -> Ret {
    let p = Box::into_raw(Box::new(kp_executor { kind }));
    // SAFETY: forwarded from the caller's contract.
    unsafe { write_out(out, p, "out") }
}

/// A serial executor (every step as one call on the calling thread) into `*out`.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_serial_new(out: *mut *mut kp_executor) -> kp_status {
    boundary(|| {
        crate::boundary::non_null(out, "out")?;
        // SAFETY: out checked non-null, valid per the caller's contract.
        unsafe { give(Kind::Serial(Serial), out) }
    })
}

/// A thread executor into `*out`: `workers` threads, the calling one included (0: one
/// per CPU), and `chunk` items per chunk of a step (0: about four chunks per thread). A
/// private pool, never shared with other libraries.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_EXECUTOR_FAILED` when the threads cannot be started.
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_threads_new(
    workers: usize,
    chunk: u64,
    out: *mut *mut kp_executor,
) -> kp_status {
    boundary(|| {
        crate::boundary::non_null(out, "out")?;
        let mut b = Threads::builder();
        if workers != 0 {
            b = b.workers(workers);
        }
        if chunk != 0 {
            b = b.chunk(chunk);
        }
        let t = b.build()?;
        // SAFETY: out checked non-null, valid per the caller's contract.
        unsafe { give(Kind::Threads(t), out) }
    })
}

/// Options of a process pool, set one by one, then `kp_processes_builder_build`
/// (which may be called more than once). For one thread at a time.
#[derive(Debug)]
pub struct kp_processes_builder {
    inner: ProcessesBuilder,
    /// Whether a worker program was named (otherwise the workers are this program,
    /// which must call `kp_init`).
    program: bool,
}

/// A process pool with default options into `*out`: `workers` worker processes (0: one
/// per CPU), no task timeout, the calling thread running chunks of built-in kernels too
/// (see `kp_processes_builder_caller_runs_chunks`). Its workers are this program started again, so `main`
/// must call `kp_init(argc, argv)` first; a host that cannot uses a builder with
/// `kp_processes_builder_worker_program`.
///
/// # Errors
/// As `kp_processes_builder_build`.
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_new(workers: usize, out: *mut *mut kp_executor) -> kp_status {
    boundary(|| {
        let mut inner = Processes::builder();
        if workers != 0 {
            inner = inner.workers(workers);
        }
        let b = kp_processes_builder {
            inner,
            program: false,
        };
        // SAFETY: forwarded from the caller's contract.
        unsafe { build(&b, out) }
    })
}

/// A builder of process pools with the default options (one worker per CPU, default
/// chunk, no task timeout, workers never replaced, this program as the worker) into
/// `*out`; release it with `kp_processes_builder_free`.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_new(
    out: *mut *mut kp_processes_builder,
) -> kp_status {
    boundary(|| {
        crate::boundary::non_null(out, "out")?;
        let b = Box::into_raw(Box::new(kp_processes_builder {
            inner: Processes::builder(),
            program: false,
        }));
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_out(out, b, "out") }
    })
}

/// Release a builder; NULL does nothing.
///
/// # Safety
/// `b` is NULL or a builder not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_free(b: *mut kp_processes_builder) {
    guard((), || {
        if !b.is_null() {
            // SAFETY: made by Box::into_raw in kp_processes_builder_new, freed once.
            drop(unsafe { Box::from_raw(b) });
        }
    })
}

/// Change the builder behind `b`.
///
/// # Safety
/// `b` is NULL or a live builder used by no other thread.
unsafe fn set(
    b: *mut kp_processes_builder,
    f: impl FnOnce(&mut kp_processes_builder) -> Ret,
) -> kp_status {
    boundary(|| {
        crate::boundary::non_null(b, "builder")?;
        // SAFETY: non-null, live and not shared per the caller's contract.
        f(unsafe { &mut *b })
    })
}

/// Number of worker processes (at least 1, at most 65,536; checked by
/// `kp_processes_builder_build`).
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_workers(
    b: *mut kp_processes_builder,
    workers: usize,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            b.inner = b.inner.clone().workers(workers);
            Ok(())
        })
    }
}

/// Items per chunk of a kernel step (at least 1; the default cuts about four chunks per
/// process that runs the step's chunks, the calling thread included when it takes part).
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_chunk(
    b: *mut kp_processes_builder,
    chunk: u64,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            b.inner = b.inner.clone().chunk(chunk);
            Ok(())
        })
    }
}

/// Longest one task (a chunk) may run in a worker, in milliseconds (at least 1), counted
/// from its start; a worker that overruns it is killed and replaced, and the call returns
/// `KP_TIMED_OUT`. Default: no limit. The chunks of built-in kernels that the calling
/// thread runs itself (see `kp_processes_builder_caller_runs_chunks`) have no limit.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_task_timeout_ms(
    b: *mut kp_processes_builder,
    ms: u64,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            b.inner = b.inner.clone().task_timeout(Duration::from_millis(ms));
            Ok(())
        })
    }
}

/// Replace each worker after it has been given this many tasks (at least 1). Default:
/// never.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_max_tasks_per_worker(
    b: *mut kp_processes_builder,
    max: u64,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            b.inner = b.inner.clone().max_tasks_per_worker(max);
            Ok(())
        })
    }
}

/// Let the calling thread run chunks of built-in kernels' steps too (`on` = 1, the
/// default), on as many workers as leave it a CPU of its own, or keep every chunk in the
/// workers (`on` = 0: full fault isolation; a built-in kernel that crashed in the caller
/// would be this program's crash, and the task timeout does not apply to the caller's
/// chunks). Kernels from shared objects always run in workers.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` when `on` is neither 0 nor 1.
///
/// # Safety
/// `b` is NULL or a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_caller_runs_chunks(
    b: *mut kp_processes_builder,
    on: i32,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            let on = match on {
                0 => false,
                1 => true,
                other => {
                    return Err(fail(
                        KP_INVALID_ARGUMENT,
                        format!("caller_runs_chunks: on is {other}, not 0 or 1"),
                    ));
                }
            };
            b.inner = b.inner.clone().caller_runs_chunks(on);
            Ok(())
        })
    }
}

/// Start `path` as the worker program instead of this program, for hosts that cannot
/// call `kp_init` first in `main` (Python through ctypes). NULL means the generic worker
/// `kpool-worker` installed with the library: `$KERNELPOOL_WORKER` when set, else
/// `kpool-worker` in the library's directory, else in `../libexec/kernelpool/` from it.
///
/// # Errors
/// `KP_NULL_ARGUMENT` (no builder), `KP_INVALID_ARGUMENT` (not UTF-8, or NULL and no
/// `kpool-worker` found: the message lists where it looked).
///
/// # Safety
/// `b` is NULL or a live builder; `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_worker_program(
    b: *mut kp_processes_builder,
    path: *const c_char,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        set(b, |b| {
            let program = if path.is_null() {
                default_worker()?
            } else {
                // SAFETY: non-null and NUL-terminated per the caller's contract.
                PathBuf::from(str_arg(path, "path")?)
            };
            b.inner = b.inner.clone().worker_program(program);
            b.program = true;
            Ok(())
        })
    }
}

/// Start the pool that `b` describes and wait until every worker is ready; the pool
/// into `*out`. Without a worker program, `kp_init` must have been called in this
/// process (it is what the workers run).
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` for an option out of range (0 workers, a
/// chunk of 0, a timeout of 0, a maximum of 0 tasks) or when `kp_init` was not called
/// and no worker program was named; `KP_EXECUTOR_FAILED` when a worker does not start.
///
/// # Safety
/// `b` is NULL or a live builder; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_processes_builder_build(
    b: *const kp_processes_builder,
    out: *mut *mut kp_executor,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let b = unsafe { handle(b, "builder")? };
        // SAFETY: forwarded from the caller's contract.
        unsafe { build(b, out) }
    })
}

/// # Safety
/// `out` is NULL or valid for a write.
unsafe fn build(b: &kp_processes_builder, out: *mut *mut kp_executor) -> Ret {
    crate::boundary::non_null(out, "out")?;
    if !b.program && !crate::INIT_CALLED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(fail(
            KP_INVALID_ARGUMENT,
            "the workers of this pool would be this program started again, but it did not \
             call kp_init(argc, argv) first in main: call it, or name a worker program \
             (kp_processes_builder_worker_program(b, NULL) for kpool-worker)",
        ));
    }
    let p = b.inner.clone().build()?;
    // SAFETY: out checked non-null, valid per the caller's contract.
    unsafe { give(Kind::Processes(Box::new(p)), out) }
}

/// Where the generic worker is: `$KERNELPOOL_WORKER`, or beside this library.
fn default_worker() -> Ret<PathBuf> {
    if let Some(p) = std::env::var_os("KERNELPOOL_WORKER") {
        return Ok(PathBuf::from(p));
    }
    let mut tried = Vec::new();
    if let Some(lib) = this_library() {
        if let Some(dir) = lib.parent() {
            for cand in [
                dir.join("kpool-worker"),
                dir.join("../libexec/kernelpool/kpool-worker"),
            ] {
                if cand.is_file() {
                    return Ok(cand);
                }
                tried.push(cand.display().to_string());
            }
        }
    }
    Err(fail(
        KP_INVALID_ARGUMENT,
        format!(
            "kpool-worker not found (KERNELPOOL_WORKER is unset; looked at: {}): name its \
             path, or set KERNELPOOL_WORKER",
            if tried.is_empty() {
                "nothing, this library's file is unknown".to_string()
            } else {
                tried.join(", ")
            }
        ),
    ))
}

/// The file this library's code was mapped from (the shared object, or the executable
/// that linked the static library), from /proc/self/maps.
fn this_library() -> Option<PathBuf> {
    let addr = crate::kp_version as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, _perms, _off, _dev, _inode) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if (lo..hi).contains(&addr) {
            let path: String = f.collect::<Vec<_>>().join(" ");
            return path
                .starts_with('/')
                .then(|| Path::new(&path).to_path_buf());
        }
    }
    None
}

/// Release an executor (a process pool: its workers are told to exit, then killed if
/// they linger, and reaped); NULL does nothing. No call may be using it.
///
/// # Safety
/// `exec` is NULL or an executor not yet freed and not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_executor_free(exec: *mut kp_executor) {
    guard((), || {
        if !exec.is_null() {
            // SAFETY: made by Box::into_raw in `give`, freed once.
            drop(unsafe { Box::from_raw(exec) });
        }
    })
}

/// Number of workers of the executor (1 for serial) into `*out`.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `exec` is NULL or a live executor; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_executor_workers(
    exec: *const kp_executor,
    out: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let e = unsafe { handle(exec, "exec")? };
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_out(out, e.get().workers(), "out") }
    })
}

/// A description of the executor (`serial`, `threads(2)`, `processes(4, chunk 100)`)
/// into `buf` (`len` bytes, with its NUL) and its length into `*out_len` (may be NULL).
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_BUFFER_TOO_SMALL` (nothing written; `*out_len` tells the
/// length).
///
/// # Safety
/// `exec` is NULL or a live executor; `buf` is NULL or valid for `len` bytes; `out_len`
/// is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_executor_describe(
    exec: *const kp_executor,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let e = unsafe { handle(exec, "exec")? };
        // SAFETY: forwarded from the caller's contract.
        unsafe { copy_text_out(&e.get().describe(), buf, len, out_len) }
    })
}
