//! Internals of the pool's wire, for the fuzz targets in `fuzz/` (cargo-fuzz) only.
//!
//! **Not part of the API**: hidden from the docs, no stability promise, and it may change
//! or go at any time. Everything here is a thin wrapper that forwards to the code the pool
//! and its workers run (the frame decoder, the message decoders, the worker-token and
//! `/proc/self/maps` parsers, the channel that carries frames and descriptors), so that the
//! fuzzers exercise exactly that code; nothing here adds behaviour.
//!
//! It is compiled always (no cargo feature): then every build, `clippy --all-targets`,
//! `cargo doc` and the tests check it, so it cannot rot between fuzzing runs, and there is
//! no feature combination to remember. It costs nothing in a program that does not call it.

use crate::channel;
use crate::protocol::{self, FromWorker, ToWorker};
use serde::Serialize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// Largest frame either side sends or accepts (`channel::MAX_FRAME`).
pub const MAX_FRAME: usize = channel::MAX_FRAME;

/// Most descriptors one frame may carry (`channel::MAX_FDS_PER_FRAME`).
pub const MAX_FDS_PER_FRAME: usize = channel::MAX_FDS_PER_FRAME;

/// What the consumer of a ring of frames in shared memory takes when a peer forged its
/// indices (`head`, `tail`) and bytes (`data`): the frames, and the error that stopped it
/// (`ring::drain_forged`).
pub fn drain_forged_ring(head: u64, tail: u64, data: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    crate::ring::drain_forged(head, tail, data)
}

/// The receive buffer of a channel (`channel::RecvBuffer`).
#[derive(Debug)]
pub struct FrameReader(channel::RecvBuffer);

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::new()
    }
}

impl FrameReader {
    /// An empty buffer.
    pub fn new() -> FrameReader {
        FrameReader(channel::RecvBuffer::new())
    }

    /// Room to receive into (`RecvBuffer::spare`).
    pub fn spare(&mut self) -> &mut [u8] {
        self.0.spare()
    }

    /// `n` bytes were written at the start of [`FrameReader::spare`].
    pub fn filled(&mut self, n: usize) {
        self.0.filled(n);
    }

    /// The next complete frame, if any.
    ///
    /// # Errors
    /// A frame header announcing more than [`MAX_FRAME`] bytes.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, String> {
        self.0.next_frame()
    }
}

/// The next complete frame in `buf[*pos..]`, advancing `pos` (`channel::next_frame`).
///
/// # Errors
/// A frame header announcing more than [`MAX_FRAME`] bytes.
pub fn next_frame<'b>(buf: &'b [u8], pos: &mut usize) -> Result<Option<&'b [u8]>, String> {
    channel::next_frame(buf, pos)
}

/// Append `msg` to `out` as one frame (`channel::push_frame`).
///
/// # Errors
/// A message that cannot be encoded or is longer than [`MAX_FRAME`]; `out` is left as it
/// was.
pub fn push_frame<T: Serialize>(out: &mut Vec<u8>, msg: &T) -> Result<(), String> {
    channel::push_frame(out, msg)
}

/// A decoded message: its `Debug` text and its encoding again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `format!("{:?}")` of the message.
    pub debug: String,
    /// `postcard::to_stdvec` of the message.
    pub encoded: Vec<u8>,
}

/// Decode `frame` as a message to a worker, as the worker does (`postcard::from_bytes`
/// of `ToWorker`).
///
/// # Errors
/// The decoder's error (or, never expected, an encoding error of what it decoded).
pub fn decode_to_worker(frame: &[u8]) -> Result<Decoded, String> {
    let msg: ToWorker<'_> = postcard::from_bytes(frame).map_err(|e| e.to_string())?;
    decoded(&msg)
}

/// Decode `frame` as a message from a worker, as the pool does (`postcard::from_bytes`
/// of `FromWorker`).
///
/// # Errors
/// The decoder's error (or, never expected, an encoding error of what it decoded).
pub fn decode_from_worker(frame: &[u8]) -> Result<Decoded, String> {
    let msg: FromWorker<'_> = postcard::from_bytes(frame).map_err(|e| e.to_string())?;
    decoded(&msg)
}

fn decoded<T: Serialize + std::fmt::Debug>(msg: &T) -> Result<Decoded, String> {
    Ok(Decoded {
        debug: format!("{msg:?}"),
        encoded: postcard::to_stdvec(msg).map_err(|e| format!("re-encoding failed: {e}"))?,
    })
}

/// The worker token's parser (`worker::parse_token`): `<fd>,<parent pid>,<socket inode>`.
pub fn parse_token(token: &str) -> Option<(i32, i32, u64)> {
    crate::worker::parse_token(token)
}

/// The name of the environment variable that carries the token.
pub const TOKEN: &str = protocol::TOKEN;

/// One line of `/proc/self/maps` (`protocol::parse_maps_line`): (address range, (device
/// major, device minor, inode)) for a line that maps a file.
pub fn parse_maps_line(line: &str) -> Option<(std::ops::Range<usize>, (u32, u32, u64))> {
    protocol::parse_maps_line(line)
}

/// What one receive brought (`channel::Received`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Some bytes (and maybe descriptors).
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

/// Why a receive failed (`channel::ChannelError`).
#[derive(Debug)]
pub enum ReceiveError {
    /// The operating system refused it.
    Os(std::io::Error),
    /// The other end broke the protocol (more descriptors than a frame may carry).
    Protocol(String),
}

/// One end of the pool's framed channel (`channel::Channel`) over a Unix stream socket.
#[derive(Debug)]
pub struct Channel(channel::Channel);

impl Channel {
    /// A channel over `sock`.
    pub fn new(sock: OwnedFd) -> Channel {
        Channel(channel::Channel::new(sock))
    }

    /// The socket.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.0.socket().as_fd()
    }

    /// Queue `msg` as a frame carrying `fds` (`Channel::push`).
    ///
    /// # Errors
    /// More than [`MAX_FDS_PER_FRAME`] descriptors, or a message that cannot be framed;
    /// nothing is queued then.
    pub fn push<T: Serialize>(
        &mut self,
        msg: &T,
        fds: Vec<Arc<dyn AsFd + Send + Sync>>,
    ) -> Result<(), String> {
        self.0.push(msg, fds)
    }

    /// Bytes queued and not yet sent.
    pub fn unsent(&self) -> usize {
        self.0.unsent()
    }

    /// Send what is queued (`Channel::send`): all of it (`wait`), or what the socket takes.
    ///
    /// # Errors
    /// The OS error.
    pub fn send(&mut self, wait: bool) -> std::io::Result<bool> {
        self.0.send(wait).map_err(Into::into)
    }

    /// Receive once into `inbox` (`Channel::receive`).
    ///
    /// # Errors
    /// The OS error, or [`ReceiveError::Protocol`] for more descriptors than a frame may
    /// carry.
    pub fn receive(
        &mut self,
        inbox: &mut FrameReader,
        wait: bool,
    ) -> Result<Received, ReceiveError> {
        match self.0.receive(&mut inbox.0, wait) {
            Ok(channel::Received::Bytes { bytes, more }) => Ok(Received::Bytes { bytes, more }),
            Ok(channel::Received::Nothing) => Ok(Received::Nothing),
            Ok(channel::Received::Closed) => Ok(Received::Closed),
            Err(channel::ChannelError::Os(e)) => Err(ReceiveError::Os(e.into())),
            Err(channel::ChannelError::Protocol(m)) => Err(ReceiveError::Protocol(m)),
        }
    }

    /// The next received descriptor not yet claimed (`Channel::take_fd`).
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.0.take_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrappers_reach_the_real_code() {
        let mut out = Vec::new();
        push_frame(&mut out, &7u8).unwrap();
        assert_eq!(out, [1, 0, 0, 0, 7]);
        let mut r = FrameReader::new();
        r.spare()[..5].copy_from_slice(&out);
        r.filled(5);
        assert_eq!(r.next_frame().unwrap(), Some(&[7u8][..]));
        assert_eq!(next_frame(&out, &mut 0).unwrap(), Some(&[7u8][..]));
        assert!(decode_to_worker(&[0xff]).is_err());
        let ready = decode_from_worker(&[0, 5, 1]).unwrap();
        assert_eq!(ready.debug, "Ready { pid: 5, same_exe: true }");
        assert_eq!(ready.encoded, [0, 5, 1]);
        assert_eq!(parse_token("3,4,5"), Some((3, 4, 5)));
        assert_eq!(TOKEN, "KERNELPOOL_WORKER");
        assert!(parse_maps_line("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x").is_some());
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Channel::new(a.into()), Channel::new(b.into()));
        a.push(&1u8, vec![]).unwrap();
        assert!(a.unsent() > 0 && a.send(true).unwrap());
        let mut inbox = FrameReader::new();
        assert!(matches!(
            b.receive(&mut inbox, true),
            Ok(Received::Bytes { .. })
        ));
        assert!(b.take_fd().is_none());
        drop(a);
        assert!(matches!(b.receive(&mut inbox, true), Ok(Received::Closed)));
        let _ = b.socket();
    }
}
