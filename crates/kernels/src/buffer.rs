//! Buffers that kernels read and write. The memory behind a buffer is pluggable
//! ([`Memory`]): the heap for serial and threaded runs, shared memory mapped by every
//! worker for the process pool.

use crate::error::{Error, Result};
use std::any::Any;
use std::fmt;

/// Element type of a buffer. More may come (`f32`, `i32`): matches outside this crate
/// need a wildcard arm.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Elem;
/// fn bits(e: Elem) -> u32 { match e { Elem::I64 | Elem::F64 => 64, Elem::U8 => 8 } }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Zeroed heap memory aligned to 64 bytes.
#[derive(Debug)]
pub struct HeapMemory {
    blocks: Vec<Align64>,
    bytes: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Align64([u8; 64]);

impl fmt::Debug for Align64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Align64")
    }
}

impl HeapMemory {
    /// Allocate `bytes` zeroed bytes; a clear error when the machine cannot hold them.
    pub fn new(bytes: usize, what: &str) -> Result<HeapMemory> {
        check_fits(bytes as u128, what)?;
        let mut blocks = Vec::new();
        let n = bytes.div_ceil(64).max(1);
        blocks.try_reserve_exact(n).map_err(|_| Error::TooLarge {
            what: what.to_string(),
            bytes: bytes as u128,
            available: physical_memory(),
            total: physical_memory(),
        })?;
        blocks.resize(n, Align64([0; 64]));
        Ok(HeapMemory { blocks, bytes })
    }
}

// SAFETY: the Vec's storage is 64-byte aligned (Align64), at least `bytes` long, owned by
// this object and only handed out as a raw pointer.
unsafe impl Memory for HeapMemory {
    fn ptr(&self) -> *mut u8 {
        self.blocks.as_ptr() as *mut u8
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Physical memory of this machine in bytes (from /proc/meminfo, read once per process;
/// `u64::MAX` if unknown).
pub fn physical_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(read_physical_memory)
}

fn read_physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb.saturating_mul(1024))
}

/// Refuse a buffer larger than the machine's memory (overcommit would accept it and the
/// OOM killer would end the process later, losing every result).
pub fn check_fits(bytes: u128, what: &str) -> Result<()> {
    let available = physical_memory();
    if bytes > available as u128 {
        return Err(Error::TooLarge {
            what: what.to_string(),
            bytes,
            available,
            total: available,
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
    /// A zeroed heap buffer of `len` elements.
    pub fn heap(elem: Elem, len: usize, what: &str) -> Result<Buffer> {
        let bytes = bytes_for(elem, len, what)?;
        Buffer::from_memory(elem, len, Box::new(HeapMemory::new(bytes, what)?))
    }

    /// A buffer over memory provided by an executor.
    pub fn from_memory(elem: Elem, len: usize, mem: Box<dyn Memory>) -> Result<Buffer> {
        let bytes = bytes_for(elem, len, "buffer")?;
        if mem.bytes() < bytes || mem.ptr().align_offset(64) != 0 {
            return Err(Error::BadMemory {
                what: "buffer".into(),
                elem,
                len,
                bytes: mem.bytes(),
                reason: if mem.bytes() < bytes {
                    format!("{bytes} bytes needed")
                } else {
                    "not aligned to 64 bytes".into()
                },
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

fn bytes_for(elem: Elem, len: usize, what: &str) -> Result<usize> {
    let bytes = (len as u128) * elem.size() as u128;
    check_fits(bytes, what)?;
    Ok(bytes as usize)
}
