//! Every built-in kernel in every language and variant gives byte-identical output on
//! every executor (and the same as plain C):
//! serial, threads (1, 2, 3 workers; chunks of 1, 7 and the default) and worker processes
//! (2 workers; chunks of 1 and the default, and through the generic worker program).

use kernelpool_kernels::{Executor, Kernel, KernelName, Lang, Options, Serial, programs};
use kernelpool_pool::{Processes, Threads};

// The test binary is also the workers' executable: `init` must run before libtest's main.
// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// it needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

/// Small sizes: every chunk size, even 1, stays quick.
fn options(kernel: KernelName) -> Options {
    let n = match kernel {
        KernelName::Seed => 2,
        KernelName::Nbody => 50,
        KernelName::Spectralnorm => 40,
        KernelName::Mandelbrot => 40,
        KernelName::Fannkuch => 6,
        KernelName::Triad => 500,
        KernelName::Pi => 5000,
        // 1000 sweeps (it does not converge before), one step each.
        KernelName::Laplace => 24,
        other => panic!("no test size for {other}"),
    };
    Options::new().n(n).systems(3)
}

fn executors() -> Vec<Box<dyn Executor>> {
    let mut v: Vec<Box<dyn Executor>> = Vec::new();
    for workers in [1, 2, 3] {
        for chunk in [Some(1), Some(7), None] {
            let mut b = Threads::builder().workers(workers);
            if let Some(c) = chunk {
                b = b.chunk(c);
            }
            v.push(Box::new(b.build().expect("threads")));
        }
    }
    v.push(Box::new(
        Processes::builder()
            .workers(2)
            .chunk(1)
            .build()
            .expect("processes, chunk 1"),
    ));
    v.push(Box::new(Processes::new(2).expect("processes")));
    v
}

fn check(kernel: KernelName) {
    let opts = options(kernel);
    let execs = executors();
    let plain_c = programs::run(Kernel::get(kernel, Lang::C), &opts, &Serial)
        .expect("serial run")
        .stdout;
    for (lang, variant) in Lang::ALL
        .into_iter()
        .flat_map(|l| Kernel::variants(kernel, l).into_iter().map(move |v| (l, v)))
    {
        let k = Kernel::get_variant(kernel, lang, variant).expect("listed variant");
        let want = programs::run(k.clone(), &opts, &Serial)
            .expect("serial run")
            .stdout;
        assert!(!want.is_empty());
        assert!(want == plain_c, "{k:?} differs from plain C");
        for e in &execs {
            let got = programs::run(k.clone(), &opts, e.as_ref())
                .unwrap_or_else(|err| panic!("{k:?} on {}: {err}", e.describe()))
                .stdout;
            assert!(got == want, "{k:?} on {} differs from serial", e.describe());
        }
    }
}

#[test]
fn seed() {
    check(KernelName::Seed);
}

#[test]
fn nbody() {
    check(KernelName::Nbody);
}

#[test]
fn spectralnorm() {
    check(KernelName::Spectralnorm);
}

#[test]
fn mandelbrot() {
    check(KernelName::Mandelbrot);
}

#[test]
fn fannkuch() {
    check(KernelName::Fannkuch);
}

#[test]
fn triad() {
    check(KernelName::Triad);
}

#[test]
fn pi() {
    check(KernelName::Pi);
}

#[test]
fn laplace() {
    check(KernelName::Laplace);
}

#[test]
fn every_kernel_is_covered() {
    assert_eq!(KernelName::ALL.len(), 8, "add a test for the new kernel");
}

/// The generic worker program (for hosts that cannot call `init`) runs kernels too.
#[test]
fn generic_worker_program_runs_kernels() {
    let pool = Processes::builder()
        .workers(2)
        .worker_program(env!("CARGO_BIN_EXE_kpool-worker"))
        .build()
        .expect("pool of kpool-worker");
    for kernel in [
        KernelName::Mandelbrot,
        KernelName::Fannkuch,
        KernelName::Triad,
    ] {
        for v in Kernel::variants(kernel, Lang::C) {
            let k = Kernel::get_variant(kernel, Lang::C, v).expect("listed variant");
            let opts = options(kernel);
            let want = programs::run(k.clone(), &opts, &Serial)
                .expect("serial")
                .stdout;
            assert_eq!(
                programs::run(k, &opts, &pool)
                    .expect("kpool-worker run")
                    .stdout,
                want
            );
        }
    }
}
