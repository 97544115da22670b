//! The one panic boundary every exported body runs in, this thread's last error, and the
//! checks of pointer and string arguments.

use crate::status::{Fail, Ret, fail, kp_status};
use std::cell::RefCell;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// The message of this thread's last failed call (never of a successful one).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Record `msg` as this thread's last error.
fn set_error(msg: String) {
    // `try_with`: during thread teardown the slot may be gone; the status still says it.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = msg);
}

/// A copy of this thread's last error message.
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|e| e.borrow().clone())
        .unwrap_or_default()
}

/// Run `f`, returning `on_panic` if it panics: the boundary of the exported functions that
/// return something other than a status (a pointer, a count). Nothing unwinds past it.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Run `f` behind the panic boundary: its error becomes the status it names and this
/// thread's last error message; a panic becomes `KP_PANIC` (with the panic's message).
pub(crate) fn boundary(f: impl FnOnce() -> Ret) -> kp_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => kp_status::KP_OK,
        Ok(Err(Fail { status, msg })) => {
            set_error(msg);
            status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            // Formatting the message cannot panic again past here: `guard` catches it.
            guard((), || {
                set_error(format!(
                    "panic inside kernelpool (a bug, please report it): {what}"
                ))
            });
            kp_status::KP_PANIC
        }
    }
}

/// A NULL check, naming the argument.
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Ret {
    if p.is_null() {
        return Err(fail(kp_status::KP_NULL_ARGUMENT, format!("{name} is NULL")));
    }
    Ok(())
}

/// Borrow the object behind a handle.
///
/// # Safety
/// `p` is NULL or points to a live object of type `T` made by this library, not freed.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> Ret<&'a T> {
    non_null(p, name)?;
    // SAFETY: non-null, and live per the caller's contract.
    Ok(unsafe { &*p })
}

/// Borrow a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Ret<&'a str> {
    non_null(p, name)?;
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| {
        fail(
            kp_status::KP_INVALID_ARGUMENT,
            format!("{name} is not UTF-8"),
        )
    })
}

/// Write `value` into the out-parameter `out` (checked for NULL first).
///
/// # Safety
/// `out` is NULL or valid for a write of a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> Ret {
    non_null(out, name)?;
    // SAFETY: non-null, and valid for a write per the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Copy `text` with a NUL into `buf` of `len` bytes when it fits, and its length (without
/// the NUL) into `*out_len`, which may be NULL. When it does not fit (or `buf` is NULL),
/// nothing is written into `buf` and the status is `KP_BUFFER_TOO_SMALL`: `*out_len`
/// tells the length, so the buffer needs `*out_len + 1` bytes. Sets no error message
/// itself: callers decide (the message getter must never clobber the message).
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes; `out_len` is NULL or valid for a write.
pub(crate) unsafe fn copy_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> kp_status {
    if !out_len.is_null() {
        // SAFETY: non-null, valid for a write per the caller's contract.
        unsafe { out_len.write(text.len()) };
    }
    if buf.is_null() || len <= text.len() {
        return kp_status::KP_BUFFER_TOO_SMALL;
    }
    // SAFETY: buf is valid for len > text.len() bytes, so text and the NUL fit; the
    // source is a Rust string, which cannot overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    kp_status::KP_OK
}

/// [`copy_text`] for functions that set the last error: too small is a failure with a
/// message naming the length needed.
///
/// # Safety
/// As [`copy_text`].
pub(crate) unsafe fn copy_text_out(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Ret {
    // SAFETY: forwarded from the caller's contract.
    match unsafe { copy_text(text, buf, len, out_len) } {
        kp_status::KP_OK => Ok(()),
        status => Err(fail(
            status,
            format!(
                "the text needs {} bytes with its NUL, the buffer has {len}",
                text.len() + 1
            ),
        )),
    }
}
