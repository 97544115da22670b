//! Large values travel outside the socket: the sender writes the encoded bytes into a
//! fresh memfd, seals it (no more writes, no resizing), and passes the descriptor with
//! `SCM_RIGHTS` on the frame that names the value; the receiver checks the seals, maps
//! the memfd read-only, decodes from the mapping, and unmaps it. A 16 MiB value then costs
//! one copy into the memfd instead of hundreds of socket writes and wake-ups, and the
//! socket stays free for small messages.

use memmap2::{Mmap, MmapOptions};
use rustix::fs::{
    MemfdFlags, SealFlags, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create,
};
use serde::Serialize;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Encoded values longer than this travel in a sealed memfd.
pub(crate) const SEALED_ABOVE: usize = 256 * 1024;

/// Seals that make a memfd's contents and size final.
fn final_seals() -> SealFlags {
    SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// An encoded value in a memfd that nobody can change any more.
#[derive(Debug)]
pub(crate) struct Sealed {
    file: File,
    len: usize,
}

impl Sealed {
    /// A sealed memfd holding a copy of `bytes`.
    pub(crate) fn new(bytes: &[u8]) -> io::Result<Sealed> {
        let fd = memfd_create(
            "kernelpool-value",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let file = File::from(fd);
        file.write_all_at(bytes, 0)?;
        // No writable mapping of it exists (it was written with `pwrite`), so sealing
        // against writes cannot fail with EBUSY.
        fcntl_add_seals(&file, final_seals())?;
        Ok(Sealed {
            file,
            len: bytes.len(),
        })
    }

    /// A sealed memfd holding the postcard encoding of `value`, which takes `len` bytes
    /// (from `postcard::experimental::serialized_size`), encoded straight into a mapping
    /// of it: no intermediate copy.
    pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, len: usize) -> io::Result<Sealed> {
        let fd = memfd_create(
            "kernelpool-value",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        ftruncate(&fd, len as u64)?;
        let file = File::from(fd);
        {
            // SAFETY: the memfd was created just above and nothing else holds it (it is
            // close-on-exec and not sent yet), so no one else can change or truncate it
            // while it is mapped; it is `len` bytes long. The mapping is dropped at the
            // end of this block, before the memfd is sealed and shared.
            let mut map = unsafe {
                MmapOptions::new()
                    .len(len.max(1))
                    .populate()
                    .map_mut(&file)?
            };
            let used = postcard::to_slice(value, &mut map[..len])
                .map_err(|e| io::Error::other(e.to_string()))?
                .len();
            if used != len {
                return Err(io::Error::other(format!(
                    "the value took {used} bytes encoded, {len} expected"
                )));
            }
        }
        // The writable mapping is gone: sealing against writes cannot fail with EBUSY.
        fcntl_add_seals(&file, final_seals())?;
        Ok(Sealed { file, len })
    }

    /// Length of the value in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl AsFd for Sealed {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A received sealed value, mapped read-only; unmapped on drop (its descriptor is closed
/// as soon as it is mapped).
#[derive(Debug)]
pub(crate) struct Mapped {
    map: Mmap,
    len: usize,
}

impl Mapped {
    /// Map the first `len` bytes of the memfd `fd`, which must be sealed against writes
    /// and shrinking.
    pub(crate) fn open(fd: OwnedFd, len: usize) -> io::Result<Mapped> {
        let seals = fcntl_get_seals(&fd)?;
        if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the value's memfd is not sealed against writes",
            ));
        }
        let size = fstat(&fd)?.st_size;
        if (size as u128) < len as u128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the value's memfd has {size} bytes, {len} expected"),
            ));
        }
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an empty value in a memfd",
            ));
        }
        let file = File::from(fd);
        // SAFETY: memmap2 requires that the mapped file is not modified or truncated
        // while mapped. This memfd carries F_SEAL_WRITE and F_SEAL_SHRINK (checked just
        // above; seals can never be removed): no process can write to it, map it
        // writable, or make it shorter than the `len` bytes mapped here, so the mapping's
        // contents never change and reading it cannot fault (SIGBUS).
        let map = unsafe { MmapOptions::new().len(len).populate().map(&file)? };
        Ok(Mapped { map, len })
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_map_read_only_and_unsealed_ones_are_refused() {
        let data: Vec<u8> = (0..SEALED_ABOVE + 3).map(|i| i as u8).collect();
        let s = Sealed::new(&data).unwrap();
        assert_eq!(s.len(), data.len());
        let fd = s.as_fd().try_clone_to_owned().unwrap();
        assert!(rustix::io::write(&fd, b"x").is_err(), "sealed");
        let m = Mapped::open(fd, data.len()).unwrap();
        assert_eq!(&m[..], &data[..]);
        let fd = s.as_fd().try_clone_to_owned().unwrap();
        assert!(Mapped::open(fd, data.len() + 1).is_err(), "too short");
        let open = memfd_create("x", MemfdFlags::CLOEXEC).unwrap();
        rustix::io::write(&open, b"abc").unwrap();
        assert!(Mapped::open(open, 3).is_err(), "not sealed");
        let v: Vec<u64> = (0..100_000).collect();
        let len = postcard::experimental::serialized_size(&v).unwrap();
        let s = Sealed::encode(&v, len).unwrap();
        let m = Mapped::open(s.as_fd().try_clone_to_owned().unwrap(), s.len()).unwrap();
        assert_eq!(postcard::from_bytes::<Vec<u64>>(&m).unwrap(), v);
        assert!(Sealed::encode(&v, len - 1).is_err(), "wrong size");
    }
}
