//! Shared memory for buffers that worker processes read and write in place: an anonymous
//! memfd mapped `MAP_SHARED`. Nothing is created in `/dev/shm` or any file system, so
//! nothing can be left behind: the memory is freed when the last descriptor and the last
//! mapping (in any process) are gone.
//!
//! The memfd is sealed against shrinking as soon as it has its size, and its descriptor
//! never leaves the crate (except to the pool's own workers), so no one can truncate it
//! under a live mapping (which would make every access past the new end fault).

use kernelpool_kernels::Memory;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::SealFlags;
use std::any::Any;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A block of shared memory (memfd + `mmap(MAP_SHARED)`), page aligned (so 64-byte
/// aligned), zeroed, with an id unique in this process. The process pool passes its
/// descriptor to its workers (with `SCM_RIGHTS`), which map the same pages; the descriptor
/// is not handed out otherwise, and the memfd is sealed against shrinking.
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
///
/// Its descriptor is not for safe code to resize or write behind the slices' back:
///
/// ```compile_fail
/// use std::os::fd::AsFd;
/// let shm = kernelpool_pool::SharedMemory::new(4096).unwrap();
/// rustix::fs::ftruncate(shm.as_fd(), 0).unwrap();
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
    ///
    /// # Errors
    /// The OS error when the memfd cannot be created, sized, sealed or mapped (for
    /// instance `ENOMEM` under `ulimit -v`).
    pub fn new(bytes: usize) -> io::Result<SharedMemory> {
        use rustix::fs::{MemfdFlags, fcntl_add_seals, ftruncate, memfd_create};
        let fd = memfd_create(
            "kernelpool-shm",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        // A mapping cannot be empty; one byte still maps a page.
        ftruncate(&fd, bytes.max(1) as u64)?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(SharedMemory {
            inner: Arc::new(ShmInner::map(id, fd, bytes)?),
        })
    }

    /// Map memory received from another process (its descriptor and size), which must be
    /// sealed against shrinking.
    pub(crate) fn from_fd(id: u64, fd: OwnedFd, bytes: usize) -> io::Result<SharedMemory> {
        if !rustix::fs::fcntl_get_seals(&fd)?.contains(SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {id} is not sealed against shrinking"),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memfd_cannot_shrink_or_grow_and_workers_refuse_an_unsealed_one() {
        let shm = SharedMemory::new(3 * 4096).unwrap();
        let fd = shm.inner().as_fd();
        assert_eq!(rustix::fs::ftruncate(fd, 0), Err(rustix::io::Errno::PERM));
        assert_eq!(
            rustix::fs::ftruncate(fd, 1 << 20),
            Err(rustix::io::Errno::PERM)
        );
        assert_eq!(rustix::fs::fstat(fd).unwrap().st_size, 3 * 4096);
        let received = SharedMemory::from_fd(7, fd.try_clone_to_owned().unwrap(), 3 * 4096);
        assert_eq!(received.unwrap().len(), 3 * 4096);
        let open = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&open, 4096).unwrap();
        let e = SharedMemory::from_fd(8, open, 4096).unwrap_err();
        assert!(e.to_string().contains("not sealed"), "{e}");
    }
}
