//! The MPI executor (feature `mpi`): the ranks of an MPI job (Open MPI or MPICH, through
//! the `mpi` crate) run the same program, and each step's chunks are shared out among
//! them, each rank owning a contiguous run of chunks.
//!
//! Every rank holds every buffer at full size, but after a step only the items it wrote
//! are current there. What moves, and when, follows from the kernel's
//! [`Signature`](kernelpool_kernels::Signature):
//! - before a step, each buffer the step reads is brought up to date where the chunk
//!   reads it ([`Reads`]): nothing for [`Reads::Own`] (STREAM), one halo of `h` items
//!   from each neighbour rank for [`Reads::Halo`] (laplace's rows above and below,
//!   non-blocking sends and receives), the whole buffer ([`Reads::All`], spectralnorm's
//!   vector) by an all-gather;
//! - after a step, the partials of all ranks are all-gathered with each rank's status and
//!   combined in rank order (which is chunk order), so every rank has the step's result
//!   and knows whether any rank failed; a failure is then the same error on every rank,
//!   naming the rank(s) and the cause;
//! - before the program reads a buffer on the host, [`Executor::gather`] gathers it on
//!   rank 0 ([`Executor::is_root`]), the one that prints.
//!
//! A rank that crashes (a signal, a panic) ends its process without finalising MPI, and
//! the launcher (`mpirun`) ends the whole job with a non-zero status naming the rank and
//! the signal. Ranks call MPI one at a time from whichever thread runs the program
//! (`MPI_THREAD_SERIALIZED`); with threads per rank, the threads only run chunks.

use crate::threads::Threads;
use kernelpool_kernels::{
    Buffer, Elem, Error, Executor, ExecutorError, Fault, Partial, Reads, Result, Step, chunk_count,
    chunk_range, default_chunk, step::PARTIAL_LEN,
};
use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;

/// The MPI executor: one per process, made once MPI can be initialised (it initialises
/// MPI, and finalises it when dropped).
///
/// ```no_run
/// use kernelpool_kernels::{Kernel, KernelName, Lang, Options, programs};
/// use kernelpool_pool::Mpi;
///
/// // Run under `mpirun -n 4`, or alone (a one-rank job).
/// let mpi = Mpi::builder().threads_per_rank(2).build()?;
/// let out = programs::run(Kernel::get(KernelName::Pi, Lang::C), &Options::new(), &mpi)?;
/// if mpi.rank() == 0 {
///     print!("{}", String::from_utf8_lossy(&out.stdout));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mpi {
    universe: Universe,
    rank: usize,
    size: usize,
    threads: Option<Threads>,
    chunk: Option<u64>,
    /// Buffers that are in pieces (keyed by their memory's address): what each rank
    /// holds. A buffer not listed is whole on every rank. The lock also serialises the
    /// MPI calls of concurrent steps.
    pieces: Mutex<HashMap<usize, Pieces>>,
}

impl fmt::Debug for Mpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("threads_per_rank", &self.threads_per_rank())
            .field("chunk", &self.chunk)
            .finish()
    }
}

/// Options of an [`Mpi`] executor.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MpiBuilder {
    threads_per_rank: Option<usize>,
    chunk: Option<u64>,
}

impl MpiBuilder {
    /// Threads that run each rank's chunks (the calling one included; default 1): the
    /// hybrid model of clusters, one rank per node with threads inside.
    pub fn threads_per_rank(mut self, threads: usize) -> Self {
        self.threads_per_rank = Some(threads);
        self
    }

    /// Items per chunk (default [`default_chunk`] over all the job's threads).
    pub fn chunk(mut self, chunk: u64) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Initialise MPI (as a one-rank job when the process was not started by `mpirun`)
    /// and start the rank's threads.
    ///
    /// # Errors
    /// [`Error::Executor`] when the options are 0, MPI is already initialised in this
    /// process (one `Mpi` per process), or the MPI library cannot give serialised
    /// threading.
    pub fn build(self) -> Result<Mpi> {
        let bad = |what: String| Error::Executor(ExecutorError::new(Fault::Other, what));
        if self.threads_per_rank == Some(0) {
            return Err(bad("mpi: a rank needs at least 1 thread, got 0".into()));
        }
        if self.chunk == Some(0) {
            return Err(bad(
                "mpi: a step chunk must hold at least 1 item, got 0".into()
            ));
        }
        let threads = match self.threads_per_rank.unwrap_or(1) {
            1 => None,
            t => Some(Threads::new(t).map_err(|e| bad(format!("mpi: threads per rank: {e}")))?),
        };
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| {
                bad("mpi: MPI is already initialised in this process (one Mpi executor per process)".into())
            })?;
        if level < Threading::Serialized {
            return Err(bad(format!(
                "mpi: the MPI library gives {level:?} threading, and kernelpool needs Serialized"
            )));
        }
        let world = universe.world();
        Ok(Mpi {
            rank: world.rank() as usize,
            size: world.size() as usize,
            universe,
            threads,
            chunk: self.chunk,
            pieces: Mutex::new(HashMap::new()),
        })
    }
}

/// Where the current items of a buffer in pieces are: rank `r` holds `parts[r]`, each
/// item `per` elements of `elem_size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pieces {
    parts: Vec<Range<u64>>,
    per: u64,
    elem_size: u64,
}

impl Pieces {
    /// Bytes of items `r` of the buffer.
    fn bytes(&self, r: &Range<u64>) -> Range<usize> {
        let unit = self.per * self.elem_size;
        (r.start * unit) as usize..(r.end * unit) as usize
    }

    /// (counts, displacements) in bytes of every rank's part, for a varcount collective.
    fn counts(&self) -> Result<(Vec<Count>, Vec<Count>)> {
        let mut counts = Vec::with_capacity(self.parts.len());
        let mut displs = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            let b = self.bytes(p);
            let too_big = || {
                Error::Executor(ExecutorError::new(
                    Fault::Other,
                    format!(
                        "mpi: a rank's part of a buffer ends at byte {}, past the {} that MPI's 32-bit counts reach",
                        b.end,
                        Count::MAX
                    ),
                ))
            };
            counts.push(Count::try_from(b.len()).map_err(|_| too_big())?);
            displs.push(Count::try_from(b.start).map_err(|_| too_big())?);
        }
        Ok((counts, displs))
    }
}

/// What one rank reports after its chunks: status (0 ok, 1 the kernel failed, 2 another
/// error), the kernel's code and items, the partial.
const RECORD: usize = 4 + PARTIAL_LEN;

impl Mpi {
    /// Options for an MPI executor.
    pub fn builder() -> MpiBuilder {
        MpiBuilder::default()
    }

    /// MPI with default options: one thread per rank.
    ///
    /// # Errors
    /// As [`MpiBuilder::build`].
    pub fn new() -> Result<Mpi> {
        Mpi::builder().build()
    }

    /// This process's rank in the job.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Threads per rank.
    pub fn threads_per_rank(&self) -> usize {
        self.threads.as_ref().map_or(1, |t| t.workers())
    }

    fn world(&self) -> SimpleCommunicator {
        self.universe.world()
    }

    fn chunk_for(&self, items: u64) -> u64 {
        self.chunk
            .unwrap_or_else(|| default_chunk(items, self.size * self.threads_per_rank()))
    }

    /// The items each rank owns in a step of `items` items cut into `chunk`-item chunks:
    /// rank `r` runs chunks `[count*r/P, count*(r+1)/P)`.
    fn parts(&self, items: u64, chunk: u64, count: u64) -> Vec<(Range<u64>, Range<u64>)> {
        let p = self.size as u64;
        (0..p)
            .map(|r| {
                let (a, b) = (
                    (count as u128 * r as u128 / p as u128) as u64,
                    (count as u128 * (r + 1) as u128 / p as u128) as u64,
                );
                let start = chunk_range(items, chunk, a).start;
                let end = if b > a {
                    chunk_range(items, chunk, b - 1).end
                } else {
                    start
                };
                (a..b, start..end)
            })
            .collect()
    }

    /// All ranks' `(ok, message)`: `Ok` when every rank is fine, otherwise the error that
    /// names each rank that failed, the same on every rank.
    fn agree(&self, world: &SimpleCommunicator, what: &str, mine: Option<String>) -> Result<()> {
        let flag = [i64::from(mine.is_some())];
        let mut flags = vec![0i64; self.size];
        world.all_gather_into(&flag[..], &mut flags[..]);
        if flags.iter().all(|&f| f == 0) {
            return Ok(());
        }
        Err(self.collect_failure(world, what, mine.unwrap_or_default(), &flags, None))
    }

    /// The job-wide error of a step or an allocation that failed on the ranks whose flag
    /// is set: their messages, gathered on every rank.
    fn collect_failure(
        &self,
        world: &SimpleCommunicator,
        what: &str,
        message: String,
        flags: &[i64],
        records: Option<&[i64]>,
    ) -> Error {
        let len = [message.len() as i64];
        let mut lens = vec![0i64; self.size];
        world.all_gather_into(&len[..], &mut lens[..]);
        let counts: Vec<Count> = lens.iter().map(|&l| l as Count).collect();
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u8; lens.iter().sum::<i64>() as usize];
        {
            let mut part = PartitionMut::new(&mut all[..], counts.clone(), &displs[..]);
            world.all_gather_varcount_into(message.as_bytes(), &mut part);
        }
        let failed: Vec<usize> = (0..self.size).filter(|&r| flags[r] != 0).collect();
        let text: Vec<String> = failed
            .iter()
            .map(|&r| {
                let bytes = &all[displs[r] as usize..(displs[r] + counts[r]) as usize];
                format!(
                    "MPI rank {r} of {}: {}",
                    self.size,
                    String::from_utf8_lossy(bytes)
                )
            })
            .collect();
        let first = failed[0];
        let mut e = ExecutorError::new(
            Fault::Failed {
                message: text.join("; "),
            },
            format!("{what} failed on {}", text.join("; ")),
        )
        .with_task(first);
        if let Some(rec) = records {
            let r = &rec[first * RECORD..(first + 1) * RECORD];
            if r[0] == 1 {
                e = e.with_items(r[2] as u64..r[3] as u64);
            }
        }
        Error::Executor(e)
    }

    /// Bring buffer `slot` of `step` up to date where this step's chunks read it.
    fn prepare_input(
        &self,
        world: &SimpleCommunicator,
        step: &Step<'_>,
        slot: usize,
        pieces: &Pieces,
        reads: Reads,
        mine: &[Range<u64>],
    ) -> Result<bool> {
        let same_split = pieces.parts == mine;
        match reads {
            Reads::Own if same_split => return Ok(false),
            Reads::Halo(h) if same_split && mine.iter().all(|p| p.end - p.start >= h) => {
                self.exchange_halos(world, step, slot, pieces, h);
                return Ok(false);
            }
            _ => {}
        }
        // SAFETY: no chunk of the step runs (they run after the inputs are ready), and
        // this is the only slice of this buffer while it lives.
        let bytes = unsafe { step.buffer_bytes(slot) }.expect("slot of the step");
        all_gather(world, bytes, pieces, self.rank)?;
        Ok(true)
    }

    /// Send the first and last `h` items of this rank's part to its neighbours and
    /// receive theirs, with non-blocking sends and receives.
    fn exchange_halos(
        &self,
        world: &SimpleCommunicator,
        step: &Step<'_>,
        slot: usize,
        pieces: &Pieces,
        h: u64,
    ) {
        let me = &pieces.parts[self.rank];
        // SAFETY: no chunk of the step runs (they run after the inputs are ready), and
        // this is the only slice of this buffer while it lives.
        let bytes = unsafe { step.buffer_bytes(slot) }.expect("slot of the step");
        let mine = pieces.bytes(me);
        let (before, rest) = bytes.split_at_mut(mine.start);
        let (own, after) = rest.split_at_mut(mine.len());
        let unit = (pieces.per * pieces.elem_size) as usize;
        let halo = h as usize * unit;
        let tag = slot as i32;
        mpi::request::scope(|scope| {
            let mut reqs = Vec::with_capacity(4);
            if self.rank > 0 {
                let up = world.process_at_rank(self.rank as i32 - 1);
                let lo = before.len() - halo;
                reqs.push(up.immediate_receive_into_with_tag(scope, &mut before[lo..], tag));
                reqs.push(up.immediate_send_with_tag(scope, &own[..halo], tag));
            }
            if self.rank + 1 < self.size {
                let down = world.process_at_rank(self.rank as i32 + 1);
                reqs.push(down.immediate_receive_into_with_tag(scope, &mut after[..halo], tag));
                reqs.push(down.immediate_send_with_tag(scope, &own[own.len() - halo..], tag));
            }
            for r in reqs {
                r.wait();
            }
        });
    }
}

/// End the whole MPI job now with status `code`, when this process has failed where the
/// other ranks may not have (outside the steps, whose failures every rank learns): they
/// could otherwise wait for it forever. `message` (what failed) goes to stderr first.
/// Returns, doing nothing, when no MPI job of more than one rank is running.
pub fn abort_job(code: i32, message: &str) {
    use mpi::environment::{is_finalized, is_initialized};
    if !is_initialized() || is_finalized() {
        return;
    }
    let world = SimpleCommunicator::world();
    if world.size() > 1 {
        eprintln!("{message}");
        world.abort(code);
    }
}

/// All-gather the parts of a buffer in pieces into `bytes`, on every rank.
fn all_gather(
    world: &SimpleCommunicator,
    bytes: &mut [u8],
    pieces: &Pieces,
    rank: usize,
) -> Result<()> {
    let (counts, displs) = pieces.counts()?;
    let total = pieces.bytes(&(0..pieces.parts.last().map_or(0, |p| p.end)));
    let send = bytes[pieces.bytes(&pieces.parts[rank])].to_vec();
    let mut part = PartitionMut::new(&mut bytes[total], counts, displs);
    world.all_gather_varcount_into(&send[..], &mut part);
    Ok(())
}

/// The kernel's error as a status record's first four slots.
fn failure_record(e: &Error) -> [i64; 4] {
    match e {
        Error::KernelFailed {
            code, begin, end, ..
        } => [1, i64::from(*code), *begin as i64, *end as i64],
        _ => [2, 0, 0, 0],
    }
}

impl Executor for Mpi {
    fn describe(&self) -> String {
        let t = self.threads_per_rank();
        let threads = if t > 1 {
            format!(" x {t} threads")
        } else {
            String::new()
        };
        match self.chunk {
            Some(c) => format!("mpi({} ranks{threads}, chunk {c})", self.size),
            None => format!("mpi({} ranks{threads})", self.size),
        }
    }

    fn workers(&self) -> usize {
        self.size * self.threads_per_rank()
    }

    fn check_items(&self, items: u64) -> Result<()> {
        chunk_count(items, self.chunk_for(items)).map(drop)
    }

    /// A zeroed heap buffer on every rank; a rank that cannot have it fails the
    /// allocation on all ranks (the error names it), so no rank waits for another that
    /// gave up.
    fn alloc(&self, elem: Elem, len: usize, what: &str) -> Result<Buffer> {
        let mut pieces = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        let world = self.world();
        let buf = Buffer::heap(elem, len, what);
        self.agree(
            &world,
            &format!("allocating {what}"),
            buf.as_ref().err().map(|e| e.to_string()),
        )?;
        let buf = buf?;
        // Fresh and zeroed on every rank: whole.
        pieces.remove(&(buf.memory().ptr() as usize));
        Ok(buf)
    }

    fn run(&self, step: &Step<'_>) -> Result<Partial> {
        let mut table = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        let world = self.world();
        let items = step.items();
        let chunk = self.chunk_for(items);
        let count = chunk_count(items, chunk)?;
        let split = self.parts(items, chunk, count);
        let mine: Vec<Range<u64>> = split.iter().map(|(_, r)| r.clone()).collect();
        let sig = step.kernel().signature();
        // Every rank sees the same step, so these checks and transfers agree everywhere.
        let mut written = Vec::new();
        for (slot, (spec, buf)) in sig.buffers().iter().zip(step.buffers()).enumerate() {
            let key = buf.memory().ptr() as usize;
            if spec.access.writes() && self.size > 1 {
                let per = spec.len.per_item(step.args()).ok_or_else(|| {
                    Error::Executor(ExecutorError::new(
                        Fault::Other,
                        format!(
                            "mpi: buffer {slot} of {} ({}) is written but its length does not say which item owns which element, so the ranks could not put it together",
                            sig.name(),
                            spec
                        ),
                    ))
                })?;
                written.push((
                    key,
                    Pieces {
                        parts: mine.clone(),
                        per,
                        elem_size: buf.elem().size() as u64,
                    },
                ));
            }
            if spec.access != kernelpool_kernels::Access::Write {
                if let Some(p) = table.get(&key).cloned() {
                    if self.prepare_input(&world, step, slot, &p, spec.reads, &mine)? {
                        table.remove(&key);
                    }
                }
            }
        }
        // This rank's chunks, on its threads or in turn.
        let span = split[self.rank].0.clone();
        let result = match &self.threads {
            Some(t) => t.run_span(step, chunk, span),
            None => step.run_chunks(span.map(|i| chunk_range(items, chunk, i))),
        };
        let mut record = [0i64; RECORD];
        match &result {
            Ok(p) => record[4..].copy_from_slice(&p.0),
            Err(e) => record[..4].copy_from_slice(&failure_record(e)),
        }
        let mut records = vec![0i64; RECORD * self.size];
        world.all_gather_into(&record[..], &mut records[..]);
        let flags: Vec<i64> = records.chunks(RECORD).map(|r| r[0]).collect();
        if flags.iter().any(|&f| f != 0) {
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            return Err(self.collect_failure(
                &world,
                &format!("{} step", sig.name()),
                message,
                &flags,
                Some(&records),
            ));
        }
        for (key, p) in written {
            table.insert(key, p);
        }
        let mut total = Partial::identity_of(sig);
        for r in records.chunks(RECORD) {
            let mut p = Partial([0; PARTIAL_LEN]);
            p.0.copy_from_slice(&r[4..]);
            total.combine_of(sig, &p);
        }
        Ok(total)
    }

    /// Gathers a buffer in pieces on rank 0 (every rank calls it).
    fn gather(&self, buf: &mut Buffer) -> Result<()> {
        let table = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pieces) = table.get(&(buf.memory().ptr() as usize)) else {
            return Ok(());
        };
        let world = self.world();
        let root = world.process_at_rank(0);
        let bytes = buf.as_bytes_mut();
        let mine = bytes[pieces.bytes(&pieces.parts[self.rank])].to_vec();
        if self.rank == 0 {
            let (counts, displs) = pieces.counts()?;
            let total = pieces.bytes(&(0..pieces.parts.last().map_or(0, |p| p.end)));
            let mut part = PartitionMut::new(&mut bytes[total], counts, displs);
            root.gather_varcount_into_root(&mine[..], &mut part);
        } else {
            root.gather_varcount_into(&mine[..]);
        }
        Ok(())
    }

    fn is_root(&self) -> bool {
        self.rank == 0
    }
}
