//! The worker process: entered through [`crate::init`] when the environment carries the
//! pool's token, it serves tasks from its control block's ring and its socket until the
//! pool closes the socket or lets it go (the `closed` flag of the control block), then
//! exits. Between batches it spins on the pool's count of batches, then sleeps on it (a
//! futex in the control block).
//!
//! Tasks run one after the other in the order they arrive. Before each task the worker
//! records its id and start time in the control block shared with the pool; results are
//! written back in batches (when no more input is buffered, after 100 µs, or after 256 KiB),
//! so that many tiny tasks cost few system calls, and the outcomes of short tasks travel
//! up to 64 to a frame (a `Results`), put into the ring before the next task starts once
//! they are 5 µs old, so that the pool decodes one frame for many tasks.

use crate::bulk::{self, Sealed};
use crate::channel::{Channel, ChannelError, Received, RecvBuffer, shrink};
use crate::control::{Control, DOORBELL_BYTES, Doorbell, now_ns, spin_until};
use crate::protocol::{
    self, BufRef, Bytes, FromWorker, KernelRef, MapKind, Outcome, ToWorker, Value, clip_message,
};
use crate::shm::{SharedMemory, ShmInner};
use kernelpool_kernels::{Buffer, Error, Kernel, KernelName, Lang, Step, StepArgs};
use rustix::io::Errno;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

/// Flush results older than this.
const FLUSH_AFTER_NS: u64 = 100_000;
/// Send the result of a task that ran this long at once, when the worker is about to
/// run out of tasks (the pool then refills its queue in time) ...
const LONG_TASK_NS: u64 = 20_000;
/// Tasks shorter than this on average are timed a few at a time ...
const TINY_TASK_NS: u64 = 1_000;
/// ... up to this many in a row not timed, then one reading of the clock.
const MAX_STRIDE: u32 = 7;
/// ... and hold results of long tasks at most this long while more of its frame follow
/// (every write wakes the pool, which then competes with the workers for the cores).
const HOLD_LONG_NS: u64 = 2_000_000;
/// Flush results once this many bytes are waiting.
const FLUSH_BYTES: usize = 256 * 1024;
/// Results of short tasks travel together, this many at most in one frame ...
const RESULTS_PER_FRAME: u32 = 64;
/// ... and while their encodings take less than this; results held this long go into
/// the ring before the next task starts (a task that turns out to be slow does not keep
/// them from the pool, which takes what is in the ring whenever it looks).
const RESULTS_BYTES: usize = 16 * 1024;
const HOLD_RESULTS_NS: u64 = 5_000;
/// How long a worker that has run out of tasks watches for more before it sleeps.
const SPIN_NS: u64 = 50_000;
/// Longest it ever spins so: an idle worker sleeps after this (it burns no CPU then).
const MAX_SPIN_NS: u64 = 1_000_000;
/// Longest sleep on the control block before it looks whether the socket closed (the
/// pool wakes it when it lets it go; this covers a pool that vanished).
const SLEEP_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// Parse the tokens and, when one is ours, become a worker or the fork server (never
/// returns then).
///
/// A token names the socket by descriptor number and by inode, and the pool by pid: a
/// process that inherited the variable but not the socket (a program started from inside
/// a task) finds no socket of that inode at that number and is neither. In a worker and
/// in the fork server the variable is removed at once, so their children do not inherit
/// it at all.
pub(crate) fn enter_if_token() {
    if let Some((sock, ppid)) = take_token(protocol::TOKEN) {
        main(sock, ppid)
    }
    if let Some((sock, ppid)) = take_token(crate::fork_server::TOKEN) {
        crate::fork_server::serve(sock, ppid)
    }
}

/// True when a pool started this process (as a worker or as the fork server) and it did
/// not become one: [`crate::init`] did not run first in `main`. Such a process must not
/// start pools of its own (each would start the program again, without end).
pub(crate) fn started_by_a_pool() -> bool {
    [protocol::TOKEN, crate::fork_server::TOKEN]
        .iter()
        .any(|name| token_fd(name).is_some())
}

/// The descriptor and the pool's pid that the environment variable `name` names, when it
/// is a token of ours (a socket of that inode is open there).
fn token_fd(name: &str) -> Option<(i32, i32)> {
    let token = std::env::var_os(name)?;
    let (fd, ppid, inode) = parse_token(token.to_str().unwrap_or(""))?;
    (fd >= 3 && socket_inode(fd) == Some(inode)).then_some((fd, ppid))
}

/// The socket and the pool's pid that the environment variable `name` names, when it is
/// a token of ours.
fn take_token(name: &str) -> Option<(OwnedFd, i32)> {
    let (fd, ppid) = token_fd(name)?;
    if single_threaded() {
        // SAFETY: no other thread exists in this process (just checked), so nothing can
        // read or write the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    // SAFETY: `fd` is open and is the very socket the pool made for this process (same
    // inode, checked just above), inherited for exactly this purpose; nothing else in the
    // process knows about it, since `init()` runs first in `main`.
    Some((unsafe { OwnedFd::from_raw_fd(fd) }, ppid))
}

/// `<fd>,<parent pid>,<socket inode>`.
pub(crate) fn parse_token(token: &str) -> Option<(i32, i32, u64)> {
    let mut parts = token.split(',');
    let fd = parts.next()?.parse().ok()?;
    let ppid = parts.next()?.parse().ok()?;
    let inode = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((fd, ppid, inode))
}

/// The inode of the socket open at `fd`, if a socket is open there.
fn socket_inode(fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// True when this process has one thread.
pub(crate) fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// Be a worker on `sock`, started by process `ppid` (the pool, or the fork server).
pub(crate) fn main(sock: OwnedFd, ppid: i32) -> ! {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    // Die with the pool: the signal covers a parent killed outright, the getppid check
    // covers a parent that died before the signal was armed, and EOF on the socket covers
    // the rest.
    let _ = set_parent_process_death_signal(Some(Signal::KILL));
    if getppid().map(|p| p.as_raw_pid()) != Some(ppid) {
        std::process::exit(0);
    }
    let _ = rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC);
    install_panic_hook();
    let code = match Worker::new(sock).serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kernelpool worker {}: {e}", std::process::id());
            70
        }
    };
    std::process::exit(code)
}

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside tasks are reported to the pool, not printed here; other panics (a bug
/// in the worker itself) go to the default hook.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TASK.get() {
            PANIC_AT.with_borrow_mut(|at| *at = info.location().map(|l| l.to_string()));
        } else {
            default(info)
        }
    }));
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    };
    match PANIC_AT.with_borrow_mut(Option::take) {
        Some(at) => format!("{msg} (at {at})"),
        None => msg,
    }
}

/// A buffer the pool has shared with this worker, and a `Buffer` view of it kept from the
/// last step that used it.
struct Mapped {
    shm: Arc<ShmInner>,
    view: Option<Buffer>,
}

struct Worker {
    channel: Channel,
    /// When the oldest unsent result was produced.
    pending_since: Option<u64>,
    /// How long the last task ran.
    last_task_ns: u64,
    /// Tasks of the frame being served that still follow the current one.
    queued: usize,
    /// How long to spin for the next batch before sleeping.
    spin_ns: u64,
    control: Option<Control>,
    /// The pool's doorbell (rung after each batch of results).
    doorbell: Option<Doorbell>,
    /// The pool's count of socket writes when the socket was last drained.
    seen_socket: u64,
    same_exe: bool,
    bufs: HashMap<u64, Mapped>,
    libs: HashMap<(PathBuf, String, KernelName, Lang, protocol::FileId), Kernel>,
    scratch: Vec<u8>,
    /// Outcomes not yet put into a frame: those of tasks `results.0`, `results.0 + 1`,
    /// ..., `results.1` of them, encoded one after the other in `result_bytes`.
    results: (u64, u32),
    result_bytes: Vec<u8>,
    /// When the first of them was produced.
    results_since: u64,
    /// When the last task ended, while nothing that takes time (a system call, a wait)
    /// has happened since: the next task's start and the age of the results are taken
    /// from it instead of from more readings of the clock (two of the three a tiny task
    /// would need; on a VM each costs tens of nanoseconds).
    clock: Option<u64>,
    /// Tasks finished since `clock` was read, and how many may finish before it is read
    /// again (see [`Worker::task`]).
    unread: u32,
    stride: u32,
}

impl Worker {
    fn new(sock: OwnedFd) -> Worker {
        Worker {
            channel: Channel::new(sock),
            pending_since: None,
            last_task_ns: 0,
            queued: 0,
            spin_ns: SPIN_NS,
            control: None,
            doorbell: None,
            seen_socket: 0,
            same_exe: false,
            bufs: HashMap::new(),
            libs: HashMap::new(),
            scratch: Vec::new(),
            results: (0, 0),
            result_bytes: Vec::new(),
            results_since: 0,
            clock: None,
            unread: 0,
            stride: 0,
        }
    }

    /// Serve until the pool closes the socket or lets the worker go.
    fn serve(&mut self) -> Result<(), String> {
        let mut inbox = RecvBuffer::new();
        let mut ring_buf = Vec::new();
        // Since when nothing has come (set after a sleep that nothing ended).
        let mut idle_since: Option<u64> = None;
        loop {
            while let Some(frame) = self
                .channel
                .next_frame(&mut inbox, &mut ring_buf)
                .map_err(|m| format!("bad message from the pool: {m}"))?
            {
                idle_since = None;
                self.handle(frame)?;
            }
            shrink(&mut ring_buf);
            if self.channel.waits_for_socket() {
                // The pool has sent (or is sending) the socket frames the next ring frame
                // follows.
                if self.receive(&mut inbox, true)? == Received::Closed {
                    return Ok(());
                }
                continue;
            }
            self.flush()?;
            let Some(c) = &self.control else {
                // Not set up yet: everything comes on the socket.
                if self.receive(&mut inbox, true)? == Received::Closed {
                    return Ok(());
                }
                continue;
            };
            // Wait for more: look (the ring, then the socket if the pool says it wrote
            // there), spin a little on the pool's count of batches (a pool that answers at
            // once is served without either side sleeping), then sleep on it (a futex on
            // the control block: the pool wakes it), waking now and then to see whether
            // the socket closed.
            let seen = c.peer_sent();
            if self.drain_socket(&mut inbox)? {
                return Ok(());
            }
            let c = self.control.as_ref().expect("set up");
            if self.channel.has_ring_data() || inbox.has_frame() {
                continue;
            }
            if c.closed() {
                return Ok(());
            }
            // An idle worker that woke to look at its socket goes back to sleep at once.
            let idle_from = idle_since.unwrap_or_else(now_ns);
            if idle_since.is_none() && spin_until(self.spin_ns, || c.peer_sent() != seen) {
                self.learn_gap(now_ns() - idle_from);
                continue;
            }
            c.sleep(seen, SLEEP_SLICE);
            if c.peer_sent() != seen {
                idle_since = None;
                self.learn_gap(now_ns() - idle_from);
            } else if self.receive(&mut inbox, false)? == Received::Closed {
                // Nothing came for a while: the pool may be gone without a word.
                return Ok(());
            } else {
                idle_since = Some(idle_from);
            }
        }
    }

    /// Receive what the pool has written to the socket since this was last called (it
    /// counts its writes in the control block, so an empty socket costs no system call).
    /// True when the socket is closed.
    fn drain_socket(&mut self, inbox: &mut RecvBuffer) -> Result<bool, String> {
        let Some(c) = &self.control else {
            return Ok(false);
        };
        let wrote = c.writes(false);
        if wrote == self.seen_socket {
            return Ok(false);
        }
        // Read before draining: a write the pool makes later bumps the count past it.
        self.seen_socket = wrote;
        loop {
            match self.receive(inbox, false)? {
                Received::Closed => return Ok(true),
                Received::Bytes { more: true, .. } => {}
                Received::Bytes { more: false, .. } | Received::Nothing => return Ok(false),
            }
        }
    }

    /// Adapt the spin to the gaps between the pool's batches: an iterative program sends
    /// its next step within microseconds of the last answer, and a worker that is still
    /// spinning takes it without a wake-up; gaps longer than [`MAX_SPIN_NS`] are not worth
    /// spinning for.
    fn learn_gap(&mut self, gap_ns: u64) {
        self.spin_ns = if gap_ns <= MAX_SPIN_NS / 2 {
            (2 * gap_ns).clamp(SPIN_NS, MAX_SPIN_NS)
        } else {
            SPIN_NS
        };
    }

    /// Receive more bytes (and descriptors).
    fn receive(&mut self, inbox: &mut RecvBuffer, wait: bool) -> Result<Received, String> {
        self.channel.receive(inbox, wait).map_err(|e| match e {
            ChannelError::Os(e) => format!("cannot read from the pool: {e}"),
            ChannelError::Protocol(m) => format!("bad message from the pool: {m}"),
        })
    }

    fn flush(&mut self) -> Result<(), String> {
        self.push_results()?;
        if self.channel.unsent() > 0 {
            // The pool reads the socket while this blocks on it (it would not see the
            // bytes until the send is over, and a full socket would wait for it).
            self.tell_pool(true);
        }
        match self.channel.send(true) {
            Ok(wrote) => {
                if self.channel.take_ring_sent() || wrote {
                    self.tell_pool(wrote);
                }
                self.pending_since = None;
                self.clock = None;
                Ok(())
            }
            // The pool is gone: nothing left to do.
            Err(Errno::PIPE | Errno::CONNRESET) => std::process::exit(0),
            Err(e) => Err(format!("cannot write to the pool: {e}")),
        }
    }

    /// Tell the pool that frames were sent (`socket`: some of them on the socket).
    fn tell_pool(&self, socket: bool) {
        if let Some(c) = &self.control {
            if socket {
                c.wrote(true);
            }
            c.notify();
            if let Some(d) = &self.doorbell {
                d.ring();
            }
        }
    }

    fn push(&mut self, msg: &FromWorker<'_>, sealed: Option<Sealed>) -> Result<(), String> {
        // Frames go in the order of the tasks they answer.
        self.push_results()?;
        let fds = sealed.map(|s| vec![Arc::new(s) as _]).unwrap_or_default();
        self.channel
            .push(msg, fds)
            .map_err(|e| format!("cannot encode a reply: {e}"))
    }

    fn take_fd(&mut self, what: &str) -> Result<OwnedFd, String> {
        self.channel
            .take_fd()
            .ok_or_else(|| format!("{what} arrived without its descriptor"))
    }

    fn handle(&mut self, frame: &[u8]) -> Result<(), String> {
        self.clock = None;
        let msg: ToWorker<'_> =
            postcard::from_bytes(frame).map_err(|e| format!("bad message from the pool: {e}"))?;
        match msg {
            ToWorker::Setup {
                ctrl_bytes,
                exe,
                init,
            } => {
                let fd = self.take_fd("the control block")?;
                let shm = SharedMemory::from_fd(0, fd, ctrl_bytes as usize)
                    .map_err(|e| format!("cannot map the control block: {e}"))?;
                let control = Control::new(shm, false).ok_or("control block too small")?;
                let fd = self.take_fd("the doorbell")?;
                let shm = SharedMemory::from_fd(0, fd, DOORBELL_BYTES)
                    .map_err(|e| format!("cannot map the doorbell: {e}"))?;
                self.doorbell = Some(Doorbell::new(shm).ok_or("doorbell too small")?);
                self.channel.use_rings(control.rings());
                self.control = Some(control);
                self.same_exe = exe.is_some() && exe == crate::func::exe_identity();
                if let Some((fun, arg)) = init {
                    if let Err(message) = self.initialize(fun, &arg) {
                        self.push(
                            &FromWorker::InitFailed {
                                message: Cow::Owned(clip_message(message)),
                            },
                            None,
                        )?;
                        self.flush()?;
                        std::process::exit(0);
                    }
                }
                self.push(
                    &FromWorker::Ready {
                        pid: std::process::id(),
                        same_exe: self.same_exe,
                    },
                    None,
                )?;
                self.flush()?;
            }
            ToWorker::Map { id, bytes, kind } => {
                let fd = self.take_fd("a buffer")?;
                let read_only = kind == MapKind::ReadOnlyArray;
                let shm = ShmInner::receive(id, fd, bytes as usize, read_only)
                    .map_err(|e| format!("cannot map buffer {id}: {e}"))?;
                match kind {
                    MapKind::Buffer => {
                        self.bufs.insert(
                            id,
                            Mapped {
                                shm: Arc::new(shm),
                                view: None,
                            },
                        );
                    }
                    MapKind::ReadOnlyArray | MapKind::OutputArray => {
                        crate::shared_array::worker_map(id, Arc::new(shm));
                    }
                }
            }
            ToWorker::Unmap { ids } => {
                for id in ids {
                    self.bufs.remove(&id);
                    crate::shared_array::worker_unmap(id);
                }
            }
            ToWorker::Call {
                first,
                fun,
                count,
                args,
            } => {
                let bad = |m: String| format!("bad message from the pool: {m}");
                // The frame's descriptors are claimed first, whatever becomes of its tasks
                // (the arguments are all decoded before any task runs then). Without
                // descriptors received (a frame from the ring, as nearly all are), there
                // is nothing to claim: the arguments are decoded as their tasks come, and
                // a large argument would be an error when reached.
                let mut sealed = VecDeque::new();
                if self.channel.has_fds() {
                    for arg in protocol::values(args.0, count) {
                        if let Value::Sealed { bytes } = arg.map_err(bad)? {
                            let fd = self.take_fd("a large argument")?;
                            sealed.push_back(
                                bulk::Mapped::open(fd, bytes as usize)
                                    .map_err(|e| format!("cannot map the argument: {e}")),
                            );
                        }
                    }
                }
                if !self.same_exe {
                    for i in 0..u64::from(count) {
                        self.reply(
                            first + i,
                            Outcome::Failed("this worker runs another executable".into()),
                        )?;
                    }
                    return Ok(());
                }
                // SAFETY: the pool made `fun` with `FnRef::of1`/`of2`, and this worker runs
                // the pool's executable (same device and inode, checked in Setup).
                let (call, f) = unsafe { fun.resolve() };
                let mut scratch = std::mem::take(&mut self.scratch);
                for (i, arg) in protocol::values(args.0, count).enumerate() {
                    let arg = arg.map_err(bad)?;
                    self.queued = count as usize - i - 1;
                    let id = first + i as u64;
                    scratch.clear();
                    let mapped = match arg {
                        Value::Inline(_) => None,
                        Value::Sealed { bytes } => {
                            let m = match sealed.pop_front() {
                                Some(m) => m,
                                None => bulk::Mapped::open(
                                    self.take_fd("a large argument")?,
                                    bytes as usize,
                                )
                                .map_err(|e| format!("cannot map the argument: {e}")),
                            };
                            match m {
                                Ok(m) => Some(m),
                                Err(e) => {
                                    self.reply(id, Outcome::Failed(Cow::Owned(e)))?;
                                    continue;
                                }
                            }
                        }
                    };
                    let arg = match (arg, &mapped) {
                        (_, Some(m)) => &m[..],
                        (Value::Inline(b), None) => b.0,
                        (Value::Sealed { .. }, None) => unreachable!("mapped above"),
                    };
                    self.push_old_results()?;
                    let r = self.task(id, || call(f, arg, &mut scratch));
                    // Unmapped before the reply: the pool may reuse the memory at once.
                    if mapped.is_some() {
                        drop(mapped);
                        self.clock = None;
                    }
                    match r {
                        Ok(Ok(())) if scratch.len() > bulk::SEALED_ABOVE => {
                            let sealed = Sealed::new(&scratch);
                            self.clock = None;
                            match sealed {
                                Ok(s) => self.reply_sealed(id, s)?,
                                // Large values never travel in frames.
                                Err(e) => self.reply(
                                    id,
                                    Outcome::Failed(Cow::Owned(format!(
                                        "cannot put the result in shared memory: {e}"
                                    ))),
                                )?,
                            }
                        }
                        Ok(Ok(())) => self.reply(id, Outcome::Value(Bytes(&scratch)))?,
                        Ok(Err(e)) => self.reply(id, Outcome::Failed(Cow::Owned(e)))?,
                        Err(msg) => {
                            self.reply(id, Outcome::Panicked(Cow::Owned(clip_message(msg))))?
                        }
                    }
                }
                scratch.clear();
                shrink(&mut scratch);
                self.scratch = scratch;
            }
            ToWorker::Step {
                first,
                kernel,
                args,
                bufs,
                ranges,
            } => self.step(first, kernel.into_owned(), args, &bufs, &ranges)?,
        }
        Ok(())
    }

    /// Run the pool's initializer: the error (or panic) message when it fails.
    fn initialize(&mut self, fun: crate::protocol::FnRef, arg: &[u8]) -> Result<(), String> {
        if !self.same_exe {
            return Err("this worker runs another executable".into());
        }
        // SAFETY: the pool made `fun` with `FnRef::of1`, and this worker runs the pool's
        // executable (same device and inode, checked just above).
        let (call, f) = unsafe { fun.resolve() };
        let mut out = Vec::new();
        IN_TASK.set(true);
        let r = catch_unwind(AssertUnwindSafe(|| call(f, arg, &mut out)));
        IN_TASK.set(false);
        match r {
            Ok(r) => r,
            Err(payload) => Err(format!("it panicked: {}", panic_message(payload))),
        }
    }

    /// Run one task, recording it in the control block; `Err` carries a panic message.
    ///
    /// In a run of tiny tasks (under [`TINY_TASK_NS`] each, on average), the clock is read
    /// after one task in `stride + 1` only (up to [`MAX_STRIDE`] are not timed): the
    /// others start "some time after" the last reading, as the control block says, and
    /// count as taking no time; the reading charges the whole run to the task that takes
    /// it.
    fn task<T>(&mut self, id: u64, body: impl FnOnce() -> T) -> Result<T, String> {
        let t0 = match self.clock.take() {
            Some(t) => t,
            None => {
                self.unread = 0;
                now_ns()
            }
        };
        if let Some(c) = &self.control {
            c.begin(id, t0, self.unread == 0);
        }
        IN_TASK.set(true);
        let r = catch_unwind(AssertUnwindSafe(body)).map_err(panic_message);
        IN_TASK.set(false);
        if self.unread < self.stride {
            self.unread += 1;
            self.clock = Some(t0);
            if let Some(c) = &self.control {
                c.end(id, t0, t0);
            }
            return r;
        }
        let t1 = now_ns();
        let per_task = t1.saturating_sub(t0) / (u64::from(self.unread) + 1);
        self.stride = if per_task < TINY_TASK_NS {
            (self.stride * 2 + 1).min(MAX_STRIDE)
        } else {
            0
        };
        self.unread = 0;
        self.clock = Some(t1);
        if let Some(c) = &self.control {
            c.end(id, t0, t1);
        }
        self.last_task_ns = per_task;
        r
    }

    /// Queue the outcome of task `id`. Results of tiny tasks are sent in batches; after a
    /// task that took a while, the next one probably will too, so its result goes at once
    /// (the pool refills the queue as soon as it hears of it).
    fn reply(&mut self, id: u64, outcome: Outcome<'_>) -> Result<(), String> {
        let (first, count) = self.results;
        if count > 0 && first.checked_add(u64::from(count)) != Some(id) {
            self.push_results()?;
        }
        if self.results.1 == 0 {
            self.results.0 = id;
            self.results_since = self.clock.unwrap_or_else(now_ns);
        }
        match outcome {
            // Written as postcard writes it (see `protocol::take_outcome`), by hand.
            Outcome::Value(v) => protocol::push_inline_value(&mut self.result_bytes, v.0),
            outcome => protocol::encode_into(&mut self.result_bytes, &outcome)
                .map_err(|e| format!("cannot encode a reply: {e}"))?,
        }
        self.results.1 += 1;
        // The outcome of a long task goes into a frame at once (the pool sees it as soon
        // as it looks), those of short ones a few dozen at a time.
        if self.results.1 >= RESULTS_PER_FRAME
            || self.result_bytes.len() >= RESULTS_BYTES
            || self.last_task_ns >= LONG_TASK_NS
        {
            self.push_results()?;
        }
        self.replied()
    }

    /// Before a task: put the outcomes held for [`HOLD_RESULTS_NS`] or more into a frame.
    fn push_old_results(&mut self) -> Result<(), String> {
        if self.results.1 > 0 {
            let now = self.clock.unwrap_or_else(now_ns);
            if now.saturating_sub(self.results_since) >= HOLD_RESULTS_NS {
                self.push_results()?;
            }
        }
        Ok(())
    }

    /// Put the outcomes gathered by [`Worker::reply`] into one frame.
    fn push_results(&mut self) -> Result<(), String> {
        let (first, count) = std::mem::take(&mut self.results);
        if count == 0 {
            return Ok(());
        }
        let msg = FromWorker::Results {
            first,
            count,
            outcomes: Bytes(&self.result_bytes),
        };
        let r = self
            .channel
            .push(&msg, vec![])
            .map_err(|e| format!("cannot encode a reply: {e}"));
        self.result_bytes.clear();
        shrink(&mut self.result_bytes);
        r
    }

    /// Queue the result of task `id`, which travels in `value`.
    fn reply_sealed(&mut self, id: u64, value: Sealed) -> Result<(), String> {
        let bytes = value.len() as u64;
        self.push(
            &FromWorker::Done {
                id,
                outcome: Outcome::Sealed { bytes },
            },
            Some(value),
        )?;
        self.replied()
    }

    /// A reply was queued: send it now or later. Results of short tasks go in batches
    /// at least every 100 µs; results of long ones (a kernel chunk) wait while more tasks
    /// of the same frame follow, up to 2 ms, so that a step costs the pool one wake-up
    /// per worker rather than one per chunk; the worker's last tasks report at once.
    fn replied(&mut self) -> Result<(), String> {
        let now = self.clock.unwrap_or_else(now_ns);
        let since = *self.pending_since.get_or_insert(now);
        let age = now.saturating_sub(since);
        let flush = if self.last_task_ns >= LONG_TASK_NS {
            self.queued <= 1 || age >= HOLD_LONG_NS
        } else {
            age >= FLUSH_AFTER_NS
        };
        if flush || self.channel.unsent() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// The kernel a step names; kernels from shared objects are loaded once and kept.
    fn kernel(&mut self, kernel: KernelRef) -> Result<Kernel, String> {
        match kernel {
            KernelRef::Builtin {
                name,
                lang,
                variant,
            } => Kernel::get_variant(name, lang, variant).map_err(|e| e.to_string()),
            KernelRef::Library {
                name,
                lang,
                path,
                symbol,
                file,
            } => {
                let key = (path, symbol, name, lang, file);
                if let Some(k) = self.libs.get(&key) {
                    return Ok(k.clone());
                }
                // SAFETY: the pool loaded this symbol from the file at this path under the
                // same contract (its caller vouched for it under `Kernel::load`'s
                // contract), and it sends only kernels it holds. The file at the path may
                // have been replaced since (a rebuild): loading runs its initialisers, but
                // its symbol is never called unless it is the very file the pool loaded
                // (checked just below).
                let k = unsafe { Kernel::load(&key.0, &key.1, name, lang) }
                    .map_err(|e| e.to_string())?;
                if k.library_file() != Some(file) {
                    return Err(format!(
                        "the shared object at {} is not the one the pool loaded kernel {} \
                         from (it was replaced since: drop the kernel and load it again)",
                        key.0.display(),
                        key.1
                    ));
                }
                self.libs.insert(key, k.clone());
                Ok(k)
            }
        }
    }

    fn step(
        &mut self,
        first: u64,
        kernel: KernelRef,
        args: StepArgs,
        bufs: &[BufRef],
        ranges: &[(u64, u64)],
    ) -> Result<(), String> {
        // Getting ready (loading a shared object runs its initialisers) counts as part of
        // the first task, so that a crash or a hang there is that task's, and is timed.
        if let Some(c) = &self.control {
            c.begin(first, now_ns(), true);
        }
        let kernel = self.kernel(kernel);
        if let Some(c) = &self.control {
            c.pause(first);
        }
        let kernel = match kernel {
            Ok(k) => k,
            Err(p) => {
                for i in 0..ranges.len() as u64 {
                    self.reply(first + i, Outcome::Failed(Cow::Borrowed(&p)))?;
                }
                return Ok(());
            }
        };
        let mut views = Vec::with_capacity(bufs.len());
        let mut problem = None;
        for (i, b) in bufs.iter().enumerate() {
            if bufs[..i].iter().any(|o| o.id == b.id) {
                problem = Some(format!("buffer {} appears twice in one step", b.id));
                break;
            }
            let Some(m) = self.bufs.get_mut(&b.id) else {
                problem = Some(format!("buffer {} is not mapped in this worker", b.id));
                break;
            };
            let view = match m.view.take() {
                Some(v) if v.elem() == b.elem && v.len() as u64 == b.len => Ok(v),
                _ => Buffer::from_memory(
                    b.elem,
                    b.len as usize,
                    Box::new(SharedMemory::from_inner(m.shm.clone())),
                ),
            };
            match view {
                Ok(v) => views.push(v),
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            }
        }
        let step = match problem {
            Some(p) => Err(p),
            None => Step::new(kernel, args, views.iter_mut()).map_err(|e| e.to_string()),
        };
        match step {
            Err(p) => {
                for i in 0..ranges.len() as u64 {
                    self.reply(first + i, Outcome::Failed(Cow::Borrowed(&p)))?;
                }
            }
            Ok(step) => {
                for (i, &(begin, end)) in ranges.iter().enumerate() {
                    let id = first + i as u64;
                    self.queued = ranges.len() - i - 1;
                    self.push_old_results()?;
                    // The pool's caller may have taken it back (it runs it itself).
                    if self.control.as_ref().is_some_and(|c| !c.claim(id)) {
                        self.reply(id, Outcome::TakenBack)?;
                        continue;
                    }
                    let outcome = match self.task(id, || step.run_chunk(begin..end)) {
                        Ok(Ok(p)) => Outcome::Partial(p),
                        Ok(Err(Error::KernelFailed { code, .. })) => Outcome::KernelFailed { code },
                        Ok(Err(e)) => Outcome::Failed(Cow::Owned(e.to_string())),
                        Err(msg) => Outcome::Panicked(Cow::Owned(msg)),
                    };
                    self.reply(id, outcome)?;
                }
            }
        }
        for (b, v) in bufs.iter().zip(views) {
            if let Some(m) = self.bufs.get_mut(&b.id) {
                m.view = Some(v);
            }
        }
        Ok(())
    }
}
