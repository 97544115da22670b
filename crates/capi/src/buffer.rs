//! Buffers the library allocates in shared memory, for every executor (the only ones a
//! process pool's workers can reach), and the caller's own memory for the others.

use crate::boundary::{boundary, guard, handle, write_out};
use crate::kernel::elem_of;
use crate::status::{Ret, fail, kp_status, kp_status::*};
use kernelpool_kernels::{Buffer, Elem, Memory};
use kernelpool_pool::SharedMemory;
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// A buffer of `len` elements in shared memory, zeroed when made: `kp_buffer_new`,
/// `kp_buffer_free`. `kp_buffer_data` gives its pointer and length; the caller fills it
/// before a step and reads it after, and the workers of a process pool map the same
/// pages, so nothing is copied. Usable on every executor. Neither the caller nor another
/// call may touch it while a call uses it (such a call returns `KP_BUSY`).
#[derive(Debug)]
pub struct kp_buffer {
    /// The buffer; `&mut` only while `busy` is held.
    buf: UnsafeCell<Buffer>,
    busy: AtomicBool,
    /// Fixed at creation, so that `kp_buffer_data` never looks into `buf`.
    ptr: *mut u8,
    elem: Elem,
    len: usize,
}

// SAFETY: `buf` is reached mutably only by the one call that set `busy` (see `Lease`);
// the other fields are immutable after creation; the memory is shared memory owned by
// the buffer, with no tie to a thread.
unsafe impl Sync for kp_buffer {}
// SAFETY: as above.
unsafe impl Send for kp_buffer {}

/// A buffer held by one call: released when dropped.
pub(crate) struct Lease<'a>(&'a kp_buffer);

impl kp_buffer {
    /// Take the buffer for one call, or `KP_BUSY`.
    pub(crate) fn lease(&self, slot: usize) -> Ret<Lease<'_>> {
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(fail(
                KP_BUSY,
                format!("buffer {slot} is in use by another call"),
            ));
        }
        Ok(Lease(self))
    }
}

impl Lease<'_> {
    /// The buffer, for the step this lease is for.
    pub(crate) fn buffer(&mut self) -> &mut Buffer {
        // SAFETY: `busy` is held by this lease, so no other reference to the buffer
        // exists; `&mut self` makes this the only one of the lease.
        unsafe { &mut *self.0.buf.get() }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// A zeroed buffer of `len` elements of `elem` (a `kp_elem` value) in shared memory into
/// `*out`; release it with `kp_buffer_free`. Its start is aligned to 64 bytes.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` (an unknown element type, `len` 0);
/// `KP_OUT_OF_MEMORY` (more than the memory available, or refused by the system: the
/// message says which limit).
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_buffer_new(
    elem: u32,
    len: usize,
    out: *mut *mut kp_buffer,
) -> kp_status {
    boundary(|| {
        crate::boundary::non_null(out, "out")?;
        let elem = elem_of(elem, || "elem".into())?;
        if len == 0 {
            return Err(fail(
                KP_INVALID_ARGUMENT,
                "len is 0: a buffer holds at least 1 element",
            ));
        }
        let bytes = len as u128 * elem.size() as u128;
        let what = format!("a buffer of {len} x {elem:?}");
        kernelpool_kernels::buffer::check_fits(bytes, &what)?;
        let failed = |reason: String| kernelpool_kernels::Error::AllocFailed {
            what: what.clone(),
            bytes,
            reason,
        };
        let size = usize::try_from(bytes)
            .ok()
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| failed("more than this platform's address space".into()))?;
        let shm = SharedMemory::new(size).map_err(|e| {
            failed(kernelpool_kernels::buffer::explain_alloc_failure(
                "shared memory (memfd + mmap) was refused",
                e,
            ))
        })?;
        let ptr = shm.ptr();
        let buf = Buffer::from_memory(elem, len, Box::new(shm))?;
        let b = Box::into_raw(Box::new(kp_buffer {
            buf: UnsafeCell::new(buf),
            busy: AtomicBool::new(false),
            ptr,
            elem,
            len,
        }));
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_out(out, b, "out") }
    })
}

/// The buffer's memory: its start into `*out_data` (aligned to 64 bytes; `int64_t *`,
/// `double *` or `uint8_t *` after its element type) and its length in elements into
/// `*out_len`. The pointer stays valid until `kp_buffer_free`.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `buf` is NULL or live; the out-parameters are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_buffer_data(
    buf: *const kp_buffer,
    out_data: *mut *mut c_void,
    out_len: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let b = unsafe { handle(buf, "buf")? };
        crate::boundary::non_null(out_data, "out_data")?;
        crate::boundary::non_null(out_len, "out_len")?;
        // SAFETY: both checked non-null, valid for writes per the caller's contract.
        unsafe {
            write_out(out_data, b.ptr.cast::<c_void>(), "out_data")?;
            write_out(out_len, b.len, "out_len")
        }
    })
}

/// The element type of the buffer (a `kp_elem` value) into `*out`.
///
/// # Errors
/// `KP_NULL_ARGUMENT`.
///
/// # Safety
/// `buf` is NULL or live; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_buffer_elem(buf: *const kp_buffer, out: *mut u32) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let b = unsafe { handle(buf, "buf")? };
        let v = match b.elem {
            Elem::I64 => 0,
            Elem::F64 => 1,
            _ => 2,
        };
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_out(out, v, "out") }
    })
}

/// Release a buffer; NULL does nothing. Worker processes that mapped it drop their
/// mapping with the next step.
///
/// # Safety
/// `buf` is NULL or a buffer not yet freed and not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_buffer_free(buf: *mut kp_buffer) {
    guard((), || {
        if !buf.is_null() {
            // SAFETY: made by Box::into_raw in kp_buffer_new, freed once.
            drop(unsafe { Box::from_raw(buf) });
        }
    })
}

/// The caller's own memory as one buffer of a step (`kp_step_run_mem`): `len` elements
/// of `elem` (a `kp_elem` value) at `data`. For serial and thread executors; memory
/// aligned to 64 bytes (`aligned_alloc(64, ...)`) is used in place, other memory is
/// copied in before the step and the buffers the kernel writes copied back after.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kp_mem {
    /// A `kp_elem` value.
    pub elem: u32,
    /// The first element (aligned to its type at least).
    pub data: *mut c_void,
    /// Number of elements (at least 1).
    pub len: usize,
}

/// Caller memory lent to one step.
#[derive(Debug)]
pub(crate) struct CallerMemory {
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: a plain (pointer, size) pair; the step that uses it is what synchronises.
unsafe impl Send for CallerMemory {}
// SAFETY: as above.
unsafe impl Sync for CallerMemory {}

// SAFETY: made only by `caller_buffer` for memory that is 64-byte aligned, valid for
// `bytes` bytes for the whole step (the caller's contract of kp_step_run_mem) and lent
// to that one step; the Buffer holding it is dropped before the call returns.
unsafe impl Memory for CallerMemory {
    fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// How a caller buffer reaches a step: in place, or through an aligned copy.
pub(crate) struct CallerBuffer {
    pub buf: Buffer,
    /// (caller memory, bytes) to copy back into after the step, for a copy.
    pub copy_back: Option<(*mut u8, usize)>,
}

/// The buffer of `m` (slot `i`) for one step.
///
/// # Safety
/// `m.data` is valid for reads and writes of `m.len` elements for the whole step.
pub(crate) unsafe fn caller_buffer(i: usize, m: &kp_mem) -> Ret<CallerBuffer> {
    let elem = elem_of(m.elem, || format!("buffer {i}"))?;
    if m.data.is_null() {
        return Err(fail(KP_NULL_ARGUMENT, format!("buffer {i}: data is NULL")));
    }
    if m.len == 0 {
        return Err(fail(KP_INVALID_ARGUMENT, format!("buffer {i}: len is 0")));
    }
    let bytes = m
        .len
        .checked_mul(elem.size())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            fail(
                KP_INVALID_ARGUMENT,
                format!("buffer {i}: len {} is too large", m.len),
            )
        })?;
    let ptr = m.data.cast::<u8>();
    if ptr.addr() % elem.size() != 0 {
        return Err(fail(
            KP_INVALID_ARGUMENT,
            format!(
                "buffer {i}: data is not aligned to its {}-byte elements",
                elem.size()
            ),
        ));
    }
    if ptr.addr() % kernelpool_kernels::buffer::ALIGN == 0 {
        let buf = Buffer::from_memory(elem, m.len, Box::new(CallerMemory { ptr, bytes }))?;
        return Ok(CallerBuffer {
            buf,
            copy_back: None,
        });
    }
    let buf = Buffer::heap(elem, m.len, &format!("a copy of buffer {i}"))?;
    // SAFETY: `ptr` is valid for `bytes` bytes (caller's contract); the heap buffer holds
    // exactly `bytes` bytes of its own, so the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(ptr, buf.memory().ptr(), bytes) };
    Ok(CallerBuffer {
        buf,
        copy_back: Some((ptr, bytes)),
    })
}
