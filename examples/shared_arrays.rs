//! Big arrays to and from `Processes::map` without copying: a read-only input seen by
//! every worker, and an output array whose ranges tasks fill in place.
//!
//! `cargo run --release --example shared_arrays` prints `sums [393216.0, 393216.0, 393216.0, 393216.0] out[7] 2.25`.

use kernelpool::pool::{Processes, SharedChunkMut, SharedSlice, SharedVec};

fn sum(part: SharedSlice<f64>) -> f64 {
    part.iter().sum()
}

fn square_into((input, mut out): (SharedSlice<f64>, SharedChunkMut<f64>)) {
    for (o, x) in out.iter_mut().zip(input.iter()) {
        *o = x * x;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    kernelpool::init(); // in a worker: serve the pool, never return
    let p = Processes::new(2)?;
    let input = SharedVec::from_slice(&vec![1.5; 1 << 20])?.into_shared()?;
    let sums = p.map_chunks(sum, &input, 1 << 18)?; // 4 tasks, nothing copied
    let mut out = SharedVec::<f64>::zeroed(1 << 20)?;
    p.map(square_into, input.chunks(1 << 18).zip(out.chunks_mut(1 << 18)))?;
    println!("sums {sums:?} out[7] {}", out[7]);
    Ok(())
}
