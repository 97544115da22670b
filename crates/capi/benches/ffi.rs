//! What crossing the C ABI costs: a trivial kernel step on serial through
//! `libkernelpool.so` (loaded as a C program loads it) beside the same step through the
//! Rust API and beside a raw call of the kernel, and a step on a process pool from C
//! beside the same step from Rust (both pools run `kpool-worker`).
//!
//! ```sh
//! cargo build --release -p kernelpool-capi -p kernelpool-pool
//! cargo bench -p kernelpool-capi --bench ffi -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use kernelpool_kernels::ffi::kp_kargs;
use kernelpool_kernels::{Elem, Executor, Kernel, KernelName, Lang, Serial, Step, StepArgs};
use kernelpool_pool::Processes;
use std::ffi::{c_char, c_void};
use std::hint::black_box;
use std::path::PathBuf;

/// kp_step_args of the header.
#[repr(C)]
struct CArgs {
    n: u64,
    items: u64,
    iparam: [i64; 4],
    fparam: [f64; 4],
}

type Status = u32;
type Out = *mut *mut c_void;

/// The functions of the C ABI the bench calls, from the loaded library.
struct Api {
    _lib: libloading::Library,
    serial_new: unsafe extern "C" fn(Out) -> Status,
    builder_new: unsafe extern "C" fn(Out) -> Status,
    builder_workers: unsafe extern "C" fn(*mut c_void, usize) -> Status,
    builder_worker_program: unsafe extern "C" fn(*mut c_void, *const c_char) -> Status,
    builder_build: unsafe extern "C" fn(*const c_void, Out) -> Status,
    builder_free: unsafe extern "C" fn(*mut c_void),
    executor_free: unsafe extern "C" fn(*mut c_void),
    kernel_builtin: unsafe extern "C" fn(u32, u32, Out) -> Status,
    buffer_new: unsafe extern "C" fn(u32, usize, Out) -> Status,
    step_run: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const CArgs,
        *const *mut c_void,
        usize,
        *mut i64,
        usize,
    ) -> Status,
}

/// target/release, where `cargo build --release -p kernelpool-capi -p kernelpool-pool`
/// puts libkernelpool.so and kpool-worker.
fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn load() -> Api {
    let path = out_dir().join("libkernelpool.so");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p kernelpool-capi -p kernelpool-pool",
        path.display()
    );
    // SAFETY: our own library; its initialisers are Rust's and the native kernels'.
    let lib = unsafe { libloading::Library::new(&path) }.expect("load libkernelpool.so");
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the symbol has the type the header declares for it, which the field
            // it is stored in repeats.
            unsafe { *lib.get(concat!($name, "\0").as_bytes()).expect($name) }
        };
    }
    Api {
        serial_new: sym!("kp_serial_new"),
        builder_new: sym!("kp_processes_builder_new"),
        builder_workers: sym!("kp_processes_builder_workers"),
        builder_worker_program: sym!("kp_processes_builder_worker_program"),
        builder_build: sym!("kp_processes_builder_build"),
        builder_free: sym!("kp_processes_builder_free"),
        executor_free: sym!("kp_executor_free"),
        kernel_builtin: sym!("kp_kernel_builtin"),
        buffer_new: sym!("kp_buffer_new"),
        step_run: sym!("kp_step_run"),
        _lib: lib,
    }
}

fn ok(s: Status, what: &str) {
    assert_eq!(s, 0, "{what} failed with status {s}");
}

/// The seed kernel in C over `items` items (one i64 out per item; gcc folds its loop, so
/// the call is all there is).
fn seed_args(items: u64) -> StepArgs {
    let mut a = StepArgs::new(items, items);
    a.iparam[0] = 1;
    a
}

fn serial(c: &mut Criterion) {
    let api = load();
    let kernel = Kernel::get(KernelName::Seed, Lang::C);
    let mut g = c.benchmark_group("trivial kernel on serial");

    // A raw call of the kernel function: the floor.
    let mut out = [0i64; 1];
    let mut partial = [0i64; 4];
    let mut raw = kp_kargs {
        n: 1,
        items: 1,
        iparam: [1, 0, 0, 0],
        fparam: [0.0; 4],
        buf: [std::ptr::null_mut(); 4],
        len: [0; 4],
        partial: partial.as_mut_ptr(),
    };
    raw.buf[0] = out.as_mut_ptr().cast();
    raw.len[0] = 1;
    // SAFETY: the raw function of a built-in kernel, valid while `kernel` lives.
    let f = unsafe { kernel.raw() };
    g.bench_function("raw call of the kernel (Rust)", |b| {
        // SAFETY: seed's contract: one i64 per item in buf[0], which holds 1 item.
        b.iter(|| unsafe { f(black_box(&raw), 0, 1) })
    });

    // The Rust API: a checked Step, run by Serial.
    let mut buf = Serial.alloc(Elem::I64, 1, "out").expect("buffer");
    g.bench_function("Step::new + Serial.run (Rust API)", |b| {
        b.iter(|| {
            let step = Step::new(kernel.clone(), seed_args(1), vec![&mut buf]).expect("step");
            Serial.run(black_box(&step)).expect("run")
        })
    });

    // The C ABI: kp_step_run on a serial executor.
    let mut exec = std::ptr::null_mut();
    let mut k = std::ptr::null_mut();
    let mut cbuf = std::ptr::null_mut();
    // SAFETY: the C ABI's constructors with valid out-parameters.
    unsafe {
        ok((api.serial_new)(&mut exec), "kp_serial_new");
        ok((api.kernel_builtin)(0, 0, &mut k), "kp_kernel_builtin");
        ok((api.buffer_new)(0, 1, &mut cbuf), "kp_buffer_new");
    }
    let args = CArgs {
        n: 1,
        items: 1,
        iparam: [1, 0, 0, 0],
        fparam: [0.0; 4],
    };
    g.bench_function("kp_step_run (C ABI)", |b| {
        b.iter(|| {
            let mut p = [0i64; 4];
            // SAFETY: live handles made above, valid arguments.
            let s =
                unsafe { (api.step_run)(exec, k, black_box(&args), &cbuf, 1, p.as_mut_ptr(), 4) };
            assert_eq!(s, 0);
            p
        })
    });
    g.finish();
}

fn processes(c: &mut Criterion) {
    let api = load();
    let worker = out_dir().join("kpool-worker");
    assert!(
        worker.exists(),
        "{} is missing: cargo build --release -p kernelpool-pool",
        worker.display()
    );
    let mut g = c.benchmark_group("trivial step on processes(2)");
    let items = 2;

    {
        let pool = Processes::builder()
            .workers(2)
            .worker_program(&worker)
            .build()
            .expect("pool");
        let kernel = Kernel::get(KernelName::Seed, Lang::C);
        let mut buf = pool
            .alloc(Elem::I64, items as usize, "out")
            .expect("buffer");
        g.bench_function("from Rust", |b| {
            b.iter(|| {
                let step =
                    Step::new(kernel.clone(), seed_args(items), vec![&mut buf]).expect("step");
                pool.run(&step).expect("run")
            })
        });
        // Dropped before the C pool starts: idle workers spin a while, and on a 2-core
        // machine two pools' workers would share the CPUs.
    }

    let worker_c = std::ffi::CString::new(worker.to_str().expect("UTF-8")).expect("path");
    let (mut builder, mut exec, mut k, mut cbuf) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: the C ABI's constructors with valid arguments and out-parameters.
    unsafe {
        ok((api.builder_new)(&mut builder), "builder");
        ok((api.builder_workers)(builder, 2), "workers");
        ok(
            (api.builder_worker_program)(builder, worker_c.as_ptr()),
            "worker program",
        );
        ok((api.builder_build)(builder, &mut exec), "build");
        (api.builder_free)(builder);
        ok((api.kernel_builtin)(0, 0, &mut k), "kp_kernel_builtin");
        ok(
            (api.buffer_new)(0, items as usize, &mut cbuf),
            "kp_buffer_new",
        );
    }
    let args = CArgs {
        n: items,
        items,
        iparam: [1, 0, 0, 0],
        fparam: [0.0; 4],
    };
    g.bench_function("from C (kp_step_run)", |b| {
        b.iter(|| {
            let mut p = [0i64; 4];
            // SAFETY: live handles made above, valid arguments.
            let s = unsafe { (api.step_run)(exec, k, &args, &cbuf, 1, p.as_mut_ptr(), 4) };
            assert_eq!(s, 0);
            p
        })
    });
    g.finish();
    // SAFETY: the pool made above, no longer used (its kernel and buffer die with the
    // process).
    unsafe { (api.executor_free)(exec) };
}

criterion_group!(benches, serial, processes);
criterion_main!(benches);
