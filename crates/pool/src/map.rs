//! Plain Rust functions on the process pool, as Python's `multiprocessing.Pool`: `map`,
//! `starmap`, `imap` (ordered, lazy), `imap_unordered` and `apply`, with a `chunksize`.
//!
//! Arguments and results cross as postcard; functions cross as offsets in the executable
//! (see `func`), so only `fn` items and non-capturing closures can be sent, and only to
//! workers that run this same executable (pools started through [`init`](crate::init)).
//!
//! Delivery is at least once for tasks that did not fail: a task that was waiting behind
//! a task that killed its worker (or whose result had not yet left the worker) is run
//! again on the replacement. Results of short tasks leave a worker together, up to 64 in
//! one frame, when its queue runs out, after 100 µs, or before a next task once they are
//! 5 µs old; so a crash can send up to 63 tasks that had finished to run again.
//!
//! `map` and `starmap` take all their arguments before the pool is locked (the iterator
//! may use the pool itself), as Python's `Pool.map` makes a list of its iterable, and check that no
//! two name overlapping output ranges; they encode the first thousand before the first
//! task is sent and the rest while workers run those, keep them once, encoded as a worker
//! reads them, and send runs of consecutive tasks with one copy. The pool keeps that memory (up to
//! 16 MiB) for its next call: fresh memory costs a page fault per 4 KiB, about as much as
//! the encoding into it.
//!
//! Errors: a task's own failure carries its index ([`PoolError::task`]). A failure of the
//! pool itself has none: `map`, `starmap` and `apply` return it as the call's error; the
//! lazy iterators yield [`PoolError::PoolFailed`] (index and cause) for every task they had
//! taken and not yet delivered, so that each item still belongs to its own task, and then
//! end ([`Imap::pool_failure`] tells why; arguments not yet taken were never started).

use crate::error::PoolError;
use crate::process::{
    Done, Engine, Guard, InlineBytes, Item, ItemData, Op, OpKind, Payload, Processes, StoredArgs,
};
use crate::protocol::FnRef;
use crate::shared_array::{
    OutputRanges, SharedChunkMut, SharedSlice, SharedVec, collect, names_arrays,
};
use bytemuck::Pod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::iter::Fuse;
use std::marker::PhantomData;
use std::sync::Arc;

/// The map family with a given `chunksize` (see [`Processes::with_chunksize`]).
#[derive(Debug, Clone, Copy)]
pub struct Mapper<'p> {
    pool: &'p Processes,
    chunksize: Option<usize>,
}

/// Encode the argument of task `idx`, refusing output ranges that overlap those of the
/// call's earlier tasks.
fn encode<T: Serialize>(
    idx: usize,
    value: &T,
    outputs: &mut OutputRanges,
) -> Result<Item, (usize, PoolError)> {
    let (data, named) = collect(|| encode_data(value));
    let data = data.map_err(|message| (idx, PoolError::Codec { task: idx, message }))?;
    if let Some(other) = outputs.claim(idx, &named.outputs) {
        return Err((idx, PoolError::OverlappingOutput { task: idx, other }));
    }
    Ok(Item {
        idx,
        data,
        tries: 0,
        arrays: named.arrays,
    })
}

/// Encode the argument of task `idx` into `store` (`None`), the common case of a short
/// argument that names no shared array; or, as [`encode`] does, as an item of its own.
fn encode_stored<T: Serialize>(
    store: &mut StoredArgs,
    idx: usize,
    value: &T,
    outputs: &mut OutputRanges,
) -> Result<Option<Item>, (usize, PoolError)> {
    let (stored, named) = names_arrays(|| store.push(idx, value));
    match stored {
        Ok(true) if !named => return Ok(None),
        // It names shared arrays: they travel with it (encoded again below).
        Ok(true) => store.pop(),
        // Too long to store, or not encodable (the error comes from below).
        Ok(false) | Err(_) => {}
    }
    encode(idx, value, outputs).map(Some)
}

/// Arguments of a `map` encoded before its first task is sent; the rest are encoded
/// while workers run those, this many between two looks at the workers.
const ENCODED_FIRST: usize = 1024;
const ENCODED_PER_ROUND: usize = 512;

/// The call's mistake when two arguments name overlapping output ranges (before anything
/// runs): the arguments are walked as if encoded (without writing), and only those that
/// name shared arrays a second time, to learn which.
fn check_outputs<T: Serialize>(args: &[T]) -> Result<(), PoolError> {
    let mut outputs = OutputRanges::default();
    for (i, a) in args.iter().enumerate() {
        let size = |a: &T| postcard::experimental::serialized_size(a);
        if let (_, true) = names_arrays(|| size(a)) {
            // (An argument that cannot be encoded, or is too large to send, is a failed
            // task of its own and holds no range.)
            let (len, named) = collect(|| size(a));
            if len.is_ok_and(|len| len <= crate::protocol::MAX_VALUE) {
                if let Some(other) = outputs.claim(i, &named.outputs) {
                    return Err(PoolError::OverlappingOutput { task: i, other });
                }
            }
        }
    }
    Ok(())
}

fn encode_data<T: Serialize>(value: &T) -> Result<ItemData, String> {
    // Most arguments of tiny tasks fit in place: one encoding and no allocation. (An
    // encoding that fails here is done again below, which reports the error; the arrays
    // it named twice are counted once.)
    if let Some(small) = InlineBytes::encode(value) {
        return Ok(ItemData::Small(small));
    }
    // A large argument is encoded straight into the shared memory that carries it.
    if let Ok(len) = postcard::experimental::serialized_size(value) {
        if len > crate::bulk::SEALED_ABOVE && len <= crate::protocol::MAX_VALUE {
            if let Ok(sealed) = crate::bulk::Sealed::encode(value, len) {
                return Ok(ItemData::Sealed(Arc::new(sealed)));
            }
        }
    }
    // Otherwise (small, too large, or not encodable: the errors come from here).
    let a = postcard::to_stdvec(value).map_err(|e| format!("cannot encode the argument: {e}"))?;
    crate::protocol::check_value_size("the argument", a.len())?;
    if a.len() > crate::bulk::SEALED_ABOVE {
        let sealed = crate::bulk::Sealed::new(&a)
            .map_err(|e| format!("cannot put the argument in shared memory: {e}"))?;
        Ok(ItemData::Sealed(Arc::new(sealed)))
    } else {
        Ok(ItemData::Arg(a))
    }
}

fn decode_value<R: DeserializeOwned>(idx: usize, bytes: &[u8]) -> Result<R, PoolError> {
    postcard::from_bytes(bytes).map_err(|e| PoolError::Codec {
        task: idx,
        message: format!("cannot decode the result: {e}"),
    })
}

fn decode<R: DeserializeOwned>((idx, r): Done) -> (usize, Result<R, PoolError>) {
    let r = r.and_then(|p| match p {
        Payload::Bytes(b) => decode_value(idx, &b),
        Payload::Inline(b) => decode_value(idx, b.as_slice()),
        Payload::Mapped(m) => decode_value(idx, &m),
        _ => Err(PoolError::Internal(format!("task {idx} returned no value"))),
    });
    (idx, r)
}

impl Processes {
    /// The map family with tasks sent in chunks of `chunksize` (at least 1; 0 is
    /// reported as [`PoolError::InvalidOption`] by the call).
    pub fn with_chunksize(&self, chunksize: usize) -> Mapper<'_> {
        Mapper {
            pool: self,
            chunksize: Some(chunksize),
        }
    }

    fn mapper(&self) -> Mapper<'_> {
        Mapper {
            pool: self,
            chunksize: self.config().chunksize,
        }
    }

    /// `f` on every argument, in parallel; results in argument order. When tasks fail,
    /// every task still runs and the error of the first failed one (by index) is
    /// returned; use [`imap`](Processes::imap) to get each task's own result. `args` is
    /// taken whole before the first task is sent (it may use the pool itself), as
    /// Python's `Pool.map` makes a list of its iterable; `imap` takes it lazily. The
    /// arguments are encoded while the first tasks run, so past the first thousand or so
    /// their `Serialize` runs while the call holds the pool: it must not use the pool (that
    /// is [`PoolError::Busy`] for the task), nor wait for a thread that does (which would
    /// wait for this call).
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// kernelpool_pool::init(); // first thing in main
    /// let pool = kernelpool_pool::Processes::new(2)?;
    /// assert_eq!(pool.map(square, 0..5)?, vec![0, 1, 4, 9, 16]);
    /// # Ok::<(), kernelpool_pool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// [`PoolError::NotSameExecutable`] for a pool whose workers run another program,
    /// [`PoolError::FunctionNotInExecutable`] for a function in a shared library,
    /// [`PoolError::InvalidOption`] for chunksize 0, [`PoolError::Busy`] while an `imap`
    /// of this thread holds the pool; the first failed task's error (it carries the
    /// task's index: [`PoolError::task`]); or a failure of the pool itself (no index).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.mapper().map(f, args)
    }

    /// `f(a, b)` for every pair, as [`map`](Processes::map).
    ///
    /// # Errors
    /// As [`map`](Processes::map).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        args: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.mapper().starmap(f, args)
    }

    /// A lazy iterator of `f` on each argument, in argument order: arguments are taken
    /// from `args` as workers have room, and each task yields its own result (a failed
    /// task does not hide the others). Default chunksize 1. The pool serves nothing else
    /// until the iterator is finished or dropped. Dropped early, it leaves the tasks it
    /// had sent to finish (their results are discarded), except when they write output
    /// ranges ([`SharedChunkMut`]): the workers holding those are killed (and replaced). Item `i` is always task `i`'s: when the
    /// pool itself fails, each task taken and not yet delivered yields
    /// [`PoolError::PoolFailed`] and the iterator ends ([`Imap::pool_failure`]).
    ///
    /// # Errors
    /// As [`map`](Processes::map) for what is checked before the first task; the tasks'
    /// own errors come as items.
    pub fn imap<A, R, I>(
        &self,
        f: fn(A) -> R,
        args: I,
    ) -> Result<Imap<'_, I::IntoIter, R>, PoolError>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_mapper().imap(f, args)
    }

    /// As [`imap`](Processes::imap), but yields `(index, result)` as soon as each task
    /// is done. When the pool itself fails (no worker can be started), every task taken
    /// and not yet delivered comes with [`PoolError::PoolFailed`], then the iterator ends.
    ///
    /// # Errors
    /// As [`map`](Processes::map) for what is checked before the first task; the tasks'
    /// own errors come as items.
    pub fn imap_unordered<A, R, I>(
        &self,
        f: fn(A) -> R,
        args: I,
    ) -> Result<ImapUnordered<'_, I::IntoIter, R>, PoolError>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_mapper().imap_unordered(f, args)
    }

    /// `f` on consecutive sub-slices of `chunk_len` elements of `input` (the last may be
    /// shorter), in parallel; results in order. Nothing is copied: each task sees its
    /// part of the shared pages.
    ///
    /// ```no_run
    /// use kernelpool_pool::{Processes, SharedSlice, SharedVec};
    ///
    /// fn sum(part: SharedSlice<f64>) -> f64 {
    ///     part.iter().sum()
    /// }
    ///
    /// kernelpool_pool::init(); // first thing in main
    /// let pool = Processes::new(2)?;
    /// let data = SharedVec::from_slice(&[1.0; 1000])?.into_shared()?;
    /// let sums = pool.map_chunks(sum, &data, 250)?;
    /// assert_eq!(sums, vec![250.0; 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`PoolError::InvalidOption`] for `chunk_len` 0; otherwise as
    /// [`map`](Processes::map).
    pub fn map_chunks<T, R>(
        &self,
        f: fn(SharedSlice<T>) -> R,
        input: &SharedSlice<T>,
        chunk_len: usize,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Pod,
        R: Serialize + DeserializeOwned,
    {
        if chunk_len == 0 {
            return Err(PoolError::invalid(
                "chunk length",
                "must be at least 1, got 0",
            ));
        }
        self.map(f, input.chunks(chunk_len))
    }

    /// `f` on consecutive output ranges of `chunk_len` elements of `out` (the last may be
    /// shorter), in parallel, each task writing its own range in place; results in order.
    ///
    /// ```no_run
    /// use kernelpool_pool::{Processes, SharedChunkMut, SharedVec};
    ///
    /// fn fill(mut part: SharedChunkMut<u64>) -> usize {
    ///     let start = part.offset();
    ///     for (i, x) in part.iter_mut().enumerate() {
    ///         *x = ((start + i) * (start + i)) as u64;
    ///     }
    ///     part.len()
    /// }
    ///
    /// kernelpool_pool::init(); // first thing in main
    /// let pool = Processes::new(2)?;
    /// let mut out = SharedVec::<u64>::zeroed(1000)?;
    /// pool.map_chunks_mut(fill, &mut out, 100)?;
    /// assert_eq!(out[999], 999 * 999);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`PoolError::InvalidOption`] for `chunk_len` 0; otherwise as
    /// [`map`](Processes::map). The ranges of tasks that completed hold their results
    /// even when others failed.
    pub fn map_chunks_mut<T, R>(
        &self,
        f: fn(SharedChunkMut<'_, T>) -> R,
        out: &mut SharedVec<T>,
        chunk_len: usize,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Pod,
        R: Serialize + DeserializeOwned,
    {
        if chunk_len == 0 {
            return Err(PoolError::invalid(
                "chunk length",
                "must be at least 1, got 0",
            ));
        }
        self.map(f, out.chunks_mut(chunk_len))
    }

    /// `f(arg)` in a worker.
    ///
    /// # Errors
    /// As [`map`](Processes::map).
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.mapper().apply(f, arg)
    }

    fn imap_mapper(&self) -> Mapper<'_> {
        Mapper {
            pool: self,
            chunksize: Some(self.config().chunksize.unwrap_or(1)),
        }
    }
}

/// A `map` whose tasks are out: if it ends before they are all back (a failure of the
/// pool, or a panic that unwinds through the call), the workers holding them are killed
/// and reaped before the call returns, so that no task writes its output range after.
struct RunningCall<'e> {
    engine: &'e mut Engine,
    op: Op,
}

impl Drop for RunningCall<'_> {
    fn drop(&mut self) {
        if !self.op.finished() {
            self.engine.abort(&self.op);
        }
    }
}

impl<'p> Mapper<'p> {
    fn check(&self) -> Result<(), PoolError> {
        if self.chunksize == Some(0) {
            return Err(PoolError::invalid(
                "chunksize",
                "chunksize must be at least 1, got 0",
            ));
        }
        let cfg = self.pool.config();
        if cfg.exe.is_none() {
            return Err(PoolError::NotSameExecutable(
                cfg.program.display().to_string(),
            ));
        }
        Ok(())
    }

    /// See [`Processes::map`].
    ///
    /// # Errors
    /// As [`Processes::map`].
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.run_all(FnRef::of1(f)?, args)
    }

    /// See [`Processes::starmap`].
    ///
    /// # Errors
    /// As [`Processes::starmap`].
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        args: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.run_all(FnRef::of2(f)?, args)
    }

    /// See [`Processes::apply`].
    ///
    /// # Errors
    /// As [`Processes::apply`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let mut v = self.run_all(FnRef::of1(f)?, [arg])?;
        v.pop()
            .ok_or_else(|| PoolError::Internal("one task gave no result".into()))
    }

    /// The function `fun` names on every argument (a tuple for `starmap`); every task runs
    /// and the results come in argument order, or the first failed task's error.
    fn run_all<T: Serialize, R: DeserializeOwned>(
        &self,
        fun: FnRef,
        args: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError> {
        self.check()?;
        // Every argument is taken before the pool is locked (the caller's iterator may use
        // the pool itself), as Python's `Pool.map` makes a list of its iterable.
        let args: Vec<T> = args.into_iter().collect();
        let n = args.len();
        // Overlapping output ranges are a mistake of the call: nothing runs.
        check_outputs(&args)?;
        let workers = self.pool.config().workers;
        let chunksize = self
            .chunksize
            .unwrap_or_else(|| n.div_ceil(4 * workers).max(1));
        // Most arguments go into the operation's store; arguments that cannot be sent are
        // failed tasks. The first are encoded before the first task is sent, the rest
        // while workers run those, in whole chunks; each is dropped once encoded.
        let first = ENCODED_FIRST
            .max(2 * workers * chunksize)
            .next_multiple_of(chunksize);
        let per_round = ENCODED_PER_ROUND.next_multiple_of(chunksize);
        let mut outputs = OutputRanges::default();
        let mut store = self.pool.take_args_store(n.min(1 << 20));
        let mut pending = VecDeque::new();
        let mut unsent = VecDeque::new();
        let mut args = args.into_iter().enumerate();
        let mut encode_more = |store: &mut StoredArgs,
                               pending: &mut VecDeque<Item>,
                               unsent: &mut VecDeque<Done>,
                               count: usize| {
            for (i, a) in args.by_ref().take(count) {
                match encode_stored(store, i, &a, &mut outputs) {
                    Ok(None) => {}
                    Ok(Some(item)) => pending.push_back(item),
                    // (An overlap here means an argument named other output ranges
                    // when encoded than when checked: it is not sent.)
                    Err((i, e)) => unsent.push_back((i, Err(e))),
                }
            }
            args.len() > 0
        };
        let mut more = encode_more(&mut store, &mut pending, &mut unsent, first);
        let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
        // The failed task with the lowest index.
        let mut failed: Option<(usize, PoolError)> = None;
        let mut engine = self.pool.lock()?;
        let mut op = engine.new_op(OpKind::Call(fun), chunksize);
        op.pending = pending;
        op.store = store;
        op.ready = unsent;
        // Whatever happens below (a pool failure, or a panic in an argument's `Serialize`
        // or a result's `Deserialize`), no task of this call may go on running once it has
        // returned: its output ranges are the caller's again.
        let mut running = RunningCall {
            engine: &mut engine,
            op,
        };
        let op = &mut running.op;
        loop {
            while let Some((i, bytes)) = op.take_value() {
                match decode_value(i, bytes) {
                    Ok(r) => results[i] = Some(r),
                    Err(e) => {
                        if failed.as_ref().is_none_or(|(j, _)| i < *j) {
                            failed = Some((i, e));
                        }
                    }
                }
            }
            while let Some(done) = op.ready.pop_front() {
                match decode(done) {
                    (i, Ok(r)) => results[i] = Some(r),
                    (i, Err(e)) => {
                        if failed.as_ref().is_none_or(|(j, _)| i < *j) {
                            failed = Some((i, e));
                        }
                    }
                }
            }
            if more {
                // Send what workers have room for and take in what they answered, without
                // waiting, then encode the next arguments.
                running.engine.round(op, &mut || None, false)?;
                more = encode_more(&mut op.store, &mut op.pending, &mut op.ready, per_round);
                continue;
            }
            if op.finished() {
                break;
            }
            running.engine.step(op, &mut || None)?;
        }
        let store = std::mem::take(&mut op.store);
        drop(running);
        drop(engine);
        self.pool.give_back_args_store(store);
        match (results.iter().position(Option::is_none), failed) {
            (None, None) => Ok(results.into_iter().flatten().collect()),
            (Some(i), Some((j, e))) if i == j => Err(e),
            (Some(i), _) => Err(PoolError::Internal(format!("task {i} produced no result"))),
            // (A task that failed has no result.)
            (None, Some((_, e))) => Err(e),
        }
    }

    fn start<A, I>(&self, fun: FnRef, args: I) -> Result<Lazy<'p, I::IntoIter>, PoolError>
    where
        I: IntoIterator<Item = A>,
        A: Serialize,
    {
        self.check()?;
        let mut engine = self.pool.lock()?;
        let mut op = engine.new_op(OpKind::Call(fun), self.chunksize.unwrap_or(1));
        op.exhausted = false;
        Ok(Lazy {
            engine,
            op,
            args: args.into_iter().fuse(),
            fed: 0,
            outputs: OutputRanges::default(),
            failure: None,
        })
    }

    /// See [`Processes::imap`].
    ///
    /// # Errors
    /// As [`Processes::imap`].
    pub fn imap<A, R, I>(
        &self,
        f: fn(A) -> R,
        args: I,
    ) -> Result<Imap<'p, I::IntoIter, R>, PoolError>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let lazy = self.start(FnRef::of1(f)?, args)?;
        Ok(Imap {
            lazy,
            next: 0,
            stash: BTreeMap::new(),
            _r: PhantomData,
        })
    }

    /// See [`Processes::imap_unordered`].
    ///
    /// # Errors
    /// As [`Processes::imap_unordered`].
    pub fn imap_unordered<A, R, I>(
        &self,
        f: fn(A) -> R,
        args: I,
    ) -> Result<ImapUnordered<'p, I::IntoIter, R>, PoolError>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let lazy = self.start(FnRef::of1(f)?, args)?;
        Ok(ImapUnordered {
            lazy,
            _r: PhantomData,
        })
    }
}

/// The machinery shared by the lazy iterators: the locked pool, the operation, and the
/// arguments not yet taken.
struct Lazy<'p, I: Iterator> {
    engine: Guard<'p>,
    op: Op,
    args: Fuse<I>,
    fed: usize,
    /// Output ranges given to the tasks so far.
    outputs: OutputRanges,
    /// The pool itself failed (a worker could not be started): the tasks taken are
    /// reported as not run, and the iterator ends.
    failure: Option<Arc<PoolError>>,
}

/// A lazy iterator dropped before its tasks are all back leaves them to finish (their
/// answers belong to no call), except tasks that write output ranges: the borrow of those
/// ends with the iterator, so the workers holding them are killed and reaped first.
impl<I: Iterator> Drop for Lazy<'_, I> {
    fn drop(&mut self) {
        if !self.op.finished() && !self.outputs.is_empty() {
            self.engine.abort(&self.op);
        }
    }
}

impl<I: Iterator> Lazy<'_, I>
where
    I::Item: Serialize,
{
    /// The next outcome in completion order; `None` when all are out.
    fn next_done(&mut self) -> Option<Done> {
        loop {
            if let Some(d) = self.op.next_done() {
                return Some(d);
            }
            if self.op.finished() || self.failure.is_some() {
                return None;
            }
            let Lazy {
                engine,
                op,
                args,
                fed,
                outputs,
                ..
            } = self;
            let mut feed = || {
                let a = args.next()?;
                let idx = *fed;
                *fed += 1;
                Some(encode(idx, &a, outputs))
            };
            if let Err(e) = engine.step(op, &mut feed) {
                // Every task taken and not delivered gets the pool's failure.
                let cause = Arc::new(e);
                for task in engine.abandon(op) {
                    let err = PoolError::PoolFailed {
                        task,
                        cause: cause.clone(),
                    };
                    op.ready.push_back((task, Err(err)));
                }
                self.failure = Some(cause);
            }
        }
    }
}

/// The ordered lazy iterator of [`Processes::imap`]: item `i` is the result of task `i`
/// (its own error included), whatever happens.
pub struct Imap<'p, I: Iterator, R> {
    lazy: Lazy<'p, I>,
    next: usize,
    stash: BTreeMap<usize, Result<R, PoolError>>,
    _r: PhantomData<fn() -> R>,
}

impl<I: Iterator, R> Imap<'_, I, R> {
    /// The failure of the pool that ended the iterator early, if one did.
    pub fn pool_failure(&self) -> Option<&PoolError> {
        self.lazy.failure.as_deref()
    }
}

impl<I: Iterator, R> ImapUnordered<'_, I, R> {
    /// The failure of the pool that ended the iterator early, if one did.
    pub fn pool_failure(&self) -> Option<&PoolError> {
        self.lazy.failure.as_deref()
    }
}

impl<I: Iterator, R> fmt::Debug for Imap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("next", &self.next)
            .field("taken", &self.lazy.fed)
            .finish_non_exhaustive()
    }
}

impl<I, R> Iterator for Imap<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.stash.remove(&self.next) {
                self.next += 1;
                return Some(r);
            }
            let (i, r) = decode(self.lazy.next_done()?);
            self.stash.insert(i, r);
        }
    }
}

/// The lazy iterator of [`Processes::imap_unordered`]: `(index, result)` in completion
/// order.
pub struct ImapUnordered<'p, I: Iterator, R> {
    lazy: Lazy<'p, I>,
    _r: PhantomData<fn() -> R>,
}

impl<I: Iterator, R> fmt::Debug for ImapUnordered<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("taken", &self.lazy.fed)
            .finish_non_exhaustive()
    }
}

impl<I, R> Iterator for ImapUnordered<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    type Item = (usize, Result<R, PoolError>);

    fn next(&mut self) -> Option<Self::Item> {
        self.lazy.next_done().map(decode)
    }
}
