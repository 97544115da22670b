//! Costs of the executors: starting a process pool, one tiny round trip, tiny tasks per
//! second, one trivial kernel step on processes, `map` over large arguments, STREAM triad
//! on every executor, and one parallel call on threads.
//!
//! `cargo bench -p kernelpool-pool --bench pool -- --warm-up-time 1 --measurement-time 3`
//! (`KP_BENCH_TRIAD_N` sets the triad size, 2,000,000 by default).

use criterion::{Criterion, Throughput};
use kernelpool_kernels::{Executor, Kernel, KernelName, Lang, Options, Step, StepArgs, programs};
use kernelpool_pool::{Processes, Threads};
use std::hint::black_box;
use std::time::Duration;

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn start(c: &mut Criterion) {
    c.bench_function("processes(2) start+ready+drop", |b| {
        b.iter(|| drop(black_box(Processes::new(2).expect("pool"))))
    });
}

fn round_trip(c: &mut Criterion, pool: &Processes) {
    c.bench_function("processes(2) apply round trip", |b| {
        b.iter(|| pool.apply(tiny, black_box(7)).expect("apply"))
    });
}

fn tiny_tasks(c: &mut Criterion, pool: &Processes) {
    const N: u64 = 20_000;
    let mut g = c.benchmark_group("processes(2) map chunksize 1");
    g.throughput(Throughput::Elements(N));
    g.bench_function("tiny tasks", |b| {
        b.iter(|| pool.with_chunksize(1).map(tiny, 0..N).expect("map"))
    });
    g.finish();
}

fn sum(a: Vec<f64>) -> f64 {
    a.iter().sum()
}

/// Python's comparison case: `p.map(np.sum, arrays)` over 8 arrays of 16 MiB each, the
/// arrays crossing to the workers by value (postcard here, pickle there).
fn big_arguments(c: &mut Criterion, pool: &Processes) {
    const LEN: usize = 2 << 20; // 2 Mi doubles = 16 MiB
    let arrays: Vec<Vec<f64>> = (0..8)
        .map(|k| (0..LEN).map(|i| (i % 1000) as f64 + k as f64).collect())
        .collect();
    let mut g = c.benchmark_group("map sum over 8 arrays of 16 MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((8 * LEN * 8) as u64));
    g.bench_function("serial", |b| {
        b.iter(|| {
            arrays
                .iter()
                .map(|a| a.iter().sum::<f64>())
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("processes(2)", |b| {
        b.iter_batched(
            || arrays.clone(),
            |arrays| pool.map(sum, arrays).expect("map"),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn triad(c: &mut Criterion, pool: &Processes) {
    let n: u64 = std::env::var("KP_BENCH_TRIAD_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let opts = Options::new().n(n);
    let kernel = Kernel::get(KernelName::Triad, Lang::C);
    let threads = Threads::new(2).expect("threads");
    let mut g = c.benchmark_group(format!("triad C n={n} (41 steps, time in steps)"));
    g.sample_size(10);
    let execs: [(&str, &dyn Executor); 3] = [
        ("serial", &kernelpool_kernels::Serial),
        ("threads(2)", &threads),
        ("processes(2)", pool),
    ];
    for (name, exec) in execs {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        programs::run(kernel.clone(), &opts, exec)
                            .expect("triad")
                            .elapsed
                    })
                    .sum::<Duration>()
            })
        });
    }
    g.finish();
}

/// One kernel step with trivial work on the process pool: the per-step cost that an
/// iterative program (spectralnorm, STREAM) pays on every step.
fn trivial_step_on_processes(c: &mut Criterion, pool: &Processes) {
    let kernel = Kernel::get(KernelName::Pi, Lang::C);
    for samples in [2u64, 64] {
        let mut args = StepArgs::new(samples, samples);
        args.iparam[0] = 1234567;
        let step = Step::new(kernel.clone(), args, vec![]).expect("step");
        let chunks = samples.div_ceil(kernelpool_kernels::default_chunk(samples, 2));
        c.bench_function(
            &format!("processes(2) one parallel call, pi {samples} samples in {chunks} chunks"),
            |b| b.iter(|| pool.run(black_box(&step)).expect("run")),
        );
    }
}

fn trivial_parallel_call(c: &mut Criterion) {
    let threads = Threads::new(2).expect("threads");
    let kernel = Kernel::get(KernelName::Pi, Lang::C);
    for samples in [2u64, 64] {
        let mut args = StepArgs::new(samples, samples);
        args.iparam[0] = 1234567;
        let step = Step::new(kernel.clone(), args, vec![]).expect("step");
        let chunks = samples.div_ceil(threads.chunk_for(samples));
        c.bench_function(
            &format!("threads(2) one parallel call, pi {samples} samples in {chunks} chunks"),
            |b| b.iter(|| threads.run(black_box(&step)).expect("run")),
        );
    }
}

fn main() {
    // This executable is also the process pool's worker.
    kernelpool_pool::init();
    let mut c = Criterion::default().configure_from_args();
    start(&mut c);
    let pool = Processes::new(2).expect("pool");
    round_trip(&mut c, &pool);
    tiny_tasks(&mut c, &pool);
    trivial_step_on_processes(&mut c, &pool);
    big_arguments(&mut c, &pool);
    triad(&mut c, &pool);
    drop(pool);
    trivial_parallel_call(&mut c);
    c.final_summary();
}
