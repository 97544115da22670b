//! Executors for kernelpool: run the steps of any kernel serially ([`Serial`]), on a
//! private thread pool ([`Threads`]), or on a pool of worker processes ([`Processes`])
//! that also runs plain Rust functions the way Python's `multiprocessing.Pool` does, and
//! survives workers that crash, exit, get killed or hang.
//!
//! Every executor splits a step's `[0, items)` into chunks and combines the partials in
//! chunk order, so results are bit-identical whichever executor and how many workers:
//!
//! ```
//! use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, programs};
//! use kernelpool_pool::Threads;
//!
//! let kernel = Kernel::get(KernelName::Mandelbrot, Lang::C);
//! let opts = Options::new().n(64);
//! let threads = Threads::new(2)?;
//! assert_eq!(programs::run(kernel.clone(), &opts, &threads)?.stdout,
//!            programs::run(kernel, &opts, &Serial)?.stdout);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The process pool's workers are the current executable, run again once as the fork
//! server (by the first pool) and forked from it for each worker, so a program that uses
//! it calls [`init`] first thing in `main` (as `MPI_Init`):
//!
//! ```no_run
//! use kernelpool_kernels::{Kernel, KernelName, Lang, Options, programs};
//! use kernelpool_pool::Processes;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     kernelpool_pool::init(); // in a worker, this serves the pool and never returns
//!     let pool = Processes::new(2)?;
//!     assert_eq!(pool.map(square, 1..=3)?, vec![1, 4, 9]);
//!     let kernel = Kernel::get(KernelName::Triad, Lang::C);
//!     let out = programs::run(kernel, &Options::new().n(1000), &pool)?;
//!     print!("{}", String::from_utf8_lossy(&out.stdout));
//!     Ok(())
//! }
//! ```
//!
//! # Faults
//!
//! A task whose worker dies (a segfault, `abort`, `exit`, SIGKILL from the OOM killer) is
//! reported as [`PoolError::Crashed`] with the task's index and the signal or exit status;
//! one that overruns [`ProcessesBuilder::task_timeout`] (counted from the task's start) as
//! [`PoolError::TimedOut`] (its worker is killed); a panic as [`PoolError::Panicked`] (its
//! worker lives on). A worker that holds tasks and makes no progress on them for the task
//! timeout (stopped by SIGSTOP or a debugger, frozen with its container) is killed as
//! well: the task it was running, if any, timed out, and the others run elsewhere. For a kernel step the task is a chunk, and the error also names the
//! kernel and the chunk's items ([`PoolError::chunk`], a [`StepChunk`]), as
//! [`Error::KernelFailed`](kernelpool_kernels::Error::KernelFailed) does for a kernel's own
//! error status; the step fails with the error of the lowest-numbered chunk that failed,
//! once the chunks still running have finished (nothing writes into its buffers after it
//! returns).
//!
//! The worker is replaced and the pool stays usable. (The chunks of built-in kernels that
//! the calling thread runs itself, by default, are not isolated: see
//! [`ProcessesBuilder::caller_runs_chunks`].) The other tasks the dead worker held
//! run again elsewhere (one whose workers died under it three times, running other tasks,
//! is reported as crashed too); `imap` and `imap_unordered` yield every task's own
//! result, `map` the error of the first failed task. An error of the pool itself (workers
//! that cannot be started, a worker that breaks the protocol) belongs to no task
//! ([`PoolError::task`] is `None`): `map` returns it, and the lazy iterators yield
//! [`PoolError::PoolFailed`] at the index of every task they had taken, then end. Such tasks may run twice (at
//! least once delivery), so a task should not rely on running exactly once; each result
//! is delivered once. A replacement worker that is not ready within
//! [`ProcessesBuilder::start_timeout`] is killed; three workers in a row that die or hang
//! before they are ready end the operation with [`PoolError::Start`]. Arguments and
//! results travel as messages of at most 1 GiB: a larger one is an error of its task
//! ([`PoolError::Codec`] or [`PoolError::Remote`]).
//!
//! Workers die with the pool (their channel closes, and `PR_SET_PDEATHSIG` covers a pool
//! killed outright); dropping the pool gives them a moment to exit, kills those that do
//! not, and reaps them all. Shared memory is anonymous (memfd), so nothing is left in
//! `/dev/shm` either.
//!
//! # Kernels from shared objects
//!
//! A kernel loaded with `Kernel::load` from a shared object crosses to workers as its
//! path and symbol; each worker loads it once, as part of the first chunk it runs (so
//! the task timeout covers a slow or hung load), and checks that it mapped the very file
//! the pool loaded. A library rebuilt at the same path since is refused with an error of
//! the step ([`PoolError::Remote`]): drop every handle to the old kernel, then load it
//! again (while a library is loaded, loading the same path gives that library again).
//!
//! # What is copied, for each kind of argument
//!
//! - Kernel buffers of a step ([`Executor::alloc`] on the pool: shared memory): never
//!   copied; each worker maps them once, and only (buffer id, element type, length)
//!   cross with each step.
//! - [`SharedSlice`] and [`SharedChunkMut`] handles, anywhere in the arguments of the map
//!   family (also inside your own serde types): never copied; they cross as (array id,
//!   range), the array's memfd once per worker. Inputs are sealed and mapped read-only in
//!   workers; each output range belongs to one task (see [`SharedVec`]).
//! - Every other value (numbers, strings, `Vec`s, structs) and every result: encoded with
//!   postcard and copied: in frames (through the ring of the worker's control block, or
//!   the socket) up to 256 KiB, through a sealed memfd above.
//!
//! # Costs
//!
//! Only small things cross to workers: kernel names, step arguments, buffer ids and
//! ranges (buffers live in shared memory that workers map once), or the postcard
//! encodings of a function's argument and result. An encoding longer than 256 KiB does
//! not go through the socket: the sender writes it into a fresh memfd (the pool encodes
//! an argument straight into it), seals it against writes and resizing, and passes its
//! descriptor with the message; the receiver maps it read-only, decodes from the mapping
//! and unmaps it, so a 16 MiB value costs a copy into shared memory rather than hundreds
//! of socket reads, writes and wake-ups. The 1 GiB limit per value holds either way.
//! Tasks travel in batches. Frames that carry no descriptor (step dispatch, task batches,
//! results: nearly all of them) go through a ring in the control block each worker shares
//! with the pool, not through the socket; the socket keeps the frames with descriptors
//! (memfds of buffers, arrays and large values) and tells the pool when a worker dies.
//! A worker that has run out of tasks watches its control block for 50 µs to 1 ms
//! (adapted to the gaps between the pool's batches), then sleeps on a futex in it, which
//! the pool wakes when it sends; the pool watches its doorbell (a futex word every worker
//! rings after it sends) for up to 50 µs while tasks are short, then sleeps on it, and
//! polls the sockets at least every 10 ms then, so a worker that dies is seen at once. So
//! when both sides are awake a step or a round trip costs no system call at all, and an
//! idle pool burns no CPU (`benches/pool.rs` measures the costs, `tests/idle.rs` the
//! idle CPU). The calling thread runs chunks of built-in kernels' steps too, as rayon's
//! calling thread does, on as many workers as leave it a CPU of its own
//! ([`ProcessesBuilder::caller_runs_chunks`], on by default; off, every chunk runs in a
//! worker, for full fault isolation).
//!
//! Modules: `threads` (the rayon executor), `shm` (memfd shared memory for buffers),
//! `bulk` (large values in sealed memfds), `channel` (framed messages and descriptors over
//! a socket and the rings, both ends), `ring` (a ring of frames in shared memory),
//! `protocol` (the messages), `control` (the control block shared with each worker, its
//! futex words, and the pool's doorbell), `process` (the pool: options, kernel steps, tasks, scheduling,
//! faults), `map` (the `map` family), `worker` (the worker process), `func` (functions
//! named across processes), `spawn` (starting workers).

mod bulk;
mod channel;
mod control;
mod error;
mod fork_server;
mod func;
mod map;
#[cfg(feature = "mpi")]
mod mpi;
mod process;
mod protocol;
mod ring;
mod shared_array;
mod shm;
mod spawn;
mod threads;
mod worker;

/// Internals for the fuzz targets in `fuzz/`: not part of the API (see the module's own
/// documentation in `src/fuzzing.rs`).
#[doc(hidden)]
pub mod fuzzing;

/// Plain data that shared arrays hold (re-exported from `bytemuck`).
pub use bytemuck::Pod;
pub use error::{PoolError, StepChunk, WorkerExit, signal_name};
pub use kernelpool_kernels::{Executor, Serial};
pub use map::{Imap, ImapUnordered, Mapper};
#[cfg(feature = "mpi")]
pub use mpi::{Mpi, MpiBuilder, abort_job as mpi_abort_job};
pub use process::{Processes, ProcessesBuilder};
pub use shared_array::{SharedChunkMut, SharedSlice, SharedVec};
pub use shm::SharedMemory;
pub use threads::{Threads, ThreadsBuilder};

/// Turn this process into a worker when a process pool started it; otherwise return at
/// once.
///
/// Call it first thing in `main` of every program that starts a [`Processes`] pool
/// (before any thread is started): the pool runs the current executable again with a
/// token in the environment, as its fork server (which then forks the workers) or as a
/// worker, and in those processes `init` serves and exits the process when the pool or
/// the program goes away; it never returns there. A process that a pool started and that
/// did not call `init` cannot start pools of its own ([`PoolError::Start`] says why).
/// Test binaries, whose `main` belongs to the test harness, can call it from a
/// constructor (`#[ctor::ctor(unsafe)]`).
pub fn init() {
    worker::enter_if_token();
}

/// The pid of the fork server, when one runs: the process of this program that starts
/// the workers of [`Processes`] pools (see [`ProcessesBuilder::fork_server`]). It is the
/// parent of those workers, and it stays up, asleep, until the program exits.
pub fn fork_server_pid() -> Option<u32> {
    fork_server::server_pid()
}
