//! Costs of the executors: starting a process pool, one tiny round trip, tiny tasks per
//! second, one trivial kernel step on processes, `map` over large arguments, STREAM triad
//! on every executor, and one parallel call on threads.
//!
//! `cargo bench -p kernelpool-pool --bench pool -- --warm-up-time 1 --measurement-time 3`
//! (`KP_BENCH_TRIAD_N` sets the triad size, 2,000,000 by default).

use criterion::{Criterion, Throughput};
use kernelpool_kernels::{Executor, Kernel, KernelName, Lang, Options, Step, StepArgs, programs};
use kernelpool_pool::{Processes, SharedChunkMut, SharedSlice, SharedVec, Threads};
use std::hint::black_box;
use std::time::Duration;

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn start(c: &mut Criterion) {
    // Workers forked by the fork server (the default; the first pool started it).
    c.bench_function("processes(2) start+ready+drop", |b| {
        b.iter(|| drop(black_box(Processes::new(2).expect("pool"))))
    });
    c.bench_function("processes(2) start+ready+drop, workers exec'd", |b| {
        b.iter(|| {
            let pool = Processes::builder().workers(2).fork_server(false).build();
            drop(black_box(pool.expect("pool")))
        })
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

fn shared_sum(part: SharedSlice<f64>) -> f64 {
    part.iter().sum()
}

/// Two threads doing `f` over `parts`, for the same work as the pool's two workers.
fn on_two_threads<P: Sync, R: Send>(parts: &[P], f: impl Fn(&P) -> R + Sync) -> Vec<R> {
    let half = parts.len().div_ceil(2);
    std::thread::scope(|s| {
        let (a, b) = parts.split_at(half);
        let f = &f;
        let left = s.spawn(move || a.iter().map(f).collect::<Vec<_>>());
        let mut right: Vec<R> = b.iter().map(f).collect();
        let mut all = left.join().expect("thread");
        all.append(&mut right);
        all
    })
}

/// The same sum as `big_arguments`, the arrays passed as shared arrays: nothing crosses
/// but handles.
fn shared_arguments(c: &mut Criterion, pool: &Processes) {
    const LEN: usize = 2 << 20;
    let mut all = SharedVec::<f64>::zeroed(8 * LEN).expect("alloc");
    for (i, x) in all.iter_mut().enumerate() {
        *x = (i % LEN % 1000) as f64 + (i / LEN) as f64;
    }
    let all = all.into_shared().expect("freeze");
    let arrays: Vec<SharedSlice<f64>> = all.chunks(LEN).collect();
    let mut g = c.benchmark_group("shared map sum over 8 arrays of 16 MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((8 * LEN * 8) as u64));
    g.bench_function("threads(2)", |b| {
        b.iter(|| on_two_threads(&arrays, |a| a.iter().sum::<f64>()))
    });
    g.bench_function("processes(2)", |b| {
        b.iter(|| pool.map_chunks(shared_sum, &all, LEN).expect("map"))
    });
    g.finish();
}

fn fill(mut part: SharedChunkMut<f64>) -> usize {
    let start = part.offset();
    for (i, x) in part.iter_mut().enumerate() {
        *x = ((start + i) % 1024) as f64 * 0.5;
    }
    part.len()
}

/// An output array of 64M doubles filled by tasks in place.
fn shared_output(c: &mut Criterion, pool: &Processes) {
    const LEN: usize = 64 << 20;
    const PART: usize = LEN / 8;
    let mut out = SharedVec::<f64>::zeroed(LEN).expect("alloc");
    let mut g = c.benchmark_group("shared output of 64M doubles filled by 8 tasks");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((LEN * 8) as u64));
    g.bench_function("threads(2)", |b| {
        b.iter(|| {
            let parts: Vec<std::sync::Mutex<(usize, &mut [f64])>> = out[..]
                .chunks_mut(PART)
                .enumerate()
                .map(|(k, p)| std::sync::Mutex::new((k * PART, p)))
                .collect();
            on_two_threads(&parts, |p| {
                let mut p = p.lock().expect("part");
                let start = p.0;
                for (i, x) in p.1.iter_mut().enumerate() {
                    *x = ((start + i) % 1024) as f64 * 0.5;
                }
                p.1.len()
            })
        })
    });
    g.bench_function("processes(2)", |b| {
        b.iter(|| pool.map_chunks_mut(fill, &mut out, PART).expect("fill"))
    });
    g.finish();
}

fn triad(c: &mut Criterion, pool: &Processes, caller: &Processes, workers_only: &Processes) {
    let n: u64 = std::env::var("KP_BENCH_TRIAD_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let opts = Options::new().n(n);
    let kernel = Kernel::get(KernelName::Triad, Lang::C);
    let threads = Threads::new(2).expect("threads");
    let mut g = c.benchmark_group(format!("triad C n={n} (41 steps, time in steps)"));
    g.sample_size(10);
    let execs: [(&str, &dyn Executor); 5] = [
        ("serial", &kernelpool_kernels::Serial),
        ("threads(2)", &threads),
        ("processes(2)", pool),
        ("processes(1)+caller", caller),
        ("processes(2) workers only", workers_only),
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
/// iterative program (spectralnorm, STREAM) pays on every step. The calling thread runs
/// chunks too (`caller_runs_chunks`, on by default), with as many workers as leave it a
/// CPU: on 2 CPUs `processes(2)` and `processes(1)+caller` both run a step on one worker
/// and the caller, the counterpart of `threads(2)`. `workers only` is a pool of 2 with
/// the caller waiting while they run the chunks.
fn trivial_step_on_processes(
    c: &mut Criterion,
    pool: &Processes,
    caller: &Processes,
    workers_only: &Processes,
) {
    let kernel = Kernel::get(KernelName::Pi, Lang::C);
    for (name, pool) in [
        ("processes(2)", pool),
        ("processes(1)+caller", caller),
        ("processes(2) workers only", workers_only),
    ] {
        for samples in [2u64, 64] {
            let mut args = StepArgs::new(samples, samples);
            args.iparam[0] = 1234567;
            let step = Step::new(kernel.clone(), args, vec![]).expect("step");
            let chunks = samples.div_ceil(pool.chunk_for(samples));
            c.bench_function(
                &format!("{name} one parallel call, pi {samples} samples in {chunks} chunks"),
                |b| b.iter(|| pool.run(black_box(&step)).expect("run")),
            );
        }
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
    let caller = Processes::builder()
        .workers(1)
        .caller_runs_chunks(true)
        .build()
        .expect("pool");
    let workers_only = Processes::builder()
        .workers(2)
        .caller_runs_chunks(false)
        .build()
        .expect("pool");
    round_trip(&mut c, &pool);
    tiny_tasks(&mut c, &pool);
    trivial_step_on_processes(&mut c, &pool, &caller, &workers_only);
    big_arguments(&mut c, &pool);
    shared_arguments(&mut c, &pool);
    shared_output(&mut c, &pool);
    triad(&mut c, &pool, &caller, &workers_only);
    drop((pool, caller, workers_only));
    trivial_parallel_call(&mut c);
    c.final_summary();
}
