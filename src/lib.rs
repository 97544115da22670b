//! kernelpool facade.
pub use kernelpool_kernels as kernels;
pub use kernelpool_pool as pool;
