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
    /// Mapped read-only (a sealed array seen by a worker, or by the pool once frozen).
    read_only: bool,
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
        Ok(SharedMemory {
            inner: Arc::new(ShmInner::create(bytes, true)?),
        })
    }

    /// Map memory received from another process (its descriptor and size), which must be
    /// sealed against shrinking.
    pub(crate) fn from_fd(id: u64, fd: OwnedFd, bytes: usize) -> io::Result<SharedMemory> {
        Ok(SharedMemory {
            inner: Arc::new(ShmInner::receive(id, fd, bytes, false)?),
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

    /// Another handle to the same mapping (worker-side views for `Buffer`s), which must be
    /// writable.
    pub(crate) fn from_inner(inner: Arc<ShmInner>) -> SharedMemory {
        assert!(!inner.read_only, "kernel buffers are writable");
        SharedMemory { inner }
    }
}

impl AsFd for ShmInner {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// What [`ShmInner::freeze`] did.
#[derive(Debug)]
pub(crate) enum Frozen {
    /// Sealed and mapped read-only.
    Sealed(ShmInner),
    /// Another process maps it writable: not sealed, mapped writable again.
    StillMapped(ShmInner),
}

impl fmt::Debug for ShmInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmInner")
            .field("id", &self.id)
            .field("bytes", &self.bytes)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl ShmInner {
    /// A new memfd of `bytes` zeroed bytes, mapped read-write, sealed against resizing
    /// (and against further seals when `final_seals`; an array that is to be frozen
    /// read-only later keeps the right to add the write seal).
    pub(crate) fn create(bytes: usize, final_seals: bool) -> io::Result<ShmInner> {
        use rustix::fs::{MemfdFlags, fcntl_add_seals, ftruncate, memfd_create};
        let fd = memfd_create(
            "kernelpool-shm",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        // A mapping cannot be empty; one byte still maps a page.
        ftruncate(&fd, bytes.max(1) as u64)?;
        let mut seals = SealFlags::SHRINK | SealFlags::GROW;
        if final_seals {
            seals |= SealFlags::SEAL;
        }
        fcntl_add_seals(&fd, seals)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        ShmInner::map(id, fd, bytes, false)
    }

    /// Map memory received from another process, which must be sealed against shrinking
    /// (and against writes, for a read-only mapping).
    pub(crate) fn receive(
        id: u64,
        fd: OwnedFd,
        bytes: usize,
        read_only: bool,
    ) -> io::Result<ShmInner> {
        let seals = rustix::fs::fcntl_get_seals(&fd)?;
        let needed = if read_only {
            SealFlags::SHRINK | SealFlags::WRITE
        } else {
            SealFlags::SHRINK
        };
        if !seals.contains(needed) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "shared memory {id} is not sealed against shrinking{}",
                    if read_only { " and writing" } else { "" }
                ),
            ));
        }
        let size = rustix::fs::fstat(&fd)?.st_size;
        if (size as u128) < bytes.max(1) as u128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {id} has {size} bytes, {bytes} expected"),
            ));
        }
        ShmInner::map(id, fd, bytes, read_only)
    }

    fn map(id: u64, fd: OwnedFd, bytes: usize, read_only: bool) -> io::Result<ShmInner> {
        let file = File::from(fd);
        let opts = {
            let mut o = MmapOptions::new();
            o.len(bytes.max(1));
            o
        };
        let map = if read_only {
            opts.map_raw_read_only(&file)?
        } else {
            opts.map_raw(&file)?
        };
        Ok(ShmInner {
            id,
            bytes,
            map,
            read_only,
            file,
        })
    }

    /// The same memory, sealed against writes for good and mapped read-only: the writable
    /// mapping is dropped first (a write seal needs none to exist, in any process).
    /// [`Frozen::StillMapped`] gives it back, mapped writable again, when another process
    /// still maps it writable.
    ///
    /// # Errors
    /// The OS error of a seal or a mapping that fails otherwise.
    pub(crate) fn freeze(self) -> io::Result<Frozen> {
        let ShmInner {
            id,
            bytes,
            map,
            file,
            ..
        } = self;
        drop(map);
        match rustix::fs::fcntl_add_seals(&file, SealFlags::WRITE | SealFlags::SEAL) {
            Ok(()) => Ok(Frozen::Sealed(ShmInner::map(
                id,
                OwnedFd::from(file),
                bytes,
                true,
            )?)),
            Err(rustix::io::Errno::BUSY) => Ok(Frozen::StillMapped(ShmInner::map(
                id,
                OwnedFd::from(file),
                bytes,
                false,
            )?)),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
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
