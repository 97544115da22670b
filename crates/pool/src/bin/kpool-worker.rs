//! The generic worker program of kernelpool's process pool, for hosts that cannot call
//! `kernelpool_pool::init()` at the top of their own `main` (Python over the C ABI): give
//! its path to `ProcessesBuilder::worker_program`. Started by hand, it says so and exits.

fn main() {
    kernelpool_pool::init();
    eprintln!(
        "kpool-worker: not started by a kernelpool process pool (it is the worker program \
         given to ProcessesBuilder::worker_program; it serves a pool and exits when the pool does)"
    );
    std::process::exit(2);
}
