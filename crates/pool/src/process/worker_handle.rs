//! The pool's side of one worker: its child process, its channel, its control block, the
//! tasks it holds, and how it is started and reaped.

use super::Config;
use super::sent::SentQueue;
use crate::channel::{Attached, Channel, ChannelError, Received, RecvBuffer};
use crate::control::{CTRL_BYTES, Control, Doorbell};
use crate::error::PoolError;
use crate::protocol::ToWorker;
use crate::shm::SharedMemory;
use crate::spawn::{self, WorkerProcess};
use rustix::io::Errno;
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

/// Why a worker is being replaced.
#[derive(Debug)]
pub(super) enum WorkerEnd {
    /// The channel closed: the worker exited or was killed.
    ChannelClosed,
    /// The worker was not ready within the start timeout; it was killed.
    NotReady,
    /// Task `id` overran the task timeout; the worker was killed.
    TaskTimedOut { id: u64 },
    /// The worker held tasks but ran none of them and finished none for the task timeout
    /// (stopped, frozen); it was killed.
    Stalled,
    /// The worker broke the protocol; it was killed.
    ProtocolViolation(String),
    /// The pool's initializer failed in it (it exits).
    InitFailed(String),
}

/// The pool's side of one worker.
#[derive(Debug)]
pub(super) struct WorkerHandle {
    pub child: WorkerProcess,
    pub pid: u32,
    pub channel: Channel,
    /// What it has sent on the socket that is not handled yet.
    pub inbox: RecvBuffer,
    /// The frame last taken from its ring.
    pub ring_buf: Vec<u8>,
    pub control: Control,
    /// Tasks sent and not answered, in the order the worker runs them.
    pub sent: SentQueue,
    /// Tasks given to it in all.
    pub assigned: u64,
    /// It has said it is ready.
    pub ready: bool,
    /// Buffers it has mapped.
    pub mapped: HashSet<u64>,
    /// (busy ns, tasks done) of its control block when last read, for the average.
    pub seen_totals: (u64, u64),
    /// The worker's write count when its socket was last drained.
    pub seen_writes: u64,
    /// (task word, tasks done) of its control block when it last changed, and when
    /// (CLOCK_MONOTONIC ns) that was noticed, or when it was given work while idle.
    pub progress: ((u64, u64), u64),
    /// Set when it is to be replaced.
    pub end: Option<WorkerEnd>,
    /// When it was started.
    pub born: Instant,
}

impl WorkerHandle {
    /// Start `program` as a worker and queue its set-up message (sent by the first flush),
    /// which hands it its control block and the pool's doorbell.
    pub(super) fn spawn(cfg: &Config, doorbell: &Doorbell) -> Result<Self, PoolError> {
        let program: &Path = &cfg.program;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| PoolError::io("cannot create a socket pair", e))?;
        let shm = SharedMemory::new(CTRL_BYTES)
            .map_err(|e| PoolError::io("cannot create a control block", e))?;
        let control = Control::new(shm, true).ok_or_else(|| {
            PoolError::Internal("a control block does not fit in CTRL_BYTES".into())
        })?;
        let child =
            spawn::spawn_worker(program, OwnedFd::from(theirs), cfg.start, cfg.start_timeout)
                .map_err(|e| PoolError::Start {
                    program: program.display().to_string(),
                    reason: e.reason,
                    exit: e.exit.map(crate::error::WorkerExit::from_status),
                })?;
        let mut w = WorkerHandle {
            pid: child.id(),
            child,
            channel: Channel::new(OwnedFd::from(ours)),
            inbox: RecvBuffer::new(),
            ring_buf: Vec::new(),
            control,
            sent: SentQueue::default(),
            assigned: 0,
            ready: false,
            mapped: HashSet::new(),
            seen_totals: (0, 0),
            seen_writes: 0,
            progress: ((0, 0), crate::control::now_ns()),
            end: None,
            born: Instant::now(),
        };
        let setup = ToWorker::Setup {
            ctrl_bytes: CTRL_BYTES as u64,
            exe: cfg.exe,
            init: cfg.init.clone(),
        };
        let block: Attached = w.control.shm().inner().clone();
        let bell: Attached = doorbell.shm().inner().clone();
        if let Err(message) = w.channel.push(&setup, vec![block, bell]) {
            w.child.kill_and_reap();
            return Err(PoolError::Protocol {
                pid: w.pid,
                message,
            });
        }
        // Everything after the set-up may take the ring (the worker maps it first).
        w.channel.use_rings(w.control.rings());
        Ok(w)
    }

    /// Write what the socket takes without blocking; a failed write marks the worker
    /// gone.
    pub(super) fn flush(&mut self) {
        if self.end.is_some() {
            return;
        }
        let wrote = match self.channel.send(false) {
            Ok(wrote) => wrote,
            Err(_) => {
                self.end = Some(WorkerEnd::ChannelClosed);
                return;
            }
        };
        if wrote {
            self.control.wrote(false);
        }
        if self.channel.take_ring_sent() || wrote {
            self.control.notify();
        }
    }

    /// Read what is there (and the descriptors that come with it) without blocking.
    /// True at end of stream.
    pub(super) fn fill(&mut self) -> Result<bool, ChannelError> {
        // Read before draining: a write the worker makes later bumps the count past it.
        self.seen_writes = self.control.writes(true);
        loop {
            match self.channel.receive(&mut self.inbox, false) {
                Ok(Received::Closed) => return Ok(true),
                Ok(Received::Nothing) => return Ok(false),
                Ok(Received::Bytes { more: true, .. }) => {}
                Ok(Received::Bytes { more: false, .. }) => return Ok(false),
                Err(ChannelError::Os(Errno::CONNRESET)) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// Is task `id` one of ours?
    pub(super) fn holds(&self, id: u64) -> bool {
        self.sent
            .id_range()
            .is_some_and(|(first, last)| first <= id && id <= last)
    }

    /// Holds tasks and is not being replaced.
    pub(super) fn busy(&self) -> bool {
        !self.sent.is_empty() && self.end.is_none()
    }

    pub(super) fn kill(&mut self) {
        self.child.kill();
    }
}
