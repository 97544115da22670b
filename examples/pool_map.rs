//! The course's first process pool, in Rust:
//!
//! ```python
//! import multiprocessing as mp
//!
//! def f(x):
//!     return x * x
//!
//! if __name__ == "__main__":
//!     with mp.Pool() as p:
//!         print(p.map(f, [1, 2, 3]))
//! ```
//!
//! Run it with `cargo run --release --example pool_map`; it prints `[1, 4, 9]`.
//!
//! What differs from Python: the workers are this same executable started again (not
//! forked), so `kernelpool::init()` must come first in `main`, where Python needs its
//! `if __name__ == "__main__"` guard; arguments and results cross as postcard bytes, not
//! pickles; and a worker that crashes makes `map` return an error instead of hanging.

use kernelpool::pool::{PoolError, Processes};

fn f(x: i64) -> i64 {
    x * x
}

fn main() -> Result<(), PoolError> {
    // In a worker this serves the pool and never returns; in the parent it returns at once.
    kernelpool::init();

    // `mp.Pool()`: one worker process per CPU.
    let p = Processes::builder().build()?;
    println!("{:?}", p.map(f, [1, 2, 3])?);
    Ok(())
    // The end of the `with` block: dropping `p` stops its workers and reaps them.
}
