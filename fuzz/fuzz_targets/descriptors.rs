//! Frames and descriptors over a real Unix socket pair, received through the pool's
//! `Channel::receive`, as a worker (or the pool) would see a peer that misbehaves.
//!
//! The input is a list of operations, each `kind_and_fds, len, payload[len]`:
//! `kind_and_fds % 5` is the kind, `kind_and_fds / 5 % 17` the number of memfds attached
//! (0 to 16: more than the 8 a frame may carry too):
//! - 0: raw bytes (`sendmsg`, bypassing the channel), with the descriptors;
//! - 1: a well-formed frame of the payload, raw, with the descriptors;
//! - 2: the payload as a message through the channel's own `push` and `send` (which must
//!   refuse more than 8 descriptors and then queue nothing);
//! - 3: receive now, without waiting;
//! - 4: descriptors with no bytes at all.
//!
//! Checked:
//! - no panic, whatever comes;
//! - more descriptors than a frame may carry, sent with bytes, are reported by `receive`
//!   as a protocol error, and `receive` reports no protocol error otherwise; no other
//!   error comes;
//! - until then (or the end of the stream), the frames received are exactly the frames of
//!   the bytes sent, and a garbage length is an error at the same place;
//! - every frame decodes as a message or is an error (never a panic);
//! - when no send carried too many, every descriptor sent with bytes arrives, each one
//!   close-on-exec; and once both ends are dropped no descriptor is left open.

#![no_main]

use kernelpool_pool::fuzzing::{
    Channel, FrameReader, MAX_FDS_PER_FRAME, ReceiveError, Received, decode_from_worker,
    decode_to_worker, next_frame,
};
use libfuzzer_sys::fuzz_target;
use rustix::io::{Errno, FdFlags, fcntl_getfd};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
use std::collections::BTreeSet;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Most descriptors an operation attaches.
const MOST_FDS: usize = 16;

fn open_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The receiving end and what it has seen.
struct Receiver {
    chan: Channel,
    inbox: FrameReader,
    frames: Vec<Vec<u8>>,
    frame_error: Option<String>,
    protocol_error: bool,
    closed: bool,
}

impl Receiver {
    /// Receive what is there (or, with `wait`, until the other end closes), taking frames
    /// out as they complete. Stops for good at a protocol error, as the pool does.
    fn drain(&mut self, wait: bool, too_many_sent: bool) {
        while !self.protocol_error && !self.closed {
            match self.chan.receive(&mut self.inbox, wait) {
                Ok(Received::Bytes { .. }) => {}
                Ok(Received::Nothing) => return,
                Ok(Received::Closed) => self.closed = true,
                Err(ReceiveError::Protocol(m)) => {
                    assert!(
                        too_many_sent,
                        "a protocol error, yet no send carried too many descriptors: {m}"
                    );
                    self.protocol_error = true;
                }
                Err(ReceiveError::Os(e)) => panic!("receive failed: {e}"),
            }
            while self.frame_error.is_none() {
                match self.inbox.next_frame() {
                    Ok(Some(f)) => {
                        // Garbage is an error, never a panic.
                        let _ = decode_from_worker(f);
                        let _ = decode_to_worker(f);
                        self.frames.push(f.to_vec());
                    }
                    Ok(None) => break,
                    Err(e) => self.frame_error = Some(e),
                }
            }
        }
    }
}

/// Send `bytes` raw with `fds` attached to the first byte sent, receiving meanwhile when
/// the socket is full. Returns whether the descriptors went (with at least one byte).
fn send_raw(
    sock: &OwnedFd,
    bytes: &[u8],
    fds: &[&OwnedFd],
    rx: &mut Receiver,
    too_many: bool,
) -> bool {
    let mut sent = 0;
    let mut fds_went = false;
    loop {
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MOST_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds_went && !borrowed.is_empty() {
            assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
        }
        let r = sendmsg(
            sock,
            &[IoSlice::new(&bytes[sent..])],
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        );
        match r {
            Ok(n) => {
                if n > 0 {
                    fds_went = true;
                }
                sent += n;
                if sent >= bytes.len() {
                    return fds_went && !fds.is_empty();
                }
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let before = rx.frames.len();
                rx.drain(false, too_many);
                assert!(
                    !rx.protocol_error && !rx.closed,
                    "the socket is full and the receiver stopped (after {before} frames)"
                );
            }
            Err(e) => panic!("sendmsg: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let before = open_fds();
    {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let sender_raw: OwnedFd = a.into();
        let mut sender = Channel::new(sender_raw);
        let mut rx = Receiver {
            chan: Channel::new(b.into()),
            inbox: FrameReader::new(),
            frames: Vec::new(),
            frame_error: None,
            protocol_error: false,
            closed: false,
        };
        let memfd: Arc<OwnedFd> = Arc::new(
            rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd"),
        );
        // Every byte that went, in order, and the descriptors that went with bytes.
        let mut stream = Vec::new();
        let mut fds_expected = 0usize;
        let mut too_many = false;

        // Raw sends go through the channel's own socket (a duplicate, closed before the
        // channel is), so that they keep their order with the channel's sends.
        let sock = sender.socket().try_clone_to_owned().expect("dup");
        let mut input = data;
        while let [head, rest @ ..] = input {
            let (len, rest) = match rest {
                [len, rest @ ..] => (usize::from(*len).min(rest.len()), rest),
                [] => (0, rest),
            };
            let (payload, rest) = rest.split_at(len);
            input = rest;
            let nfds = usize::from(*head / 5) % (MOST_FDS + 1);
            let fds: Vec<&OwnedFd> = (0..nfds).map(|_| &*memfd).collect();
            match head % 5 {
                0 | 1 => {
                    let mut bytes = Vec::new();
                    if head % 5 == 1 {
                        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                    }
                    bytes.extend_from_slice(payload);
                    if bytes.is_empty() {
                        continue;
                    }
                    let over = nfds > MAX_FDS_PER_FRAME;
                    if send_raw(&sock, &bytes, &fds, &mut rx, too_many || over) {
                        if over {
                            too_many = true;
                        } else {
                            fds_expected += nfds;
                        }
                    }
                    stream.extend_from_slice(&bytes);
                }
                2 => {
                    let attached: Vec<Arc<dyn AsFd + Send + Sync>> =
                        (0..nfds).map(|_| memfd.clone() as _).collect();
                    let unsent = sender.unsent();
                    let msg = payload.to_vec();
                    match sender.push(&msg, attached) {
                        Ok(()) => {
                            assert!(nfds <= MAX_FDS_PER_FRAME, "{nfds} descriptors pushed");
                            kernelpool_pool::fuzzing::push_frame(&mut stream, &msg)
                                .expect("framed");
                            fds_expected += nfds;
                        }
                        Err(_) => {
                            assert!(nfds > MAX_FDS_PER_FRAME, "push refused {nfds}");
                            assert_eq!(sender.unsent(), unsent, "a refused push queued bytes");
                        }
                    }
                    while sender.unsent() > 0 {
                        match sender.send(false) {
                            Ok(_) if sender.unsent() == 0 => {}
                            Ok(_) => rx.drain(false, too_many),
                            Err(e) => panic!("channel send: {e}"),
                        }
                        assert!(!rx.protocol_error || too_many);
                    }
                }
                3 => rx.drain(false, too_many),
                _ => {
                    // Descriptors without a byte: a stream socket drops them.
                    let mut space =
                        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MOST_FDS))];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
                    assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
                    let _ = sendmsg(
                        &sock,
                        &[IoSlice::new(&[])],
                        &mut control,
                        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                    );
                }
            }
            if rx.protocol_error {
                break;
            }
        }
        drop(sock);
        drop(sender);
        rx.drain(true, too_many);
        assert!(rx.closed || rx.protocol_error);
        assert_eq!(
            rx.protocol_error, too_many,
            "more descriptors than a frame may carry went unreported"
        );

        // What came is what went (up to the point the receiver stopped).
        let mut want = Vec::new();
        let mut want_err = None;
        let mut pos = 0;
        loop {
            match next_frame(&stream, &mut pos) {
                Ok(Some(f)) => want.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    want_err = Some(e);
                    break;
                }
            }
        }
        if rx.protocol_error {
            assert!(want.starts_with(&rx.frames), "frames differ");
        } else {
            assert_eq!(rx.frames, want, "frames differ");
            assert_eq!(rx.frame_error, want_err, "frame errors differ");
        }

        let mut fds_got = 0;
        while let Some(fd) = rx.chan.take_fd() {
            let flags = fcntl_getfd(&fd).expect("fcntl");
            assert!(
                flags.contains(FdFlags::CLOEXEC),
                "a descriptor without CLOEXEC"
            );
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            assert!(
                link.as_ref()
                    .is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:fuzz")),
                "not the memfd sent: {link:?}"
            );
            fds_got += 1;
        }
        if !too_many {
            assert_eq!(fds_got, fds_expected, "descriptors lost or made up");
        }
    }
    assert_eq!(open_fds(), before, "descriptors left open");
});
