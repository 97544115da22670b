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
        n: usize,
        limit: usize,
        mut put: impl FnMut(Item),
    ) -> bool {
        for _ in 0..n {
            let Some(next) = pending.front() else {
                break;
            };
            let size = next.wire_bytes();
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
    pub(super) fn wire_bytes(&self) -> usize {
        match &self.data {
            ItemData::Small(a) => a.as_slice().len() + 10,
            ItemData::Arg(a) => a.len() + 10,
            ItemData::Sealed(_) | ItemData::Range(..) => 20,
        }
    }

    pub(super) fn is_sealed(&self) -> bool {
        matches!(self.data, ItemData::Sealed(_))
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
        self.exhausted && self.pending.is_empty() && self.outstanding == 0
    }

    /// Send nothing more; what is out still completes.
    pub(crate) fn halt(&mut self) {
        self.stop = true;
        self.exhausted = true;
        self.pending.clear();
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
    fn batches_stay_within_the_byte_limit() {
        let mut pending: VecDeque<Item> = [90, 90, 5, 200, 1]
            .iter()
            .enumerate()
            .map(|(i, &b)| arg(i, b))
            .collect();
        let take = |pending: &mut VecDeque<Item>, n| {
            let (mut batch, mut got) = (Batch::default(), Vec::new());
            let fits = batch.take(pending, n, 120, |it| got.push(it.idx));
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
