//! Arrays in shared memory that cross to the process pool's workers as handles: nothing
//! is encoded or copied.
//!
//! - [`SharedVec<T>`]: filled by the pool's process like a slice (`DerefMut<[T]>`), then
//!   either frozen into a [`SharedSlice<T>`] (sealed against writes for good: workers, and
//!   this process, only read it), or handed out as disjoint [`SharedChunkMut<T>`] output
//!   ranges that tasks write in place.
//! - [`SharedSlice<T>`]: a read-only view (cheap to clone and to sub-slice) that may stand
//!   anywhere inside the arguments of `map` and friends, also inside ordinary serde types.
//!   In a worker it is a `&[T]` over the same pages, mapped read-only: a task that writes
//!   into it faults, which is reported as a crash of that task.
//! - [`SharedChunkMut<T>`]: one task's own range of an output array; the pool refuses a
//!   call whose tasks would get overlapping ranges, and never sends a task a range that
//!   overlaps one it sent to another task of the call.
//!
//! `T` is plain data ([`bytemuck::Pod`]: integers, floats, `#[repr(C)]` structs of them).
//!
//! How they cross: serialising a handle inside a call records its memory (the pool sends
//! each worker the descriptor once, with the `Map` message kernel buffers use, and tells
//! it to unmap the array once the last handle here is gone) and writes only (id, range,
//! element size); a worker decodes it against the arrays it has mapped. A handle
//! serialised anywhere else (to JSON, say) is an error, and so is one decoded outside a
//! worker, for instance one that comes back in a result.

use crate::shm::{Frozen, ShmInner};
use bytemuck::Pod;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

/// An array of plain data in shared memory, owned and written by this process. See the
/// [crate docs](crate#what-is-copied-for-each-kind-of-argument).
///
/// ```
/// use kernelpool_pool::SharedVec;
///
/// let mut v = SharedVec::<f64>::zeroed(1000)?;
/// v[999] = 2.5;
/// let input = v.into_shared()?; // sealed: read-only for everyone from now on
/// assert_eq!(input[999], 2.5);
/// assert_eq!(input.slice(990..1000).len(), 10);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SharedVec<T: Pod> {
    mem: Arc<ShmInner>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedVec")
            .field("id", &self.mem.id())
            .field("len", &self.len)
            .finish()
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl<T: Pod> SharedVec<T> {
    /// `len` zeroed elements.
    ///
    /// # Errors
    /// The OS error when the shared memory cannot be made, or `InvalidInput` when `len`
    /// elements of `T` do not fit in the address space or `T` needs more alignment than a
    /// page.
    pub fn zeroed(len: usize) -> std::io::Result<SharedVec<T>> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            invalid(format!(
                "{len} elements of {} bytes overflow",
                size_of::<T>()
            ))
        })?;
        if align_of::<T>() > 4096 {
            return Err(invalid(format!(
                "elements aligned to {} bytes: shared arrays are page aligned",
                align_of::<T>()
            )));
        }
        Ok(SharedVec {
            mem: Arc::new(ShmInner::create(bytes, false)?),
            len,
            _t: PhantomData,
        })
    }

    /// A copy of `data` in shared memory.
    ///
    /// # Errors
    /// As [`SharedVec::zeroed`].
    pub fn from_slice(data: &[T]) -> std::io::Result<SharedVec<T>> {
        let mut v = SharedVec::zeroed(data.len())?;
        v.copy_from_slice(data);
        Ok(v)
    }

    /// Seal the array against writes, for good, and share it read-only.
    ///
    /// Sealing needs no writable mapping of it to exist in any process: an array that
    /// was an output of a call may still be mapped by the workers (until the pool's next
    /// call tells them to let go), and is then copied into a new array that is sealed.
    ///
    /// # Errors
    /// The OS error when the memory cannot be sealed, copied or mapped again.
    pub fn into_shared(self) -> std::io::Result<SharedSlice<T>> {
        let len = self.len;
        let mem = match Arc::try_unwrap(self.mem) {
            Ok(mem) => match mem.freeze()? {
                Frozen::Sealed(frozen) => frozen,
                Frozen::StillMapped(mem) => copy_then_freeze(&mem)?,
            },
            // Handles of it are still alive somewhere (a dropped lazy call's queue).
            Err(shared) => copy_then_freeze(&shared)?,
        };
        Ok(SharedSlice {
            mem: Arc::new(mem),
            range: 0..len,
            _t: PhantomData,
        })
    }

    /// Consecutive output ranges of `chunk_len` elements (the last may be shorter), one
    /// per task: while they live, this process cannot touch the array, and no two of them
    /// overlap.
    ///
    /// # Panics
    /// When `chunk_len` is 0.
    pub fn chunks_mut(&mut self, chunk_len: usize) -> Vec<SharedChunkMut<'_, T>> {
        assert!(chunk_len > 0, "chunk_len must be at least 1");
        (0..self.len.div_ceil(chunk_len))
            .map(|i| SharedChunkMut {
                mem: self.mem.clone(),
                range: i * chunk_len..((i + 1) * chunk_len).min(self.len),
                _t: PhantomData,
            })
            .collect()
    }
}

/// A new memfd holding a copy of `mem`, sealed and mapped read-only.
fn copy_then_freeze(mem: &ShmInner) -> std::io::Result<ShmInner> {
    let copy = ShmInner::create(mem.bytes(), false)?;
    // SAFETY: both mappings are at least `bytes` long, distinct (a fresh memfd), and the
    // source is only read; the copy is not shared with anyone yet.
    unsafe { std::ptr::copy_nonoverlapping(mem.ptr(), copy.ptr(), mem.bytes()) };
    match copy.freeze()? {
        Frozen::Sealed(frozen) => Ok(frozen),
        // Nobody else has seen the copy.
        Frozen::StillMapped(_) => Err(std::io::Error::other("a fresh copy could not be sealed")),
    }
}

impl<T: Pod> Deref for SharedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping is page aligned (so aligned for T: checked at creation),
        // writable, holds `len` elements (its size was computed from `len`), and is
        // written only through this object (this process's only view) or, in workers,
        // through `SharedChunkMut` handles, which borrow `self` mutably while they live;
        // any bit pattern is a valid T (Pod).
        unsafe { std::slice::from_raw_parts(self.mem.ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod> DerefMut for SharedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view, and no task holds
        // a range (handles borrow `self` mutably).
        unsafe { std::slice::from_raw_parts_mut(self.mem.ptr().cast::<T>(), self.len) }
    }
}

/// A read-only array of plain data in shared memory, or a range of one: cheap to clone,
/// seen in workers without a copy. See the [crate docs](crate#what-is-copied-for-each-kind-of-argument).
pub struct SharedSlice<T: Pod> {
    mem: Arc<ShmInner>,
    range: Range<usize>,
    _t: PhantomData<T>,
}

impl<T: Pod> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        SharedSlice {
            mem: self.mem.clone(),
            range: self.range.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSlice")
            .field("id", &self.mem.id())
            .field("range", &self.range)
            .finish()
    }
}

impl<T: Pod> SharedSlice<T> {
    /// The elements `range` of this slice.
    ///
    /// # Panics
    /// When `range` is not inside `0..self.len()`.
    pub fn slice(&self, range: Range<usize>) -> SharedSlice<T> {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "range {range:?} outside 0..{}",
            self.len()
        );
        SharedSlice {
            mem: self.mem.clone(),
            range: self.range.start + range.start..self.range.start + range.end,
            _t: PhantomData,
        }
    }

    /// Consecutive sub-slices of `chunk_len` elements (the last may be shorter).
    ///
    /// # Panics
    /// When `chunk_len` is 0.
    pub fn chunks(&self, chunk_len: usize) -> impl ExactSizeIterator<Item = SharedSlice<T>> + '_ {
        assert!(chunk_len > 0, "chunk_len must be at least 1");
        let len = self.len();
        (0..len.div_ceil(chunk_len))
            .map(move |i| self.slice(i * chunk_len..((i + 1) * chunk_len).min(len)))
    }

    /// Where this slice starts in the whole array.
    pub fn offset(&self) -> usize {
        self.range.start
    }
}

impl<T: Pod> Deref for SharedSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the memory is sealed against writes and shrinking (frozen by
        // `into_shared`, or checked by the worker that mapped it), so it never changes
        // while mapped; it is page aligned (aligned for T, checked when made or decoded)
        // and holds the whole array, of which `range` is a part (checked where the slice
        // was made or decoded); any bit pattern is a valid T.
        unsafe {
            std::slice::from_raw_parts(
                self.mem.ptr().cast::<T>().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

/// One task's own range of a [`SharedVec`] output array (from
/// [`SharedVec::chunks_mut`]): in the worker that runs the task it is a `&mut [T]` over
/// the array's pages. See the [crate docs](crate#what-is-copied-for-each-kind-of-argument).
pub struct SharedChunkMut<'a, T: Pod> {
    mem: Arc<ShmInner>,
    range: Range<usize>,
    _t: PhantomData<&'a mut [T]>,
}

impl<T: Pod> fmt::Debug for SharedChunkMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedChunkMut")
            .field("id", &self.mem.id())
            .field("range", &self.range)
            .finish()
    }
}

impl<T: Pod> SharedChunkMut<'_, T> {
    /// Where this range starts in the whole array.
    pub fn offset(&self) -> usize {
        self.range.start
    }
}

impl<T: Pod> Deref for SharedChunkMut<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the range lies inside the array (made by `chunks_mut`, or checked on
        // decoding), the mapping is page aligned and writable, and this handle is the only
        // view of its range: the pool's process cannot touch the array while handles
        // borrow it, and the pool refuses overlapping ranges in one call.
        unsafe {
            std::slice::from_raw_parts(
                self.mem.ptr().cast::<T>().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

impl<T: Pod> DerefMut for SharedChunkMut<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only view in this process.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mem.ptr().cast::<T>().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

#[cfg(feature = "ndarray")]
impl<T: Pod> SharedSlice<T> {
    /// The slice as an `ndarray` view of `shape` (row-major; its elements must number
    /// `self.len()`), without a copy.
    ///
    /// # Errors
    /// `ndarray`'s shape error when `shape` does not hold `self.len()` elements.
    pub fn view<Sh, D>(
        &self,
        shape: Sh,
    ) -> Result<ndarray::ArrayView<'_, T, D>, ndarray::ShapeError>
    where
        D: ndarray::Dimension,
        Sh: Into<ndarray::StrideShape<D>>,
    {
        ndarray::ArrayView::from_shape(shape, &self[..])
    }
}

#[cfg(feature = "ndarray")]
impl<T: Pod> SharedChunkMut<'_, T> {
    /// The range as a mutable `ndarray` view of `shape` (row-major), without a copy.
    ///
    /// # Errors
    /// `ndarray`'s shape error when `shape` does not hold `self.len()` elements.
    pub fn view_mut<Sh, D>(
        &mut self,
        shape: Sh,
    ) -> Result<ndarray::ArrayViewMut<'_, T, D>, ndarray::ShapeError>
    where
        D: ndarray::Dimension,
        Sh: Into<ndarray::StrideShape<D>>,
    {
        ndarray::ArrayViewMut::from_shape(shape, &mut self[..])
    }
}

/// What a handle is on the wire.
#[derive(Serialize, Deserialize)]
struct Wire {
    id: u64,
    start: u64,
    len: u64,
    elem_size: u32,
    writable: bool,
}

/// The arrays the arguments of one task name, collected while it is encoded.
#[derive(Debug, Default)]
pub(crate) struct Named {
    /// Their memory (kept alive while the task may still be sent).
    pub arrays: Vec<Arc<ShmInner>>,
    /// The output ranges it writes: (array id, byte range).
    pub outputs: Vec<(u64, Range<usize>)>,
}

thread_local! {
    /// The pool is encoding a task's arguments (handles may be serialised) ...
    static ENCODING: Cell<bool> = const { Cell::new(false) };
    /// ... and these are the arrays they named so far, `NAMED_COUNT` of them (the common
    /// task that names none costs two flags, not a move of `Named` in and out).
    static NAMED: RefCell<Named> = const {
        RefCell::new(Named {
            arrays: Vec::new(),
            outputs: Vec::new(),
        })
    };
    static NAMED_COUNT: Cell<usize> = const { Cell::new(0) };
    /// In a worker: the arrays the pool has mapped here, by id.
    static MAPPED: RefCell<HashMap<u64, Arc<ShmInner>>> = RefCell::new(HashMap::new());
}

/// Run `encode` (the encoding of one task's arguments) and return, with its result, the
/// arrays the arguments named.
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Named) {
    // An encoding inside an encoding (never done by the pool) gets its own list, and the
    // outer one's is put back afterwards.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENCODING.set(self.0);
        }
    }
    let restore = Restore(ENCODING.replace(true));
    let outer_count = NAMED_COUNT.replace(0);
    let outer = (outer_count > 0).then(|| NAMED.take());
    let r = encode();
    drop(restore);
    let mut named = if NAMED_COUNT.replace(outer_count) > 0 {
        NAMED.replace(outer.unwrap_or_default())
    } else {
        if let Some(outer) = outer {
            NAMED.set(outer);
        }
        Named::default()
    };
    named.arrays.sort_by_key(|m| m.id());
    named.arrays.dedup_by_key(|m| m.id());
    (r, named)
}

/// Run `encode` as [`collect`] does, for the common encoding that names no array: only
/// whether it named any (those it named are forgotten: the caller encodes it again with
/// [`collect`]).
pub(crate) fn names_arrays<R>(encode: impl FnOnce() -> R) -> (R, bool) {
    if NAMED_COUNT.get() > 0 {
        // Inside another encoding (never done by the pool): keep its list apart.
        let (r, named) = collect(encode);
        return (r, !named.arrays.is_empty());
    }
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENCODING.set(self.0);
        }
    }
    let restore = Restore(ENCODING.replace(true));
    let r = encode();
    drop(restore);
    if NAMED_COUNT.replace(0) == 0 {
        return (r, false);
    }
    NAMED.take();
    (r, true)
}

/// Worker: the pool has mapped array `id` here.
pub(crate) fn worker_map(id: u64, mem: Arc<ShmInner>) {
    MAPPED.with_borrow_mut(|m| m.insert(id, mem));
}

/// Worker: forget array `id`.
pub(crate) fn worker_unmap(id: u64) {
    MAPPED.with_borrow_mut(|m| m.remove(&id));
}

fn serialize_handle<S: Serializer>(
    s: S,
    mem: &Arc<ShmInner>,
    range: &Range<usize>,
    elem_size: usize,
    writable: bool,
) -> Result<S::Ok, S::Error> {
    if !ENCODING.get() {
        return Err(S::Error::custom(
            "a shared array handle can only be sent to the process pool's workers",
        ));
    }
    NAMED.with_borrow_mut(|named| {
        named.arrays.push(mem.clone());
        if writable {
            named
                .outputs
                .push((mem.id(), range.start * elem_size..range.end * elem_size));
        }
    });
    NAMED_COUNT.set(NAMED_COUNT.get() + 1);
    Wire {
        id: mem.id(),
        start: range.start as u64,
        len: range.len() as u64,
        elem_size: elem_size as u32,
        writable,
    }
    .serialize(s)
}

/// The mapping and range a handle names, checked against what this worker has mapped.
fn deserialize_handle<'de, D: Deserializer<'de>, T: Pod>(
    d: D,
    writable: bool,
) -> Result<(Arc<ShmInner>, Range<usize>), D::Error> {
    let w = Wire::deserialize(d)?;
    let what = if writable {
        "an output range"
    } else {
        "a shared slice"
    };
    if w.writable != writable || w.elem_size as usize != size_of::<T>() {
        return Err(D::Error::custom(format!(
            "{what} of {}-byte elements was sent where {what} of {}-byte elements was expected",
            w.elem_size,
            size_of::<T>()
        )));
    }
    let mem = MAPPED
        .with_borrow(|m| m.get(&w.id).cloned())
        .ok_or_else(|| {
            D::Error::custom(format!(
                "{what} of shared array {} is not mapped here (handles cannot come back \
                 from workers)",
                w.id
            ))
        })?;
    if mem.is_read_only() == writable {
        return Err(D::Error::custom(format!(
            "shared array {} is mapped {} here",
            w.id,
            if writable { "read-only" } else { "writable" }
        )));
    }
    let start = usize::try_from(w.start).map_err(D::Error::custom)?;
    let len = usize::try_from(w.len).map_err(D::Error::custom)?;
    let end = start
        .checked_add(len)
        .filter(|end| {
            end.checked_mul(size_of::<T>())
                .is_some_and(|b| b <= mem.bytes())
        })
        .ok_or_else(|| {
            D::Error::custom(format!(
                "range {start}..+{len} outside shared array {} of {} bytes",
                w.id,
                mem.bytes()
            ))
        })?;
    Ok((mem, start..end))
}

impl<T: Pod> Serialize for SharedSlice<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_handle(s, &self.mem, &self.range, size_of::<T>(), false)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedSlice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (mem, range) = deserialize_handle::<D, T>(d, false)?;
        Ok(SharedSlice {
            mem,
            range,
            _t: PhantomData,
        })
    }
}

impl<T: Pod> Serialize for SharedChunkMut<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_handle(s, &self.mem, &self.range, size_of::<T>(), true)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedChunkMut<'_, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (mem, range) = deserialize_handle::<D, T>(d, true)?;
        Ok(SharedChunkMut {
            mem,
            range,
            _t: PhantomData,
        })
    }
}

/// Output byte ranges already given to the tasks of one call, to refuse overlaps.
#[derive(Debug, Default)]
pub(crate) struct OutputRanges {
    taken: HashMap<u64, Vec<(Range<usize>, usize)>>,
}

impl OutputRanges {
    /// No range was given out.
    pub(crate) fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// Record the outputs of task `task`; the task that already holds an overlapping
    /// range, if one does.
    pub(crate) fn claim(&mut self, task: usize, outputs: &[(u64, Range<usize>)]) -> Option<usize> {
        for (id, r) in outputs {
            let taken = self.taken.entry(*id).or_default();
            if let Some((_, other)) = taken
                .iter()
                .find(|(t, _)| t.start < r.end && r.start < t.end)
            {
                return Some(*other);
            }
        }
        for (id, r) in outputs {
            self.taken.entry(*id).or_default().push((r.clone(), task));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_serialise_only_for_the_pool_and_decode_only_where_mapped() {
        let input = SharedVec::from_slice(&[1.0f64, 2.0, 3.0, 4.0])
            .unwrap()
            .into_shared()
            .unwrap();
        // Outside the pool's encoding, a handle does not serialise.
        assert!(postcard::to_stdvec(&input).is_err());
        let (bytes, named) = collect(|| postcard::to_stdvec(&(7u8, input.slice(1..3))));
        let bytes = bytes.unwrap();
        assert_eq!(named.arrays.len(), 1);
        assert!(named.outputs.is_empty());
        // Not mapped in this "worker" yet.
        assert!(postcard::from_bytes::<(u8, SharedSlice<f64>)>(&bytes).is_err());
        worker_map(input.mem.id(), input.mem.clone());
        let (k, s) = postcard::from_bytes::<(u8, SharedSlice<f64>)>(&bytes).unwrap();
        assert_eq!((k, &s[..]), (7, &[2.0, 3.0][..]));
        // The wrong element size is refused.
        assert!(postcard::from_bytes::<(u8, SharedSlice<u32>)>(&bytes).is_err());
        // A read-only array is not an output.
        assert!(postcard::from_bytes::<(u8, SharedChunkMut<f64>)>(&bytes).is_err());
        worker_unmap(input.mem.id());
        assert!(postcard::from_bytes::<(u8, SharedSlice<f64>)>(&bytes).is_err());
        // The quick test says whether an encoding names arrays, and leaves nothing behind
        // for the next one.
        let (plain, named) = names_arrays(|| postcard::to_stdvec(&(7u8, 9u64)));
        assert!(plain.is_ok() && !named);
        let (again, named) = names_arrays(|| postcard::to_stdvec(&(7u8, input.slice(1..3))));
        assert_eq!((again.unwrap(), named), (bytes, true));
        let (_, named) = collect(|| postcard::to_stdvec(&9u64));
        assert!(named.arrays.is_empty());
        assert!(postcard::to_stdvec(&input).is_err(), "encoding is over");
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_views_see_the_same_elements() {
        let mut v = SharedVec::<f64>::zeroed(6).unwrap();
        {
            let mut chunks = v.chunks_mut(6);
            let mut view = chunks[0].view_mut((2, 3)).unwrap();
            view[[1, 2]] = 4.5;
        }
        let s = v.into_shared().unwrap();
        let view = s.view((3, 2)).unwrap();
        assert_eq!(view[[2, 1]], 4.5);
        assert!(s.view((4, 2)).is_err());
    }

    #[test]
    fn frozen_arrays_are_sealed_and_outputs_are_disjoint() {
        let mut out = SharedVec::<u32>::zeroed(10).unwrap();
        {
            let chunks = out.chunks_mut(4);
            assert_eq!(
                chunks.iter().map(|c| c.range.clone()).collect::<Vec<_>>(),
                [0..4, 4..8, 8..10]
            );
            let mut ranges = OutputRanges::default();
            for (i, c) in chunks.iter().enumerate() {
                let (_, named) = collect(|| postcard::to_stdvec(c));
                assert_eq!(ranges.claim(i, &named.outputs), None);
            }
            let (_, again) = collect(|| postcard::to_stdvec(&chunks[1]));
            assert_eq!(ranges.claim(3, &again.outputs), Some(1), "overlap refused");
        }
        out[3] = 9;
        let shared = out.into_shared().unwrap();
        assert_eq!(shared[3], 9);
        use std::os::fd::AsFd;
        let fd = shared.mem.as_fd();
        assert!(
            rustix::io::pwrite(fd, &[1], 0).is_err(),
            "sealed against writes"
        );
    }
}
