//! Plain Rust functions named across processes. A worker started by `init()` runs the very
//! executable of the pool, so every function sits at the same offset from any other
//! function of the image, whatever address space layout randomisation did: a function
//! crosses as its offset from [`anchor`], together with the offset of a monomorphised
//! trampoline that decodes the argument, calls it and encodes the result.
//!
//! This holds only within one image: the pool checks that workers run the same executable
//! (same device and inode) before it sends functions, and workers check it again; and a
//! function (or its trampoline) that lives in another loaded object (a Rust dylib, a
//! plugin loaded with `dlopen`) has no fixed offset from the anchor, so it is refused
//! before anything is sent ([`FnRef::of1`] checks that both lie in the executable's own
//! mappings).

use crate::error::PoolError;
use crate::protocol::FnRef;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::sync::OnceLock;

/// What a trampoline returns when the call did not produce a value.
pub(crate) type CallError = String;

/// Signature of every trampoline: (function address, encoded argument, output) -> ok.
pub(crate) type Trampoline = fn(usize, &[u8], &mut Vec<u8>) -> Result<(), CallError>;

/// The fixed point functions are measured from.
#[inline(never)]
pub(crate) fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

fn offset(addr: usize) -> i64 {
    addr.wrapping_sub(anchor()) as i64
}

fn address(offset: i64) -> usize {
    anchor().wrapping_add(offset as usize)
}

/// Decode an `A`, call the `fn(A) -> R` at `f`, encode the `R` into `out`.
fn call1<A: DeserializeOwned, R: Serialize>(
    f: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CallError> {
    // SAFETY: `f` was computed by `FnRef::of1::<A, R>` from a `fn(A) -> R` of this same
    // executable (checked by the pool and the worker), so it is such a function's address.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let a: A = postcard::from_bytes(arg).map_err(|e| format!("cannot decode the argument: {e}"))?;
    let r = f(a);
    encode_result(out, &r)
}

/// Decode an `(A, B)`, call the `fn(A, B) -> R` at `f`, encode the `R` into `out`.
fn call2<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CallError> {
    // SAFETY: as in `call1`, `f` is the address of a `fn(A, B) -> R` of this executable.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    let (a, b): (A, B) =
        postcard::from_bytes(arg).map_err(|e| format!("cannot decode the arguments: {e}"))?;
    let r = f(a, b);
    encode_result(out, &r)
}

/// Encode a function's result into `out`, refusing one too large to be sent back.
fn encode_result<R: Serialize>(out: &mut Vec<u8>, r: &R) -> Result<(), CallError> {
    crate::protocol::encode_into(out, r).map_err(|e| format!("cannot encode the result: {e}"))?;
    crate::protocol::check_value_size("the result", out.len()).inspect_err(|_| out.clear())
}

/// (device, inode) of the running executable.
pub(crate) fn exe_identity() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The address ranges at which the executable's file is mapped (read once: the image does
/// not move), from `/proc/self/maps`.
fn executable_ranges() -> &'static [Range<usize>] {
    static RANGES: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let Some((dev, ino)) = exe_identity() else {
            return Vec::new();
        };
        let file = (rustix::fs::major(dev), rustix::fs::minor(dev), ino);
        // Some file systems (overlays) show another device in the maps than `stat` does:
        // the executable's path identifies its mappings there.
        let path = std::fs::read_link("/proc/self/exe").ok();
        let path = path.as_ref().and_then(|p| p.to_str());
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        maps.lines()
            .filter_map(|line| {
                let (range, id) = crate::protocol::parse_maps_line(line)?;
                let same_path = path.is_some_and(|p| line.ends_with(&format!(" {p}")));
                (id == file || same_path).then_some(range)
            })
            .collect()
    })
}

/// Is `addr` inside the executable's own mappings?
fn in_executable(addr: usize) -> bool {
    executable_ranges().iter().any(|r| r.contains(&addr))
}

/// Offsets of `f` and `call`, when both lie in the executable itself.
fn portable(f: usize, call: usize) -> Result<FnRef, PoolError> {
    for (what, addr) in [("function", f), ("its trampoline", call)] {
        if !in_executable(addr) {
            return Err(PoolError::FunctionNotInExecutable(format!(
                "the {what} at {addr:#x} is not in the executable's own code (it lives in a \
                 shared library or a plugin), so a worker cannot find it"
            )));
        }
    }
    Ok(FnRef {
        f: offset(f),
        call: offset(call),
    })
}

impl FnRef {
    /// Name `f` (a `fn(A) -> R`) for a worker.
    ///
    /// # Errors
    /// [`PoolError::FunctionNotInExecutable`] for a function outside the executable.
    pub(crate) fn of1<A: DeserializeOwned, R: Serialize>(
        f: fn(A) -> R,
    ) -> Result<FnRef, PoolError> {
        let call: Trampoline = call1::<A, R>;
        portable(f as usize, call as usize)
    }

    /// Name `f` (a `fn(A, B) -> R`) for a worker.
    ///
    /// # Errors
    /// [`PoolError::FunctionNotInExecutable`] for a function outside the executable.
    pub(crate) fn of2<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
        f: fn(A, B) -> R,
    ) -> Result<FnRef, PoolError> {
        let call: Trampoline = call2::<A, B, R>;
        portable(f as usize, call as usize)
    }

    /// Worker side: the trampoline and the function address.
    ///
    /// # Safety
    /// `self` must have been made by [`FnRef::of1`] or [`FnRef::of2`] in a process running
    /// the same executable image as this one.
    pub(crate) unsafe fn resolve(self) -> (Trampoline, usize) {
        // SAFETY: by the caller's contract `self.call` is the offset of a trampoline of
        // this very image, hence `address(self.call)` is that trampoline's address.
        let call = unsafe { std::mem::transmute::<usize, Trampoline>(address(self.call)) };
        (call, address(self.f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        2 * x as u64
    }

    fn join(a: String, b: i8) -> String {
        format!("{a}{b}")
    }

    #[test]
    fn functions_outside_the_executable_are_refused() {
        // A function of libc (a shared object) is not in the executable's mappings.
        let outside = libc_strlen_address();
        assert!(!in_executable(outside));
        assert!(in_executable(anchor()));
        let e = portable(outside, anchor()).unwrap_err();
        assert!(e.to_string().contains("not in the executable"), "{e}");
        assert!(portable(anchor(), outside).is_err());
    }

    fn libc_strlen_address() -> usize {
        unsafe extern "C" {
            fn strlen(s: *const std::ffi::c_char) -> usize;
        }
        strlen as *const () as usize
    }

    #[test]
    fn functions_cross_as_offsets() {
        let r = FnRef::of1(double).unwrap();
        // SAFETY: made by `of1` in this process.
        let (call, f) = unsafe { r.resolve() };
        let mut out = Vec::new();
        call(f, &postcard::to_stdvec(&21u32).unwrap(), &mut out).unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&out).unwrap(), 42);
        assert!(call(f, &[], &mut out).unwrap_err().contains("decode"));

        let r = FnRef::of2(join).unwrap();
        // SAFETY: made by `of2` in this process.
        let (call, f) = unsafe { r.resolve() };
        let mut out = Vec::new();
        call(
            f,
            &postcard::to_stdvec(&("x".to_string(), -3i8)).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(postcard::from_bytes::<String>(&out).unwrap(), "x-3");
    }
}
