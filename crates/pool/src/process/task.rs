//! Tasks and operations: what a task carries, what it produced, the queue of one
//! operation, and how tasks are packed into batches for a worker.

use crate::bulk::{self, Sealed};
use crate::channel::MAX_FDS_PER_FRAME;
use crate::error::PoolError;
use crate::protocol::{BufRef, FnRef, KernelRef};
use crate::shm::ShmInner;
use kernelpool_kernels::{Partial, StepArgs};
use std::collections::VecDeque;
use std::sync::Arc;

/// What a task carries.
#[derive(Debug)]
pub(crate) enum ItemData {
    /// The encoded argument of a function, short enough to be kept in place.
    Small(InlineBytes),
    /// The encoded argument of a function.
    Arg(Vec<u8>),
    /// The encoded argument of a function, in a sealed memfd (kept for retries: the
    /// worker gets a new descriptor of it each time).
    Sealed(Arc<Sealed>),
    /// The range of a kernel chunk.
    Range(u64, u64),
    /// The encoded argument of a function, at this position of its operation's
    /// [`StoredArgs`].
    Stored(usize),
}

/// What one worker's batch holds so far: tasks, bytes of their encoded arguments (about:
/// see [`Item::wire_bytes`]), and sealed arguments.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Batch {
    pub tasks: usize,
    pub bytes: usize,
    pub sealed: usize,
}

impl Batch {
    /// Move up to `n` tasks from `pending` into the batch (`put`) while its encoded
    /// arguments stay within `limit` bytes and it names at most [`MAX_FDS_PER_FRAME`]
    /// sealed arguments; a task alone in a batch always goes. False when the next task did
    /// not fit: the batch is full.
    pub(super) fn take(
        &mut self,
        pending: &mut VecDeque<Item>,
        store: &StoredArgs,
        n: usize,
        limit: usize,
        mut put: impl FnMut(Item),
    ) -> bool {
        for _ in 0..n {
            let Some(next) = pending.front() else {
                break;
            };
            let size = next.wire_bytes(store);
            let sealed = usize::from(next.is_sealed());
            if self.tasks > 0 && self.bytes + size > limit {
                return false;
            }
            if self.sealed + sealed > MAX_FDS_PER_FRAME {
                return false;
            }
            self.tasks += 1;
            self.bytes += size;
            self.sealed += sealed;
            put(pending.pop_front().expect("looked at above"));
        }
        true
    }
}

/// A task waiting to be sent.
#[derive(Debug)]
pub(crate) struct Item {
    pub idx: usize,
    pub data: ItemData,
    pub tries: u8,
    /// Shared arrays its arguments name (sent to a worker before the task, once).
    pub arrays: Vec<Arc<ShmInner>>,
}

impl Item {
    /// About how many bytes the task adds to the frame that carries it (at least).
    pub(super) fn wire_bytes(&self, store: &StoredArgs) -> usize {
        match &self.data {
            ItemData::Small(a) => a.as_slice().len() + 10,
            ItemData::Arg(a) => a.len() + 10,
            ItemData::Stored(pos) => store.span(*pos..*pos + 1).len(),
            ItemData::Sealed(_) | ItemData::Range(..) => 20,
        }
    }

    pub(super) fn is_sealed(&self) -> bool {
        matches!(self.data, ItemData::Sealed(_))
    }
}

/// Most bytes of one encoded argument kept in a [`StoredArgs`]; longer ones travel as
/// items of their own.
pub(crate) const STORED_MAX: usize = 4096;

/// The encoded arguments of an operation's tasks (most tasks of a `map`), one after the
/// other, each in the form a `Call` frame carries it (`Value::Inline`, as
/// [`push_inline_value`](crate::protocol::push_inline_value) writes it): a batch of
/// consecutive tasks goes out with one copy, and nothing is kept per task but its end and
/// its index.
#[derive(Debug, Default)]
pub(crate) struct StoredArgs {
    bytes: Vec<u8>,
    /// Where each stored argument's encoding ends in `bytes` (which is kept under 4 GiB).
    ends: Vec<u32>,
    /// The index of each stored argument's task in its operation, from position
    /// `diverged_at` on; before it, a task's index is its position (a `map` stores
    /// nearly all its arguments, in order, so this usually stays empty).
    idx: Vec<usize>,
    diverged_at: Option<usize>,
}

/// A postcard output that appends to a `Vec` and refuses to grow it past `limit` bytes.
struct Bounded<'v> {
    out: &'v mut Vec<u8>,
    limit: usize,
}

impl postcard::ser_flavors::Flavor for Bounded<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.out.len() + data.len() > self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        if data.len() <= 16 {
            // A varint or a short string: byte by byte beats a call of memcpy.
            for &b in data {
                self.out.push(b);
            }
        } else {
            self.out.extend_from_slice(data);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.out.len() >= self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl StoredArgs {
    /// Make room for about `tasks` more arguments.
    pub(crate) fn reserve(&mut self, tasks: usize) {
        self.bytes.reserve(tasks.saturating_mul(4));
        self.ends.reserve(tasks);
    }

    /// Forget every argument, keeping the memory (for the next operation).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.idx.clear();
        self.diverged_at = None;
    }

    /// Bytes of memory it holds.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.ends.capacity() * std::mem::size_of::<u32>()
            + self.idx.capacity() * std::mem::size_of::<usize>()
    }

    /// Arguments stored.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Encode `value` as the argument of task `idx`. `Ok(false)` (and nothing stored) when
    /// its encoding is longer than [`STORED_MAX`] bytes or the store is full (4 GiB);
    /// `Err` when it cannot be encoded.
    pub(crate) fn push<T: serde::Serialize + ?Sized>(
        &mut self,
        idx: usize,
        value: &T,
    ) -> postcard::Result<bool> {
        let start = self.bytes.len();
        if start + 3 + STORED_MAX > u32::MAX as usize {
            // Full: the ends are 32-bit.
            return Ok(false);
        }
        // Variant 0 and a one-byte length, set below (two bytes when it is 128 or more).
        self.bytes.extend_from_slice(&[0, 0]);
        let out = Bounded {
            limit: start + 2 + STORED_MAX,
            out: &mut self.bytes,
        };
        match postcard::serialize_with_flavor(value, out) {
            Ok(()) => {}
            Err(postcard::Error::SerializeBufferFull) => {
                self.bytes.truncate(start);
                return Ok(false);
            }
            Err(e) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        }
        let len = self.bytes.len() - start - 2;
        const _: () = assert!(STORED_MAX < 1 << 14, "a length in at most two varint bytes");
        if len < 0x80 {
            self.bytes[start + 1] = len as u8;
        } else {
            self.bytes[start + 1] = len as u8 | 0x80;
            self.bytes.insert(start + 2, (len >> 7) as u8);
        }
        let pos = self.ends.len();
        // (Less than 4 GiB: checked above.)
        self.ends.push(self.bytes.len() as u32);
        if self.diverged_at.is_some() {
            self.idx.push(idx);
        } else if idx != pos {
            self.diverged_at = Some(pos);
            self.idx.push(idx);
        }
        Ok(true)
    }

    /// Forget the argument stored last.
    pub(crate) fn pop(&mut self) {
        if self.ends.pop().is_some() {
            if self.diverged_at.is_some() {
                self.idx.pop();
                if self.idx.is_empty() {
                    self.diverged_at = None;
                }
            }
            self.bytes
                .truncate(self.ends.last().map_or(0, |&e| e as usize));
        }
    }

    /// The encodings of the arguments at positions `pos`, one after the other.
    pub(super) fn span(&self, pos: std::ops::Range<usize>) -> &[u8] {
        if pos.is_empty() {
            return &[];
        }
        let start = if pos.start == 0 {
            0
        } else {
            self.ends[pos.start - 1] as usize
        };
        &self.bytes[start..self.ends[pos.end - 1] as usize]
    }

    /// The task index of the argument at `pos`.
    pub(super) fn idx(&self, pos: usize) -> usize {
        match self.diverged_at {
            Some(d) if pos >= d => self.idx[pos - d],
            _ => pos,
        }
    }
}

/// What a task produced.
#[derive(Debug)]
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    /// A short encoded value, kept without an allocation (most results of tiny tasks).
    Inline(InlineBytes),
    /// An encoded value received in a sealed memfd, mapped.
    Mapped(bulk::Mapped),
    Partial(Partial),
    KernelFailed(i32),
}

/// Most bytes an [`InlineBytes`] holds.
const INLINE_MAX: usize = 30;

/// Up to [`INLINE_MAX`] bytes, in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InlineBytes {
    len: u8,
    bytes: [u8; INLINE_MAX],
}

impl InlineBytes {
    /// `bytes` in place, or `None` when they are too many.
    pub(crate) fn new(bytes: &[u8]) -> Option<InlineBytes> {
        let mut inline = InlineBytes {
            len: u8::try_from(bytes.len()).ok()?,
            bytes: [0; INLINE_MAX],
        };
        inline.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(inline)
    }

    /// The postcard encoding of `value`, when it fits.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Option<InlineBytes> {
        let mut inline = InlineBytes {
            len: 0,
            bytes: [0; INLINE_MAX],
        };
        let len = postcard::to_slice(value, &mut inline.bytes).ok()?.len();
        inline.len = u8::try_from(len).ok()?;
        Some(inline)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
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
    pub(super) generation: u64,
    pub(super) kind: OpKind,
    /// Tasks per batch (the map family's `chunksize`).
    pub(super) chunk_len: usize,
    pub pending: VecDeque<Item>,
    /// The arguments of most tasks of a `map` (sent after `pending`, in order, in runs of
    /// consecutive tasks).
    pub store: StoredArgs,
    /// The first position of `store` not sent yet.
    pub(super) store_next: usize,
    /// Tasks sent and not yet answered.
    pub(super) outstanding: usize,
    pub ready: VecDeque<Done>,
    /// The values of tasks answered and not yet taken (the common outcome of a function,
    /// kept as encoded bytes rather than as a `Done` each): (task index, range in
    /// `value_bytes`). See [`Op::take_value`].
    pub(super) values: VecDeque<(usize, usize, usize)>,
    pub(super) value_bytes: Vec<u8>,
    /// No more tasks will come from the feed.
    pub exhausted: bool,
    /// Send nothing more (the operation has failed).
    pub(super) stop: bool,
    /// How many workers (the first slots) may be given its tasks.
    pub(super) workers: usize,
}

impl Op {
    /// Keep the encoded value of task `idx` (copied: `bytes` may be a buffer that is
    /// reused).
    pub(super) fn push_value(&mut self, idx: usize, bytes: &[u8]) {
        if self.values.is_empty() {
            self.value_bytes.clear();
            crate::channel::shrink(&mut self.value_bytes);
        }
        let start = self.value_bytes.len();
        self.value_bytes.extend_from_slice(bytes);
        self.values.push_back((idx, start, bytes.len()));
    }

    /// The next value received: its task's index and encoded bytes. (The outcomes that
    /// are not plain values wait in `ready`.)
    pub(crate) fn take_value(&mut self) -> Option<(usize, &[u8])> {
        let (idx, start, len) = self.values.pop_front()?;
        Some((idx, &self.value_bytes[start..start + len]))
    }

    /// Outcomes wait for the caller.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.values.is_empty()
    }

    /// The next outcome, from `ready` or the values, for a caller that takes them one at
    /// a time.
    pub(crate) fn next_done(&mut self) -> Option<Done> {
        if let Some(d) = self.ready.pop_front() {
            return Some(d);
        }
        let (idx, bytes) = self.take_value()?;
        let payload =
            InlineBytes::new(bytes).map_or_else(|| Payload::Bytes(bytes.to_vec()), Payload::Inline);
        Some((idx, Ok(payload)))
    }

    pub(crate) fn finished(&self) -> bool {
        self.exhausted && !self.has_unsent() && self.outstanding == 0
    }

    /// Tasks wait to be sent.
    pub(super) fn has_unsent(&self) -> bool {
        !self.pending.is_empty() || self.store_next < self.store.len()
    }

    /// Send nothing more; what is out still completes.
    pub(crate) fn halt(&mut self) {
        self.stop = true;
        self.exhausted = true;
        self.pending.clear();
        self.store_next = self.store.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_bytes_hold_up_to_their_capacity() {
        let v: Vec<u8> = (0..=INLINE_MAX as u8).collect();
        assert_eq!(InlineBytes::new(&v[..3]).unwrap().as_slice(), &v[..3]);
        assert_eq!(InlineBytes::new(&[]).unwrap().as_slice(), &[] as &[u8]);
        assert_eq!(
            InlineBytes::new(&v[..INLINE_MAX]).unwrap().as_slice(),
            &v[..INLINE_MAX]
        );
        assert!(InlineBytes::new(&v).is_none());
        let small = InlineBytes::encode(&(7u64, "abc")).unwrap();
        assert_eq!(
            small.as_slice(),
            postcard::to_stdvec(&(7u64, "abc")).unwrap()
        );
        assert!(InlineBytes::encode(&[1u8; INLINE_MAX]).is_some());
        assert!(InlineBytes::encode(&[1u8; INLINE_MAX + 1]).is_none());
    }

    fn arg(idx: usize, bytes: usize) -> Item {
        Item {
            idx,
            data: ItemData::Arg(vec![0; bytes]),
            tries: 0,
            arrays: Vec::new(),
        }
    }

    #[test]
    fn stored_arguments_are_encoded_as_a_call_carries_them() {
        let mut store = StoredArgs::default();
        let values: Vec<Vec<u8>> = [0usize, 1, 125, 126, 127, 128, 300, STORED_MAX - 3]
            .iter()
            .map(|&n| vec![7u8; n])
            .collect();
        let mut want = Vec::new();
        let mut before_last = 0;
        for (i, v) in values.iter().enumerate() {
            before_last = want.len();
            assert!(store.push(100 + i, v).unwrap(), "{} bytes", v.len());
            crate::protocol::push_inline_value(&mut want, &postcard::to_stdvec(v).unwrap());
        }
        assert_eq!(store.len(), values.len());
        assert_eq!(store.span(0..store.len()), &want[..]);
        assert_eq!(store.idx(3), 103);
        // One by one, decoded as a worker decodes them.
        for (pos, v) in values.iter().enumerate() {
            let one = store.span(pos..pos + 1);
            let got: Vec<_> = crate::protocol::values(one, 1).collect();
            let [Ok(crate::protocol::Value::Inline(b))] = &got[..] else {
                panic!("{got:?}")
            };
            assert_eq!(postcard::from_bytes::<Vec<u8>>(b.0).unwrap(), *v);
        }
        // Too long: not stored, and nothing of it is left.
        assert!(!store.push(1, &vec![1u8; STORED_MAX]).unwrap());
        assert_eq!(store.len(), values.len());
        assert_eq!(store.span(0..store.len()), &want[..]);
        // The last one forgotten.
        store.pop();
        assert_eq!(store.len(), values.len() - 1);
        assert_eq!(store.span(0..store.len()), &want[..before_last]);
    }

    #[test]
    fn stored_arguments_keep_their_task_indices() {
        let mut store = StoredArgs::default();
        store.reserve(8);
        // In order: each index is its position.
        for i in 0..3 {
            assert!(store.push(i, &(i as u64)).unwrap());
        }
        // Task 3 went elsewhere (an item of its own): 4 and 5 are at positions 3 and 4.
        assert!(store.push(4, &4u64).unwrap());
        assert!(store.push(5, &5u64).unwrap());
        let idx = |s: &StoredArgs| (0..s.len()).map(|p| s.idx(p)).collect::<Vec<_>>();
        assert_eq!(idx(&store), [0, 1, 2, 4, 5]);
        store.pop();
        assert_eq!(idx(&store), [0, 1, 2, 4]);
        store.pop();
        assert_eq!(idx(&store), [0, 1, 2]);
        assert!(store.push(3, &3u64).unwrap());
        assert_eq!(idx(&store), [0, 1, 2, 3]);
        // Kept for another operation: empty, its memory kept.
        let held = store.capacity_bytes();
        store.clear();
        assert_eq!((store.len(), store.capacity_bytes()), (0, held));
        assert!(store.push(7, &7u64).unwrap());
        assert_eq!(idx(&store), [7]);
        assert_eq!(store.span(0..1), [0, 1, 7]);
    }

    #[test]
    fn batches_stay_within_the_byte_limit() {
        let mut pending: VecDeque<Item> = [90, 90, 5, 200, 1]
            .iter()
            .enumerate()
            .map(|(i, &b)| arg(i, b))
            .collect();
        let take = |pending: &mut VecDeque<Item>, n| {
            let (mut batch, mut got) = (Batch::default(), Vec::new());
            let fits = batch.take(pending, &StoredArgs::default(), n, 120, |it| {
                got.push(it.idx)
            });
            (fits, got, batch)
        };
        // 90 + 10 fits in 120; the next 100 does not.
        let (fits, got, _) = take(&mut pending, 3);
        assert!(!fits);
        assert_eq!(got, [0]);
        let (fits, got, _) = take(&mut pending, 3);
        assert!(!fits);
        assert_eq!(got, [1, 2]);
        // A task larger than the limit goes alone.
        let (fits, got, _) = take(&mut pending, 3);
        assert!(!fits);
        assert_eq!(got, [3]);
        // At most `n` tasks, and no more than there are.
        let (fits, got, _) = take(&mut pending, 3);
        assert!(fits);
        assert_eq!(got, [4]);
        assert!(pending.is_empty());
        let mut pending: VecDeque<Item> = (0..5).map(|i| arg(i, 1)).collect();
        let (fits, got, batch) = take(&mut pending, 2);
        assert!(fits);
        assert_eq!(
            (got.len(), pending.len(), batch.tasks, batch.bytes),
            (2, 3, 2, 22)
        );
    }
}
