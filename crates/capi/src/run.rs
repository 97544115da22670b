//! Running from C: built-in programs (canonical output, as `kpool run` prints it) and
//! kernel steps over buffers.

use crate::boundary::{boundary, handle, non_null, str_arg};
use crate::buffer::{CallerBuffer, Lease, caller_buffer, kp_buffer, kp_mem};
use crate::executor::kp_executor;
use crate::kernel::{kp_kernel, slice_arg};
use crate::status::{Ret, fail, kp_status, kp_status::*};
use kernelpool_kernels::step::{MAX_BUFS, PARTIAL_LEN};
use kernelpool_kernels::{Buffer, Executor, Kernel, Options, Partial, Step, StepArgs, programs};
use std::ffi::c_char;

/// The scalar arguments of one kernel step (what `kp_kargs` holds besides the buffers).
/// Zero-initialise it (`kp_step_args a = {0};`) and set what the kernel reads.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kp_step_args {
    /// Problem size parameter N (what `KP_LEN_N` lengths and `max_n` refer to).
    pub n: u64,
    /// Items of the step: `[0, items)` is what executors split into chunks.
    pub items: u64,
    /// Integer parameters (`args->iparam`).
    pub iparam: [i64; 4],
    /// Floating-point parameters (`args->fparam`).
    pub fparam: [f64; 4],
}

/// Run a built-in kernel's program (`kp_kernel` and `kp_lang` values) over N = `n` (0:
/// the size its reference output was published for) on `exec`, and copy its canonical
/// output, byte for byte what `kpool run KERNEL --lang LANG --n N` prints on stdout,
/// into `out` (`out_len` bytes); `*out_written` receives its length. `systems` is
/// nbody's number of independent systems (`kpool run --systems`; 0 or 1: the published
/// problem) and is ignored by the other kernels.
///
/// When `out_len` is too small (`out` may then be NULL with `out_len` 0), the status is
/// `KP_BUFFER_TOO_SMALL`, nothing is written into `out`, and `*out_written` receives the
/// length needed.
///
/// # Errors
/// `KP_NULL_ARGUMENT`, `KP_UNKNOWN_KERNEL`, `KP_UNKNOWN_LANG`, `KP_INVALID_SIZE` (N
/// outside the kernel's bounds), `KP_OUT_OF_MEMORY`, `KP_BUFFER_TOO_SMALL`, and the
/// executor's: `KP_KERNEL_FAILED`, `KP_WORKER_CRASHED`, `KP_TIMED_OUT`,
/// `KP_EXECUTOR_FAILED`, `KP_VALIDATION_FAILED` (triad).
///
/// # Safety
/// `exec` is NULL or live; `out` is NULL or valid for `out_len` bytes; `out_written` is
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_program_run(
    exec: *const kp_executor,
    kernel: u32,
    lang: u32,
    n: u64,
    systems: u64,
    out: *mut u8,
    out_len: usize,
    out_written: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let e = unsafe { handle(exec, "exec")? };
        let k = Kernel::get(crate::kernel_of(kernel)?, crate::lang_of(lang)?);
        // SAFETY: forwarded from the caller's contract.
        unsafe { program(e.get(), k, n, systems, out, out_len, out_written) }
    })
}

/// As `kp_program_run`, with the kernel's `variant` (a `kp_variant` value): the output is
/// the same, byte for byte, for every variant.
///
/// # Errors
/// Those of `kp_program_run`; `KP_UNKNOWN_VARIANT`, and `KP_NO_VARIANT` when the kernel
/// has no such variant in that language.
///
/// # Safety
/// As `kp_program_run`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_program_run_variant(
    exec: *const kp_executor,
    kernel: u32,
    lang: u32,
    variant: u32,
    n: u64,
    systems: u64,
    out: *mut u8,
    out_len: usize,
    out_written: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let e = unsafe { handle(exec, "exec")? };
        let k = Kernel::get_variant(
            crate::kernel_of(kernel)?,
            crate::lang_of(lang)?,
            crate::variant_of(variant)?,
        )?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { program(e.get(), k, n, systems, out, out_len, out_written) }
    })
}

/// # Safety
/// As `kp_program_run`.
unsafe fn program(
    exec: &dyn Executor,
    kernel: Kernel,
    n: u64,
    systems: u64,
    out: *mut u8,
    out_len: usize,
    out_written: *mut usize,
) -> Ret {
    non_null(out_written, "out_written")?;
    if out.is_null() && out_len != 0 {
        return Err(fail(KP_NULL_ARGUMENT, "out is NULL with out_len above 0"));
    }
    let mut opts = Options::new().systems(systems.max(1));
    if n != 0 {
        opts = opts.n(n);
    }
    let result = programs::run(kernel, &opts, exec)?;
    let bytes = &result.stdout;
    if bytes.len() > out_len {
        // SAFETY: out_written checked non-null, valid per the caller's contract.
        unsafe { out_written.write(bytes.len()) };
        return Err(fail(
            KP_BUFFER_TOO_SMALL,
            format!(
                "the output needs {} bytes, the buffer has {out_len}",
                bytes.len()
            ),
        ));
    }
    // SAFETY: out is non-null (out_len >= bytes.len() > 0, or nothing is copied) and
    // valid for out_len bytes; out_written is non-null and valid.
    unsafe {
        if !bytes.is_empty() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
        }
        out_written.write(bytes.len());
    }
    Ok(())
}

/// Run a built-in kernel's program serially, by names (`"spectralnorm"`, `"fortran"`;
/// `n` 0 for the reference size): `kp_program_run` on a serial executor with
/// `kp_kernel_by_name` and `kp_lang_by_name`. Kept from the first C ABI.
///
/// # Errors
/// As `kp_program_run`, except that an unknown kernel or language name is
/// `KP_INVALID_ARGUMENT`, as it was in the first C ABI (and a name that is not UTF-8).
///
/// # Safety
/// The strings are NULL or NUL-terminated; `out` is NULL or valid for `out_len` bytes;
/// `out_written` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_run_program(
    kernel: *const c_char,
    lang: *const c_char,
    n: u64,
    out: *mut u8,
    out_len: usize,
    out_written: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let (k, l) = unsafe { (str_arg(kernel, "kernel")?, str_arg(lang, "lang")?) };
        let kernel =
            Kernel::by_names(k, l).map_err(|e| fail(KP_INVALID_ARGUMENT, e.to_string()))?;
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            program(
                &kernelpool_kernels::Serial,
                kernel,
                n,
                1,
                out,
                out_len,
                out_written,
            )
        }
    })
}

/// Check the partial out-parameter against the kernel's slots.
fn check_partial(kernel: &Kernel, partial: *mut i64, partial_len: usize) -> Ret {
    let slots = kernel.signature().partials().len();
    if partial.is_null() && partial_len != 0 {
        return Err(fail(
            KP_NULL_ARGUMENT,
            "partial is NULL with partial_len above 0",
        ));
    }
    if partial_len < slots {
        return Err(fail(
            KP_INVALID_ARGUMENT,
            format!(
                "kernel {} has {slots} partial slots, partial_len is {partial_len}",
                kernel.name()
            ),
        ));
    }
    Ok(())
}

/// Run one step, then write the partial.
///
/// # Safety
/// `partial` is NULL or valid for `partial_len` writes (checked by `check_partial`).
unsafe fn step<'b>(
    exec: &dyn Executor,
    kernel: &Kernel,
    args: &kp_step_args,
    bufs: impl IntoIterator<Item = &'b mut Buffer>,
    partial: *mut i64,
    partial_len: usize,
) -> Ret {
    let args = StepArgs {
        n: args.n,
        items: args.items,
        iparam: args.iparam,
        fparam: args.fparam,
    };
    let s = Step::new(kernel.clone(), args, bufs)?;
    exec.check_items(args.items)?;
    let p: Partial = exec.run(&s)?;
    let n = partial_len.min(PARTIAL_LEN);
    if n > 0 {
        // SAFETY: partial is non-null and valid for partial_len >= n writes
        // (check_partial and the caller's contract); the source is a local array.
        unsafe { std::ptr::copy_nonoverlapping(p.0.as_ptr(), partial, n) };
    }
    Ok(())
}

/// Run one step of `kernel` on `exec` over buffers from `kp_buffer_new` (`buf_count` of
/// them, in the kernel's slot order; `bufs` may be NULL when 0), checked against the
/// kernel's signature; then the combined partial into `partial` (`partial_len` slots, at
/// least the kernel's number of partial slots; may be NULL with 0; at most
/// `KP_PARTIAL_LEN` are written, unused slots as 0). Works on every executor; the
/// process pool's workers write straight into the buffers' shared memory.
///
/// # Errors
/// `KP_NULL_ARGUMENT` (a handle, `args`, a buffer, `bufs` with a count); `KP_INVALID_ARGUMENT`
/// (the same buffer twice, `partial_len` below the kernel's slots); `KP_BAD_BUFFERS`
/// (a count, element type or length the signature refuses); `KP_INVALID_SIZE`; `KP_BUSY`
/// (a buffer in use by another call); and the run's: `KP_KERNEL_FAILED`,
/// `KP_WORKER_CRASHED`, `KP_TIMED_OUT`, `KP_NOT_SUPPORTED` (a function-pointer kernel on
/// a process pool), `KP_EXECUTOR_FAILED`.
///
/// # Safety
/// The handles are NULL or live; `args` is NULL or valid; `bufs` is NULL or valid for
/// `buf_count` reads; `partial` is NULL or valid for `partial_len` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_step_run(
    exec: *const kp_executor,
    kernel: *const kp_kernel,
    args: *const kp_step_args,
    bufs: *const *mut kp_buffer,
    buf_count: usize,
    partial: *mut i64,
    partial_len: usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let (e, k, a) = unsafe {
            (
                handle(exec, "exec")?,
                handle(kernel, "kernel")?,
                handle(args, "args")?,
            )
        };
        // SAFETY: forwarded from the caller's contract.
        let ptrs = unsafe { slice_arg(bufs, buf_count, "bufs")? };
        check_partial(&k.kernel, partial, partial_len)?;
        for (i, p) in ptrs.iter().enumerate() {
            if p.is_null() {
                return Err(fail(KP_NULL_ARGUMENT, format!("bufs[{i}] is NULL")));
            }
            if let Some(j) = ptrs[..i].iter().position(|q| q == p) {
                return Err(fail(
                    KP_INVALID_ARGUMENT,
                    format!("bufs[{j}] and bufs[{i}] are the same buffer"),
                ));
            }
        }
        // At most KP_MAX_BUFS leases, on the stack (this is the hot path of a step).
        let expected = k.kernel.signature().buffers().len();
        if ptrs.len() > MAX_BUFS {
            return Err(fail(
                KP_BAD_BUFFERS,
                format!(
                    "bad buffers for kernel {}: expected {expected} buffers, got {}",
                    k.kernel.name(),
                    ptrs.len()
                ),
            ));
        }
        let mut leases: [Option<Lease<'_>>; MAX_BUFS] = Default::default();
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: non-null and live per the caller's contract.
            let b: &kp_buffer = unsafe { &**p };
            leases[i] = Some(b.lease(i)?);
        }
        let bufs = leases.iter_mut().flatten().map(|l| l.buffer());
        // SAFETY: partial checked by check_partial, valid per the caller's contract.
        unsafe { step(e.get(), &k.kernel, a, bufs, partial, partial_len) }
    })
}

/// Run one step of `kernel` on `exec` over the caller's own memory (`mem_count`
/// `kp_mem`, in slot order; `mem` may be NULL when 0), as `kp_step_run` does. For serial
/// and thread executors (a process pool returns `KP_NOT_SUPPORTED`: its workers cannot
/// reach this memory; use `kp_buffer_new`). Buffers may not overlap when one of them is
/// written.
///
/// # Errors
/// As `kp_step_run`; `KP_NULL_ARGUMENT` for a NULL `data`, `KP_INVALID_ARGUMENT` for a
/// length of 0, an unknown element type, memory not aligned to its element type, or
/// buffers that overlap.
///
/// # Safety
/// As `kp_step_run`; each `mem[i].data` is valid for reads and writes of `mem[i].len`
/// elements and used by nothing else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_step_run_mem(
    exec: *const kp_executor,
    kernel: *const kp_kernel,
    args: *const kp_step_args,
    mem: *const kp_mem,
    mem_count: usize,
    partial: *mut i64,
    partial_len: usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let (e, k, a) = unsafe {
            (
                handle(exec, "exec")?,
                handle(kernel, "kernel")?,
                handle(args, "args")?,
            )
        };
        // SAFETY: forwarded from the caller's contract.
        let mems = unsafe { slice_arg(mem, mem_count, "mem")? };
        check_partial(&k.kernel, partial, partial_len)?;
        let specs = k.kernel.signature().buffers();
        let writes = |i: usize| specs.get(i).is_none_or(|s| s.access.writes());
        let mut bufs: Vec<CallerBuffer> = Vec::with_capacity(mems.len());
        for (i, m) in mems.iter().enumerate() {
            // SAFETY: forwarded from the caller's contract.
            bufs.push(unsafe { caller_buffer(i, m)? });
        }
        for i in 0..mems.len() {
            for j in 0..i {
                let (a_span, b_span) = (range_of(&mems[i]), range_of(&mems[j]));
                if a_span.start < b_span.end
                    && b_span.start < a_span.end
                    && (writes(i) || writes(j))
                {
                    return Err(fail(
                        KP_INVALID_ARGUMENT,
                        format!("buffers {j} and {i} overlap, and the kernel writes one of them"),
                    ));
                }
            }
        }
        let refs = bufs.iter_mut().map(|b| &mut b.buf);
        // SAFETY: partial checked by check_partial, valid per the caller's contract.
        let r = unsafe { step(e.get(), &k.kernel, a, refs, partial, partial_len) };
        // Copies go back whatever happened, as memory used in place would show it.
        for (i, b) in bufs.iter().enumerate() {
            if let (Some((dst, bytes)), true) = (b.copy_back, writes(i)) {
                // SAFETY: `dst` is the caller's memory of `bytes` bytes (its contract);
                // the heap copy is ours and as long; they do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(b.buf.memory().ptr(), dst, bytes) };
            }
        }
        r
    })
}

/// The bytes a `kp_mem` covers (its element type was checked by `caller_buffer`).
fn range_of(m: &kp_mem) -> std::ops::Range<usize> {
    let size = match m.elem {
        2 => 1,
        _ => 8,
    };
    let start = m.data.addr();
    start..start.saturating_add(m.len.saturating_mul(size))
}
