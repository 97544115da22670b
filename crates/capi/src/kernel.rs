//! Signatures and kernels from C: built-in kernels, a C function pointer, a (shared
//! object, symbol) pair; each described by the kernels crate's one `Signature`.

use crate::boundary::{boundary, copy_text_out, guard, handle, non_null, str_arg, write_out};
use crate::status::{Ret, fail, kp_status, kp_status::*};
use kernelpool_kernels::ffi::kp_range_fn;
use kernelpool_kernels::signature::{Access, Len, Reduce, Signature};
use kernelpool_kernels::{Elem, Kernel, KernelName, Lang};
use std::ffi::c_char;
use std::path::Path;

/// Element types of buffers (`kp_buffer_desc::elem`, `kp_buffer_new`, `kp_mem::elem`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum kp_elem {
    /// `int64_t`
    KP_ELEM_I64 = 0,
    /// `double`
    KP_ELEM_F64 = 1,
    /// `uint8_t`
    KP_ELEM_U8 = 2,
}

/// How a kernel uses a buffer (`kp_buffer_desc::access`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum kp_access {
    /// Only read (an input).
    KP_ACCESS_READ = 0,
    /// Only written (an output; item i by the chunk that owns it).
    KP_ACCESS_WRITE = 1,
    /// Read and written (item i by the chunk that owns it).
    KP_ACCESS_READ_WRITE = 2,
}

/// How the least length of a buffer follows from a step's arguments
/// (`kp_buffer_desc::len_kind`, with `kp_buffer_desc::len`). A step's buffer may be
/// longer, never shorter.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum kp_len_kind {
    /// `len x items` elements (`len` 0 counts as 1).
    KP_LEN_ITEMS = 0,
    /// `len x n` elements (`len` 0 counts as 1).
    KP_LEN_N = 1,
    /// Exactly `len` elements at least.
    KP_LEN_FIXED = 2,
    /// Any length: the kernel reads `args->len[i]`.
    KP_LEN_ANY = 3,
    /// N rows of N bits, 8 to a byte: `n x ceil(n / 8)` (a PBM bitmap).
    KP_LEN_BIT_ROWS = 4,
}

/// How a partial slot combines across chunks (`kp_signature_desc::partials`). Integer
/// slots are exact: the result never depends on the split. Float slots hold the bits of
/// a `double` (`kp_slot_f64` reads one) and are combined in chunk order, so a float sum
/// depends on the chunk size only, never on the executor or the number of workers
/// (serial runs the whole range as one chunk); float max and min do not depend on the
/// split at all.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum kp_reduce {
    /// Wrapping `int64_t` sum (identity 0).
    KP_REDUCE_SUM_I64 = 0,
    /// `int64_t` maximum (identity INT64_MIN).
    KP_REDUCE_MAX_I64 = 1,
    /// `int64_t` minimum (identity INT64_MAX).
    KP_REDUCE_MIN_I64 = 2,
    /// `double` sum (identity -0.0), in chunk order.
    KP_REDUCE_SUM_F64 = 3,
    /// `double` maximum (identity -inf; NaN wins).
    KP_REDUCE_MAX_F64 = 4,
    /// `double` minimum (identity +inf; NaN wins).
    KP_REDUCE_MIN_F64 = 5,
}

/// One buffer of a signature: element type (`kp_elem`), access (`kp_access`) and least
/// length (`kp_len_kind` and its `len`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kp_buffer_desc {
    /// A `kp_elem` value.
    pub elem: u32,
    /// A `kp_access` value.
    pub access: u32,
    /// A `kp_len_kind` value.
    pub len_kind: u32,
    /// The factor (`KP_LEN_ITEMS`, `KP_LEN_N`) or the length (`KP_LEN_FIXED`); unused
    /// otherwise.
    pub len: u64,
}

/// What a kernel reads and writes, for `kp_signature_new`: its name (in messages), its
/// buffers in slot order (at most `KP_MAX_BUFS`), its partial slots in slot order (at
/// most `KP_PARTIAL_LEN` `kp_reduce` values), and the largest N it accepts (0: any).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kp_signature_desc {
    /// The kernel's name, NUL-terminated (not empty).
    pub name: *const c_char,
    /// `buffer_count` buffer descriptions (may be NULL when `buffer_count` is 0).
    pub buffers: *const kp_buffer_desc,
    /// Number of buffers.
    pub buffer_count: usize,
    /// `partial_count` `kp_reduce` values (may be NULL when `partial_count` is 0).
    pub partials: *const u32,
    /// Number of partial slots (0: not a reduction).
    pub partial_count: usize,
    /// The largest N a step may have (checked by every step, with N >= 1); 0: no bound.
    pub max_n: u64,
}

/// A kernel signature (the kernels crate's `Signature`, validated): made by
/// `kp_signature_new` or `kp_signature_parse`, released by `kp_signature_free`.
/// Immutable: usable from several threads. Kernels made with it keep their own copy.
#[derive(Debug)]
pub struct kp_signature {
    pub(crate) sig: Signature,
}

/// A kernel ready to run on an executor: a built-in one (`kp_kernel_builtin`), a C
/// function (`kp_kernel_from_fn`) or a function in a shared object
/// (`kp_kernel_from_library`). Released by `kp_kernel_free`; a kernel from a shared
/// object keeps the library loaded until then. Immutable: usable from several threads.
#[derive(Debug)]
pub struct kp_kernel {
    pub(crate) kernel: Kernel,
}

/// The element type of a `kp_elem` value.
pub(crate) fn elem_of(v: u32, what: impl FnOnce() -> String) -> Ret<Elem> {
    Ok(match v {
        0 => Elem::I64,
        1 => Elem::F64,
        2 => Elem::U8,
        _ => {
            return Err(fail(
                KP_INVALID_ARGUMENT,
                format!(
                    "{}: unknown element type {v} (KP_ELEM_I64 0, KP_ELEM_F64 1, KP_ELEM_U8 2)",
                    what()
                ),
            ));
        }
    })
}

fn buffer_of(i: usize, d: &kp_buffer_desc) -> Ret<(Elem, Len, Access)> {
    let what = format!("buffer {i}");
    let elem = elem_of(d.elem, || what.clone())?;
    let access = match d.access {
        0 => Access::Read,
        1 => Access::Write,
        2 => Access::ReadWrite,
        v => {
            return Err(fail(
                KP_INVALID_ARGUMENT,
                format!(
                    "{what}: unknown access {v} (KP_ACCESS_READ 0, KP_ACCESS_WRITE 1, KP_ACCESS_READ_WRITE 2)"
                ),
            ));
        }
    };
    let len = match d.len_kind {
        0 => Len::Items(d.len.max(1)),
        1 => Len::N(d.len.max(1)),
        2 => Len::Fixed(d.len),
        3 => Len::Any,
        4 => Len::BitRows,
        v => {
            return Err(fail(
                KP_INVALID_ARGUMENT,
                format!(
                    "{what}: unknown length kind {v} (KP_LEN_ITEMS 0, KP_LEN_N 1, KP_LEN_FIXED 2, KP_LEN_ANY 3, KP_LEN_BIT_ROWS 4)"
                ),
            ));
        }
    };
    Ok((elem, len, access))
}

fn reduce_of(i: usize, v: u32) -> Ret<Reduce> {
    Ok(match v {
        0 => Reduce::Sum,
        1 => Reduce::Max,
        2 => Reduce::Min,
        3 => Reduce::SumF64,
        4 => Reduce::MaxF64,
        5 => Reduce::MinF64,
        _ => {
            return Err(fail(
                KP_INVALID_ARGUMENT,
                format!(
                    "partial slot {i}: unknown reduction {v} (KP_REDUCE_SUM_I64 0 ... KP_REDUCE_MIN_F64 5)"
                ),
            ));
        }
    })
}

/// A slice from a C (pointer, count) pair; NULL is allowed for 0 elements.
///
/// # Safety
/// `p` is NULL or valid for reads of `n` elements for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, n: usize, name: &str) -> Ret<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    non_null(p, name)?;
    if n > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(fail(
            KP_INVALID_ARGUMENT,
            format!("{name}: count {n} is too large"),
        ));
    }
    // SAFETY: non-null, valid for n elements per the caller's contract, size checked.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Give a boxed handle through `out`.
///
/// # Safety
/// `out` is NULL or valid for a write.
pub(crate) unsafe fn give<T>(value: T, out: *mut *mut T) -> Ret {
    non_null(out, "out")?;
    // SAFETY: forwarded from the caller's contract.
    unsafe { write_out(out, Box::into_raw(Box::new(value)), "out") }
}

/// A signature from its C description into `*out`, converted to the kernels crate's
/// `Signature` and validated.
///
/// # Errors
/// `KP_NULL_ARGUMENT` (`desc`, its name, or a NULL array with a count above 0, `out`);
/// `KP_INVALID_ARGUMENT` (an unknown element type, access, length kind or reduction,
/// a name that is not UTF-8); `KP_INVALID_SIGNATURE` (more than `KP_MAX_BUFS` buffers or
/// `KP_PARTIAL_LEN` partial slots, an empty name).
///
/// # Safety
/// `desc` is NULL or valid, its arrays valid for their counts; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_signature_new(
    desc: *const kp_signature_desc,
    out: *mut *mut kp_signature,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let d = unsafe { handle(desc, "desc")? };
        // SAFETY: forwarded from the caller's contract.
        let name = unsafe { str_arg(d.name, "desc->name")? };
        // SAFETY: forwarded from the caller's contract.
        let bufs = unsafe { slice_arg(d.buffers, d.buffer_count, "desc->buffers")? };
        // SAFETY: forwarded from the caller's contract.
        let parts = unsafe { slice_arg(d.partials, d.partial_count, "desc->partials")? };
        let mut sig = Signature::new(name);
        for (i, b) in bufs.iter().enumerate() {
            let (elem, len, access) = buffer_of(i, b)?;
            sig = match access {
                Access::Read => sig.input(elem, len),
                Access::Write => sig.output(elem, len),
                _ => sig.inout(elem, len),
            };
        }
        for (i, &p) in parts.iter().enumerate() {
            sig = sig.partial(reduce_of(i, p)?);
        }
        if d.max_n != 0 {
            sig = sig.check(kernelpool_kernels::Check::NAtMost(d.max_n));
        }
        sig.validate()?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_signature { sig }, out) }
    })
}

/// A signature from a spec into `*out`, e.g. `"in f64[items], out f64[items], sum f64"`:
/// comma-separated buffers (`in|out|inout i64|f64|u8[LEN]`, LEN one of `items`,
/// `K*items`, `n`, `K*n`, `n*ceil(n/8)`, a number, `*`), partial slots
/// (`sum|max|min i64|f64`) and checks (`n<=MAX`, `items<=MAX`, `items==n`,
/// `iparam[K]>=MIN`, `iparam[K]<=MAX`, `iparam[K] in MIN..=MAX`), in slot order.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` (not UTF-8); `KP_INVALID_SIGNATURE`
/// naming the part that does not parse.
///
/// # Safety
/// `name` and `spec` are NULL or NUL-terminated; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_signature_parse(
    name: *const c_char,
    spec: *const c_char,
    out: *mut *mut kp_signature,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let (name, spec) = unsafe { (str_arg(name, "name")?, str_arg(spec, "spec")?) };
        let sig = Signature::parse(name, spec)?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_signature { sig }, out) }
    })
}

/// The spec of a signature (what `kp_signature_parse` reads) into `buf` (`len` bytes,
/// with its NUL) and its length into `*out_len` (may be NULL).
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_BUFFER_TOO_SMALL` (nothing written; `*out_len` tells the
/// length).
///
/// # Safety
/// `sig` is NULL or live; `buf` is NULL or valid for `len` bytes; `out_len` is NULL or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_signature_spec(
    sig: *const kp_signature,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let s = unsafe { handle(sig, "sig")? };
        // SAFETY: forwarded from the caller's contract.
        unsafe { copy_text_out(&s.sig.to_string(), buf, len, out_len) }
    })
}

/// Release a signature; NULL does nothing.
///
/// # Safety
/// `sig` is NULL or a signature not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_signature_free(sig: *mut kp_signature) {
    guard((), || {
        if !sig.is_null() {
            // SAFETY: made by Box::into_raw in `give`, freed once.
            drop(unsafe { Box::from_raw(sig) });
        }
    })
}

/// A built-in kernel (`kp_kernel` and `kp_lang` values) into `*out`, to run as steps
/// (`kp_step_run`); its signature is the one `native/include/kernels.h` documents.
///
/// # Errors
/// `KP_NULL_ARGUMENT`, `KP_UNKNOWN_KERNEL`, `KP_UNKNOWN_LANG`.
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_builtin(
    kernel: u32,
    lang: u32,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        let k = Kernel::get(crate::kernel_of(kernel)?, crate::lang_of(lang)?);
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_kernel { kernel: k }, out) }
    })
}

/// The `variant` (a `kp_variant` value) of a built-in kernel into `*out`, as
/// `kp_kernel_builtin` gives the plain one.
///
/// # Errors
/// `KP_NULL_ARGUMENT`, `KP_UNKNOWN_KERNEL`, `KP_UNKNOWN_LANG`, `KP_UNKNOWN_VARIANT`;
/// `KP_NO_VARIANT` when the kernel has no such variant in that language (the message
/// lists those it has).
///
/// # Safety
/// `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_builtin_variant(
    kernel: u32,
    lang: u32,
    variant: u32,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        let k = Kernel::get_variant(
            crate::kernel_of(kernel)?,
            crate::lang_of(lang)?,
            crate::variant_of(variant)?,
        )?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_kernel { kernel: k }, out) }
    })
}

/// A kernel from a function of this process into `*out`, described by `sig` (copied).
/// It runs on serial and thread executors; a process pool refuses it with
/// `KP_NOT_SUPPORTED` (a pointer means nothing in another process: put the function in
/// a shared object and use `kp_kernel_from_library`).
///
/// # Errors
/// `KP_NULL_ARGUMENT` (`f`, `sig`, `out`).
///
/// # Safety
/// `f` follows the kernel contract (`kernelpool/kernels.h`) for `sig`: it reads and
/// writes only the items of its range within the buffers `sig` lists and only the
/// partial slots `sig` declares, never unwinds (a C++ kernel catches its exceptions), and
/// stays callable while the kernel lives. `sig` is NULL or live; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_from_fn(
    f: kp_range_fn,
    sig: *const kp_signature,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        let f = f.ok_or_else(|| fail(KP_NULL_ARGUMENT, "f is NULL"))?;
        // SAFETY: forwarded from the caller's contract.
        let s = unsafe { handle(sig, "sig")? };
        non_null(out, "out")?;
        let contract = KernelName::custom(s.sig.clone())?;
        // SAFETY: the caller vouches for `f` under `sig` (see # Safety).
        let k = unsafe { Kernel::from_fn(f, contract, Lang::C) };
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_kernel { kernel: k }, out) }
    })
}

/// A kernel from the shared object at `path`, under `symbol`, described by `sig`
/// (copied), into `*out`. It runs on every executor: worker processes load the same
/// file by path (and check it is the same file). `path` is a path, never a name to
/// search for: without a `/` it is the file in the current directory.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_INVALID_ARGUMENT` (not UTF-8); `KP_LOAD_FAILED` when the file
/// cannot be loaded or has no `symbol` (the message holds the loader's).
///
/// # Safety
/// Loading runs the library's initialisers; `symbol` must be a function that follows
/// the kernel contract for `sig`, as `kp_kernel_from_fn` says. `sig` is NULL or live;
/// the strings are NULL or NUL-terminated; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_from_library(
    path: *const c_char,
    symbol: *const c_char,
    sig: *const kp_signature,
    out: *mut *mut kp_kernel,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let (path, symbol) = unsafe { (str_arg(path, "path")?, str_arg(symbol, "symbol")?) };
        // SAFETY: forwarded from the caller's contract.
        let s = unsafe { handle(sig, "sig")? };
        non_null(out, "out")?;
        // SAFETY: the caller vouches for the library and the symbol under `sig`.
        let k =
            unsafe { Kernel::load_with_signature(Path::new(path), symbol, s.sig.clone(), Lang::C) }
                .map_err(|e| match e {
                    kernelpool_kernels::Error::Io { .. } => {
                        fail(KP_LOAD_FAILED, crate::status::with_causes(&e))
                    }
                    e => e.into(),
                })?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { give(kp_kernel { kernel: k }, out) }
    })
}

/// Release a kernel (a kernel from a shared object unloads it when nothing else holds
/// it); NULL does nothing.
///
/// # Safety
/// `kernel` is NULL or a kernel not yet freed and not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_free(kernel: *mut kp_kernel) {
    guard((), || {
        if !kernel.is_null() {
            // SAFETY: made by Box::into_raw in `give`, freed once.
            drop(unsafe { Box::from_raw(kernel) });
        }
    })
}

/// The spec of a kernel's signature into `buf` (`len` bytes, with its NUL) and its
/// length into `*out_len` (may be NULL): what its steps need.
///
/// # Errors
/// `KP_NULL_ARGUMENT`; `KP_BUFFER_TOO_SMALL` (nothing written; `*out_len` tells the
/// length).
///
/// # Safety
/// `kernel` is NULL or live; `buf` is NULL or valid for `len` bytes; `out_len` is NULL
/// or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kp_kernel_spec(
    kernel: *const kp_kernel,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> kp_status {
    boundary(|| {
        // SAFETY: forwarded from the caller's contract.
        let k = unsafe { handle(kernel, "kernel")? };
        // SAFETY: forwarded from the caller's contract.
        unsafe { copy_text_out(&k.kernel.signature().to_string(), buf, len, out_len) }
    })
}
