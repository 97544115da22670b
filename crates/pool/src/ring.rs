//! A single-producer single-consumer ring of frames in shared memory: the path of the
//! frames that carry no descriptor (kernel step dispatch, task batches, results), so that
//! a step needs no system call on either side when both are awake.
//!
//! Each record is a 16-byte header (frame length as u32, 4 bytes of padding, then the
//! number of frames its sender had queued on the *socket* before it, as u64) and the
//! frame, padded to 8 bytes. The socket keeps the frames that carry descriptors and those
//! that do not fit; the socket count in each record lets the receiver take the frames of
//! both paths in the order they were sent (see [`crate::channel::Channel::next_frame`]).
//!
//! Positions are byte counts that only grow (wrapping at 2^64, which the power-of-two
//! capacity divides, so a position forged near the end wraps cleanly); each side keeps its own position privately
//! and only publishes it, so a peer that scribbles on the shared indices can make this
//! side read garbage frames (refused as a protocol violation) but not read or write
//! outside the ring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of one record's header.
const HEADER: usize = 16;

/// The two indices of a ring, each on its own cache line (written by one side each).
#[repr(C)]
pub(crate) struct RingIndex {
    /// Bytes consumed in all (written by the consumer).
    head: Padded,
    /// Bytes produced in all (written by the producer).
    tail: Padded,
}

#[repr(C, align(64))]
struct Padded(AtomicU64);

/// A ring as one side sees it: its indices and its data area (in shared memory that
/// lives as long as the `Control` that made it).
struct Raw {
    index: *const RingIndex,
    data: *mut u8,
    cap: usize,
}

// SAFETY: the pointers are into a shared mapping owned by the `Control` that outlives the
// ring (it holds the ring); the indices are atomics, and the data area is accessed only
// between the published indices, by the protocol of an SPSC ring.
unsafe impl Send for Raw {}

impl Raw {
    fn index(&self) -> &RingIndex {
        // SAFETY: `index` points at a `RingIndex` (all atomics, valid zeroed) in a mapping
        // that lives as long as `self` (see `Raw`).
        unsafe { &*self.index }
    }

    /// Copy `bytes` into the ring at position `pos` (wrapping).
    fn write_at(&self, pos: u64, bytes: &[u8]) {
        let at = (pos % self.cap as u64) as usize;
        let first = bytes.len().min(self.cap - at);
        // SAFETY: `at + first <= cap` and `bytes.len() - first <= cap - first`, so both
        // copies stay inside the data area; the producer writes only bytes the consumer
        // has released (between tail and head + cap), which the consumer does not read.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(at), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                bytes.len() - first,
            );
        }
    }

    /// Copy `out.len()` bytes out of the ring from position `pos` (wrapping).
    fn read_at(&self, pos: u64, out: &mut [u8]) {
        let at = (pos % self.cap as u64) as usize;
        let first = out.len().min(self.cap - at);
        // SAFETY: as in `write_at`, both copies stay inside the data area, and `out` is
        // our own memory. The bytes were published by the producer (Acquire on tail); a
        // producer that broke the protocol can only make them garbage, which is copied
        // out before it is looked at, and checked.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }
}

/// Round up to a multiple of 8.
fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The producing side of a ring.
pub(crate) struct RingTx {
    raw: Raw,
    /// Our tail (the shared one is only published).
    tail: u64,
}

/// The consuming side of a ring.
pub(crate) struct RingRx {
    raw: Raw,
    /// Our head (the shared one is only published).
    head: u64,
}

impl std::fmt::Debug for RingTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingTx").field("tail", &self.tail).finish()
    }
}

impl std::fmt::Debug for RingRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingRx").field("head", &self.head).finish()
    }
}

/// The two sides of the ring at `index` with `cap` bytes of data at `data`.
///
/// # Safety
/// `index` must point at a zeroed or live `RingIndex` and `data` at `cap` bytes (a power
/// of two, a multiple of 8), both in a shared mapping that outlives the returned sides;
/// at most one producer and one consumer may use the ring, in any processes.
pub(crate) unsafe fn sides(index: *const RingIndex, data: *mut u8, cap: usize) -> (RingTx, RingRx) {
    debug_assert!(cap.is_power_of_two() && cap >= 64);
    let raw = || Raw { index, data, cap };
    // SAFETY: per this function's contract.
    let r = raw();
    let (head, tail) = (
        r.index().head.0.load(Ordering::Acquire),
        r.index().tail.0.load(Ordering::Acquire),
    );
    (RingTx { raw: r, tail }, RingRx { raw: raw(), head })
}

impl RingTx {
    /// Queue `frame`, sent after `after_socket` frames on the socket, if it fits now.
    /// False when it does not (the ring is full, or the consumer broke its index).
    pub(crate) fn push(&mut self, frame: &[u8], after_socket: u64) -> bool {
        let need = HEADER + padded(frame.len());
        let head = self.raw.index().head.0.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        if used > self.raw.cap as u64 || need as u64 > self.raw.cap as u64 - used {
            return false;
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        header[8..].copy_from_slice(&after_socket.to_le_bytes());
        self.raw.write_at(self.tail, &header);
        self.raw
            .write_at(self.tail.wrapping_add(HEADER as u64), frame);
        self.tail = self.tail.wrapping_add(need as u64);
        self.raw.index().tail.0.store(self.tail, Ordering::Release);
        true
    }

    /// Nothing queued that the consumer has not taken.
    #[cfg(test)]
    pub(crate) fn is_drained(&self) -> bool {
        self.raw.index().head.0.load(Ordering::Acquire) == self.tail
    }
}

impl RingRx {
    /// The socket count of the next record (see the module docs), if one has arrived.
    ///
    /// # Errors
    /// A record that cannot be one (the producer broke the protocol).
    pub(crate) fn peek(&self) -> Result<Option<(usize, u64)>, String> {
        let tail = self.raw.index().tail.0.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head);
        if avail == 0 {
            return Ok(None);
        }
        if avail > self.raw.cap as u64 || avail < HEADER as u64 {
            return Err(format!(
                "a ring index out of place ({avail} bytes announced)"
            ));
        }
        let mut header = [0u8; HEADER];
        self.raw.read_at(self.head, &mut header);
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let after = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        if (HEADER + padded(len)) as u64 > avail {
            return Err(format!(
                "a ring record of {len} bytes, more than the {avail} published"
            ));
        }
        Ok(Some((len, after)))
    }

    /// Take the next record (of `len` bytes, from [`RingRx::peek`]) into `out`.
    pub(crate) fn take(&mut self, len: usize, out: &mut Vec<u8>) {
        out.clear();
        out.resize(len, 0);
        self.raw.read_at(self.head.wrapping_add(HEADER as u64), out);
        self.head = self.head.wrapping_add((HEADER + padded(len)) as u64);
        self.raw.index().head.0.store(self.head, Ordering::Release);
    }

    /// A record is waiting.
    pub(crate) fn has_data(&self) -> bool {
        self.raw.index().tail.0.load(Ordering::Acquire) != self.head
    }
}

/// What a consumer takes from a ring whose indices and bytes a peer forged: a ring of
/// `data.len()` bytes (rounded down to a power of two, at least 64) holding `data`, its
/// shared head at `head` and its tail at `tail`; the frames taken, in order, and the
/// error that stopped it, if any. For the fuzz targets (and a test): whatever the bytes,
/// this must not panic, read outside the ring, or take more than the ring holds.
pub(crate) fn drain_forged(head: u64, tail: u64, data: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let cap = match data.len() {
        n if n < 64 => 64,
        n => 1 << (usize::BITS - 1 - n.leading_zeros()),
    };
    let Ok(shm) = crate::shm::SharedMemory::new(4096 + cap) else {
        return (Vec::new(), Some("no memory".into()));
    };
    let base = shm.inner().ptr();
    let index = base as *const RingIndex;
    // SAFETY: the mapping is 4096 + cap bytes, zeroed: a `RingIndex` at its start (128
    // bytes), `cap` bytes of data from 4096; both sides live shorter than `shm`, one
    // consumer and no producer but the forger (this function, before they exist).
    let (_tx, mut rx) = unsafe {
        (*index).head.0.store(head, Ordering::Relaxed);
        (*index).tail.0.store(tail, Ordering::Relaxed);
        std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(4096), data.len().min(cap));
        sides(index, base.add(4096), cap)
    };
    let mut frames = Vec::new();
    let mut taken = 0usize;
    loop {
        match rx.peek() {
            Ok(None) => return (frames, None),
            Ok(Some((len, _))) => {
                taken += HEADER + padded(len);
                assert!(taken <= cap, "took {taken} bytes from a ring of {cap}");
                let mut out = Vec::new();
                rx.take(len, &mut out);
                frames.push(out);
            }
            Err(e) => return (frames, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::SharedMemory;

    #[test]
    fn frames_wrap_around_and_a_full_ring_refuses() {
        let shm = SharedMemory::new(4096).unwrap();
        let base = shm.inner().ptr();
        // SAFETY: the mapping is 4096 bytes: the index at its start, 256 bytes of data
        // after it, and it outlives both sides.
        let (mut tx, mut rx) = unsafe { sides(base as *const RingIndex, base.add(1024), 256) };
        let mut out = Vec::new();
        for round in 0..50u64 {
            let frame: Vec<u8> = (0..(round % 40) as u8).collect();
            assert!(tx.push(&frame, round));
            assert!(rx.has_data());
            let (len, after) = rx.peek().unwrap().unwrap();
            assert_eq!((len, after), (frame.len(), round));
            rx.take(len, &mut out);
            assert_eq!(out, frame);
            assert!(rx.peek().unwrap().is_none() && tx.is_drained());
        }
        // 256 bytes hold 4 records of 56 bytes (16 + 40) and not a fifth ...
        for _ in 0..4 {
            assert!(tx.push(&[7; 40], 0));
        }
        assert!(!tx.push(&[7; 40], 0), "full");
        // ... until one is taken.
        let (len, _) = rx.peek().unwrap().unwrap();
        rx.take(len, &mut out);
        assert!(tx.push(&[7; 40], 0));
    }

    #[test]
    fn forged_indices_and_records_are_refused() {
        // A tail past head + capacity, a tail behind the head, a record longer than what
        // was published, a torn header: errors, not reads outside the ring.
        assert!(drain_forged(0, 1 << 20, &[0; 256]).1.is_some());
        assert!(drain_forged(100, 50, &[0; 256]).1.is_some());
        let mut rec = [0u8; 256];
        rec[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(drain_forged(0, 64, &rec).1.is_some());
        assert!(drain_forged(0, 8, &rec).1.is_some());
        // Two honest records at a wrapped position.
        let mut data = [0u8; 64];
        data[48..52].copy_from_slice(&3u32.to_le_bytes());
        data[0..3].copy_from_slice(b"abc");
        let (frames, err) = drain_forged(64 * 5 + 48, 64 * 6 + 8, &data);
        assert_eq!((frames, err), (vec![b"abc".to_vec()], None));
        // The same across the wrap of the positions themselves (found by the fuzzer).
        let (frames, err) = drain_forged(u64::MAX - 15, 8, &data);
        assert_eq!((frames, err), (vec![b"abc".to_vec()], None));
    }
}
