//! Shared memory for buffers that worker processes read and write in place: an anonymous
//! memfd mapped `MAP_SHARED`. Nothing is created in `/dev/shm` or any file system, so
//! nothing can be left behind: the memory is freed when the last descriptor and the last
//! mapping (in any process) are gone.

use kernelpool_kernels::Memory;
use memmap2::{MmapOptions, MmapRaw};
use std::any::Any;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A block of shared memory (memfd + `mmap(MAP_SHARED)`), page aligned (so 64-byte
/// aligned), zeroed, with an id unique in this process. Its descriptor can be passed to
/// other processes (the process pool does so with `SCM_RIGHTS`) which map the same pages.
///
/// ```
/// use kernelpool_kernels::{Buffer, Elem};
/// use kernelpool_pool::SharedMemory;
///
/// let shm = SharedMemory::new(8 * 100)?;
/// let mut buf = Buffer::from_memory(Elem::F64, 100, Box::new(shm))?;
/// buf.as_mut_slice::<f64>().unwrap()[99] = 1.5;
/// assert_eq!(buf.as_slice::<f64>().unwrap()[99], 1.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMemory {
    inner: Arc<ShmInner>,
}

pub(crate) struct ShmInner {
    id: u64,
    bytes: usize,
    map: MmapRaw,
    file: File,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("id", &self.inner.id)
            .field("bytes", &self.inner.bytes)
            .finish()
    }
}

impl SharedMemory {
    /// `bytes` zeroed bytes of shared memory.
    pub fn new(bytes: usize) -> io::Result<SharedMemory> {
        use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
        let fd = memfd_create("kernelpool-shm", MemfdFlags::CLOEXEC)?;
        // A mapping cannot be empty; one byte still maps a page.
        ftruncate(&fd, bytes.max(1) as u64)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(SharedMemory {
            inner: Arc::new(ShmInner::map(id, fd, bytes)?),
        })
    }

    /// Map memory received from another process (its descriptor and size).
    pub(crate) fn from_fd(id: u64, fd: OwnedFd, bytes: usize) -> io::Result<SharedMemory> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        if (size as u128) < bytes.max(1) as u128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {id} has {size} bytes, {bytes} expected"),
            ));
        }
        Ok(SharedMemory {
            inner: Arc::new(ShmInner::map(id, fd, bytes)?),
        })
    }

    /// The id of this block, unique in the process that created it.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.inner.bytes
    }

    /// True for a block of 0 bytes.
    pub fn is_empty(&self) -> bool {
        self.inner.bytes == 0
    }

    pub(crate) fn inner(&self) -> &Arc<ShmInner> {
        &self.inner
    }

    /// Another handle to the same mapping (worker-side views for `Buffer`s).
    pub(crate) fn from_inner(inner: Arc<ShmInner>) -> SharedMemory {
        SharedMemory { inner }
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.file.as_fd()
    }
}

impl AsFd for ShmInner {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl ShmInner {
    fn map(id: u64, fd: OwnedFd, bytes: usize) -> io::Result<ShmInner> {
        let file = File::from(fd);
        let map = MmapOptions::new().len(bytes.max(1)).map_raw(&file)?;
        Ok(ShmInner {
            id,
            bytes,
            map,
            file,
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

// SAFETY: the mapping is page aligned (hence 64-byte aligned), at least `bytes` long, lives
// as long as the `Arc` that this object holds, and is only ever handed out as a raw pointer:
// this crate creates no references into a block it lends to a `Buffer` (it reads control
// blocks through references to their atomics, but never lends them), and lends a block to
// one `Buffer` at a time (a worker refuses a step that names a buffer twice). Other
// processes map the same pages; they write only the items the kernel contract gives them,
// while the step that lent the buffer holds it mutably borrowed.
unsafe impl Memory for SharedMemory {
    fn ptr(&self) -> *mut u8 {
        self.inner.ptr()
    }
    fn bytes(&self) -> usize {
        self.inner.bytes
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
