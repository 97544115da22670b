//! One framed channel over a Unix stream socket, used by both ends (the pool and each
//! worker): messages go out as frames (a u32 little-endian length, then the postcard
//! encoding), each frame with the descriptors attached to it (`SCM_RIGHTS`); frames come
//! in with theirs. Nothing else in the crate reads or writes the socket.
//!
//! A frame is at most [`MAX_FRAME`] bytes: large values never travel inline (see
//! [`crate::bulk`]), so a longer length is garbage and is refused at once, and the receive
//! buffer grows only with the bytes that really arrive (never towards a length read from
//! the wire).
//!
//! Once both ends map their control block, frames without descriptors go through a ring
//! in it instead (see [`crate::ring`]) when they fit, and [`Channel::next_frame`] merges
//! the two paths back into the order they were sent in.

use crate::ring::{RingRx, RingTx};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, send, sendmsg,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// Largest frame either side sends or accepts.
pub(crate) const MAX_FRAME: usize = 8 << 20;

/// Most descriptors attached to one frame.
pub(crate) const MAX_FDS_PER_FRAME: usize = 8;

/// Something whose descriptor a frame carries: a buffer, a control block, a sealed value.
pub(crate) type Attached = Arc<dyn AsFd + Send + Sync>;

/// Receive-buffer size to start with (and to shrink back to).
const RECV_INITIAL: usize = 64 * 1024;

/// Append `msg` to `out` as one frame. A message that cannot be encoded, or whose encoding
/// is longer than [`MAX_FRAME`] (which the other side would refuse), leaves `out` as it
/// was.
pub(crate) fn push_frame<T: Serialize>(out: &mut Vec<u8>, msg: &T) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let len = match postcard::to_io(msg, &mut *out) {
        Err(e) => Err(e.to_string()),
        Ok(_) => match out.len() - start - 4 {
            len if len <= MAX_FRAME => Ok(len as u32),
            len => Err(format!(
                "a message of {len} bytes is longer than the {MAX_FRAME} bytes a frame may carry"
            )),
        },
    };
    match len {
        Ok(len) => {
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The length a frame header at `buf[pos..]` announces, if the header is complete;
/// `Err` for a length no sender writes.
fn frame_len(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(head) = buf.get(pos..pos + 4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "a frame of {len} bytes announced, more than the {MAX_FRAME} a frame may carry"
        ));
    }
    Ok(Some(len))
}

/// The next complete frame in `buf[*pos..]`, advancing `pos`; `Ok(None)` when incomplete.
pub(crate) fn next_frame<'b>(buf: &'b [u8], pos: &mut usize) -> Result<Option<&'b [u8]>, String> {
    let Some(len) = frame_len(buf, *pos)? else {
        return Ok(None);
    };
    let start = *pos + 4;
    match buf.get(start..start + len) {
        Some(frame) => {
            *pos = start + len;
            Ok(Some(frame))
        }
        None => Ok(None),
    }
}

/// Give back the memory of an empty buffer that a large message made large.
pub(crate) fn shrink(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > 16 * RECV_INITIAL {
        *buf = Vec::new();
    }
}

/// Received bytes holding whole and partial frames.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecvBuffer {
    pub(crate) fn new() -> RecvBuffer {
        RecvBuffer {
            buf: vec![0; RECV_INITIAL],
            start: 0,
            end: 0,
        }
    }

    /// Room to receive into, made by compacting the buffer or, when the frame being
    /// received needs it, by growing it: by at most the bytes held (so at most doubling
    /// with the bytes that arrived), so a length read from the wire never allocates more
    /// than the bytes already received.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 16 * RECV_INITIAL {
                self.buf = vec![0; RECV_INITIAL];
            }
        }
        let missing = match frame_len(&self.buf[..self.end], self.start) {
            Ok(Some(len)) => (4 + len).saturating_sub(self.end - self.start),
            _ => 0,
        };
        // At most as much room as the bytes held (not as the buffer, which earlier calls
        // may have grown): a frame that trickles in a byte at a time, each receive asking
        // for room, must not grow the buffer by more than it brought.
        let held = self.end - self.start;
        let want = missing.clamp(RECV_INITIAL / 4, held.max(RECV_INITIAL));
        if self.buf.len() - self.end < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < want {
                self.buf.resize(self.end + want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were received into [`RecvBuffer::spare`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// A complete frame (or a garbage length, which `next_frame` reports) is held.
    pub(crate) fn has_frame(&self) -> bool {
        match frame_len(&self.buf[..self.end], self.start) {
            Ok(Some(len)) => self.end - self.start >= 4 + len,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The next complete frame, if any.
    pub(crate) fn next_frame(&mut self) -> Result<Option<&[u8]>, String> {
        next_frame(&self.buf[..self.end], &mut self.start)
    }
}

/// What one receive brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Some bytes (and maybe descriptors); `more` when there may be more to read at once
    /// (the buffer was filled, or descriptors came, which end a read).
    Bytes {
        /// Bytes received.
        bytes: usize,
        /// Worth receiving again without waiting.
        more: bool,
    },
    /// Nothing yet (non-blocking receive only).
    Nothing,
    /// The other end closed the channel.
    Closed,
}

/// Why the channel cannot go on.
#[derive(Debug)]
pub(crate) enum ChannelError {
    /// The operating system refused a send or receive.
    Os(Errno),
    /// The other end broke the protocol (a garbage frame length, more descriptors than a
    /// frame may carry).
    Protocol(String),
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::Os(e) => write!(f, "{e}"),
            ChannelError::Protocol(m) => f.write_str(m),
        }
    }
}

/// One end of a framed channel: the socket, the frames queued to go out, and the
/// descriptors received and not yet claimed. Received bytes go into a [`RecvBuffer`] the
/// caller keeps beside it, so that a frame can be handled while the channel is used.
pub(crate) struct Channel {
    sock: OwnedFd,
    out: Vec<u8>,
    sent: usize,
    /// Offsets in `out` of frames that carry descriptors, and those descriptors.
    attached: VecDeque<(usize, Vec<Attached>)>,
    /// Descriptors received, not yet claimed by the frames that name them.
    fds: VecDeque<OwnedFd>,
    /// The rings of the control block, once mapped: (to send on, to receive from).
    rings: Option<(RingTx, RingRx)>,
    /// Frames queued on the socket in all.
    sock_queued: u64,
    /// Frames taken from the socket in all.
    sock_taken: u64,
    /// Frames went into the ring since [`Channel::take_ring_sent`] was last called.
    ring_sent: bool,
    /// Encoding of the frame being pushed into the ring.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("unsent", &(self.out.len() - self.sent))
            .field("fds_received", &self.fds.len())
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(crate) fn new(sock: OwnedFd) -> Channel {
        Channel {
            sock,
            out: Vec::with_capacity(64 * 1024),
            sent: 0,
            attached: VecDeque::new(),
            fds: VecDeque::new(),
            rings: None,
            sock_queued: 0,
            sock_taken: 0,
            ring_sent: false,
            scratch: Vec::new(),
        }
    }

    /// Send and receive frames without descriptors through these rings from now on.
    pub(crate) fn use_rings(&mut self, rings: (RingTx, RingRx)) {
        self.rings = Some(rings);
    }

    /// True (once) when frames went into the ring since the last call: the other side is
    /// to be told.
    pub(crate) fn take_ring_sent(&mut self) -> bool {
        std::mem::take(&mut self.ring_sent)
    }

    /// The next frame in the order the other side sent them: from the ring when its turn
    /// has come (all the socket frames sent before it have been taken), else from
    /// `inbox`; `Ok(None)` when the next one has not arrived (or is on the socket and not
    /// received yet: see [`Channel::waits_for_socket`]).
    ///
    /// # Errors
    /// A ring record or a frame that cannot be one.
    pub(crate) fn next_frame<'b>(
        &mut self,
        inbox: &'b mut RecvBuffer,
        ring_buf: &'b mut Vec<u8>,
    ) -> Result<Option<&'b [u8]>, String> {
        if let Some((_, rx)) = &mut self.rings {
            // Read after the socket frames now in `inbox` were received: a ring frame
            // sent before any of them is visible here.
            if let Some((len, after)) = rx.peek()? {
                if after < self.sock_taken {
                    return Err(format!(
                        "a ring frame sent after {after} socket frames, {} taken already",
                        self.sock_taken
                    ));
                }
                if after == self.sock_taken {
                    rx.take(len, ring_buf);
                    return Ok(Some(&ring_buf[..]));
                }
            }
        }
        match inbox.next_frame()? {
            Some(frame) => {
                self.sock_taken += 1;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// The next frame of the ring waits for socket frames not received yet.
    pub(crate) fn waits_for_socket(&self) -> bool {
        match &self.rings {
            Some((_, rx)) => matches!(rx.peek(), Ok(Some((_, after))) if after > self.sock_taken),
            None => false,
        }
    }

    /// A ring frame has arrived and is not taken yet.
    pub(crate) fn has_ring_data(&self) -> bool {
        self.rings.as_ref().is_some_and(|(_, rx)| rx.has_data())
    }

    /// The socket (to poll it).
    pub(crate) fn socket(&self) -> &OwnedFd {
        &self.sock
    }

    /// Queue `msg` as a frame carrying `fds` (at most [`MAX_FDS_PER_FRAME`]). On an error
    /// nothing is queued.
    pub(crate) fn push<T: Serialize>(&mut self, msg: &T, fds: Vec<Attached>) -> Result<(), String> {
        if fds.len() > MAX_FDS_PER_FRAME {
            return Err(format!(
                "{} descriptors on one frame, more than {MAX_FDS_PER_FRAME}",
                fds.len()
            ));
        }
        if let (true, Some((tx, _))) = (fds.is_empty(), &mut self.rings) {
            self.scratch.clear();
            postcard::to_io(msg, &mut self.scratch).map_err(|e| e.to_string())?;
            if self.scratch.len() <= MAX_FRAME && tx.push(&self.scratch, self.sock_queued) {
                self.ring_sent = true;
                shrink(&mut self.scratch);
                return Ok(());
            }
            shrink(&mut self.scratch);
        }
        let at = self.out.len();
        push_frame(&mut self.out, msg)?;
        self.sock_queued += 1;
        if !fds.is_empty() {
            self.attached.push_back((at, fds));
        }
        Ok(())
    }

    /// Bytes queued and not yet sent.
    pub(crate) fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Send what is queued: everything (`wait`), or what the socket takes without
    /// blocking. True when some bytes went out.
    pub(crate) fn send(&mut self, wait: bool) -> Result<bool, Errno> {
        let flags = if wait {
            SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        };
        let before = self.sent;
        while self.sent < self.out.len() {
            let with_fds = self.attached.front().is_some_and(|m| m.0 == self.sent);
            // A frame with descriptors goes in a send of its own (up to the next such
            // frame), so that its descriptors arrive with its first byte.
            let end = match (with_fds, self.attached.front(), self.attached.get(1)) {
                (true, _, Some(next)) => next.0,
                (true, _, None) | (false, None, _) => self.out.len(),
                (false, Some(m), _) => m.0,
            };
            let bytes = &self.out[self.sent..end];
            let r = if with_fds {
                let fds: Vec<BorrowedFd<'_>> =
                    self.attached[0].1.iter().map(|f| f.as_fd()).collect();
                let mut space = [MaybeUninit::<u8>::uninit();
                    rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                let pushed = control.push(SendAncillaryMessage::ScmRights(&fds));
                debug_assert!(pushed, "at most MAX_FDS_PER_FRAME descriptors a frame");
                sendmsg(&self.sock, &[IoSlice::new(bytes)], &mut control, flags)
            } else {
                send(&self.sock, bytes, flags)
            };
            match r {
                Ok(n) => {
                    self.sent += n;
                    if with_fds {
                        // Sent: the other end has its own descriptors now.
                        self.attached.pop_front();
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if !wait => return Ok(self.sent > before),
                Err(e) => return Err(e),
            }
        }
        let wrote = self.sent > before;
        self.out.clear();
        self.sent = 0;
        shrink(&mut self.out);
        Ok(wrote)
    }

    /// Receive once into `inbox`: block until something comes (`wait`), or take what is
    /// there.
    ///
    /// # Errors
    /// The OS error, or [`ChannelError::Protocol`] when the other end attached more
    /// descriptors than a frame may carry (counted, or cut off: `MSG_CTRUNC`).
    pub(crate) fn receive(
        &mut self,
        inbox: &mut RecvBuffer,
        wait: bool,
    ) -> Result<Received, ChannelError> {
        let flags = if wait {
            RecvFlags::CMSG_CLOEXEC
        } else {
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT
        };
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let spare = inbox.spare();
            let room = spare.len();
            let r = recvmsg(
                &self.sock,
                &mut [IoSliceMut::new(spare)],
                &mut control,
                flags,
            );
            // One receive brings the descriptors of one message at most (the kernel stops
            // after the first message that carries some).
            let mut got_fds = 0;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    let before = self.fds.len();
                    self.fds.extend(fds);
                    got_fds += self.fds.len() - before;
                }
            }
            return match r {
                // Cut off (MSG_CTRUNC), or more than a frame may carry that still fitted
                // (the control space has room for alignment beyond MAX_FDS_PER_FRAME).
                Ok(msg)
                    if msg.flags.contains(ReturnFlags::CTRUNC) || got_fds > MAX_FDS_PER_FRAME =>
                {
                    Err(ChannelError::Protocol(format!(
                        "more than {MAX_FDS_PER_FRAME} descriptors attached to one message"
                    )))
                }
                Ok(msg) if msg.bytes == 0 => Ok(Received::Closed),
                Ok(msg) => {
                    inbox.filled(msg.bytes);
                    Ok(Received::Bytes {
                        bytes: msg.bytes,
                        more: msg.bytes == room || got_fds > 0,
                    })
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if !wait => Ok(Received::Nothing),
                Err(Errno::CONNRESET) => Ok(Received::Closed),
                Err(e) => Err(ChannelError::Os(e)),
            };
        }
    }

    /// The next received descriptor (frames that name descriptors claim them in order).
    pub(crate) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    /// Descriptors have been received that no frame has claimed yet.
    pub(crate) fn has_fds(&self) -> bool {
        !self.fds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_incomplete_ones_wait() {
        let mut out = Vec::new();
        push_frame(&mut out, &(7u64, "abc")).unwrap();
        push_frame(&mut out, &[1u8, 2]).unwrap();
        let mut pos = 0;
        let f1 = next_frame(&out[..out.len() - 1], &mut pos)
            .unwrap()
            .unwrap();
        assert_eq!(postcard::from_bytes::<(u64, &str)>(f1).unwrap(), (7, "abc"));
        assert!(
            next_frame(&out[..out.len() - 1], &mut pos)
                .unwrap()
                .is_none()
        );
        let f2 = next_frame(&out, &mut pos).unwrap().unwrap();
        assert_eq!(postcard::from_bytes::<[u8; 2]>(f2).unwrap(), [1, 2]);
        assert_eq!(pos, out.len());
    }

    #[test]
    fn frames_longer_than_the_limit_are_refused_both_ways() {
        let mut out = vec![1, 2, 3];
        let big = vec![0u8; MAX_FRAME];
        let e = push_frame(&mut out, &big).expect_err("too long");
        assert!(e.contains("longer than"), "{e}");
        assert_eq!(out, [1, 2, 3], "left as it was");
        let mut garbage = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0; 16]);
        assert!(next_frame(&garbage, &mut 0).is_err());
    }

    #[test]
    fn a_garbage_length_grows_the_buffer_only_with_the_bytes_that_arrive() {
        let mut inbox = RecvBuffer::new();
        let header = (MAX_FRAME as u32).to_le_bytes();
        inbox.spare()[..4].copy_from_slice(&header);
        inbox.filled(4);
        assert!(inbox.next_frame().unwrap().is_none(), "incomplete");
        // The frame claims 8 MiB; the buffer grows by at most doubling per receive.
        let room = inbox.spare().len();
        assert!(
            room <= 2 * RECV_INITIAL,
            "{room} bytes of room for 4 received"
        );
    }

    #[test]
    fn a_frame_that_trickles_in_grows_the_buffer_only_with_the_bytes_that_arrive() {
        // A peer that sends a (garbage, but not over the limit) length and then the frame
        // a byte at a time: each receive asks for room, and the room may not grow faster
        // than the bytes that came (the bound fuzz/fuzz_targets/frames.rs checks).
        let mut inbox = RecvBuffer::new();
        let header = (MAX_FRAME as u32).to_le_bytes();
        inbox.spare()[..4].copy_from_slice(&header);
        inbox.filled(4);
        let mut received = 4;
        for _ in 0..4000 {
            let spare = inbox.spare();
            spare[0] = 7;
            inbox.filled(1);
            received += 1;
            assert!(inbox.next_frame().unwrap().is_none(), "incomplete");
            let held = inbox.buf.len();
            assert!(
                held <= 2 * received + 2 * RECV_INITIAL,
                "{held} bytes held for {received} received"
            );
        }
    }

    #[test]
    fn descriptors_travel_with_their_frames() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (
            Channel::new(OwnedFd::from(a)),
            Channel::new(OwnedFd::from(b)),
        );
        let memfd: Attached =
            Arc::new(rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap());
        a.push(&1u32, vec![]).unwrap();
        a.push(&2u32, vec![memfd.clone(), memfd]).unwrap();
        assert!(a.send(true).unwrap());
        let mut got = Vec::new();
        let mut inbox = RecvBuffer::new();
        while got.len() < 2 {
            let r = b.receive(&mut inbox, true).unwrap();
            assert!(matches!(r, Received::Bytes { .. }));
            while let Some(f) = inbox.next_frame().unwrap() {
                got.push(postcard::from_bytes::<u32>(f).unwrap());
            }
        }
        assert_eq!(got, [1, 2]);
        assert!(b.take_fd().is_some() && b.take_fd().is_some() && b.take_fd().is_none());
        drop(a);
        assert_eq!(b.receive(&mut inbox, true).unwrap(), Received::Closed);
    }

    #[test]
    fn too_many_descriptors_are_refused_by_the_sender_and_the_receiver() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (
            Channel::new(OwnedFd::from(a)),
            Channel::new(OwnedFd::from(b)),
        );
        let memfd: Attached =
            Arc::new(rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap());
        assert!(
            a.push(&1u32, vec![memfd.clone(); MAX_FDS_PER_FRAME + 1])
                .is_err()
        );
        // A peer that attaches more than a frame may carry (bypassing `push`).
        let fds: Vec<BorrowedFd<'_>> = (0..MAX_FDS_PER_FRAME + 4).map(|_| memfd.as_fd()).collect();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(16))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        sendmsg(
            a.socket(),
            &[IoSlice::new(&[0; 8])],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .unwrap();
        match b.receive(&mut RecvBuffer::new(), true) {
            Err(ChannelError::Protocol(m)) => assert!(m.contains("descriptors"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_descriptor_too_many_is_refused_by_the_receiver() {
        // The receive buffer's control space may hold a few more descriptors than a frame
        // may carry (rustix adds room for alignment), so that the kernel does not cut them
        // off: they must be refused all the same (found by fuzz/fuzz_targets/descriptors.rs).
        let memfd = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        for n in MAX_FDS_PER_FRAME + 1..=MAX_FDS_PER_FRAME + 4 {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let (a, mut b) = (Channel::new(a.into()), Channel::new(b.into()));
            let fds: Vec<BorrowedFd<'_>> = (0..n).map(|_| memfd.as_fd()).collect();
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(16))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
            sendmsg(
                a.socket(),
                &[IoSlice::new(&[0; 8])],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .unwrap();
            match b.receive(&mut RecvBuffer::new(), true) {
                Err(ChannelError::Protocol(m)) => assert!(m.contains("descriptors"), "{m}"),
                other => panic!("{n} descriptors on one message: {other:?}"),
            }
        }
    }
}
