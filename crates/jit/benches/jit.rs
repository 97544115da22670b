//! What the JIT costs, against the targets:
//!
//! - cold compile to first result (a fresh cache: key, compile, publish, load, map the
//!   course's f over [1, 2, 3]) against the bare compiler run on the same file (target:
//!   at most 1.5 times);
//! - a cache hit to a loaded kernel (key, lookup, SHA-256 check, dlopen; target: 1 ms);
//! - a jitted kernel against the same kernel built into the library (mandelbrot and
//!   spectralnorm from `native/c/kernels.c`; target: within 5 %);
//! - the course's f on worker processes from a cold cache: pool start, compile, first
//!   result (numba's first call of f: about 250 ms, plus 150 ms to import numba).
//!
//! `cargo bench -p kernelpool-jit --bench jit -- --warm-up-time 1 --measurement-time 5`

use criterion::Criterion;
use kernelpool_jit::{Cache, Jit, Source};
use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, programs};
use kernelpool_pool::Processes;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A fresh, empty cache directory under `base`.
fn fresh_cache(base: &Path) -> Cache {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = base.join(format!("c{}", N.fetch_add(1, Ordering::Relaxed)));
    Cache::open(dir).expect("cache")
}

fn course_f() -> Source {
    Source::file(format!("{ROOT}/examples/jit/seed.c")).expect("examples/jit/seed.c")
}

/// The bare compiler run the JIT makes, by hand, on the same file.
fn bare_compile(c: &mut Criterion, out: &Path) {
    let march = kernelpool_jit::compiler::target_cpu();
    c.bench_function("bare gcc -O3 -fPIC -shared on seed.c", |b| {
        b.iter(|| {
            let mut cmd = Command::new("gcc");
            cmd.args(kernelpool_jit::compiler::PROJECT_FLAGS);
            if !march.is_empty() {
                cmd.arg(format!("-march={march}"));
            }
            let status = cmd
                .arg("-o")
                .arg(out.join("bare.so"))
                .arg(format!("{ROOT}/examples/jit/seed.c"))
                .status()
                .expect("gcc");
            assert!(status.success());
        })
    });
}

fn cold_first_result(c: &mut Criterion, base: &Path) {
    let src = course_f();
    c.bench_function("jit cold: compile + load + first result (serial)", |b| {
        b.iter(|| {
            let jit = Jit::with_cache(fresh_cache(base));
            // SAFETY: the course's f is a pure function of its argument.
            let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("compile");
            assert!(!f.build().cached);
            black_box(f.map(&[1, 2, 3], &Serial).expect("map"))
        })
    });
}

fn hit_to_loaded(c: &mut Criterion, base: &Path) {
    let src = course_f();
    let jit = Jit::with_cache(fresh_cache(base));
    // SAFETY: as above.
    drop(unsafe { jit.element_fn::<i64>(&src, "f") }.expect("warm the cache"));
    c.bench_function("jit cache hit to loaded kernel", |b| {
        b.iter(|| {
            // SAFETY: as above.
            let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("hit");
            assert!(f.build().cached);
            black_box(f)
        })
    });
}

fn jitted_vs_builtin(c: &mut Criterion, base: &Path) {
    let jit = Jit::with_cache(fresh_cache(base));
    let src = Source::file(format!("{ROOT}/native/c/kernels.c")).expect("native/c/kernels.c");
    for (kernel, n) in [
        (KernelName::Mandelbrot, 1000),
        (KernelName::Spectralnorm, 400),
    ] {
        // SAFETY: the built-in kernel's own code, under its own contract.
        let jitted = unsafe { jit.range_kernel(&src, &format!("kp_c_{kernel}"), kernel) }
            .expect("compile")
            .into_kernel();
        let builtin = Kernel::get(kernel, Lang::C);
        let opts = Options::new().n(n);
        let mut g = c.benchmark_group(format!("{kernel} N={n} serial"));
        g.sample_size(20);
        for (name, k) in [("built in", &builtin), ("jitted", &jitted)] {
            g.bench_function(name, |b| {
                b.iter(|| {
                    programs::run(k.clone(), &opts, &Serial)
                        .expect("run")
                        .elapsed
                })
            });
        }
        g.finish();
    }
}

fn processes_cold(c: &mut Criterion, base: &Path) {
    let src = course_f();
    let mut g = c.benchmark_group("course f on processes(2) from a cold cache");
    g.sample_size(10);
    g.bench_function("pool start + compile + first result", |b| {
        b.iter(|| {
            let pool = Processes::builder().workers(2).build().expect("pool");
            let jit = Jit::with_cache(fresh_cache(base));
            // SAFETY: as above.
            let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("compile");
            black_box(f.map(&[1, 2, 3], &pool).expect("map"))
        })
    });
    g.finish();
}

fn main() {
    // This executable is also the process pool's worker.
    kernelpool_pool::init();
    let base: PathBuf = std::env::temp_dir().join(format!("kp-jit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let mut c = Criterion::default().configure_from_args();
    bare_compile(&mut c, &base);
    cold_first_result(&mut c, &base);
    hit_to_loaded(&mut c, &base);
    jitted_vs_builtin(&mut c, &base);
    processes_cold(&mut c, &base);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&base);
}
