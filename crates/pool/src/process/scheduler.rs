//! The scheduler: the loop that keeps workers at full strength, sends them batches of
//! tasks, waits (spinning briefly on the pool's doorbell, then sleeping on it: a futex in
//! shared memory that every worker rings after it sends anything) until one answers, dies
//! or overruns a deadline, and takes in the answers (from the rings of the control blocks,
//! and from the sockets when a worker says it wrote there, or when the socket of a dead
//! worker closed, which the sockets are polled for at least every millisecond).

use super::Config;
use super::faults::{HANGUP_GRACE, convert, deadline_ns};
use super::sent::{Sent, SentQueue, SentRun, SentTask};
use super::task::{Batch, Feed, ItemData, Op, OpKind, Payload, StoredArgs};
use super::worker_handle::{WorkerEnd, WorkerHandle};
use crate::bulk;
use crate::channel::{Attached, ChannelError, MAX_FRAME, shrink};
use crate::control::{DOORBELL_BYTES, Doorbell, now_ns, spin_until};
use crate::error::{PoolError, WorkerExit};
use crate::protocol::{
    Bytes, FnRef, FromWorker, MapKind, Outcome, ToWorker, push_inline_value, push_sealed_value,
    take_outcome,
};
use crate::shm::{SharedMemory, ShmInner};
use crate::spawn::WorkerProcess;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long workers get to exit when the pool is dropped before they are killed.
const EXIT_GRACE: Duration = Duration::from_millis(250);
/// Work to keep queued in each worker, in nanoseconds.
const QUEUE_NS: f64 = 1_000_000.0;
/// Most tasks queued in one worker.
const MAX_DEPTH: usize = 1024;
/// How long the pool watches for answers before it sleeps in `poll`...
const SPIN_NS: u64 = 50_000;
/// ... when tasks take less than this on average.
const SPIN_IF_TASKS_UNDER_NS: f64 = 20_000.0;
/// Longest single wait (timeouts are checked at least this often).
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Longest sleep on the doorbell before the sockets are polled: a worker that dies rings
/// no doorbell, its socket closes.
const SLEEP_SLICE: Duration = Duration::from_millis(10);
/// Poll the sockets (without waiting) at least this often while the pool is busy.
const POLL_EVERY_NS: u64 = 1_000_000;
/// Most bytes of encoded arguments in one batch (a frame holds the batch and its fields).
const BATCH_BYTES: usize = MAX_FRAME - 64 * 1024;

/// The start error of a worker whose initializer failed.
pub(super) fn init_failed(program: String, message: String, exit: Option<WorkerExit>) -> PoolError {
    PoolError::Start {
        program,
        reason: format!("its initializer failed: {message}"),
        exit,
    }
}

/// The pool's state: its workers and what is needed to feed them.
pub(crate) struct Engine {
    pub(super) cfg: Arc<Config>,
    pub(super) slots: Vec<Option<WorkerHandle>>,
    /// Workers told to exit (max tasks reached), not yet reaped.
    retired: Vec<WorkerProcess>,
    next_id: u64,
    next_generation: u64,
    /// Buffers sent to workers, to tell them when the pool's side is gone.
    shared: HashMap<u64, Weak<ShmInner>>,
    /// Average task duration, from the control blocks.
    avg_ns: Option<f64>,
    pub(super) start_failures: u32,
    /// What the pool sleeps on while workers run.
    doorbell: Doorbell,
    /// When the sockets were last polled.
    last_poll: u64,
    /// The encoded arguments of the batch being sent.
    args_buf: Vec<u8>,
    /// Chunks of steps taken back from workers so far.
    #[cfg(test)]
    pub(super) taken_back: u64,
}

impl Engine {
    pub(super) fn start(cfg: Arc<Config>) -> Result<Engine, PoolError> {
        let shm = SharedMemory::new(DOORBELL_BYTES)
            .map_err(|e| PoolError::io("cannot create the pool's doorbell", e))?;
        let doorbell = Doorbell::new(shm)
            .ok_or_else(|| PoolError::Internal("a doorbell does not fit in its memory".into()))?;
        let mut engine = Engine {
            doorbell,
            last_poll: 0,
            args_buf: Vec::new(),
            slots: (0..cfg.workers).map(|_| None).collect(),
            cfg,
            retired: Vec::new(),
            next_id: 1,
            next_generation: 0,
            shared: HashMap::new(),
            avg_ns: None,
            start_failures: 0,
            #[cfg(test)]
            taken_back: 0,
        };
        engine.fill_slots()?;
        engine.wait_ready()?;
        Ok(engine)
    }

    pub(super) fn program(&self) -> String {
        self.cfg.program.display().to_string()
    }

    /// Process ids of the current workers.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.slots.iter().flatten().map(|w| w.pid).collect()
    }

    fn fill_slots(&mut self) -> Result<(), PoolError> {
        for i in 0..self.slots.len() {
            if self.slots[i].is_none() {
                let mut w = WorkerHandle::spawn(&self.cfg, &self.doorbell)?;
                w.flush();
                self.slots[i] = Some(w);
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), PoolError> {
        let started = Instant::now();
        let mut op = self.new_op(OpKind::Call(FnRef { f: 0, call: 0 }), 1);
        loop {
            for w in self.slots.iter_mut().flatten() {
                if let Some(end) = w.end.take() {
                    let exit = match end {
                        WorkerEnd::ProtocolViolation(message) => {
                            w.kill();
                            return Err(PoolError::Protocol {
                                pid: w.pid,
                                message,
                            });
                        }
                        WorkerEnd::InitFailed(message) => {
                            let exit = w
                                .child
                                .reap(Instant::now() + HANGUP_GRACE)
                                .map(WorkerExit::from_status);
                            return Err(init_failed(self.program(), message, exit));
                        }
                        _ => w
                            .child
                            .reap(Instant::now() + HANGUP_GRACE)
                            .map(WorkerExit::from_status),
                    };
                    return Err(PoolError::Start {
                        program: self.cfg.program.display().to_string(),
                        reason: "it exited before it was ready (a program that starts a process pool must call \
                                 kernelpool_pool::init() first thing in main)"
                            .into(),
                        exit,
                    });
                }
            }
            if self.slots.iter().flatten().all(|w| w.ready) {
                return Ok(());
            }
            let left = self.cfg.start_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(PoolError::Start {
                    program: self.program(),
                    reason: format!("not ready after {:?}", self.cfg.start_timeout),
                    exit: None,
                });
            }
            self.wait(&mut op, left.min(MAX_WAIT))?;
            self.check_timeouts();
        }
    }

    pub(crate) fn new_op(&mut self, kind: OpKind, chunk_len: usize) -> Op {
        self.next_generation += 1;
        self.release_unused();
        Op {
            generation: self.next_generation,
            kind,
            chunk_len: chunk_len.max(1),
            pending: VecDeque::new(),
            store: StoredArgs::default(),
            store_next: 0,
            outstanding: 0,
            ready: VecDeque::new(),
            values: VecDeque::new(),
            value_bytes: Vec::new(),
            exhausted: true,
            stop: false,
            workers: usize::MAX,
        }
    }

    /// Tell workers to unmap buffers whose pool-side memory is gone.
    fn release_unused(&mut self) {
        let gone: Vec<u64> = self
            .shared
            .iter()
            .filter(|(_, w)| w.strong_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            self.shared.remove(id);
        }
        for w in self.slots.iter_mut().flatten() {
            let ids: Vec<u64> = gone
                .iter()
                .copied()
                .filter(|id| w.mapped.remove(id))
                .collect();
            if !ids.is_empty() {
                // Encoding a list of integers cannot fail.
                let _ = w.channel.push(&ToWorker::Unmap { ids }, vec![]);
            }
        }
    }

    /// Number of tasks to keep queued in one worker.
    fn depth(&self, chunk_len: usize) -> usize {
        let d = match self.avg_ns {
            Some(avg) => (QUEUE_NS / avg.max(1.0)) as usize,
            None => 2,
        };
        d.clamp(2, MAX_DEPTH).max(chunk_len.saturating_mul(2))
    }

    /// One round: replace workers, send tasks, wait (when nothing is ready for the
    /// caller) until a worker answers, dies or overruns a timeout, and handle that.
    pub(crate) fn step(&mut self, op: &mut Op, feed: Feed<'_>) -> Result<(), PoolError> {
        self.round(op, feed, true)
    }

    /// [`Engine::step`], waiting only when `block` (otherwise taking in what has come).
    pub(crate) fn round(
        &mut self,
        op: &mut Op,
        feed: Feed<'_>,
        block: bool,
    ) -> Result<(), PoolError> {
        self.reap_retired();
        self.retire_spent();
        self.fill_slots()?;
        // A round that does not wait comes between chunks the caller runs itself: the
        // answers that came meanwhile free room in workers' queues before more is sent
        // (otherwise a worker that finished its queue meanwhile would wait for the
        // caller's next round, a chunk later). (Taken in here before a waiting round too,
        // they slowed `map` of tiny tasks: 3.5-5.3 against 7.5-7.9 M tasks/s.)
        if !block && self.news() {
            self.take_in(op);
        }
        self.dispatch(op, feed)?;
        for w in self.slots.iter_mut().flatten() {
            w.flush();
        }
        let busy = self.slots.iter().flatten().any(WorkerHandle::busy);
        let timeout = if !block || op.has_ready() || !busy {
            Duration::ZERO
        } else {
            self.poll_timeout()
        };
        self.wait(op, timeout)?;
        self.check_timeouts();
        self.replace_ended(op)?;
        // Back to full strength before the caller gets control.
        self.fill_slots()
    }

    fn dispatch(&mut self, op: &mut Op, feed: Feed<'_>) -> Result<(), PoolError> {
        if op.stop {
            return Ok(());
        }
        let depth = self.depth(op.chunk_len);
        let max_tasks = self.cfg.max_tasks.unwrap_or(u64::MAX);
        let n = self.slots.len();
        // Tasks go straight from the queue to the back of each worker's `sent` (their ids
        // are set below, once each worker's count is known). Per worker: tasks added, their
        // bytes of arguments and sealed arguments (see `Batch`), and whether one more would
        // make its frame too long.
        let mut batches = vec![Batch::default(); n];
        let mut full = vec![false; n];
        // Where each worker's records of this batch begin.
        let marks: Vec<usize> = self
            .slots
            .iter()
            .map(|w| w.as_ref().map_or(0, |w| w.sent.records()))
            .collect();
        loop {
            let mut best: Option<(usize, usize)> = None;
            let mut open = 0;
            for (i, w) in self.slots.iter().enumerate() {
                let Some(w) = w else { continue };
                let load = w.sent.len();
                if w.end.is_some()
                    || i >= op.workers
                    || full[i]
                    || load >= depth
                    || w.assigned + batches[i].tasks as u64 >= max_tasks
                {
                    continue;
                }
                open += 1;
                if best.is_none_or(|(_, l)| load < l) {
                    best = Some((i, load));
                }
            }
            let Some((i, load)) = best else { break };
            while op.pending.len() < op.chunk_len && !op.exhausted {
                match feed() {
                    None => op.exhausted = true,
                    Some(Ok(item)) => op.pending.push_back(item),
                    Some(Err((idx, e))) => {
                        // Let the caller have it before taking more arguments: an
                        // endless run of arguments that cannot be sent must not keep
                        // this loop (and the queue of errors) growing forever.
                        op.ready.push_back((idx, Err(e)));
                        break;
                    }
                }
            }
            let w = self.slots[i].as_mut().expect("chosen among live workers");
            let generation = op.generation;
            if op.pending.is_empty() {
                // Stored arguments: a run of consecutive tasks, this worker's share of
                // those left (whole chunks), as far as its queue, its task limit and its
                // frame allow.
                let left = op.store.len() - op.store_next;
                if left == 0 {
                    break;
                }
                let room = (depth - load).min(
                    usize::try_from(max_tasks - w.assigned).unwrap_or(usize::MAX)
                        - batches[i].tasks,
                );
                let share = left.div_ceil(open).next_multiple_of(op.chunk_len);
                let want = share.min(room).max(1).min(left);
                let batch = &mut batches[i];
                let first_pos = op.store_next;
                let first_idx = op.store.idx(first_pos);
                let mut count = 0;
                while count < want {
                    let pos = first_pos + count;
                    if op.store.idx(pos) != first_idx + count {
                        break;
                    }
                    let size = op.store.span(pos..pos + 1).len();
                    if batch.tasks > 0 && batch.bytes + size > BATCH_BYTES {
                        full[i] = true;
                        break;
                    }
                    batch.tasks += 1;
                    batch.bytes += size;
                    count += 1;
                }
                if count > 0 {
                    op.store_next += count;
                    w.sent.push(Sent::Run(SentRun {
                        first_id: 0,
                        generation,
                        first_idx,
                        first_pos,
                        count,
                    }));
                }
                continue;
            }
            let store = &op.store;
            full[i] = !batches[i].take(&mut op.pending, store, op.chunk_len, BATCH_BYTES, |it| {
                w.sent.push(Sent::Task(SentTask {
                    id: 0,
                    generation,
                    idx: it.idx,
                    data: it.data,
                    tries: it.tries,
                    arrays: it.arrays,
                }));
            });
        }
        let Engine {
            slots,
            shared,
            next_id,
            args_buf,
            ..
        } = self;
        for (i, batch) in batches.into_iter().enumerate() {
            if batch.tasks == 0 {
                continue;
            }
            let w = slots[i].as_mut().expect("batches go to live workers");
            let first = *next_id;
            *next_id += batch.tasks as u64;
            let from = marks[i];
            w.sent.number_from(from, first);
            let tasks = || {
                w.sent.records_from(from).filter_map(|r| match r {
                    Sent::Task(t) => Some(t),
                    Sent::Run(_) => None,
                })
            };
            let encoded = match &op.kind {
                OpKind::Call(fun) => {
                    // Shared arrays the batch names that the worker has not mapped yet.
                    let mut r = Ok(());
                    for shm in tasks().flat_map(|f| &f.arrays) {
                        if r.is_ok() && w.mapped.insert(shm.id()) {
                            let kind = if shm.is_read_only() {
                                MapKind::ReadOnlyArray
                            } else {
                                MapKind::OutputArray
                            };
                            let msg = ToWorker::Map {
                                id: shm.id(),
                                bytes: shm.bytes() as u64,
                                kind,
                            };
                            r = w.channel.push(&msg, vec![shm.clone() as Attached]);
                            shared
                                .entry(shm.id())
                                .or_insert_with(|| Arc::downgrade(shm));
                        }
                    }
                    let mut fds: Vec<Attached> = Vec::new();
                    args_buf.clear();
                    for r in w.sent.records_from(from) {
                        let f = match r {
                            Sent::Task(f) => f,
                            Sent::Run(run) => {
                                let pos = run.first_pos..run.first_pos + run.count;
                                args_buf.extend_from_slice(op.store.span(pos));
                                continue;
                            }
                        };
                        match &f.data {
                            ItemData::Small(a) => push_inline_value(args_buf, a.as_slice()),
                            ItemData::Arg(a) => push_inline_value(args_buf, a),
                            ItemData::Stored(pos) => {
                                args_buf.extend_from_slice(op.store.span(*pos..*pos + 1));
                            }
                            ItemData::Sealed(s) => {
                                fds.push(s.clone());
                                push_sealed_value(args_buf, s.len() as u64);
                            }
                            ItemData::Range(..) => push_inline_value(args_buf, &[]),
                        }
                    }
                    let msg = ToWorker::Call {
                        first,
                        fun: *fun,
                        count: batch.tasks as u32,
                        args: Bytes(args_buf),
                    };
                    let r = r.and_then(|()| w.channel.push(&msg, fds));
                    shrink(args_buf);
                    r
                }
                OpKind::Step {
                    kernel,
                    args,
                    bufs,
                    shms,
                } => {
                    let mut r = Ok(());
                    for shm in shms {
                        if r.is_ok() && w.mapped.insert(shm.id()) {
                            let msg = ToWorker::Map {
                                id: shm.id(),
                                bytes: shm.bytes() as u64,
                                kind: MapKind::Buffer,
                            };
                            r = w.channel.push(&msg, vec![shm.clone() as Attached]);
                            shared
                                .entry(shm.id())
                                .or_insert_with(|| Arc::downgrade(shm));
                        }
                    }
                    // (A step's tasks are items, each a range.)
                    let ranges = tasks()
                        .map(|f| match f.data {
                            ItemData::Range(a, b) => (a, b),
                            ItemData::Small(_)
                            | ItemData::Arg(_)
                            | ItemData::Sealed(_)
                            | ItemData::Stored(_) => (0, 0),
                        })
                        .collect();
                    r.and_then(|()| {
                        let msg = ToWorker::Step {
                            first,
                            kernel: Cow::Borrowed(kernel),
                            args: *args,
                            bufs: Cow::Borrowed(bufs),
                            ranges,
                        };
                        w.channel.push(&msg, vec![])
                    })
                }
            };
            if let Err(e) = encoded {
                // Not sent: neither this worker nor those after it must be thought to
                // hold what this round gave them.
                w.sent.truncate(from);
                let pid = w.pid;
                for (w, &mark) in slots.iter_mut().zip(&marks).skip(i + 1) {
                    if let Some(w) = w {
                        w.sent.truncate(mark);
                    }
                }
                return Err(PoolError::Protocol {
                    pid,
                    message: format!("cannot encode tasks: {e}"),
                });
            }
            w.assigned += batch.tasks as u64;
            op.outstanding += batch.tasks;
            if from == 0 {
                // Idle until now: its progress deadline counts from here.
                w.progress.1 = now_ns();
            }
        }
        Ok(())
    }

    /// How long to wait: until the earliest deadline of a busy worker (see
    /// [`deadline_ns`]), at most `MAX_WAIT`.
    fn poll_timeout(&self) -> Duration {
        let Some(t) = self.cfg.timeout else {
            return MAX_WAIT;
        };
        let now = now_ns();
        let t_ns = t.as_nanos().min(u64::MAX as u128) as u64;
        let mut wait = MAX_WAIT.as_nanos() as u64;
        for w in self.slots.iter().flatten() {
            if let Some(deadline) = deadline_ns(w, w.control.current(), t_ns) {
                wait = wait.min(deadline.saturating_sub(now));
            }
        }
        // Wake just after the deadline rather than just before it.
        Duration::from_nanos(wait) + Duration::from_micros(100)
    }

    /// Wait up to `timeout` for any worker to send something (or die), then take in
    /// what they sent. When tasks are short, the doorbell is watched for a little while
    /// before the pool sleeps on it: an answer that comes within microseconds is then
    /// taken without a wake-up.
    fn wait(&mut self, op: &mut Op, timeout: Duration) -> Result<(), PoolError> {
        let unsent = self
            .slots
            .iter()
            .flatten()
            .any(|w| w.end.is_none() && w.channel.unsent() > 0);
        if unsent {
            // A socket is full: wait in poll until it takes more (the workers' rings are
            // looked at every millisecond meanwhile).
            self.poll_sockets(op, timeout.min(Duration::from_millis(1)))?;
            self.take_in(op);
            return Ok(());
        }
        let seen = self.doorbell.rung();
        let mut poll_now = now_ns().saturating_sub(self.last_poll) >= POLL_EVERY_NS;
        if !timeout.is_zero() && !self.news() {
            let spun = self.avg_ns.is_none_or(|a| a < SPIN_IF_TASKS_UNDER_NS)
                && spin_until(SPIN_NS, || self.doorbell.rung() != seen || self.news());
            if !spun {
                self.doorbell.sleep(seen, timeout.min(SLEEP_SLICE));
                if self.doorbell.rung() == seen {
                    // Nothing rang: look whether a socket closed.
                    poll_now = true;
                }
            }
        }
        if poll_now {
            self.poll_sockets(op, Duration::ZERO)?;
        }
        self.take_in(op);
        Ok(())
    }

    /// A worker has put a frame in its ring or written to its socket that is not taken in.
    fn news(&self) -> bool {
        self.slots.iter().flatten().any(|w| {
            w.end.is_none()
                && (w.channel.has_ring_data() || w.control.writes(true) != w.seen_writes)
        })
    }

    /// Take in what workers have put in their rings, and read the sockets they say they
    /// wrote to.
    fn take_in(&mut self, op: &mut Op) {
        for i in 0..self.slots.len() {
            let Some(w) = &self.slots[i] else { continue };
            if w.end.is_some() {
                continue;
            }
            let socket = w.control.writes(true) != w.seen_writes;
            if socket || w.channel.has_ring_data() {
                self.read_from(i, op, socket);
            }
        }
    }

    /// Wait up to `timeout` for any worker's socket to be readable (or writable when it
    /// has unsent bytes), then read and write what can be.
    fn poll_sockets(&mut self, op: &mut Op, timeout: Duration) -> Result<(), PoolError> {
        self.last_poll = now_ns();
        let mut who = Vec::with_capacity(self.slots.len());
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::with_capacity(self.slots.len());
            for (i, w) in self.slots.iter().enumerate() {
                let Some(w) = w else { continue };
                if w.end.is_some() {
                    continue;
                }
                let flags = if w.channel.unsent() > 0 {
                    PollFlags::IN | PollFlags::OUT
                } else {
                    PollFlags::IN
                };
                fds.push(PollFd::new(w.channel.socket(), flags));
                who.push(i);
            }
            if fds.is_empty() {
                return Ok(());
            }
            let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            match poll(&mut fds, Some(&ts)) {
                Ok(_) => {}
                Err(Errno::INTR) => return Ok(()),
                Err(e) => return Err(PoolError::io("poll on the workers' sockets", e.into())),
            }
            fds.iter().map(|f| f.revents()).collect()
        };
        for (k, i) in who.into_iter().enumerate() {
            let ev = revents[k];
            if ev.is_empty() {
                continue;
            }
            if ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                self.read_from(i, op, true);
            }
            let w = self.slots[i].as_mut().expect("polled workers are live");
            if ev.contains(PollFlags::OUT) {
                w.flush();
            }
        }
        Ok(())
    }

    /// Take in what worker `i` has sent: its ring, and its socket too when `socket`.
    fn read_from(&mut self, i: usize, op: &mut Op, socket: bool) {
        let Engine {
            slots,
            start_failures,
            avg_ns,
            ..
        } = self;
        let w = slots[i].as_mut().expect("read from a live worker");
        let eof = match socket.then(|| w.fill()) {
            None => false,
            Some(Ok(eof)) => eof,
            Some(Err(ChannelError::Protocol(m))) => {
                w.end = Some(WorkerEnd::ProtocolViolation(m));
                true
            }
            Some(Err(ChannelError::Os(_))) => true,
        };
        while w.end.is_none() {
            let frame = match w.channel.next_frame(&mut w.inbox, &mut w.ring_buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(m) => {
                    w.end = Some(WorkerEnd::ProtocolViolation(m));
                    break;
                }
            };
            let (id, outcome) = match postcard::from_bytes::<FromWorker<'_>>(frame) {
                Ok(FromWorker::Ready { .. }) => {
                    w.ready = true;
                    *start_failures = 0;
                    continue;
                }
                Ok(FromWorker::InitFailed { message }) => {
                    w.end = Some(WorkerEnd::InitFailed(message.into_owned()));
                    break;
                }
                Ok(FromWorker::Done { id, outcome }) => (id, outcome),
                Ok(FromWorker::Results {
                    first,
                    count,
                    outcomes,
                }) => {
                    if let Err(m) = answers(&mut w.sent, op, w.pid, first, count, outcomes.0) {
                        w.end = Some(WorkerEnd::ProtocolViolation(m));
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    w.end = Some(WorkerEnd::ProtocolViolation(format!(
                        "undecodable message: {e}"
                    )));
                    break;
                }
            };
            // A sealed result's descriptor came with its frame: claim it whatever becomes
            // of the task (it is closed once mapped, or dropped).
            let sealed = match outcome {
                Outcome::Sealed { bytes } => match w.channel.take_fd() {
                    Some(fd) => Some(bulk::Mapped::open(fd, bytes as usize)),
                    None => {
                        w.end = Some(WorkerEnd::ProtocolViolation(format!(
                            "the result of task {id} came without its descriptor"
                        )));
                        break;
                    }
                },
                _ => None,
            };
            let Some((generation, idx)) = w.sent.answer(id) else {
                w.end = Some(WorkerEnd::ProtocolViolation(format!(
                    "an answer for task {id}, which it does not hold"
                )));
                break;
            };
            if generation == op.generation {
                op.outstanding -= 1;
                let r = match sealed {
                    Some(Ok(m)) => Ok(Payload::Mapped(m)),
                    Some(Err(e)) => Err(PoolError::Codec {
                        task: idx,
                        message: format!("cannot map the result: {e}"),
                    }),
                    None => convert(outcome, idx, w.pid),
                };
                op.ready.push_back((idx, r));
            }
        }
        if matches!(w.end, Some(WorkerEnd::ProtocolViolation(_))) {
            w.kill();
        } else if eof && w.end.is_none() {
            w.end = Some(WorkerEnd::ChannelClosed);
        }
        let (busy, done) = w.control.totals();
        if done > w.seen_totals.1 {
            let sample =
                busy.saturating_sub(w.seen_totals.0) as f64 / (done - w.seen_totals.1) as f64;
            *avg_ns = Some(avg_ns.map_or(sample, |a| 0.7 * a + 0.3 * sample));
            w.seen_totals = (busy, done);
        }
    }

    /// Let workers that reached the task limit go (they exit when their channel closes).
    fn retire_spent(&mut self) {
        let Some(max) = self.cfg.max_tasks else {
            return;
        };
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|w| w.assigned >= max && w.sent.is_empty() && w.end.is_none())
            {
                let w = slot.take().expect("checked above");
                self.retired.push(w.child);
            }
        }
    }

    fn reap_retired(&mut self) {
        self.retired.retain_mut(|c| !c.ended());
    }

    /// Give up `op` after a failure of the pool: nothing more of it is sent, answers still
    /// to come are ignored, and the indices of its tasks that were queued or out (taken
    /// and not delivered) are returned, in order.
    pub(crate) fn abandon(&mut self, op: &mut Op) -> Vec<usize> {
        let mut lost: Vec<usize> = op.pending.iter().map(|it| it.idx).collect();
        lost.extend((op.store_next..op.store.len()).map(|pos| op.store.idx(pos)));
        for w in self.slots.iter_mut().flatten() {
            for (generation, idx) in w.sent.indices() {
                if generation == op.generation {
                    lost.push(idx);
                }
            }
        }
        lost.sort_unstable();
        op.halt();
        op.outstanding = 0;
        // Answers to it that still come belong to no operation.
        op.generation = u64::MAX;
        lost
    }

    /// Kill the workers holding tasks of `op` (after a failure that stops the operation:
    /// nothing of it may go on running).
    pub(crate) fn abort(&mut self, op: &Op) {
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|w| w.sent.holds_generation(op.generation))
            {
                let mut w = slot.take().expect("checked above");
                w.child.kill_and_reap();
            }
        }
    }
}

/// Take in the outcomes of a worker's tasks `first`, `first + 1`, ... (`count` of them,
/// encoded one after the other in `bytes`, from a private copy of the frame): each must be
/// the answer to the next task it holds. `Err` says how the worker broke the protocol.
fn answers(
    sent: &mut SentQueue,
    op: &mut Op,
    pid: u32,
    first: u64,
    count: u32,
    mut bytes: &[u8],
) -> Result<(), String> {
    for k in 0..u64::from(count) {
        let id = first.wrapping_add(k);
        let (outcome, rest) =
            take_outcome(bytes).map_err(|e| format!("undecodable outcome of task {id}: {e}"))?;
        bytes = rest;
        if matches!(outcome, Outcome::Sealed { .. }) {
            return Err(format!(
                "the result of task {id} came without its descriptor"
            ));
        }
        let Some((generation, idx)) = sent.answer(id) else {
            return Err(format!("an answer for task {id}, which it does not hold"));
        };
        if generation == op.generation {
            op.outstanding -= 1;
            match outcome {
                // A function's value, kept as it came (the caller decodes it).
                Outcome::Value(v) if matches!(op.kind, OpKind::Call(_)) => {
                    op.push_value(idx, v.0);
                }
                outcome => op.ready.push_back((idx, convert(outcome, idx, pid))),
            }
        }
    }
    if !bytes.is_empty() {
        return Err(format!(
            "{} bytes after the {count} outcomes of a frame",
            bytes.len()
        ));
    }
    Ok(())
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing a channel tells its worker to exit; all are told before any is waited for.
        let mut children: Vec<WorkerProcess> = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .map(|w| w.child)
            .collect();
        children.append(&mut self.retired);
        let deadline = Instant::now() + EXIT_GRACE;
        for c in &mut children {
            c.reap(deadline);
        }
    }
}
