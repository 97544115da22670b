#![doc = include_str!("../README.md")]

pub use kernelpool_jit as jit;
pub use kernelpool_kernels as kernels;
pub use kernelpool_pool as pool;

/// Call first in `main` of any program that uses the process pool: in a worker process it
/// runs the worker loop and never returns; otherwise it returns at once.
pub fn init() {
    kernelpool_pool::init();
}
