//! What crosses the socket between the pool and a worker: serde enums encoded with
//! postcard, each frame prefixed by its length (u32, little endian). Only small things
//! cross: function offsets, kernel names, step arguments, buffer ids, index ranges, and the
//! serialised arguments and results of user functions up to 256 KiB. Buffer contents never
//! do; their memfds travel once per worker as `SCM_RIGHTS` ancillary data attached to a
//! `Map` frame. Larger arguments and results travel in sealed memfds attached the same way
//! to the frame that names them (see [`crate::bulk`]).
//!
//! The worker also shares a small control block with the pool (see [`ControlBlock`]): it
//! records there which task it is running and since when, which lets the pool name the
//! task that killed a worker, enforce timeouts without extra messages, and size its
//! batches.

use crate::shm::SharedMemory;
use kernelpool_kernels::{Elem, KernelName, Lang, Partial, StepArgs};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the environment variable that turns a process into a worker:
/// `<socket fd>,<parent pid>`.
pub(crate) const TOKEN: &str = "KERNELPOOL_WORKER";

/// Bytes that serialise as one length-prefixed byte string (serde's `&[u8]` would
/// serialise element by element).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("borrowed bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A function that crosses to a worker: offsets from [`crate::func::anchor`] of the
/// user's function and of the monomorphised trampoline that decodes, calls and encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef {
    pub f: i64,
    pub call: i64,
}

/// A kernel named in a way that survives process boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KernelRef {
    /// A built-in kernel.
    Builtin { name: KernelName, lang: Lang },
    /// A kernel loaded from a shared object, following the contract of `name`.
    Library {
        name: KernelName,
        lang: Lang,
        path: PathBuf,
        symbol: String,
        /// The file the pool loaded (the one at `path` may have been replaced since).
        file: FileId,
    },
}

/// Which file a mapping comes from: (device major, device minor, inode).
pub(crate) type FileId = (u32, u32, u64);

/// The file mapped at `addr` in this process, from `/proc/self/maps`.
pub(crate) fn mapped_file(addr: usize) -> Option<FileId> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        // start-end perms offset major:minor inode [path]
        let mut f = line.split_ascii_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        if !(lo <= addr && addr < hi) {
            return None;
        }
        let (major, minor) = f.nth(2)?.split_once(':')?;
        let inode: u64 = f.next()?.parse().ok()?;
        Some((
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
            inode,
        ))
        .filter(|id| id.2 != 0)
    })
}

/// A buffer of a step: which shared memory, seen as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BufRef {
    pub id: u64,
    pub elem: Elem,
    pub len: u64,
}

/// Pool -> worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// First frame; the control block's memfd is attached.
    Setup {
        /// Size of the control block.
        ctrl_bytes: u64,
        /// (device, inode) of the pool's executable, when functions may be sent.
        exe: Option<(u64, u64)>,
    },
    /// A buffer's memfd is attached: map it and keep it under `id`.
    Map { id: u64, bytes: u64 },
    /// Forget these buffers.
    Unmap { ids: Vec<u64> },
    /// Call a function on each argument; task ids `first`, `first + 1`, ...
    Call {
        first: u64,
        fun: FnRef,
        #[serde(borrow)]
        args: Vec<Value<'a>>,
    },
    /// Run a kernel step on each range; task ids `first`, `first + 1`, ...
    Step {
        first: u64,
        kernel: KernelRef,
        args: StepArgs,
        bufs: Vec<BufRef>,
        ranges: Vec<(u64, u64)>,
    },
}

/// An encoded argument of a function.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Value<'a> {
    /// In the frame itself.
    #[serde(borrow)]
    Inline(Bytes<'a>),
    /// In a sealed memfd of `bytes` bytes (see [`crate::bulk`]); the frame carries the
    /// descriptors of its sealed values, in order.
    Sealed { bytes: u64 },
}

/// Worker -> pool.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker<'a> {
    /// The worker has mapped its control block and waits for tasks.
    Ready { pid: u32, same_exe: bool },
    /// The outcome of task `id`.
    Done {
        id: u64,
        #[serde(borrow)]
        outcome: Outcome<'a>,
    },
}

/// How one task ended in the worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<'a> {
    /// The serialised result of a function.
    #[serde(borrow)]
    Value(Bytes<'a>),
    /// The serialised result of a function, in a sealed memfd of `bytes` bytes whose
    /// descriptor the frame carries (see [`crate::bulk`]).
    Sealed { bytes: u64 },
    /// The partial of a kernel chunk.
    Partial(Partial),
    /// The function panicked.
    Panicked(Cow<'a, str>),
    /// The kernel returned a non-zero status.
    KernelFailed { code: i32 },
    /// Anything else (argument could not be decoded, step could not be rebuilt, ...).
    Failed(Cow<'a, str>),
}

/// Append `msg` to `out` as one frame; a message that cannot be encoded, or whose
/// encoding is longer than [`MAX_FRAME`] (which the other side would refuse), leaves
/// `out` as it was.
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

/// Append a postcard encoding of `value` to `out` (no frame).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    let start = out.len();
    postcard::to_io(value, &mut *out)
        .map(drop)
        .inspect_err(|_| out.truncate(start))
}

/// Largest frame either side accepts (a guard against a corrupt length).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Largest encoded argument or result of a function: a frame that carries one such value
/// and its task's fields stays within [`MAX_FRAME`].
pub(crate) const MAX_VALUE: usize = MAX_FRAME - 4096;

/// Why a value of `bytes` bytes cannot cross, if it cannot.
pub(crate) fn check_value_size(what: &str, bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE {
        return Err(format!(
            "{what} takes {bytes} bytes encoded, more than the {MAX_VALUE} bytes a message \
             between the pool and a worker can carry"
        ));
    }
    Ok(())
}

/// Give back the memory of an empty buffer that a large message made large.
pub(crate) fn shrink(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > 16 * INBUF {
        *buf = Vec::new();
    }
}

/// The next complete frame in `buf[*pos..]`, advancing `pos`; `Ok(None)` when incomplete.
pub(crate) fn next_frame<'b>(buf: &'b [u8], pos: &mut usize) -> Result<Option<&'b [u8]>, String> {
    let rest = &buf[*pos..];
    if rest.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("frame of {len} bytes"));
    }
    if rest.len() < 4 + len {
        return Ok(None);
    }
    *pos += 4 + len;
    Ok(Some(&rest[4..4 + len]))
}

/// Bytes still needed to complete the frame that starts at `buf[pos..]` (0 if unknown).
pub(crate) fn frame_missing(buf: &[u8], pos: usize) -> usize {
    let rest = &buf[pos..];
    if rest.len() < 4 {
        return 0;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (4 + len.min(MAX_FRAME)).saturating_sub(rest.len())
}

/// A receive buffer holding whole and partial frames.
#[derive(Debug)]
pub(crate) struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const INBUF: usize = 64 * 1024;

impl InBuf {
    pub(crate) fn new() -> InBuf {
        InBuf {
            buf: vec![0; INBUF],
            start: 0,
            end: 0,
        }
    }

    /// Room to receive into, made by compacting or growing the buffer.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 16 * INBUF {
                self.buf = vec![0; INBUF];
            }
        }
        let need = frame_missing(&self.buf[..self.end], self.start).max(INBUF / 4);
        if self.buf.len() - self.end < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < need {
                self.buf.resize(self.end + need.max(INBUF), 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were received into [`InBuf::spare`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// The next complete frame, if any.
    pub(crate) fn next_frame(&mut self) -> Result<Option<&[u8]>, String> {
        next_frame(&self.buf[..self.end], &mut self.start)
    }
}

/// The control block a worker shares with the pool. Every field is an atomic: the other
/// process reads it while this one writes. Each side writes its own cache line.
#[repr(C)]
pub(crate) struct ControlBlock {
    worker: WorkerSide,
    pool: PoolSide,
}

/// Written by the worker.
#[repr(C, align(64))]
struct WorkerSide {
    /// `2 * id + 1` while task `id` runs, `2 * id` once it has finished.
    cur: AtomicU64,
    /// CLOCK_MONOTONIC nanoseconds at which the current task started.
    started_ns: AtomicU64,
    /// Nanoseconds spent in tasks, in total.
    busy_ns: AtomicU64,
    /// Tasks finished, in total.
    done: AtomicU64,
    /// Bumped after each write of results to the socket.
    wrote: AtomicU64,
}

/// Written by the pool.
#[repr(C, align(64))]
struct PoolSide {
    /// Bumped after each write of tasks to the socket.
    wrote: AtomicU64,
}

/// Size of the shared memory holding a control block.
pub(crate) const CTRL_BYTES: usize = 4096;
const _: () = assert!(std::mem::size_of::<ControlBlock>() <= CTRL_BYTES);

/// A mapped control block.
#[derive(Debug)]
pub(crate) struct Ctrl {
    shm: SharedMemory,
}

impl Ctrl {
    pub(crate) fn new(shm: SharedMemory) -> Option<Ctrl> {
        (shm.len() >= std::mem::size_of::<ControlBlock>()).then_some(Ctrl { shm })
    }

    pub(crate) fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    fn block(&self) -> &ControlBlock {
        // SAFETY: the mapping is page aligned, at least `size_of::<ControlBlock>()` long
        // (checked in `new`), zero-initialised (a valid ControlBlock: all atomics), and
        // lives as long as `self`. Only atomics are accessed through it, so the other
        // process writing at the same time is not a data race.
        unsafe { &*(self.shm.inner().ptr() as *const ControlBlock) }
    }

    /// Worker: task `id` starts now.
    pub(crate) fn begin(&self, id: u64, now_ns: u64) {
        let b = &self.block().worker;
        b.started_ns.store(now_ns, Ordering::Relaxed);
        b.cur.store(2 * id + 1, Ordering::Release);
    }

    /// Worker: task `id`, started at `start_ns`, has finished.
    pub(crate) fn end(&self, id: u64, start_ns: u64, now_ns: u64) {
        let b = &self.block().worker;
        b.cur.store(2 * id, Ordering::Release);
        b.busy_ns
            .fetch_add(now_ns.saturating_sub(start_ns), Ordering::Relaxed);
        b.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Worker: task `id` is not running any more, without counting it as done (the
    /// preparation of a step, recorded as its first task, is over).
    pub(crate) fn pause(&self, id: u64) {
        self.block().worker.cur.store(2 * id, Ordering::Release);
    }

    /// Pool: (task id, running, started at) of the task the worker last started.
    pub(crate) fn current(&self) -> (u64, bool, u64) {
        let b = &self.block().worker;
        let cur = b.cur.load(Ordering::Acquire);
        (cur / 2, cur % 2 == 1, b.started_ns.load(Ordering::Relaxed))
    }

    /// Pool: (busy nanoseconds, tasks done) so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let b = &self.block().worker;
        (
            b.busy_ns.load(Ordering::Relaxed),
            b.done.load(Ordering::Relaxed),
        )
    }

    /// Count of writes by the worker (`worker == true`) or by the pool.
    pub(crate) fn writes(&self, worker: bool) -> u64 {
        let b = self.block();
        let counter = if worker {
            &b.worker.wrote
        } else {
            &b.pool.wrote
        };
        counter.load(Ordering::Acquire)
    }

    /// Record a write to the socket by the worker (`worker == true`) or by the pool.
    pub(crate) fn wrote(&self, worker: bool) {
        let b = self.block();
        let counter = if worker {
            &b.worker.wrote
        } else {
            &b.pool.wrote
        };
        counter.fetch_add(1, Ordering::Release);
    }
}

/// Wait until `changed()` holds or `ns` nanoseconds have passed, spinning with short
/// pauses and yielding the CPU now and then (so that on a machine with fewer cores than
/// busy processes the spinner does not keep the one it waits for off the CPU). Returns
/// whether `changed()` held.
pub(crate) fn spin_until(ns: u64, mut changed: impl FnMut() -> bool) -> bool {
    let deadline = now_ns() + ns;
    loop {
        for _ in 0..32 {
            if changed() {
                return true;
            }
            std::hint::spin_loop();
        }
        if now_ns() >= deadline {
            return changed();
        }
        rustix::thread::sched_yield();
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock in every process of the machine).
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_borrow() {
        let mut out = Vec::new();
        let args = [
            Value::Inline(Bytes(b"abc")),
            Value::Sealed { bytes: 5 },
            Value::Inline(Bytes(b"")),
        ];
        push_frame(
            &mut out,
            &ToWorker::Call {
                first: 7,
                fun: FnRef { f: -5, call: 9 },
                args: args.to_vec(),
            },
        )
        .unwrap();
        push_frame(
            &mut out,
            &FromWorker::Done {
                id: 3,
                outcome: Outcome::Value(Bytes(&[1, 2])),
            },
        )
        .unwrap();
        let mut pos = 0;
        let f1 = next_frame(&out[..out.len() - 1], &mut pos)
            .unwrap()
            .unwrap();
        match postcard::from_bytes::<ToWorker<'_>>(f1).unwrap() {
            ToWorker::Call { first, fun, args } => {
                assert_eq!((first, fun), (7, FnRef { f: -5, call: 9 }));
                assert!(matches!(
                    args[..],
                    [
                        Value::Inline(Bytes(b"abc")),
                        Value::Sealed { bytes: 5 },
                        Value::Inline(Bytes(b""))
                    ]
                ));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            next_frame(&out[..out.len() - 1], &mut pos)
                .unwrap()
                .is_none()
        );
        assert!(frame_missing(&out[..out.len() - 1], pos) == 1);
        let f2 = next_frame(&out, &mut pos).unwrap().unwrap();
        assert!(matches!(
            postcard::from_bytes::<FromWorker<'_>>(f2).unwrap(),
            FromWorker::Done {
                id: 3,
                outcome: Outcome::Value(Bytes(&[1, 2]))
            }
        ));
        assert_eq!(pos, out.len());
    }

    #[test]
    fn frames_longer_than_the_limit_are_refused_and_leave_the_buffer_as_it_was() {
        let mut out = vec![1, 2, 3];
        let big = vec![0u8; MAX_FRAME];
        let e = push_frame(&mut out, &Bytes(&big)).expect_err("too long");
        assert!(e.contains("longer than"), "{e}");
        assert_eq!(out, [1, 2, 3]);
        push_frame(&mut out, &Bytes(&big[..MAX_VALUE])).expect("fits");
        let mut pos = 3;
        let frame = next_frame(&out, &mut pos).expect("valid").expect("whole");
        assert_eq!(
            postcard::from_bytes::<Bytes<'_>>(frame).unwrap().0.len(),
            MAX_VALUE
        );
        assert!(check_value_size("x", MAX_VALUE).is_ok());
        assert!(check_value_size("x", MAX_VALUE + 1).is_err());
    }

    #[test]
    fn control_block_reports_the_running_task() {
        let ctrl = Ctrl::new(SharedMemory::new(CTRL_BYTES).unwrap()).unwrap();
        assert_eq!(ctrl.current(), (0, false, 0));
        ctrl.begin(5, 100);
        assert_eq!(ctrl.current(), (5, true, 100));
        ctrl.end(5, 100, 130);
        assert_eq!(ctrl.current(), (5, false, 100));
        assert_eq!(ctrl.totals(), (30, 1));
        ctrl.begin(6, 200);
        ctrl.pause(6);
        assert_eq!(ctrl.current(), (6, false, 200));
        assert_eq!(ctrl.totals(), (30, 1), "a pause is not a task done");
        ctrl.wrote(false);
        assert_eq!((ctrl.writes(false), ctrl.writes(true)), (1, 0));
        assert!(!spin_until(10_000, || ctrl.writes(true) > 0));
        assert!(spin_until(10_000, || ctrl.writes(false) > 0));
    }
}
