//! The worker process: entered through [`crate::init`] when the environment carries the
//! pool's token, it serves tasks from its socket until the pool closes it, then exits.
//!
//! Tasks run one after the other in the order they arrive. Before each task the worker
//! records its id and start time in the control block shared with the pool; results are
//! written back in batches (when no more input is buffered, after 100 µs, or after 256 KiB),
//! so that many tiny tasks cost few system calls.

use crate::bulk::{self, Sealed};
use crate::shm::{SharedMemory, ShmInner};
use crate::wire::{
    self, BufRef, Bytes, Ctrl, FromWorker, InBuf, KernelRef, Outcome, ToWorker, Value,
};
use kernelpool_kernels::{Buffer, Error, Kernel, KernelName, Lang, Step, StepArgs};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

/// Flush results older than this.
const FLUSH_AFTER_NS: u64 = 100_000;
/// Send the result of a task that ran this long at once.
const LONG_TASK_NS: u64 = 20_000;
/// Flush results once this many bytes are waiting.
const FLUSH_BYTES: usize = 256 * 1024;
/// How long a worker that has run out of tasks watches for more before it sleeps.
const SPIN_NS: u64 = 50_000;
/// Descriptors one `recvmsg` can take (the pool attaches at most this many to a frame).
const MAX_FDS: usize = bulk::MAX_SEALED_PER_FRAME;

/// Parse the token and, when it is ours, become a worker (never returns then).
pub(crate) fn enter_if_token() {
    let Some(token) = std::env::var_os(wire::TOKEN) else {
        return;
    };
    let Some((fd, ppid)) = token.to_str().and_then(|t| {
        let (fd, ppid) = t.split_once(',')?;
        Some((fd.parse::<i32>().ok()?, ppid.parse::<i32>().ok()?))
    }) else {
        return;
    };
    // A process started by a worker inherits the variable but not the descriptor (the
    // worker marks it close-on-exec at once): only a process that really holds the
    // socket is a worker.
    if fd < 3 || !is_socket(fd) {
        return;
    }
    // SAFETY: `fd` is open (checked just above) and is this process's end of the pool's
    // socket pair, inherited for exactly this purpose; nothing else in the process knows
    // about it, since `init()` runs first in `main`.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    main(sock, ppid)
}

fn is_socket(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .is_ok_and(|p| p.to_string_lossy().starts_with("socket:"))
}

/// (device, inode) of the running executable.
pub(crate) fn exe_identity() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn main(sock: OwnedFd, ppid: i32) -> ! {
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
    sock: OwnedFd,
    fds: VecDeque<OwnedFd>,
    out: Vec<u8>,
    /// Offsets in `out` of frames that carry a sealed result, and its memfd (closed once
    /// sent).
    marks: VecDeque<(usize, Sealed)>,
    /// When the oldest unsent result was produced.
    pending_since: Option<u64>,
    /// How long the last task ran.
    last_task_ns: u64,
    ctrl: Option<Ctrl>,
    same_exe: bool,
    bufs: HashMap<u64, Mapped>,
    libs: HashMap<(PathBuf, String, KernelName, Lang, wire::FileId), Kernel>,
    scratch: Vec<u8>,
}

impl Worker {
    fn new(sock: OwnedFd) -> Worker {
        Worker {
            sock,
            fds: VecDeque::new(),
            out: Vec::with_capacity(64 * 1024),
            marks: VecDeque::new(),
            pending_since: None,
            last_task_ns: 0,
            ctrl: None,
            same_exe: false,
            bufs: HashMap::new(),
            libs: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Serve until the pool closes the socket.
    fn serve(&mut self) -> Result<(), String> {
        let mut inb = InBuf::new();
        loop {
            while let Some(frame) = inb.next_frame()? {
                self.handle(frame)?;
            }
            self.flush()?;
            // Wait for more: look, spin a little on the pool's write counter (a pool that
            // answers at once is served without either side sleeping), then block.
            let seen = self.ctrl.as_ref().map(|c| c.writes(false));
            match self.receive(&mut inb, false)? {
                Some(0) => return Ok(()),
                Some(_) => continue,
                None => {}
            }
            if let (Some(c), Some(seen)) = (&self.ctrl, seen) {
                if wire::spin_until(SPIN_NS, || c.writes(false) != seen) {
                    continue;
                }
            }
            if self.receive(&mut inb, true)? == Some(0) {
                return Ok(());
            }
        }
    }

    /// Receive more bytes (and descriptors): `Some(0)` at end of stream, `None` when
    /// nothing is there and `wait` is false.
    fn receive(&mut self, inb: &mut InBuf, wait: bool) -> Result<Option<usize>, String> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let flags = if wait {
            RecvFlags::CMSG_CLOEXEC
        } else {
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT
        };
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let spare = inb.spare();
            match recvmsg(
                &self.sock,
                &mut [io::IoSliceMut::new(spare)],
                &mut control,
                flags,
            ) {
                Ok(msg) => {
                    for m in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(fds) = m {
                            self.fds.extend(fds);
                        }
                    }
                    inb.filled(msg.bytes);
                    return Ok(Some(msg.bytes));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::CONNRESET) => return Ok(Some(0)),
                Err(e) => return Err(format!("cannot read from the pool: {e}")),
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, send, sendmsg};
        let mut sent = 0;
        while sent < self.out.len() {
            let with_fd = self.marks.front().is_some_and(|m| m.0 == sent);
            let end = match (with_fd, self.marks.front(), self.marks.get(1)) {
                (true, _, Some(next)) => next.0,
                (true, _, None) | (false, None, _) => self.out.len(),
                (false, Some(m), _) => m.0,
            };
            let bytes = &self.out[sent..end];
            let r = if with_fd {
                let fds = [self.marks[0].1.as_fd()];
                let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                control.push(SendAncillaryMessage::ScmRights(&fds));
                sendmsg(
                    &self.sock,
                    &[io::IoSlice::new(bytes)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )
            } else {
                send(&self.sock, bytes, SendFlags::NOSIGNAL)
            };
            match r {
                Ok(n) => {
                    sent += n;
                    if with_fd {
                        // Sent: the pool has its own descriptor now.
                        self.marks.pop_front();
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                // The pool is gone: nothing left to do.
                Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {
                    std::process::exit(0)
                }
                Err(e) => return Err(format!("cannot write to the pool: {e}")),
            }
        }
        if sent > 0 {
            if let Some(c) = &self.ctrl {
                c.wrote(true);
            }
        }
        self.out.clear();
        wire::shrink(&mut self.out);
        self.pending_since = None;
        Ok(())
    }

    fn push(&mut self, msg: &FromWorker<'_>) -> Result<(), String> {
        debug_assert!(self.marks.back().is_none_or(|m| m.0 < self.out.len()));
        wire::push_frame(&mut self.out, msg).map_err(|e| format!("cannot encode a reply: {e}"))
    }

    fn take_fd(&mut self, what: &str) -> Result<OwnedFd, String> {
        self.fds
            .pop_front()
            .ok_or_else(|| format!("{what} arrived without its descriptor"))
    }

    fn handle(&mut self, frame: &[u8]) -> Result<(), String> {
        let msg: ToWorker<'_> =
            postcard::from_bytes(frame).map_err(|e| format!("bad message from the pool: {e}"))?;
        match msg {
            ToWorker::Setup { ctrl_bytes, exe } => {
                let fd = self.take_fd("the control block")?;
                let shm = SharedMemory::from_fd(0, fd, ctrl_bytes as usize)
                    .map_err(|e| format!("cannot map the control block: {e}"))?;
                self.ctrl = Some(Ctrl::new(shm).ok_or("control block too small")?);
                self.same_exe = exe.is_some() && exe == exe_identity();
                self.push(&FromWorker::Ready {
                    pid: std::process::id(),
                    same_exe: self.same_exe,
                })?;
                self.flush()?;
            }
            ToWorker::Map { id, bytes } => {
                let fd = self.take_fd("a buffer")?;
                let shm = SharedMemory::from_fd(id, fd, bytes as usize)
                    .map_err(|e| format!("cannot map buffer {id}: {e}"))?;
                self.bufs.insert(
                    id,
                    Mapped {
                        shm: shm.inner().clone(),
                        view: None,
                    },
                );
            }
            ToWorker::Unmap { ids } => {
                for id in ids {
                    self.bufs.remove(&id);
                }
            }
            ToWorker::Call { first, fun, args } => {
                // The frame's descriptors are claimed first, whatever becomes of its tasks.
                let mut sealed = VecDeque::new();
                for arg in &args {
                    if let Value::Sealed { bytes } = *arg {
                        let fd = self.take_fd("a large argument")?;
                        sealed.push_back(
                            bulk::Mapped::open(fd, bytes as usize)
                                .map_err(|e| format!("cannot map the argument: {e}")),
                        );
                    }
                }
                if !self.same_exe {
                    for i in 0..args.len() as u64 {
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
                for (i, arg) in args.iter().enumerate() {
                    let id = first + i as u64;
                    scratch.clear();
                    let mapped = match *arg {
                        Value::Inline(_) => None,
                        Value::Sealed { .. } => {
                            match sealed.pop_front().expect("one per sealed argument") {
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
                    let r = self.task(id, || call(f, arg, &mut scratch));
                    // Unmapped before the reply: the pool may reuse the memory at once.
                    drop(mapped);
                    match r {
                        Ok(Ok(())) if scratch.len() > bulk::SEALED_ABOVE => {
                            match Sealed::new(&scratch) {
                                Ok(s) => self.reply_sealed(id, s)?,
                                // Too little memory for a copy: the socket carries it.
                                Err(_) => self.reply(id, Outcome::Value(Bytes(&scratch)))?,
                            }
                        }
                        Ok(Ok(())) => self.reply(id, Outcome::Value(Bytes(&scratch)))?,
                        Ok(Err(e)) => self.reply(id, Outcome::Failed(Cow::Owned(e)))?,
                        Err(msg) => self.reply(id, Outcome::Panicked(Cow::Owned(msg)))?,
                    }
                }
                scratch.clear();
                wire::shrink(&mut scratch);
                self.scratch = scratch;
            }
            ToWorker::Step {
                first,
                kernel,
                args,
                bufs,
                ranges,
            } => self.step(first, kernel, args, &bufs, &ranges)?,
        }
        Ok(())
    }

    /// Run one task, recording it in the control block; `Err` carries a panic message.
    fn task<T>(&mut self, id: u64, body: impl FnOnce() -> T) -> Result<T, String> {
        let t0 = wire::now_ns();
        if let Some(c) = &self.ctrl {
            c.begin(id, t0);
        }
        IN_TASK.set(true);
        let r = catch_unwind(AssertUnwindSafe(body)).map_err(panic_message);
        IN_TASK.set(false);
        let t1 = wire::now_ns();
        if let Some(c) = &self.ctrl {
            c.end(id, t0, t1);
        }
        self.last_task_ns = t1.saturating_sub(t0);
        r
    }

    /// Queue the outcome of task `id`. Results of tiny tasks are sent in batches; after a
    /// task that took a while, the next one probably will too, so its result goes at once
    /// (the pool refills the queue as soon as it hears of it).
    fn reply(&mut self, id: u64, outcome: Outcome<'_>) -> Result<(), String> {
        self.push(&FromWorker::Done { id, outcome })?;
        self.replied()
    }

    /// Queue the result of task `id`, which travels in `value`.
    fn reply_sealed(&mut self, id: u64, value: Sealed) -> Result<(), String> {
        let at = self.out.len();
        let bytes = value.len() as u64;
        self.push(&FromWorker::Done {
            id,
            outcome: Outcome::Sealed { bytes },
        })?;
        self.marks.push_back((at, value));
        self.replied()
    }

    /// A reply was queued: send it now or later.
    fn replied(&mut self) -> Result<(), String> {
        let now = wire::now_ns();
        let since = *self.pending_since.get_or_insert(now);
        if self.out.len() >= FLUSH_BYTES
            || now.saturating_sub(since) >= FLUSH_AFTER_NS
            || self.last_task_ns >= LONG_TASK_NS
        {
            self.flush()?;
        }
        Ok(())
    }

    /// The kernel a step names; kernels from shared objects are loaded once and kept.
    fn kernel(&mut self, kernel: KernelRef) -> Result<Kernel, String> {
        match kernel {
            KernelRef::Builtin { name, lang } => Ok(Kernel::get(name, lang)),
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
                if wire::mapped_file(k.address()) != Some(file) {
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
        if let Some(c) = &self.ctrl {
            c.begin(first, wire::now_ns());
        }
        let kernel = self.kernel(kernel);
        if let Some(c) = &self.ctrl {
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
            None => Step::new(kernel, args, views.iter_mut().collect()).map_err(|e| e.to_string()),
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
