//! Kernels compiled at run time from C (the `kernelpool-jit` crate): a range kernel of
//! the user's source under a declared signature, or an element function `T f(T)` with the
//! range kernel the JIT generates around it. Compiled by the system compiler, cached by
//! content hash (the cache of `kpool jit`), loaded; the result is a `kp_kernel` like any
//! other, run by `kp_step_run` on every executor.

use crate::boundary::{boundary, handle, non_null, str_arg};
use crate::kernel::{elem_of, give, kp_kernel, kp_signature};
use crate::lang_of;
use crate::status::{Fail, Ret, fail, kp_status, kp_status::*, with_causes};
use kernelpool_jit::{Jit, JitError, Source};
use kernelpool_kernels::{Elem, Kernel, KernelName, Lang};
use std::ffi::c_char;

impl From<JitError> for Fail {
    fn from(e: JitError) -> Fail {
        let status = match &e {
            JitError::UnknownLanguage { .. } => KP_UNKNOWN_LANG,
            JitError::UnsupportedLanguage(_) => KP_NOT_SUPPORTED,
            JitError::ReadSource { .. } => KP_LOAD_FAILED,
            JitError::CompilerNotFound { .. } => KP_COMPILER_NOT_FOUND,
            JitError::CompileFailed { .. } | JitError::WrongSignature { .. } => KP_COMPILE_FAILED,
            JitError::MissingSymbol { .. } | JitError::Load(_) => KP_LOAD_FAILED,
            JitError::InvalidSymbol { .. } => KP_INVALID_ARGUMENT,
            JitError::NoCacheDir | JitError::UnsafeCacheDir { .. } | JitError::Io { .. } => {
                KP_JIT_CACHE_FAILED
            }
            JitError::Kernel(kernelpool_kernels::Error::InvalidSignature { .. }) => {
                KP_INVALID_SIGNATURE
            }
            _ => KP_LOAD_FAILED,
        };
        fail(status, with_causes(&e))
    }
}

/// The source: a file (language from its extension) or a text in `lang`.
///
/// # Safety
/// The strings are NULL or NUL-terminated.
unsafe fn source(path: *const c_char, text: *const c_char, lang: Option<u32>) -> Ret<Source> {
    match lang {
        None => {
            // SAFETY: forwarded from the caller's contract.
            let path = unsafe { str_arg(path, "path")? };
            Ok(Source::file(path)?)
        }
        Some(lang) => {
            // SAFETY: forwarded from the caller's contract.
            let text = unsafe { str_arg(text, "source_text")? };
            let lang = lang_of(lang)?;
            if lang == Lang::Rust {
                return Err(fail(
                    KP_NOT_SUPPORTED,
                    "the JIT compiles C, C++ and Fortran, not Rust",
                ));
            }
            Ok(Source::string(text, lang))
        }
    }
}

/// # Safety
/// As the exported functions that call it.
unsafe fn range_kernel(
    src: Ret<Source>,
    symbol: *const c_char,
    sig: *const kp_signature,
    out: *mut *mut kp_kernel,
) -> Ret {
    let src = src?;
    // SAFETY: forwarded from the caller's contract.
    let (symbol, s) = unsafe { (str_arg(symbol, "symbol")?, handle(sig, "sig")?) };
    non_null(out, "out")?;
    let contract = KernelName::custom(s.sig.clone())?;
    let jit = Jit::new()?;
    // SAFETY: the caller vouches for the source's kernel under `sig` (see # Safety).
    let k = unsafe { jit.range_kernel(&src, symbol, contract) }?;
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        give(
            kp_kernel {
                kernel: k.into_kernel(),
            },
            out,
        )
    }
}

/// # Safety
/// As the exported functions that call it.
unsafe fn element_fn(
    src: Ret<Source>,
    symbol: *const c_char,
    elem: u32,
    out: *mut *mut kp_kernel,
) -> Ret {
    let src = src?;
    // SAFETY: forwarded from the caller's contract.
    let symbol = unsafe { str_arg(symbol, "symbol")? };
    let elem = elem_of(elem, || format!("unknown element type {elem}"))?;
    non_null(out, "out")?;
    let jit = Jit::new()?;
    // SAFETY: the caller vouches for the element function (see # Safety).
    let kernel: Kernel = unsafe {
        match elem {
            Elem::I64 => jit.element_fn::<i64>(&src, symbol)?.kernel().clone(),
            Elem::F64 => jit.element_fn::<f64>(&src, symbol)?.kernel().clone(),
            _ => {
                return Err(fail(
                    KP_INVALID_ARGUMENT,
                    "an element function takes and returns KP_ELEM_I64 or KP_ELEM_F64",
                ));
            }
        }
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe { give(kp_kernel { kernel }, out) }
}

/// Compile the range kernel `symbol` of the source file `path` (C `.c`, C++ `.cpp`
/// `.cc` `.cxx`, Fortran `.f90` `.f`; `#include "kernelpool/kernels.h"` or
/// `"kernels.h"` finds the contract), described by `sig` (copied), or find it in the
/// cache; load it into `*out`. Compiled with the system compiler (`$CC`, `$CXX`, `$FC`)
/// and the built-in kernels' flags; cached as `kpool jit` caches
/// (`$KERNELPOOL_CACHE_DIR`, else `~/.cache/kernelpool`). Runs on every executor.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` (not UTF-8, a symbol that cannot be
/// named); `KP_UNKNOWN_LANG` (an extension of no language); `KP_LOAD_FAILED` (the file
/// cannot be read, the object lacks `symbol`: the message lists what it exports);
/// `KP_COMPILER_NOT_FOUND`; `KP_COMPILE_FAILED` (the message holds the compiler's
/// diagnostics); `KP_JIT_CACHE_FAILED`; `KP_INVALID_SIGNATURE`.
///
/// # Safety
/// Loading runs the library's initialisers, and `symbol` must follow the kernel
/// contract for `sig`, as `kp_kernel_from_fn` says. `sig` is NULL or live; the strings
/// are NULL or NUL-terminated; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_jit_kernel_file(
    path: *const c_char,
    symbol: *const c_char,
    sig: *const kp_signature,
    out: *mut *mut kp_kernel,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    boundary(|| unsafe { range_kernel(source(path, std::ptr::null(), None), symbol, sig, out) })
}

/// As `kp_jit_kernel_file`, from the source text `source_text` in language `lang`
/// (`KP_LANG_C`, `KP_LANG_CPP` or `KP_LANG_FORTRAN`, free form); diagnostics name it
/// `<string>`.
///
/// # Errors
/// Those of `kp_jit_kernel_file`; `KP_UNKNOWN_LANG` for an unknown `lang`,
/// `KP_NOT_SUPPORTED` for `KP_LANG_RUST`.
///
/// # Safety
/// As `kp_jit_kernel_file`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_jit_kernel_source(
    source_text: *const c_char,
    lang: u32,
    symbol: *const c_char,
    sig: *const kp_signature,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            range_kernel(
                source(std::ptr::null(), source_text, Some(lang)),
                symbol,
                sig,
                out,
            )
        }
    })
}

/// Compile the element function `symbol` of the source file `path` (`int64_t f(int64_t)`
/// for `KP_ELEM_I64`, `double f(double)` for `KP_ELEM_F64`; in Fortran a function of one
/// such argument) with the range kernel the JIT generates around it, and load that into
/// `*out`: a kernel of signature `in T[items], out T[items]` computing `out[i] =
/// f(in[i])`, for `kp_step_run` with two buffers on every executor (the C form of
/// `Pool.map(f, xs)`).
///
/// # Errors
/// Those of `kp_jit_kernel_file`; `KP_INVALID_ARGUMENT` for an element type other than
/// i64 or f64; `KP_COMPILE_FAILED` also when `f` does not have that signature.
///
/// # Safety
/// Loading runs the library's initialisers; `f` must return for every argument without
/// undefined behaviour, touching no memory but its own (it runs on several threads or
/// processes at once). The strings are NULL or NUL-terminated; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_jit_element_file(
    path: *const c_char,
    symbol: *const c_char,
    elem: u32,
    out: *mut *mut kp_kernel,
) -> kp_status {
    // SAFETY: forwarded from the caller's contract.
    boundary(|| unsafe { element_fn(source(path, std::ptr::null(), None), symbol, elem, out) })
}

/// As `kp_jit_element_file`, from the source text `source_text` in language `lang`.
///
/// # Errors
/// Those of `kp_jit_element_file` and `kp_jit_kernel_source`.
///
/// # Safety
/// As `kp_jit_element_file`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_jit_element_source(
    source_text: *const c_char,
    lang: u32,
    symbol: *const c_char,
    elem: u32,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            element_fn(
                source(std::ptr::null(), source_text, Some(lang)),
                symbol,
                elem,
                out,
            )
        }
    })
}
