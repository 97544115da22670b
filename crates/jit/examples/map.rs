//! The course's last example, numba's `@njit(cache=True)` on `f`, for a C `f`:
//!
//! ```python
//! from numba import njit
//!
//! @njit(cache=True)
//! def f(x):
//!     j = 0
//!     for i in range(10_000_000):
//!         j += x * x
//!     return j
//!
//! print([f(x) for x in [1, 2, 3]])
//! ```
//!
//! `cargo run --release -p kernelpool-jit --example map [file]` compiles
//! `examples/jit/seed.c` (or `file`) on first use, caches it in the default cache
//! (`$KERNELPOOL_CACHE_DIR`, `$XDG_CACHE_HOME/kernelpool` or `~/.cache/kernelpool`), and
//! maps `f` over `[1, 2, 3]` on a pool of worker processes: `[10000000, 40000000,
//! 90000000]`. The second run finds the library in the cache and does not compile.

use kernelpool_jit::{JitError, Source};
use kernelpool_pool::Processes;

fn main() -> Result<(), JitError> {
    // In a worker this serves the pool and never returns; in the parent it returns at once.
    kernelpool_pool::init();
    let file = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jit/seed.c").to_string()
    });
    let src = Source::file(&file)?;
    let pool = Processes::builder()
        .build()
        .map_err(|e| JitError::Kernel(e.into()))?;
    // SAFETY: the course's f is a pure function of its argument.
    let ys = unsafe { kernelpool_jit::map(&src, "f", &[1i64, 2, 3], &pool) }?;
    println!("{ys:?}");
    Ok(())
}
