//! Buffers that kernels read and write. The memory behind a buffer is pluggable
//! ([`Memory`]): the heap for serial and threaded runs, shared memory mapped by every
//! worker for the process pool.

use crate::error::{Error, Result};
use std::alloc::Layout;
use std::any::Any;
use std::fmt;
use std::ptr::NonNull;

/// Element type of a buffer. More may come (`f32`, `i32`): matches outside this crate
/// need a wildcard arm.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Elem;
/// fn bits(e: Elem) -> u32 { match e { Elem::I64 | Elem::F64 => 64, Elem::U8 => 8 } }
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Elem {
    /// `i64`
    I64,
    /// `f64`
    F64,
    /// `u8`
    U8,
}

impl Elem {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Elem::I64 | Elem::F64 => 8,
            Elem::U8 => 1,
        }
    }
}

/// Rust types a buffer can be viewed as.
pub trait Element: Copy + sealed::Sealed + 'static {
    /// The matching element type.
    const ELEM: Elem;
}
impl Element for i64 {
    const ELEM: Elem = Elem::I64;
}
impl Element for f64 {
    const ELEM: Elem = Elem::F64;
}
impl Element for u8 {
    const ELEM: Elem = Elem::U8;
}
mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
    impl Sealed for u8 {}
}

/// A block of memory that backs a [`Buffer`].
///
/// # Safety
/// `ptr()` must return a pointer aligned to 64 bytes, valid for reads and writes of `bytes()`
/// bytes for as long as the object lives, and not aliased by any other Rust reference.
pub unsafe trait Memory: Send + Sync + fmt::Debug + 'static {
    /// Start of the memory.
    fn ptr(&self) -> *mut u8;
    /// Size in bytes.
    fn bytes(&self) -> usize;
    /// For executors that need to recognise their own memory (shared memory handles).
    fn as_any(&self) -> &dyn Any;
}

/// Alignment of every buffer (a cache line; enough for any SIMD load).
pub const ALIGN: usize = 64;

/// Zeroed heap memory aligned to 64 bytes, owned and freed on drop. Fresh pages are not
/// touched when it is made, so gigabytes of zeroes cost nothing until written.
#[derive(Debug)]
pub struct HeapMemory {
    /// Start of the memory handed out: `base` moved up to the next 64-byte boundary.
    ptr: NonNull<u8>,
    /// What the allocator returned, with its layout, for `dealloc`.
    base: NonNull<u8>,
    layout: Layout,
    bytes: usize,
}

impl HeapMemory {
    /// Allocate `bytes` zeroed bytes for `what` (named in errors).
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `bytes` is more than the memory available now (checked
    /// first, see [`check_fits`]); [`Error::AllocFailed`] when the allocator refuses (an
    /// address-space limit such as `ulimit -v`, strict overcommit), with that cause.
    pub fn new(bytes: usize, what: &str) -> Result<HeapMemory> {
        check_fits(bytes as u128, what)?;
        let failed = |reason: String| Error::AllocFailed {
            what: what.to_string(),
            bytes: bytes as u128,
            reason,
        };
        // 64 bytes more at the allocator's natural alignment rather than a 64-aligned
        // layout: above its minimum alignment the system allocator zeroes with malloc +
        // memset, touching every page now; at alignment 8 it is calloc, which gets fresh
        // (already zero) pages from the kernel and leaves them untouched.
        let layout = bytes
            .checked_add(ALIGN)
            .and_then(|size| Layout::from_size_align(size, 8).ok())
            .ok_or_else(|| failed("more than this platform's address space".into()))?;
        // SAFETY: the layout's size is at least ALIGN > 0 bytes.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(base) else {
            return Err(failed(alloc_failure(std::io::Error::last_os_error())));
        };
        let offset = base.as_ptr().addr().wrapping_neg() % ALIGN;
        // SAFETY: offset < ALIGN, and the block holds bytes + ALIGN bytes, so `ptr` and the
        // `bytes` bytes after it lie inside the block.
        let ptr = unsafe { base.add(offset) };
        Ok(HeapMemory {
            ptr,
            base,
            layout,
            bytes,
        })
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed(self.layout)` in `new` and is freed once,
        // here; no pointer handed out outlives `self` (the `Memory` contract).
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

// SAFETY: the block is owned by this object alone (like a `Box<[u8]>`) and has no tie to
// the thread that allocated it.
unsafe impl Send for HeapMemory {}
// SAFETY: `&HeapMemory` only hands out the raw pointer and the size; whoever writes
// through the pointer synchronises (a `Step` borrows its buffers mutably).
unsafe impl Sync for HeapMemory {}

// SAFETY: `ptr` is 64-byte aligned and valid for reads and writes of `bytes` bytes, inside
// the block that this object owns until it is dropped; no Rust reference to it is made here.
unsafe impl Memory for HeapMemory {
    fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why the allocator said no: the OS error it left, and the limits that explain it.
fn alloc_failure(os: std::io::Error) -> String {
    explain_alloc_failure("the allocator returned no memory", os)
}

/// `refused` (what said no), the OS error, and the limits of this process that explain
/// it (`ulimit -v`, `ulimit -d`, strict overcommit): the `reason` of
/// [`Error::AllocFailed`] for executors whose memory comes from elsewhere (shared memory).
pub fn explain_alloc_failure(refused: &str, os: std::io::Error) -> String {
    let mut reason = format!("{refused} ({os})");
    for (key, name, how) in [
        ("Max address space", "address space", "ulimit -v"),
        ("Max data size", "data segment", "ulimit -d"),
    ] {
        if let Some(limit) = soft_limit(key) {
            reason += &format!("; this process's {name} is limited to {limit} bytes ({how})");
        }
    }
    let strict =
        std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|s| s.trim() == "2");
    if strict {
        reason += "; the kernel refuses to overcommit (vm.overcommit_memory = 2)";
    }
    reason
}

/// The soft limit `key` of /proc/self/limits in bytes, when it is not unlimited.
fn soft_limit(key: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Physical memory of this machine in bytes (`MemTotal` of /proc/meminfo, read once per
/// process; `u64::MAX` if unknown).
pub fn physical_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| meminfo("MemTotal:").unwrap_or(u64::MAX))
}

/// Memory available for new allocations now, in bytes (`MemAvailable` of /proc/meminfo,
/// read at each call; [`physical_memory`] if the kernel does not say).
pub fn available_memory() -> u64 {
    meminfo("MemAvailable:").unwrap_or_else(physical_memory)
}

/// A line of /proc/meminfo in bytes.
fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// Refuse a buffer larger than the memory available now (overcommit would accept it and
/// the OOM killer would end the process later, losing every result).
///
/// # Errors
/// [`Error::TooLarge`], naming the memory available and the machine's total.
pub fn check_fits(bytes: u128, what: &str) -> Result<()> {
    let available = available_memory();
    if bytes > available as u128 {
        return Err(Error::TooLarge {
            what: what.to_string(),
            bytes,
            available,
            total: physical_memory(),
        });
    }
    Ok(())
}

/// A typed buffer: `len` elements of `elem` in some [`Memory`].
#[derive(Debug)]
pub struct Buffer {
    elem: Elem,
    len: usize,
    mem: Box<dyn Memory>,
}

impl Buffer {
    /// A zeroed heap buffer of `len` elements, for `what` (named in errors).
    ///
    /// # Errors
    /// As [`HeapMemory::new`]: [`Error::TooLarge`] or [`Error::AllocFailed`].
    pub fn heap(elem: Elem, len: usize, what: &str) -> Result<Buffer> {
        let bytes = len as u128 * elem.size() as u128;
        let Ok(size) = usize::try_from(bytes) else {
            check_fits(bytes, what)?;
            return Err(Error::AllocFailed {
                what: what.to_string(),
                bytes,
                reason: "more than this platform's address space".into(),
            });
        };
        Buffer::from_memory(elem, len, Box::new(HeapMemory::new(size, what)?))
    }

    /// A buffer of `len` elements of `elem` over memory provided by an executor.
    ///
    /// # Errors
    /// [`Error::BadMemory`] when the memory is smaller than `len` elements, or its start
    /// is null or not aligned to 64 bytes.
    pub fn from_memory(elem: Elem, len: usize, mem: Box<dyn Memory>) -> Result<Buffer> {
        let needed = len as u128 * elem.size() as u128;
        let ptr = mem.ptr();
        let wrong = if (mem.bytes() as u128) < needed {
            Some(format!("{needed} bytes needed"))
        } else if ptr.is_null() {
            Some("its start is null".to_string())
        } else if !ptr.addr().is_multiple_of(ALIGN) {
            Some(format!("its start is not aligned to {ALIGN} bytes"))
        } else {
            None
        };
        if let Some(reason) = wrong {
            return Err(Error::BadMemory {
                what: "buffer".into(),
                elem,
                len,
                bytes: mem.bytes(),
                reason,
            });
        }
        Ok(Buffer { elem, len, mem })
    }

    /// Element type.
    pub fn elem(&self) -> Elem {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory behind the buffer.
    pub fn memory(&self) -> &dyn Memory {
        &*self.mem
    }

    /// View as a slice of `T`; `None` when `T` is not the buffer's element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        (T::ELEM == self.elem).then(|| {
            // SAFETY: the memory is aligned, holds `len` elements of T (checked at
            // construction), and `&self` excludes a concurrent step (steps borrow `&mut`).
            unsafe { std::slice::from_raw_parts(self.mem.ptr() as *const T, self.len) }
        })
    }

    /// View as a mutable slice of `T`; `None` when `T` is not the buffer's element type.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        (T::ELEM == self.elem).then(|| {
            // SAFETY: as in `as_slice`, and `&mut self` makes this the only view.
            unsafe { std::slice::from_raw_parts_mut(self.mem.ptr() as *mut T, self.len) }
        })
    }

    pub(crate) fn raw_ptr(&self) -> *mut u8 {
        self.mem.ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident set size of this process in bytes.
    fn rss() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .expect("rss")
            .parse()
            .expect("n");
        pages * 4096
    }

    #[test]
    fn heap_memory_is_aligned_zeroed_and_writable() {
        for bytes in [0, 1, 63, 64, 65, 4096, 100_000] {
            let mut b = Buffer::heap(Elem::U8, bytes, "test").expect("alloc");
            assert_eq!(b.memory().ptr().addr() % ALIGN, 0, "{bytes}");
            assert_eq!(b.memory().bytes(), bytes);
            let s = b.as_mut_slice::<u8>().expect("u8");
            assert!(s.iter().all(|&v| v == 0), "{bytes}");
            s.fill(0xa5);
            assert!(b.as_slice::<u8>().expect("u8").iter().all(|&v| v == 0xa5));
        }
    }

    #[test]
    fn heap_memory_does_not_touch_its_pages_up_front() {
        const GIB: usize = 1 << 30;
        if available_memory() < 4 * GIB as u64 {
            eprintln!("skipped: less than 4 GiB available");
            return;
        }
        let before = rss();
        let mem = HeapMemory::new(GIB, "test").expect("1 GiB");
        let grown = rss().saturating_sub(before);
        assert!(
            grown < GIB as u64 / 4,
            "allocating 1 GiB made {grown} bytes resident"
        );
        drop(mem);
    }

    #[test]
    fn sizes_past_the_memory_available_are_refused_naming_both_figures() {
        let e = HeapMemory::new(usize::MAX - 10, "huge").expect_err("too large");
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("available now") && text.contains("on this machine"),
            "{text}"
        );
        let e = Buffer::heap(Elem::F64, usize::MAX, "huge").expect_err("too large");
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }
}
