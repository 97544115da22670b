//! The wait without a wake-up per step: frames through the rings of the control blocks,
//! workers asleep on a futex in theirs, the pool asleep on its doorbell. Faults must still
//! be seen while the pool sleeps there (a worker killed or stopped rings nothing), and the
//! two paths of frames (rings, and the socket for frames with descriptors) must keep their
//! order over many steps and tasks.

use kernelpool_kernels::{Error, Executor, Kernel, KernelName, Lang, Serial, Step, StepArgs};
use kernelpool_pool::{PoolError, Processes};
use std::time::{Duration, Instant};

// SAFETY: runs before `main`; `init` reads one environment variable and returns, except
// in a worker, where it serves the pool and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

fn pool_error(e: &Error) -> &PoolError {
    e.executor()
        .unwrap_or_else(|| panic!("not an executor error: {e:?}"))
        .get_ref()
        .downcast_ref::<PoolError>()
        .unwrap_or_else(|| panic!("not a PoolError: {e}"))
}

/// A pi step of `samples` samples (seconds of work for a few billion).
fn pi(samples: u64, seed: i64) -> Step<'static> {
    let mut args = StepArgs::new(samples, samples);
    args.iparam[0] = seed;
    Step::new(Kernel::get(KernelName::Pi, Lang::C), args, vec![]).expect("step")
}

/// Samples that keep one worker busy for about `secs` seconds on this machine.
fn samples_for(secs: f64) -> u64 {
    let probe = 20_000_000u64;
    let t = Instant::now();
    Serial.run(&pi(probe, 1)).expect("serial");
    let per_sample = t.elapsed().as_secs_f64() / probe as f64;
    ((secs / per_sample) as u64).max(probe)
}

/// Run `step` on `pool`, doing `act` to its only worker `after` into the step; the
/// error, and how long after `act` it came.
fn fault_mid_step(
    pool: &Processes,
    step: &Step<'_>,
    after: Duration,
    act: impl FnOnce(u32) + Send,
) -> (Error, Duration) {
    let victim = pool.pids().expect("pids")[0];
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            std::thread::sleep(after);
            act(victim);
            tx.send(Instant::now()).expect("send");
        });
        let err = pool.run(step).expect_err("the step must fail");
        let acted = rx.recv().expect("acted");
        (err, acted.elapsed())
    })
}

#[test]
fn a_worker_killed_while_the_pool_sleeps_on_its_doorbell_is_a_crash_of_its_chunk() {
    let samples = samples_for(3.0);
    let timeout = Duration::from_secs(60);
    // The chunk runs in the worker, not in the caller.
    let pool = Processes::builder()
        .workers(1)
        .caller_runs_chunks(false)
        .chunk(samples)
        .task_timeout(timeout)
        .build()
        .expect("pool");
    let step = pi(samples, 7);
    let (err, since_kill) = fault_mid_step(&pool, &step, Duration::from_millis(300), |pid| {
        signal(pid, rustix::process::Signal::KILL)
    });
    let e = pool_error(&err);
    assert!(e.is_crash() && !e.is_timeout(), "{e}");
    assert_eq!(e.signal(), Some(9), "{e}");
    assert_eq!(e.task(), Some(0), "{e}");
    assert_eq!(err.items(), Some(0..samples), "{err}");
    // The pool polls the sockets at least every 10 ms while it sleeps: far less than this
    // (which leaves room for a loaded machine).
    assert!(since_kill < Duration::from_secs(2), "{since_kill:?}");
    // Replaced, and usable.
    assert_eq!(
        pool.run(&pi(1000, 3)).expect("after"),
        Serial.run(&pi(1000, 3)).expect("serial")
    );
}

#[test]
fn a_worker_stopped_while_the_pool_sleeps_on_its_doorbell_times_out_with_its_chunk() {
    let samples = samples_for(6.0);
    let timeout = Duration::from_millis(1500);
    // The chunk runs in the worker, not in the caller.
    let pool = Processes::builder()
        .workers(1)
        .caller_runs_chunks(false)
        .chunk(samples)
        .task_timeout(timeout)
        .build()
        .expect("pool");
    let step = pi(samples, 11);
    let started = Instant::now();
    let (err, _) = fault_mid_step(&pool, &step, Duration::from_millis(200), |pid| {
        signal(pid, rustix::process::Signal::STOP)
    });
    let took = started.elapsed();
    let e = pool_error(&err);
    assert!(e.is_timeout() && !e.is_crash(), "{e}");
    assert_eq!(e.task(), Some(0), "{e}");
    assert_eq!(err.items(), Some(0..samples), "{err}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        pool.run(&pi(1000, 3)).expect("after"),
        Serial.run(&pi(1000, 3)).expect("serial")
    );
}

/// A small deterministic generator (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn thousands_of_steps_of_every_shape_agree_with_serial() {
    let pools = [
        Processes::new(2).expect("pool"),
        Processes::builder()
            .workers(2)
            .chunk(3)
            .build()
            .expect("pool"),
        // The caller runs chunks too.
        Processes::builder()
            .workers(1)
            .chunk(5)
            .caller_runs_chunks(true)
            .build()
            .expect("pool"),
    ];
    let mut rng = 42u64;
    for round in 0..3000 {
        let pool = &pools[round % 3];
        let samples = next(&mut rng) % 2000;
        let step = pi(samples, (next(&mut rng) % 1000) as i64);
        assert_eq!(
            pool.run(&step).expect("step"),
            Serial.run(&step).expect("serial"),
            "round {round}: {samples} samples"
        );
    }
}

/// Its argument, reversed (large arguments give large results).
fn reversed(mut v: Vec<u8>) -> Vec<u8> {
    v.reverse();
    v
}

fn triple(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[test]
fn small_and_large_values_keep_their_order_across_the_ring_and_the_socket() {
    // Values over 256 KiB travel in sealed memfds, their frames on the socket (they carry
    // a descriptor); small ones in the ring. Mixed in one map, with results of both
    // kinds coming back, every result must still match its argument.
    let pool = Processes::new(2).expect("pool");
    let mut rng = 7u64;
    let args: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            let len = if next(&mut rng).is_multiple_of(10) {
                300_000 + (next(&mut rng) % 1000) as usize
            } else {
                (next(&mut rng) % 64) as usize
            };
            (0..len).map(|k| (k * 31 + i) as u8).collect()
        })
        .collect();
    let want: Vec<Vec<u8>> = args.iter().cloned().map(reversed).collect();
    for chunksize in [1, 7] {
        let got = pool
            .with_chunksize(chunksize)
            .map(reversed, args.clone())
            .expect("map");
        assert!(got == want, "chunksize {chunksize}: results differ");
    }
    // And tiny tasks by the hundred thousand (the rings wrap many times).
    let got = pool
        .with_chunksize(1)
        .map(triple, 0..200_000u64)
        .expect("map");
    assert!(got.iter().enumerate().all(|(i, &v)| v == 3 * i as u64));
}

#[test]
fn a_caller_that_runs_chunks_gives_the_serial_output_of_every_program() {
    use kernelpool_kernels::{Options, programs};
    let pool = Processes::builder()
        .workers(1)
        .caller_runs_chunks(true)
        .build()
        .expect("pool");
    for (name, n) in [
        (KernelName::Triad, 100_000),
        (KernelName::Spectralnorm, 100),
        (KernelName::Mandelbrot, 200),
    ] {
        let kernel = Kernel::get(name, Lang::C);
        let opts = Options::new().n(n);
        let want = programs::run(kernel.clone(), &opts, &Serial).expect("serial");
        let got = programs::run(kernel, &opts, &pool).expect("pool");
        assert_eq!(got.stdout, want.stdout, "{name:?}");
    }
}
