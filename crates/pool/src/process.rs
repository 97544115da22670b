//! The process pool: workers, their channels, and the loop that feeds them tasks, reads
//! their results, and notices when one dies or overruns its timeout.
//!
//! One operation (a kernel step, a `map`, an `imap` iterator) runs at a time. Its tasks
//! sit in a queue; each worker gets batches of them, as many as keep about a millisecond
//! of work queued in it (measured from the control blocks), so tiny tasks travel by the
//! hundred in one write while long ones stay balanced. Each task has a wire id; a worker
//! runs its tasks in order and answers each one. When a worker dies, the control block
//! tells which task it was running: that task gets the error, the others it held go back
//! to the queue, and a new worker takes its place (and is killed in turn if it is not
//! ready within the start timeout).

use crate::bulk::{self, MAX_SEALED_PER_FRAME, Sealed};
use crate::error::{PoolError, StepChunk, WorkerExit};
use crate::shm::{SharedMemory, ShmInner};
use crate::spawn;
use crate::wire::{
    self, BufRef, Bytes, CTRL_BYTES, Ctrl, FnRef, FromWorker, InBuf, KernelRef, Outcome, ToWorker,
    Value,
};
use kernelpool_kernels::{
    Buffer, Elem, Error, Executor, Kernel, Origin, Partial, Step, StepArgs, chunk_count,
    chunk_range, default_chunk,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};

/// How long workers get to exit when the pool is dropped before they are killed.
const EXIT_GRACE: Duration = Duration::from_millis(250);
/// How long a worker that closed its channel gets to finish exiting.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// Times a task goes back to the queue because the worker holding it died running
/// another task; after that it is reported with the cause.
const MAX_TRIES: u8 = 3;
/// Most workers in one pool.
const MAX_WORKERS: usize = 1 << 16;
/// Consecutive workers that die before being ready before the pool gives up.
const MAX_START_FAILURES: u32 = 3;
/// Work to keep queued in each worker, in nanoseconds.
const QUEUE_NS: f64 = 1_000_000.0;
/// Most tasks queued in one worker.
const MAX_DEPTH: usize = 1024;
/// How long the pool watches for answers before it sleeps in `poll`...
const SPIN_NS: u64 = 50_000;
/// ... when tasks take less than this on average.
const SPIN_IF_TASKS_UNDER_NS: f64 = 20_000.0;
/// Longest single wait in `poll` (timeouts are checked at least this often).
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Settings of a pool, fixed when it is built.
#[derive(Debug)]
pub(crate) struct Config {
    pub workers: usize,
    pub chunk: Option<u64>,
    pub chunksize: Option<usize>,
    pub timeout: Option<Duration>,
    pub max_tasks: Option<u64>,
    pub program: PathBuf,
    /// (device, inode) of our executable when workers run it (functions may be sent).
    pub exe: Option<(u64, u64)>,
    pub start_timeout: Duration,
}

/// Options of a [`Processes`] pool.
///
/// ```no_run
/// use kernelpool_pool::Processes;
/// use std::time::Duration;
///
/// kernelpool_pool::init(); // first thing in main
/// let pool = Processes::builder()
///     .workers(4)
///     .task_timeout(Duration::from_secs(10))
///     .max_tasks_per_worker(1000)
///     .build()?;
/// # Ok::<(), kernelpool_pool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProcessesBuilder {
    workers: usize,
    chunk: Option<u64>,
    chunksize: Option<usize>,
    timeout: Option<Duration>,
    max_tasks: Option<u64>,
    program: Option<PathBuf>,
    start_timeout: Duration,
}

impl Default for ProcessesBuilder {
    fn default() -> Self {
        ProcessesBuilder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk: None,
            chunksize: None,
            timeout: None,
            max_tasks: None,
            program: None,
            start_timeout: Duration::from_secs(10),
        }
    }
}

impl ProcessesBuilder {
    /// Number of worker processes (at least 1, at most 65,536; default: the number of
    /// CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Items per chunk of a kernel step (at least 1; default [`default_chunk`]: about four
    /// chunks per worker).
    pub fn chunk(mut self, chunk: u64) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Default `chunksize` of the map family (at least 1). Unset, `map` and `starmap`
    /// use about four chunks per worker, as Python's `Pool.map`, and `imap` and
    /// `imap_unordered` use 1.
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize);
        self
    }

    /// Longest a single task may run; a worker that exceeds it is killed and replaced and
    /// the task reported as [`PoolError::TimedOut`]. Default: no limit.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Replace each worker after it has been given this many tasks (at least 1; default:
    /// never).
    pub fn max_tasks_per_worker(mut self, max: u64) -> Self {
        self.max_tasks = Some(max);
        self
    }

    /// Start this program as the worker instead of the current executable, for hosts that
    /// cannot call [`init`](crate::init) at the top of `main` (Python over the C ABI):
    /// `kpool-worker`, built with this crate, is such a program. Such a pool runs kernels
    /// but not Rust functions (`map` and friends return
    /// [`PoolError::NotSameExecutable`]).
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// How long a worker may take to start, at build and when it replaces another
    /// (default 10 s); one that takes longer is killed.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Check the options, start the workers and wait until every one is ready.
    pub fn build(self) -> Result<Processes, PoolError> {
        if self.workers == 0 {
            return Err(PoolError::invalid(
                "number of workers",
                "a process pool needs at least 1 worker, got 0",
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(PoolError::invalid(
                "number of workers",
                format!(
                    "{} workers are more than a process pool allows ({MAX_WORKERS})",
                    self.workers
                ),
            ));
        }
        if self.chunk == Some(0) {
            return Err(PoolError::invalid(
                "chunk",
                "a step chunk must hold at least 1 item, got 0",
            ));
        }
        if self.chunksize == Some(0) {
            return Err(PoolError::invalid(
                "chunksize",
                "chunksize must be at least 1, got 0",
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(PoolError::invalid(
                "task timeout",
                "a task timeout must be longer than 0",
            ));
        }
        if self.max_tasks == Some(0) {
            return Err(PoolError::invalid(
                "max tasks per worker",
                "must be at least 1, got 0",
            ));
        }
        let custom_program = self.program.is_some();
        let program = match self.program {
            Some(p) => p,
            None => std::env::current_exe()
                .map_err(|e| PoolError::io("cannot find the current executable", e))?,
        };
        let exe = if custom_program {
            None
        } else {
            crate::worker::exe_identity()
        };
        let cfg = Arc::new(Config {
            workers: self.workers,
            chunk: self.chunk,
            chunksize: self.chunksize,
            timeout: self.timeout,
            max_tasks: self.max_tasks,
            program,
            exe,
            start_timeout: self.start_timeout,
        });
        let engine = Engine::start(cfg.clone())?;
        Ok(Processes {
            engine: Mutex::new(engine),
            holder: AtomicUsize::new(0),
            cfg,
        })
    }
}

/// A pool of worker processes: runs kernel steps over shared memory (as an
/// [`Executor`]) and plain Rust functions (`map`, `starmap`, `imap`, `imap_unordered`,
/// `apply`, as Python's `multiprocessing.Pool`).
///
/// Workers are this program started again (see [`init`](crate::init)), or the program
/// given to [`ProcessesBuilder::worker_program`]. A worker that crashes, exits or
/// overruns the task timeout is reported as an error of the task it was running, and
/// replaced; the other tasks are not lost, and the pool stays usable. Dropping the pool
/// tells the workers to exit, waits briefly, kills those still running, and reaps them all.
///
/// One operation runs at a time: calls from other threads wait for the pool.
pub struct Processes {
    engine: Mutex<Engine>,
    /// Token of the thread holding `engine` (0 when free), to refuse re-entry.
    holder: AtomicUsize,
    cfg: Arc<Config>,
}

impl fmt::Debug for Processes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processes")
            .field("workers", &self.cfg.workers)
            .field("program", &self.cfg.program)
            .field("chunk", &self.cfg.chunk)
            .field("chunksize", &self.cfg.chunksize)
            .field("task_timeout", &self.cfg.timeout)
            .field("max_tasks_per_worker", &self.cfg.max_tasks)
            .finish_non_exhaustive()
    }
}

fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

/// The pool, locked for one operation.
pub(crate) struct Guard<'p> {
    engine: MutexGuard<'p, Engine>,
    holder: &'p AtomicUsize,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Guard<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Processes {
    /// A pool of `workers` processes with default options.
    pub fn new(workers: usize) -> Result<Processes, PoolError> {
        Processes::builder().workers(workers).build()
    }

    /// Options for a pool.
    pub fn builder() -> ProcessesBuilder {
        ProcessesBuilder::default()
    }

    /// Process ids of the current workers.
    pub fn pids(&self) -> Result<Vec<u32>, PoolError> {
        Ok(self.lock()?.slots.iter().flatten().map(|w| w.pid).collect())
    }

    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    pub(crate) fn lock(&self) -> Result<Guard<'_>, PoolError> {
        let me = thread_token();
        let engine = match self.engine.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if self.holder.load(Ordering::Relaxed) == me {
                    return Err(PoolError::Busy);
                }
                self.engine.lock().unwrap_or_else(|p| p.into_inner())
            }
        };
        self.holder.store(me, Ordering::Relaxed);
        Ok(Guard {
            engine,
            holder: &self.holder,
        })
    }
}

/// The portable name of a kernel.
fn kernel_ref(kernel: &Kernel) -> Result<KernelRef, PoolError> {
    let (name, lang) = (kernel.name(), kernel.lang());
    match kernel.origin() {
        // A built-in is whatever `Kernel::get` gives in the worker: make sure it is the
        // same function here.
        Origin::Builtin if Kernel::get(name, lang).address() == kernel.address() => {
            Ok(KernelRef::Builtin { name, lang })
        }
        // Workers load it again by path, and check that they got the same file.
        Origin::Library { path, symbol } => match wire::mapped_file(kernel.address()) {
            Some(file) => Ok(KernelRef::Library {
                name,
                lang,
                path: path.clone(),
                symbol: symbol.clone(),
                file,
            }),
            None => Err(PoolError::KernelNotPortable(format!(
                "{kernel:?}, whose file cannot be identified in /proc/self/maps,"
            ))),
        },
        _ => Err(PoolError::KernelNotPortable(format!("{kernel:?}"))),
    }
}

impl Executor for Processes {
    fn describe(&self) -> String {
        match self.cfg.chunk {
            Some(c) => format!("processes({}, chunk {c})", self.cfg.workers),
            None => format!("processes({})", self.cfg.workers),
        }
    }

    fn workers(&self) -> usize {
        self.cfg.workers
    }

    fn alloc(&self, elem: Elem, len: usize, what: &str) -> kernelpool_kernels::Result<Buffer> {
        let bytes = len as u128 * elem.size() as u128;
        kernelpool_kernels::buffer::check_fits(bytes, what)?;
        let shm = SharedMemory::new(bytes as usize).map_err(|source| Error::Io {
            context: format!("cannot allocate shared memory for {what}"),
            source,
        })?;
        Buffer::from_memory(elem, len, Box::new(shm))
    }

    fn run(&self, step: &Step<'_>) -> kernelpool_kernels::Result<Partial> {
        let kernel = step.kernel();
        let name = kernel.name();
        let kref = kernel_ref(kernel)?;
        let mut bufs = Vec::with_capacity(step.buffers().len());
        let mut shms = Vec::with_capacity(step.buffers().len());
        for (slot, b) in step.buffers().enumerate() {
            let shm =
                b.memory()
                    .as_any()
                    .downcast_ref::<SharedMemory>()
                    .ok_or(PoolError::NotShared {
                        kernel: name.name(),
                        slot,
                    })?;
            bufs.push(BufRef {
                id: shm.id(),
                elem: b.elem(),
                len: b.len() as u64,
            });
            shms.push(shm.inner().clone());
        }
        let items = step.items();
        if items == 0 {
            return Ok(Partial::identity(name));
        }
        let chunk = self
            .cfg
            .chunk
            .unwrap_or_else(|| default_chunk(items, self.cfg.workers));
        let count = chunk_count(items, chunk)? as usize;
        let range = |i: usize| chunk_range(items, chunk, i as u64);

        let mut engine = self.lock()?;
        let mut op = engine.new_op(
            OpKind::Step {
                kernel: kref,
                args: *step.args(),
                bufs,
                shms,
            },
            1,
        );
        op.pending.extend((0..count).map(|i| {
            let r = range(i);
            Item {
                idx: i,
                data: ItemData::Range(r.start, r.end),
                tries: 0,
            }
        }));
        let mut parts: Vec<Option<Partial>> = vec![None; count];
        let mut failure: Option<(usize, Error)> = None;
        while !op.finished() {
            if let Err(e) = engine.step(&mut op, &mut || None) {
                // Nothing may write into the buffers once `run` has returned.
                engine.abort(&op);
                return Err(e.into());
            }
            while let Some((i, r)) = op.ready.pop_front() {
                let err = match r {
                    Ok(Payload::Partial(p)) => {
                        parts[i] = Some(p);
                        continue;
                    }
                    Ok(Payload::KernelFailed(code)) => Error::KernelFailed {
                        kernel: name.to_string(),
                        lang: kernel.lang().to_string(),
                        code,
                        begin: range(i).start,
                        end: range(i).end,
                    },
                    Ok(Payload::Bytes(_) | Payload::Mapped(_)) => PoolError::Protocol {
                        pid: 0,
                        message: "a value came back for a kernel chunk".into(),
                    }
                    .into(),
                    // A crash, timeout or panic: name the kernel and the items as a
                    // kernel's own failure does.
                    Err(e) => e
                        .in_chunk(StepChunk {
                            kernel: name,
                            lang: kernel.lang(),
                            items: range(i),
                        })
                        .into(),
                };
                if failure.as_ref().is_none_or(|(j, _)| i < *j) {
                    failure = Some((i, err));
                }
                // No point in running the rest; wait for what is running.
                op.halt();
            }
        }
        drop(engine);
        if let Some((_, e)) = failure {
            return Err(e);
        }
        let mut total = Partial::identity(name);
        for p in parts {
            let p = p.ok_or_else(|| PoolError::Protocol {
                pid: 0,
                message: "a chunk produced no result".into(),
            })?;
            total.combine(name, &p);
        }
        Ok(total)
    }
}

/// What a task carries.
#[derive(Debug)]
pub(crate) enum ItemData {
    /// The encoded argument of a function.
    Arg(Vec<u8>),
    /// The encoded argument of a function, in a sealed memfd (kept for retries: the
    /// worker gets a new descriptor of it each time).
    Sealed(Arc<Sealed>),
    /// The range of a kernel chunk.
    Range(u64, u64),
}

/// Move up to `n` tasks from `pending` to `batch` while the batch's encoded arguments
/// (`bytes`) stay within `limit` and it names at most [`MAX_SEALED_PER_FRAME`] sealed
/// arguments; a task alone in a batch always goes. False when the next task did not fit:
/// the batch is full.
fn add_to_batch(
    batch: &mut Vec<Item>,
    bytes: &mut usize,
    pending: &mut VecDeque<Item>,
    n: usize,
    limit: usize,
) -> bool {
    for _ in 0..n {
        let Some(size) = pending.front().map(Item::wire_bytes) else {
            break;
        };
        if !batch.is_empty() && *bytes + size > limit {
            return false;
        }
        if pending.front().is_some_and(Item::is_sealed)
            && batch.iter().filter(|it| it.is_sealed()).count() >= MAX_SEALED_PER_FRAME
        {
            return false;
        }
        *bytes += size;
        batch.extend(pending.pop_front());
    }
    true
}

/// A task waiting to be sent.
#[derive(Debug)]
pub(crate) struct Item {
    pub idx: usize,
    pub data: ItemData,
    pub tries: u8,
}

impl Item {
    /// About how many bytes the task adds to the frame that carries it (at least).
    fn wire_bytes(&self) -> usize {
        match &self.data {
            ItemData::Arg(a) => a.len() + 10,
            ItemData::Sealed(_) | ItemData::Range(..) => 20,
        }
    }

    fn is_sealed(&self) -> bool {
        matches!(self.data, ItemData::Sealed(_))
    }
}

/// What a task produced.
#[derive(Debug)]
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    /// An encoded value received in a sealed memfd, mapped.
    Mapped(bulk::Mapped),
    Partial(Partial),
    KernelFailed(i32),
}

/// A task's index and outcome.
pub(crate) type Done = (usize, Result<Payload, PoolError>);

/// Where lazily produced tasks come from: `None` when there are no more; `Err` for a
/// task that failed before it could be sent.
pub(crate) type Feed<'f> = &'f mut dyn FnMut() -> Option<Result<Item, (usize, PoolError)>>;

pub(crate) enum OpKind {
    Call(FnRef),
    Step {
        kernel: KernelRef,
        args: StepArgs,
        bufs: Vec<BufRef>,
        shms: Vec<Arc<ShmInner>>,
    },
}

/// One operation: its queue, how many of its tasks are out, and the outcomes not yet
/// taken by the caller.
pub(crate) struct Op {
    generation: u64,
    kind: OpKind,
    chunk_len: usize,
    pub pending: VecDeque<Item>,
    outstanding: usize,
    pub ready: VecDeque<Done>,
    /// No more tasks will come from the feed.
    pub exhausted: bool,
    stop: bool,
}

impl Op {
    pub(crate) fn finished(&self) -> bool {
        self.exhausted && self.pending.is_empty() && self.outstanding == 0
    }

    /// Send nothing more; what is out still completes.
    pub(crate) fn halt(&mut self) {
        self.stop = true;
        self.exhausted = true;
        self.pending.clear();
    }
}

/// A task sent to a worker.
struct Flight {
    id: u64,
    generation: u64,
    idx: usize,
    data: ItemData,
    tries: u8,
}

enum Death {
    /// The channel closed: the worker exited or was killed.
    Hangup,
    /// The worker was not ready within the start timeout; it was killed.
    NotReady,
    /// Task `id` overran the timeout; the worker was killed.
    Timeout { id: u64 },
    /// The worker sent garbage; it was killed.
    Garbled(String),
}

/// Something whose descriptor a frame carries: a buffer, a control block, a sealed value.
type FdSource = Arc<dyn AsFd + Send + Sync>;

/// Descriptors one `recvmsg` from a worker can take (it sends one per frame).
const MAX_FDS_IN: usize = 4;

/// The pool's side of one worker.
struct Worker {
    child: Child,
    pid: u32,
    sock: OwnedFd,
    out: Vec<u8>,
    sent: usize,
    /// Offsets in `out` of frames that carry descriptors, and those descriptors.
    marks: VecDeque<(usize, Vec<FdSource>)>,
    inb: InBuf,
    /// Descriptors received from the worker, not yet claimed by their frames.
    fds: VecDeque<OwnedFd>,
    ctrl: Ctrl,
    inflight: VecDeque<Flight>,
    assigned: u64,
    ready: bool,
    bufs: HashSet<u64>,
    seen: (u64, u64),
    /// The worker's write count when its socket was last drained.
    seen_writes: u64,
    dead: Option<Death>,
    /// When the worker was started.
    born: Instant,
}

impl Worker {
    /// Write what the socket takes without blocking.
    fn flush(&mut self) -> Result<(), Errno> {
        use rustix::net::SendFlags;
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        let before = self.out.len() - self.sent;
        let r = self.send_some(flags);
        if self.out.len() - self.sent < before {
            self.ctrl.wrote(false);
        }
        r
    }

    fn send_some(&mut self, flags: rustix::net::SendFlags) -> Result<(), Errno> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, send, sendmsg};
        use std::mem::MaybeUninit;
        while self.sent < self.out.len() {
            let with_fd = self.marks.front().is_some_and(|m| m.0 == self.sent);
            let end = match (with_fd, self.marks.front(), self.marks.get(1)) {
                (true, _, Some(next)) => next.0,
                (true, _, None) | (false, None, _) => self.out.len(),
                (false, Some(m), _) => m.0,
            };
            let bytes = &self.out[self.sent..end];
            let r = if with_fd {
                let fds: Vec<_> = self.marks[0].1.iter().map(|f| f.as_fd()).collect();
                let mut space = [MaybeUninit::<u8>::uninit();
                    rustix::cmsg_space!(ScmRights(MAX_SEALED_PER_FRAME))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                let pushed = control.push(SendAncillaryMessage::ScmRights(&fds));
                debug_assert!(pushed, "at most MAX_SEALED_PER_FRAME descriptors a frame");
                sendmsg(
                    &self.sock,
                    &[std::io::IoSlice::new(bytes)],
                    &mut control,
                    flags,
                )
            } else {
                send(&self.sock, bytes, flags)
            };
            match r {
                Ok(n) => {
                    self.sent += n;
                    if with_fd {
                        self.marks.pop_front();
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        wire::shrink(&mut self.out);
        Ok(())
    }

    fn unsent(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Read what is there (and the descriptors that come with it) without blocking;
    /// `true` at end of stream.
    fn fill(&mut self) -> Result<bool, Errno> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        use std::mem::MaybeUninit;
        // Read before draining: a write the worker makes later bumps the count past it.
        self.seen_writes = self.ctrl.writes(true);
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_IN))];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let spare = self.inb.spare();
            let room = spare.len();
            let r = recvmsg(
                &self.sock,
                &mut [std::io::IoSliceMut::new(spare)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            let mut got_fds = false;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    got_fds = true;
                    self.fds.extend(fds);
                }
            }
            match r.map(|m| m.bytes) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    self.inb.filled(n);
                    // A read stops after a message with descriptors: there may be more.
                    if n < room && !got_fds {
                        return Ok(false);
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::CONNRESET) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// Is task `id` one of ours (ids of a worker's tasks increase along its queue)?
    fn holds(&self, id: u64) -> bool {
        match (self.inflight.front(), self.inflight.back()) {
            (Some(a), Some(b)) => a.id <= id && id <= b.id,
            _ => false,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// Wait for `child` to end until `deadline`, kill it if it has not, and reap it.
fn reap(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let pid = rustix::process::Pid::from_child(child);
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(pidfd) => loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Err(Errno::INTR) => continue,
                _ => break,
            }
        },
        Err(_) => {
            let mut nap = Duration::from_micros(50);
            while Instant::now() < deadline {
                if let Ok(Some(s)) = child.try_wait() {
                    return Some(s);
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        }
    }
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// The pool's state: its workers and what is needed to feed them.
pub(crate) struct Engine {
    cfg: Arc<Config>,
    slots: Vec<Option<Worker>>,
    /// Workers told to exit (max tasks reached), not yet reaped.
    retired: Vec<Child>,
    next_id: u64,
    next_generation: u64,
    /// Buffers sent to workers, to tell them when the pool's side is gone.
    shared: HashMap<u64, Weak<ShmInner>>,
    /// Average task duration, from the control blocks.
    avg_ns: Option<f64>,
    start_failures: u32,
}

impl Engine {
    fn start(cfg: Arc<Config>) -> Result<Engine, PoolError> {
        let mut engine = Engine {
            slots: (0..cfg.workers).map(|_| None).collect(),
            cfg,
            retired: Vec::new(),
            next_id: 1,
            next_generation: 0,
            shared: HashMap::new(),
            avg_ns: None,
            start_failures: 0,
        };
        engine.fill_slots()?;
        engine.wait_ready()?;
        Ok(engine)
    }

    fn program(&self) -> String {
        self.cfg.program.display().to_string()
    }

    fn spawn_worker(&self) -> Result<Worker, PoolError> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| PoolError::io("cannot create a socket pair", e))?;
        let ctrl = SharedMemory::new(CTRL_BYTES)
            .map_err(|e| PoolError::io("cannot create a control block", e))?;
        let child = spawn::spawn(self.cfg.program.clone(), OwnedFd::from(theirs)).map_err(|e| {
            PoolError::Start {
                program: self.program(),
                reason: e.to_string(),
                exit: None,
            }
        })?;
        let mut w = Worker {
            pid: child.id(),
            child,
            sock: OwnedFd::from(ours),
            out: Vec::new(),
            sent: 0,
            marks: VecDeque::new(),
            inb: InBuf::new(),
            fds: VecDeque::new(),
            ctrl: Ctrl::new(ctrl).expect("CTRL_BYTES holds a control block"),
            inflight: VecDeque::new(),
            assigned: 0,
            ready: false,
            bufs: HashSet::new(),
            seen: (0, 0),
            seen_writes: 0,
            dead: None,
            born: Instant::now(),
        };
        w.marks.push_back((0, vec![w.ctrl.shm().inner().clone()]));
        let setup = ToWorker::Setup {
            ctrl_bytes: CTRL_BYTES as u64,
            exe: self.cfg.exe,
        };
        if let Err(e) = wire::push_frame(&mut w.out, &setup) {
            w.kill();
            let _ = w.child.wait();
            return Err(PoolError::Protocol {
                pid: w.pid,
                message: e.to_string(),
            });
        }
        Ok(w)
    }

    fn fill_slots(&mut self) -> Result<(), PoolError> {
        for i in 0..self.slots.len() {
            if self.slots[i].is_none() {
                let mut w = self.spawn_worker()?;
                if w.flush().is_err() {
                    w.dead = Some(Death::Hangup);
                }
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
                if let Some(death) = w.dead.take() {
                    let exit = match death {
                        Death::Garbled(message) => {
                            w.kill();
                            return Err(PoolError::Protocol {
                                pid: w.pid,
                                message,
                            });
                        }
                        _ => reap(&mut w.child, Instant::now() + HANGUP_GRACE)
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
            outstanding: 0,
            ready: VecDeque::new(),
            exhausted: true,
            stop: false,
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
                .filter(|id| w.bufs.remove(id))
                .collect();
            if !ids.is_empty() {
                // Encoding a list of integers cannot fail.
                let _ = wire::push_frame(&mut w.out, &ToWorker::Unmap { ids });
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
        self.reap_retired();
        self.retire_spent();
        self.fill_slots()?;
        self.dispatch(op, feed)?;
        for w in self.slots.iter_mut().flatten() {
            if w.dead.is_none() && w.flush().is_err() {
                w.dead = Some(Death::Hangup);
            }
        }
        let busy = self
            .slots
            .iter()
            .flatten()
            .any(|w| !w.inflight.is_empty() && w.dead.is_none());
        let timeout = if !op.ready.is_empty() || !busy || self.spin_for_results() {
            Duration::ZERO
        } else {
            self.poll_timeout()
        };
        self.wait(op, timeout)?;
        self.check_timeouts();
        self.bury_dead(op)?;
        // Back to full strength before the caller gets control.
        self.fill_slots()
    }

    fn dispatch(&mut self, op: &mut Op, feed: Feed<'_>) -> Result<(), PoolError> {
        if op.stop {
            return Ok(());
        }
        let depth = self.depth(op.chunk_len);
        let max_tasks = self.cfg.max_tasks.unwrap_or(u64::MAX);
        let mut batches: Vec<Vec<Item>> = (0..self.slots.len()).map(|_| Vec::new()).collect();
        // Bytes of arguments in each batch, and batches that one more would make too
        // long for a frame (each argument fits in one on its own: see `MAX_VALUE`).
        let mut bytes = vec![0usize; self.slots.len()];
        let mut full = vec![false; self.slots.len()];
        loop {
            let mut best: Option<(usize, usize)> = None;
            for (i, w) in self.slots.iter().enumerate() {
                let Some(w) = w else { continue };
                let load = w.inflight.len() + batches[i].len();
                if w.dead.is_some()
                    || full[i]
                    || load >= depth
                    || w.assigned + batches[i].len() as u64 >= max_tasks
                {
                    continue;
                }
                if best.is_none_or(|(_, l)| load < l) {
                    best = Some((i, load));
                }
            }
            let Some((i, _)) = best else { break };
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
            if op.pending.is_empty() {
                break;
            }
            full[i] = !add_to_batch(
                &mut batches[i],
                &mut bytes[i],
                &mut op.pending,
                op.chunk_len,
                wire::MAX_VALUE,
            );
        }
        for (i, batch) in batches.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let w = self.slots[i].as_mut().expect("batches go to live workers");
            let first = self.next_id;
            self.next_id += batch.len() as u64;
            let encoded = match &op.kind {
                OpKind::Call(fun) => {
                    let mut fds: Vec<FdSource> = Vec::new();
                    let args = batch
                        .iter()
                        .map(|it| match &it.data {
                            ItemData::Arg(a) => Value::Inline(Bytes(a)),
                            ItemData::Sealed(s) => {
                                fds.push(s.clone());
                                Value::Sealed {
                                    bytes: s.len() as u64,
                                }
                            }
                            ItemData::Range(..) => Value::Inline(Bytes(&[])),
                        })
                        .collect();
                    let at = w.out.len();
                    let r = wire::push_frame(
                        &mut w.out,
                        &ToWorker::Call {
                            first,
                            fun: *fun,
                            args,
                        },
                    );
                    if r.is_ok() && !fds.is_empty() {
                        w.marks.push_back((at, fds));
                    }
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
                        if r.is_ok() && w.bufs.insert(shm.id()) {
                            w.marks.push_back((w.out.len(), vec![shm.clone()]));
                            r = wire::push_frame(
                                &mut w.out,
                                &ToWorker::Map {
                                    id: shm.id(),
                                    bytes: shm.bytes() as u64,
                                },
                            );
                            self.shared
                                .entry(shm.id())
                                .or_insert_with(|| Arc::downgrade(shm));
                        }
                    }
                    let ranges = batch
                        .iter()
                        .map(|it| match it.data {
                            ItemData::Range(a, b) => (a, b),
                            ItemData::Arg(_) | ItemData::Sealed(_) => (0, 0),
                        })
                        .collect();
                    r.and_then(|()| {
                        let msg = ToWorker::Step {
                            first,
                            kernel: kernel.clone(),
                            args: *args,
                            bufs: bufs.clone(),
                            ranges,
                        };
                        wire::push_frame(&mut w.out, &msg)
                    })
                }
            };
            if let Err(e) = encoded {
                return Err(PoolError::Protocol {
                    pid: w.pid,
                    message: format!("cannot encode tasks: {e}"),
                });
            }
            w.assigned += batch.len() as u64;
            op.outstanding += batch.len();
            for (k, it) in batch.into_iter().enumerate() {
                w.inflight.push_back(Flight {
                    id: first + k as u64,
                    generation: op.generation,
                    idx: it.idx,
                    data: it.data,
                    tries: it.tries,
                });
            }
        }
        Ok(())
    }

    /// When tasks are short, watch the workers' write counters for a little while
    /// before sleeping in `poll`: an answer that comes within microseconds is then taken
    /// without a wake-up. True when a worker has written.
    fn spin_for_results(&self) -> bool {
        if !self.avg_ns.is_some_and(|a| a < SPIN_IF_TASKS_UNDER_NS) {
            return false;
        }
        let busy: Vec<&Worker> = self
            .slots
            .iter()
            .flatten()
            .filter(|w| !w.inflight.is_empty() && w.dead.is_none())
            .collect();
        wire::spin_until(SPIN_NS, || {
            busy.iter().any(|w| w.ctrl.writes(true) != w.seen_writes)
        })
    }

    /// How long to wait: until the earliest task deadline, at most `MAX_WAIT`.
    fn poll_timeout(&self) -> Duration {
        let Some(t) = self.cfg.timeout else {
            return MAX_WAIT;
        };
        let now = wire::now_ns();
        let t_ns = t.as_nanos().min(u64::MAX as u128) as u64;
        let mut wait = MAX_WAIT.as_nanos() as u64;
        for w in self.slots.iter().flatten() {
            if w.inflight.is_empty() || w.dead.is_some() {
                continue;
            }
            let (cur, running, started) = w.ctrl.current();
            let deadline = if running && w.holds(cur) {
                started.saturating_add(t_ns)
            } else {
                now.saturating_add(t_ns)
            };
            wait = wait.min(deadline.saturating_sub(now));
        }
        // Wake just after the deadline rather than just before it.
        Duration::from_nanos(wait) + Duration::from_micros(100)
    }

    /// Wait up to `timeout` for any worker to be readable (or writable when it has unsent
    /// bytes), then read and write what can be.
    fn wait(&mut self, op: &mut Op, timeout: Duration) -> Result<(), PoolError> {
        let mut who = Vec::with_capacity(self.slots.len());
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::with_capacity(self.slots.len());
            for (i, w) in self.slots.iter().enumerate() {
                let Some(w) = w else { continue };
                if w.dead.is_some() {
                    continue;
                }
                let flags = if w.unsent() {
                    PollFlags::IN | PollFlags::OUT
                } else {
                    PollFlags::IN
                };
                fds.push(PollFd::new(&w.sock, flags));
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
                self.read_from(i, op);
            }
            let w = self.slots[i].as_mut().expect("polled workers are live");
            if ev.contains(PollFlags::OUT) && w.dead.is_none() && w.flush().is_err() {
                w.dead = Some(Death::Hangup);
            }
        }
        Ok(())
    }

    /// Take in what worker `i` has sent.
    fn read_from(&mut self, i: usize, op: &mut Op) {
        let Engine {
            slots,
            start_failures,
            avg_ns,
            ..
        } = self;
        let w = slots[i].as_mut().expect("read from a live worker");
        let eof = w.fill().unwrap_or(true);
        let Worker {
            inb,
            fds,
            inflight,
            ready,
            pid,
            dead,
            ..
        } = w;
        loop {
            let frame = match inb.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(m) => {
                    *dead = Some(Death::Garbled(m));
                    break;
                }
            };
            match postcard::from_bytes::<FromWorker<'_>>(frame) {
                Ok(FromWorker::Ready { .. }) => {
                    *ready = true;
                    *start_failures = 0;
                }
                Ok(FromWorker::Done { id, outcome }) => {
                    // A sealed result's descriptor came with its frame: claim it whatever
                    // becomes of the task (it is closed once mapped, or dropped).
                    let sealed = match outcome {
                        Outcome::Sealed { bytes } => match fds.pop_front() {
                            Some(fd) => Some(bulk::Mapped::open(fd, bytes as usize)),
                            None => {
                                *dead = Some(Death::Garbled(format!(
                                    "the result of task {id} came without its descriptor"
                                )));
                                break;
                            }
                        },
                        _ => None,
                    };
                    let Some(f) = inflight.pop_front().filter(|f| f.id == id) else {
                        *dead = Some(Death::Garbled(format!(
                            "an answer for task {id}, which it does not hold"
                        )));
                        break;
                    };
                    if f.generation == op.generation {
                        op.outstanding -= 1;
                        let r = match sealed {
                            Some(Ok(m)) => Ok(Payload::Mapped(m)),
                            Some(Err(e)) => Err(PoolError::Codec {
                                task: f.idx,
                                message: format!("cannot map the result: {e}"),
                            }),
                            None => convert(outcome, f.idx, *pid),
                        };
                        op.ready.push_back((f.idx, r));
                    }
                }
                Err(e) => {
                    *dead = Some(Death::Garbled(format!("undecodable message: {e}")));
                    break;
                }
            }
        }
        if matches!(w.dead, Some(Death::Garbled(_))) {
            w.kill();
        } else if eof && w.dead.is_none() {
            w.dead = Some(Death::Hangup);
        }
        let (busy, done) = w.ctrl.totals();
        if done > w.seen.1 {
            let sample = busy.saturating_sub(w.seen.0) as f64 / (done - w.seen.1) as f64;
            *avg_ns = Some(avg_ns.map_or(sample, |a| 0.7 * a + 0.3 * sample));
            w.seen = (busy, done);
        }
    }

    /// Kill workers whose running task has overrun the timeout, and workers started to
    /// replace others that are not ready within the start timeout (tasks wait in them).
    fn check_timeouts(&mut self) {
        for w in self.slots.iter_mut().flatten() {
            if w.dead.is_none() && !w.ready && w.born.elapsed() >= self.cfg.start_timeout {
                w.kill();
                w.dead = Some(Death::NotReady);
            }
        }
        let Some(t) = self.cfg.timeout else { return };
        let t_ns = t.as_nanos().min(u64::MAX as u128) as u64;
        let now = wire::now_ns();
        for w in self.slots.iter_mut().flatten() {
            if w.dead.is_some() || w.inflight.is_empty() {
                continue;
            }
            let (cur, running, started) = w.ctrl.current();
            if running && w.holds(cur) && now.saturating_sub(started) >= t_ns {
                w.kill();
                w.dead = Some(Death::Timeout { id: cur });
            }
        }
    }

    fn bury_dead(&mut self, op: &mut Op) -> Result<(), PoolError> {
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|w| w.dead.is_some()) {
                let w = self.slots[i].take().expect("checked above");
                self.bury(w, op)?;
            }
        }
        Ok(())
    }

    /// Reap a dead worker, give its running task the error, queue its other tasks again.
    fn bury(&mut self, w: Worker, op: &mut Op) -> Result<(), PoolError> {
        let Worker {
            mut child,
            pid,
            sock,
            ctrl,
            inflight,
            ready,
            dead,
            ..
        } = w;
        drop(sock);
        let death = dead.unwrap_or(Death::Hangup);
        let status = reap(&mut child, Instant::now() + HANGUP_GRACE);
        let cause = status.map_or(WorkerExit::Unknown, WorkerExit::from_status);
        let (cur, running, _) = ctrl.current();
        let culprit = match death {
            Death::Timeout { id } => Some(id),
            Death::Hangup if running => Some(cur),
            _ => None,
        };
        let mut requeue = Vec::new();
        for f in inflight {
            if f.generation != op.generation {
                continue;
            }
            op.outstanding -= 1;
            if Some(f.id) == culprit {
                let err = match death {
                    Death::Timeout { .. } => PoolError::TimedOut {
                        task: f.idx,
                        chunk: None,
                        pid,
                        timeout: self.cfg.timeout.unwrap_or_default(),
                    },
                    _ => PoolError::Crashed {
                        task: f.idx,
                        chunk: None,
                        pid,
                        cause,
                    },
                };
                op.ready.push_back((f.idx, Err(err)));
            } else if op.stop {
                // The operation has failed already; the task is not needed.
            } else if !ready {
                // The worker never ran anything: no try is used up (repeated start
                // failures end the operation below).
                requeue.push(Item {
                    idx: f.idx,
                    data: f.data,
                    tries: f.tries,
                });
            } else if f.tries + 1 >= MAX_TRIES {
                op.ready.push_back((
                    f.idx,
                    Err(PoolError::Crashed {
                        task: f.idx,
                        chunk: None,
                        pid,
                        cause,
                    }),
                ));
            } else {
                requeue.push(Item {
                    idx: f.idx,
                    data: f.data,
                    tries: f.tries + 1,
                });
            }
        }
        for item in requeue.into_iter().rev() {
            op.pending.push_front(item);
        }
        if let Death::Garbled(message) = death {
            return Err(PoolError::Protocol { pid, message });
        }
        if !ready {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES {
                return Err(PoolError::Start {
                    program: self.program(),
                    reason: format!(
                        "{MAX_START_FAILURES} workers in a row died or were not ready within \
                         {:?}",
                        self.cfg.start_timeout
                    ),
                    exit: Some(cause),
                });
            }
        }
        Ok(())
    }

    /// Let workers that reached the task limit go (they exit when their channel closes).
    fn retire_spent(&mut self) {
        let Some(max) = self.cfg.max_tasks else {
            return;
        };
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|w| w.assigned >= max && w.inflight.is_empty() && w.dead.is_none())
            {
                let w = slot.take().expect("checked above");
                self.retired.push(w.child);
            }
        }
    }

    fn reap_retired(&mut self) {
        self.retired
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    /// Kill the workers holding tasks of `op` (after a failure that stops the operation:
    /// nothing of it may go on running).
    pub(crate) fn abort(&mut self, op: &Op) {
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|w| w.inflight.iter().any(|f| f.generation == op.generation))
            {
                let mut w = slot.take().expect("checked above");
                w.kill();
                let _ = w.child.wait();
            }
        }
    }
}

/// A worker's outcome as the caller sees it.
fn convert(outcome: Outcome<'_>, task: usize, pid: u32) -> Result<Payload, PoolError> {
    match outcome {
        Outcome::Value(b) => Ok(Payload::Bytes(b.0.to_vec())),
        Outcome::Sealed { .. } => Err(PoolError::Protocol {
            pid,
            message: "a sealed result without its descriptor".into(),
        }),
        Outcome::Partial(p) => Ok(Payload::Partial(p)),
        Outcome::KernelFailed { code } => Ok(Payload::KernelFailed(code)),
        Outcome::Panicked(m) => Err(PoolError::Panicked {
            task,
            chunk: None,
            message: m.into_owned(),
        }),
        Outcome::Failed(m) => Err(PoolError::Remote {
            task,
            chunk: None,
            message: m.into_owned(),
        }),
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing a channel tells its worker to exit; all are told before any is waited for.
        let mut children: Vec<Child> = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .map(|w| w.child)
            .collect();
        children.append(&mut self.retired);
        let deadline = Instant::now() + EXIT_GRACE;
        for c in &mut children {
            reap(c, deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(idx: usize, bytes: usize) -> Item {
        Item {
            idx,
            data: ItemData::Arg(vec![0; bytes]),
            tries: 0,
        }
    }

    #[test]
    fn batches_stay_within_the_byte_limit() {
        let mut pending: VecDeque<Item> = [90, 90, 5, 200, 1]
            .iter()
            .enumerate()
            .map(|(i, &b)| arg(i, b))
            .collect();
        let (mut batch, mut bytes) = (Vec::new(), 0);
        // 90 + 10 fits in 120; the next 100 does not.
        assert!(!add_to_batch(&mut batch, &mut bytes, &mut pending, 3, 120));
        assert_eq!(batch.iter().map(|it| it.idx).collect::<Vec<_>>(), [0]);
        let (mut batch, mut bytes) = (Vec::new(), 0);
        assert!(!add_to_batch(&mut batch, &mut bytes, &mut pending, 3, 120));
        assert_eq!(batch.iter().map(|it| it.idx).collect::<Vec<_>>(), [1, 2]);
        // A task larger than the limit goes alone.
        let (mut batch, mut bytes) = (Vec::new(), 0);
        assert!(!add_to_batch(&mut batch, &mut bytes, &mut pending, 3, 120));
        assert_eq!(batch.iter().map(|it| it.idx).collect::<Vec<_>>(), [3]);
        // At most `n` tasks, and no more than there are.
        let (mut batch, mut bytes) = (Vec::new(), 0);
        assert!(add_to_batch(&mut batch, &mut bytes, &mut pending, 3, 120));
        assert_eq!(batch.iter().map(|it| it.idx).collect::<Vec<_>>(), [4]);
        assert!(pending.is_empty());
        let mut pending: VecDeque<Item> = (0..5).map(|i| arg(i, 1)).collect();
        let (mut batch, mut bytes) = (Vec::new(), 0);
        assert!(add_to_batch(&mut batch, &mut bytes, &mut pending, 2, 120));
        assert_eq!((batch.len(), pending.len(), bytes), (2, 3, 22));
    }
}
