//! Plain Rust functions named across processes. A worker started by `init()` runs the very
//! executable of the pool, so every function sits at the same offset from any other
//! function of the image, whatever address space layout randomisation did: a function
//! crosses as its offset from [`anchor`], together with the offset of a monomorphised
//! trampoline that decodes the argument, calls it and encodes the result.
//!
//! This holds only within one image: the pool checks that workers run the same executable
//! (same device and inode) before it sends functions, and workers check it again.

use crate::wire::FnRef;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    crate::wire::encode_into(out, r).map_err(|e| format!("cannot encode the result: {e}"))?;
    crate::wire::check_value_size("the result", out.len()).inspect_err(|_| out.clear())
}

impl FnRef {
    /// Name `f` (a `fn(A) -> R`) for a worker.
    pub(crate) fn of1<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> FnRef {
        let call: Trampoline = call1::<A, R>;
        FnRef {
            f: offset(f as usize),
            call: offset(call as usize),
        }
    }

    /// Name `f` (a `fn(A, B) -> R`) for a worker.
    pub(crate) fn of2<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
        f: fn(A, B) -> R,
    ) -> FnRef {
        let call: Trampoline = call2::<A, B, R>;
        FnRef {
            f: offset(f as usize),
            call: offset(call as usize),
        }
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
    fn functions_cross_as_offsets() {
        let r = FnRef::of1(double);
        // SAFETY: made by `of1` in this process.
        let (call, f) = unsafe { r.resolve() };
        let mut out = Vec::new();
        call(f, &postcard::to_stdvec(&21u32).unwrap(), &mut out).unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&out).unwrap(), 42);
        assert!(call(f, &[], &mut out).unwrap_err().contains("decode"));

        let r = FnRef::of2(join);
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
