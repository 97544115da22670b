//! Safe API over kernelpool's kernels: eight numerical kernels (seed, nbody, spectralnorm,
//! mandelbrot, fannkuch, triad, pi, laplace), each in C, C++, Fortran and Rust, behind one
//! range-kernel contract, with the drivers that turn them into the Benchmarks Game
//! programs and the serial executor.
//!
//! ```
//! use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, programs};
//!
//! let kernel = Kernel::get(KernelName::Spectralnorm, Lang::Fortran);
//! let out = programs::run(kernel, &Options::new().n(100), &Serial)?;
//! assert_eq!(out.stdout, b"1.274219991\n");
//! # Ok::<(), kernelpool_kernels::Error>(())
//! ```
//!
//! All `unsafe` code that calls a native kernel lives in this crate ([`Step::run_chunk`]),
//! after [`Step::new`] has checked every buffer against what the kernel reads and writes.
//! The raw bindings are re-exported as [`ffi`] for whoever needs them.

pub mod buffer;
pub mod error;
pub mod exec;
pub mod mapped_file;
pub mod programs;
pub mod reference;
pub mod registry;
pub mod rust;
pub mod signature;
pub mod step;
pub mod tuned;

pub use buffer::{Buffer, Elem, Element, HeapMemory, Memory};
pub use error::{Error, ExecutorError, Fault, Result, WorkerExit, signal_name};
pub use exec::{Executor, MAX_CHUNKS, Serial, chunk_count, chunk_range, chunks, default_chunk};
pub use kernelpool_kernels_sys as ffi;
pub use programs::Options;
pub use registry::{Kernel, KernelName, Lang, Origin, RawKernelFn, Reduce, Variant, splitmix64_at};
pub use signature::{Access, BufferSpec, Check, Len, Reads, Signature, SignatureRef};
pub use step::{Partial, Step, StepArgs, StepBuffer};
