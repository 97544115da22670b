//! Executors for kernelpool.
pub use kernelpool_kernels::{Executor, Serial};
