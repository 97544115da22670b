//! What an executor is, how `[0, items)` is cut into chunks, and the serial executor.
//! The threaded and process executors live in `kernelpool-pool`.

use crate::buffer::{Buffer, Elem};
use crate::error::Result;
use crate::step::{Partial, Step};
use std::fmt;
use std::ops::Range;

/// Runs steps of kernels. Implementations split `[0, step.items())` into chunks, run them
/// anywhere, and combine partials in chunk order, so the result never depends on how the
/// range was split.
pub trait Executor: fmt::Debug + Sync {
    /// A short description (`serial`, `threads(2)`, `processes(4)`).
    fn describe(&self) -> String;

    /// Number of workers (1 for serial).
    fn workers(&self) -> usize;

    /// Refuse, before anything is allocated, a step of `items` items that [`run`] would
    /// refuse for its size alone (for instance more than [`MAX_CHUNKS`] chunks at this
    /// executor's chunk size: [`chunk_count`]). Programs call it with every step size
    /// before they allocate the step's buffers. It must not start work or allocate
    /// buffers; it returns the error `run` would give. The default accepts every size.
    ///
    /// [`run`]: Executor::run
    ///
    /// # Errors
    /// The error `run` would return for a step of this size, typically
    /// [`Error::TooManyChunks`](crate::Error::TooManyChunks).
    fn check_items(&self, items: u64) -> Result<()> {
        let _ = items;
        Ok(())
    }

    /// A zeroed buffer of `len` elements of `elem` that this executor's workers can all
    /// reach; `what` names it in errors. It must have exactly that element type and length
    /// (programs refuse another with [`Error::BadMemory`](crate::Error::BadMemory)).
    ///
    /// # Errors
    /// When the memory cannot be had: [`Error::TooLarge`](crate::Error::TooLarge),
    /// [`Error::AllocFailed`](crate::Error::AllocFailed), or the executor's own.
    fn alloc(&self, elem: Elem, len: usize, what: &str) -> Result<Buffer> {
        Buffer::heap(elem, len, what)
    }

    /// Run the whole step and return its combined partial.
    ///
    /// # Errors
    /// The kernel's ([`Error::KernelFailed`](crate::Error::KernelFailed)) and the
    /// executor's own ([`Error::Executor`](crate::Error::Executor),
    /// [`Error::TooManyChunks`](crate::Error::TooManyChunks), ...).
    fn run(&self, step: &Step<'_>) -> Result<Partial>;

    /// Make `buf` whole where the program reads it, before the program reads it on the
    /// host (after the steps that wrote it): an executor whose processes each keep only
    /// their own items (MPI ranks) gathers the rest on the process that prints (rank 0).
    /// Every process of such an executor calls it (it is collective). The default, for
    /// executors whose buffers are shared, does nothing.
    ///
    /// # Errors
    /// The executor's own (a transfer that fails).
    fn gather(&self, buf: &mut Buffer) -> Result<()> {
        let _ = buf;
        Ok(())
    }

    /// True on the process whose output counts (the one that prints): rank 0 of an MPI
    /// job, and every process of any other executor. Programs skip formatting and checks
    /// elsewhere, since only this process has gathered the buffers.
    fn is_root(&self) -> bool {
        true
    }
}

/// Runs every step as one call on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Executor for Serial {
    fn describe(&self) -> String {
        "serial".into()
    }
    fn workers(&self) -> usize {
        1
    }
    /// Every size: the step runs as one call, with no chunks to keep.
    fn check_items(&self, _items: u64) -> Result<()> {
        Ok(())
    }
    fn run(&self, step: &Step<'_>) -> Result<Partial> {
        step.run_chunk(0..step.items())
    }
}

/// The default chunk size for `workers`: `ceil(items / (4 * workers))`, at least 1, as
/// Python's `Pool.map` does.
pub fn default_chunk(items: u64, workers: usize) -> u64 {
    items.div_ceil(4 * workers.max(1) as u64).max(1)
}

/// The most chunks one step may be cut into. Executors keep each chunk's partial until
/// the step ends, to combine them in chunk order, so a tiny chunk over a huge step would
/// otherwise exhaust memory; [`chunk_count`] refuses it with a clear error instead.
pub const MAX_CHUNKS: u64 = 1 << 24;

/// Number of chunks of `chunk` items (at least 1) in `[0, items)`.
///
/// # Errors
/// [`Error::TooManyChunks`](crate::Error::TooManyChunks) past [`MAX_CHUNKS`].
pub fn chunk_count(items: u64, chunk: u64) -> Result<u64> {
    let chunk = chunk.max(1);
    let count = items.div_ceil(chunk);
    if count > MAX_CHUNKS {
        return Err(crate::Error::TooManyChunks {
            items,
            chunk,
            count,
            max: MAX_CHUNKS,
        });
    }
    Ok(count)
}

/// Cut `[0, items)` into consecutive chunks of `chunk` items (the last may be shorter).
pub fn chunks(
    items: u64,
    chunk: u64,
) -> impl DoubleEndedIterator<Item = Range<u64>> + ExactSizeIterator + Clone + Send {
    let count = items.div_ceil(chunk.max(1)) as usize;
    (0..count).map(move |i| chunk_range(items, chunk, i as u64))
}

/// The items of chunk `index` when `[0, items)` is cut into chunks of `chunk` items (at
/// least 1): the one formula every executor uses. Past the last chunk the range is empty.
pub fn chunk_range(items: u64, chunk: u64, index: u64) -> Range<u64> {
    let chunk = chunk.max(1);
    let start = index.saturating_mul(chunk).min(items);
    start..start.saturating_add(chunk).min(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_in_order() {
        let c: Vec<_> = chunks(10, 4).collect();
        assert_eq!(c, vec![0..4, 4..8, 8..10]);
        assert_eq!(chunks(0, 3).count(), 0);
        assert_eq!(chunk_range(10, 4, 2), 8..10);
        assert_eq!(chunk_range(10, 4, 3), 10..10);
        assert_eq!(
            chunk_range(u64::MAX, u64::MAX / 2, 2),
            u64::MAX - 1..u64::MAX
        );
        assert_eq!(chunk_range(u64::MAX, 1 << 40, 1 << 30), u64::MAX..u64::MAX);
        assert_eq!(default_chunk(100, 2), 13);
        assert_eq!(default_chunk(1, 8), 1);
    }

    #[test]
    fn too_many_chunks_is_an_error_that_names_the_fix() {
        assert_eq!(chunk_count(10, 4).expect("3 chunks"), 3);
        assert_eq!(
            chunk_count(MAX_CHUNKS, 1).expect("at the limit"),
            MAX_CHUNKS
        );
        let e = chunk_count(MAX_CHUNKS + 1, 1).expect_err("past the limit");
        assert!(e.to_string().contains("use a larger chunk"), "{e}");
        // The default chunk never comes near it.
        let items = u64::MAX;
        assert!(chunk_count(items, default_chunk(items, 1024)).is_ok());
    }
}
