//! Shared arrays on the process pool: inputs and outputs cross as handles, read-only inputs
//! stay unchanged (a task that writes one crashes), output ranges never overlap, a crash
//! loses nothing the pool's process owns, and nothing is left mapped afterwards.

use kernelpool_pool::{PoolError, Processes, SharedChunkMut, SharedSlice, SharedVec};
use serde::{Deserialize, Serialize};

// SAFETY: runs before `main`; `init` reads one environment variable and returns, except
// in a worker, where it serves the pool and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

/// One test at a time: the last one counts the memfds of the whole process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn sum(part: SharedSlice<f64>) -> f64 {
    part.iter().sum()
}

fn fill_squares(mut part: SharedChunkMut<u64>) -> (usize, usize) {
    let start = part.offset();
    for (i, x) in part.iter_mut().enumerate() {
        *x = ((start + i) * (start + i)) as u64;
    }
    (start, part.len())
}

fn scale_into((input, mut out): (SharedSlice<f64>, SharedChunkMut<f64>)) -> usize {
    for (o, i) in out.iter_mut().zip(input.iter()) {
        *o = 2.0 * i;
    }
    input.offset()
}

/// A struct of ordinary fields around a shared slice.
#[derive(Serialize, Deserialize)]
struct Job {
    data: SharedSlice<f64>,
    scale: f64,
    label: String,
}

fn run_job(job: Job) -> String {
    format!("{}={}", job.label, job.scale * job.data.iter().sum::<f64>())
}

fn write_to_input(part: SharedSlice<f64>) -> f64 {
    // A task that breaks the rules: the input is mapped read-only in the worker.
    // SAFETY: none: this write faults (which is what the test checks); it never returns.
    unsafe { std::ptr::write_volatile(part.as_ptr() as *mut f64, -1.0) };
    part[0]
}

fn crash_in_chunk_3(mut part: SharedChunkMut<u64>) -> usize {
    if part.offset() == 300 {
        std::process::abort();
    }
    part.iter_mut().for_each(|x| *x = 7);
    part.len()
}

fn data(len: usize) -> Vec<f64> {
    (0..len).map(|i| (i % 1000) as f64 * 0.5).collect()
}

#[test]
fn inputs_and_outputs_round_trip_exactly() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let values = data(100_000);
    let input = SharedVec::from_slice(&values)
        .expect("alloc")
        .into_shared()
        .expect("freeze");
    let sums = pool.map_chunks(sum, &input, 10_000).expect("map_chunks");
    let want: Vec<f64> = values.chunks(10_000).map(|c| c.iter().sum()).collect();
    assert_eq!(sums, want);
    assert_eq!(&input[..], &values[..], "input unchanged");

    let mut out = SharedVec::<u64>::zeroed(1001).expect("alloc");
    let parts = pool
        .map_chunks_mut(fill_squares, &mut out, 100)
        .expect("fill");
    assert_eq!(parts.len(), 11);
    assert_eq!(parts[10], (1000, 1));
    assert!(
        out.iter().enumerate().all(|(i, &x)| x == (i * i) as u64),
        "complete"
    );

    // Input and output together: each task reads its part and writes its own range.
    let mut doubled = SharedVec::<f64>::zeroed(values.len()).expect("alloc");
    let offsets = pool
        .map(
            scale_into,
            input.chunks(7_000).zip(doubled.chunks_mut(7_000)),
        )
        .expect("map");
    assert_eq!(offsets, (0..15).map(|i| i * 7_000).collect::<Vec<_>>());
    assert!(doubled.iter().zip(&values).all(|(d, v)| *d == 2.0 * v));

    // Inside ordinary serde types, next to scalars.
    let jobs = (0..4).map(|k| Job {
        data: input.slice(k * 10..k * 10 + 10),
        scale: k as f64,
        label: format!("job{k}"),
    });
    let got = pool.map(run_job, jobs).expect("jobs");
    let want: Vec<String> = (0..4)
        .map(|k| {
            let s: f64 = values[k * 10..k * 10 + 10].iter().sum();
            format!("job{k}={}", k as f64 * s)
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_task_that_writes_a_read_only_input_crashes_and_the_input_is_unchanged() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let values = data(4096);
    let input = SharedVec::from_slice(&values)
        .expect("alloc")
        .into_shared()
        .expect("freeze");
    let e = pool
        .map_chunks(write_to_input, &input, 1024)
        .expect_err("a write to a read-only input");
    assert!(e.is_crash(), "{e}");
    assert_eq!(e.signal(), Some(11), "{e}");
    assert_eq!(&input[..], &values[..], "input unchanged");
    // The pool goes on.
    assert_eq!(pool.map_chunks(sum, &input, 4096).expect("sum").len(), 1);
}

/// An argument type that serialises someone else's output range (the only way to hand
/// two tasks the same range, since ranges are neither `Clone` nor `Copy`).
struct Alias(std::ptr::NonNull<SharedChunkMut<'static, u64>>);

impl Serialize for Alias {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // SAFETY: the pointer is to a range that outlives the call (see the test).
        unsafe { self.0.as_ref() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Alias {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("never decoded in this test"))
    }
}

fn use_alias(_: Alias) -> u8 {
    0
}

/// An output range, as a pointer (the only way to hand two tasks the same range).
type RangePtr = std::ptr::NonNull<SharedChunkMut<'static, u64>>;

/// An argument that serialises some output ranges the first two times (when `map` checks
/// the call's ranges) and others after (when it encodes the argument to send it).
struct Fickle {
    serialised: std::sync::Arc<std::sync::atomic::AtomicU32>,
    checked: Vec<RangePtr>,
    sent: Vec<RangePtr>,
    /// Panic instead, when serialised to be sent.
    panics: bool,
}

impl Fickle {
    fn new(
        checked: &[*mut SharedChunkMut<'_, u64>],
        sent: &[*mut SharedChunkMut<'_, u64>],
    ) -> Fickle {
        let ptrs = |p: &[*mut SharedChunkMut<'_, u64>]| {
            p.iter()
                .map(|&p| std::ptr::NonNull::new(p).expect("a range").cast())
                .collect()
        };
        Fickle {
            serialised: Default::default(),
            checked: ptrs(checked),
            sent: ptrs(sent),
            panics: false,
        }
    }
}

impl Serialize for Fickle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self
            .serialised
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 2 || !self.panics, "a panic in Serialize");
        let ranges = if n < 2 { &self.checked } else { &self.sent };
        // SAFETY: the pointers are to ranges that outlive the call (see the test).
        s.collect_seq(ranges.iter().map(|r| unsafe { r.as_ref() }))
    }
}

impl<'de> Deserialize<'de> for Fickle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // In the worker: the ranges it was sent.
        let ranges = Vec::<SharedChunkMut<'static, u64>>::deserialize(d)?;
        let sent: Vec<RangePtr> = ranges
            .into_iter()
            .map(|r| std::ptr::NonNull::from(Box::leak(Box::new(r))))
            .collect();
        Ok(Fickle {
            serialised: Default::default(),
            checked: sent.clone(),
            sent,
            panics: false,
        })
    }
}

fn write_seven(f: Fickle) -> usize {
    for r in &f.sent {
        // SAFETY: a range leaked by `deserialize`, this task's own.
        unsafe { &mut *r.as_ptr() }.iter_mut().for_each(|x| *x = 7);
    }
    f.sent.len()
}

/// A `map` of `tasks` tasks, each writing its own element, but task `fickle` checked with
/// its own element and sent with task `fickle - 1`'s and the spare last element.
fn overlap_found_when_sent(tasks: usize, fickle: usize) {
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(tasks + 1).expect("alloc");
    let mut chunks = out.chunks_mut(1);
    // (The ranges live in `chunks` until after the call.)
    let ptrs: Vec<*mut SharedChunkMut<'_, u64>> = chunks.iter_mut().map(|c| c as *mut _).collect();
    let args: Vec<Fickle> = (0..tasks)
        .map(|i| {
            if i == fickle {
                Fickle::new(&[ptrs[i]], &[ptrs[i - 1], ptrs[tasks]])
            } else {
                Fickle::new(&[ptrs[i]], &[ptrs[i]])
            }
        })
        .collect();
    let serialised = args[fickle].serialised.clone();
    match pool.map(write_seven, args).expect_err("an overlap") {
        PoolError::OverlappingOutput { task, other } => {
            assert_eq!((task, other), (fickle, fickle - 1));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        serialised.load(std::sync::atomic::Ordering::Relaxed) >= 3,
        "checked twice, then sent"
    );
    drop(chunks);
    // Every other task ran; the fickle one was not sent (it would have written the last
    // element), and no task wrote its own element.
    for (i, &x) in out.iter().enumerate() {
        let want = if i == fickle || i == tasks { 0 } else { 7 };
        assert_eq!(x, want, "element {i}");
    }
}

fn slowly_write_seven(f: Fickle) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(1));
    write_seven(f)
}

#[test]
fn a_panic_in_an_arguments_serialize_stops_the_calls_tasks_before_it_unwinds_out() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(3000).expect("alloc");
    let mut chunks = out.chunks_mut(1);
    let args: Vec<Fickle> = chunks
        .iter_mut()
        .enumerate()
        .map(|(i, c)| {
            let c = c as *mut SharedChunkMut<'_, u64>;
            let mut f = Fickle::new(&[c], &[c]);
            // Encoded while the first thousand tasks (1 ms each) run.
            f.panics = i == 2000;
            f
        })
        .collect();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.map(slowly_write_seven, args)
    }));
    assert!(r.is_err(), "the panic came through");
    drop(chunks);
    let written = |out: &SharedVec<u64>| out.iter().filter(|&&x| x == 7).count();
    let now = written(&out);
    assert!(now < 2000, "{now} tasks ran: the panic came before most");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        written(&out),
        now,
        "tasks of the call went on writing after it unwound"
    );
    // The pool is whole again.
    assert_eq!(
        pool.map(square, 0..10u64).expect("map"),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

fn slowly_fill(mut part: SharedChunkMut<u64>) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(5));
    part.iter_mut().for_each(|x| *x = 7);
    part.offset()
}

#[test]
fn an_imap_dropped_early_stops_its_tasks_that_write_output_ranges() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(200).expect("alloc");
    let mut it = pool.imap(slowly_fill, out.chunks_mut(1)).expect("imap");
    assert_eq!(it.next().expect("one").expect("ok"), 0);
    drop(it);
    let written = |out: &SharedVec<u64>| out.iter().filter(|&&x| x == 7).count();
    let now = written(&out);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        written(&out),
        now,
        "tasks of the iterator went on writing after its drop"
    );
    assert_eq!(
        pool.map(square, 0..10u64).expect("map"),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

#[test]
fn an_argument_that_names_other_ranges_when_sent_than_when_checked_is_not_sent() {
    let _serial = serial();
    // Among the arguments encoded before the first task is sent, and among those encoded
    // while tasks run.
    overlap_found_when_sent(3, 1);
    overlap_found_when_sent(3000, 2000);
}

#[test]
fn two_tasks_cannot_get_overlapping_output_ranges() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(100).expect("alloc");
    let mut chunks = out.chunks_mut(50);
    let first = std::ptr::NonNull::from(&mut chunks[0]).cast::<SharedChunkMut<'static, u64>>();
    let e = pool
        .map(use_alias, [Alias(first), Alias(first)])
        .expect_err("overlap");
    match e {
        PoolError::OverlappingOutput { task: 1, other: 0 } => {}
        other => panic!("{other:?}"),
    }
    drop(chunks);
    assert!(out.iter().all(|&x| x == 0), "nothing ran");
}

/// An overlap far into a long `map` (its arguments are all encoded before any task is
/// sent) fails the call as well, and the pool goes on.
#[test]
fn an_overlap_far_into_a_long_map_fails_the_call() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(6000).expect("alloc");
    let mut chunks = out.chunks_mut(1);
    let mut args: Vec<Alias> = chunks
        .iter_mut()
        .map(|c| Alias(std::ptr::NonNull::from(c).cast()))
        .collect();
    args[5000] = Alias(args[0].0);
    let e = pool.map(use_alias, args).expect_err("overlap");
    match e {
        PoolError::OverlappingOutput {
            task: 5000,
            other: 0,
        } => {}
        other => panic!("{other:?}"),
    }
    drop(chunks);
    assert_eq!(
        pool.map(square, 0..10u64).expect("map"),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

#[test]
fn a_crash_while_arrays_are_in_flight_loses_nothing_the_parent_owns() {
    let _serial = serial();
    let pool = Processes::new(2).expect("pool");
    let mut out = SharedVec::<u64>::zeroed(1000).expect("alloc");
    let e = pool
        .map_chunks_mut(crash_in_chunk_3, &mut out, 100)
        .expect_err("task 3 aborts");
    assert_eq!(e.task(), Some(3), "{e}");
    assert_eq!(e.signal(), Some(6), "{e}");
    // Every other task ran and wrote its range; task 3's range is untouched.
    for (i, &x) in out.iter().enumerate() {
        let want = if (300..400).contains(&i) { 0 } else { 7 };
        assert_eq!(x, want, "element {i}");
    }
    let input = out.into_shared().expect("freeze after the call");
    assert_eq!(input[0], 7);
}

fn shm_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.to_string_lossy().contains("kernelpool-shm"))
        .count()
}

fn shm_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("kernelpool-shm"))
        .count()
}

#[test]
fn no_descriptor_or_mapping_is_left_after_drop() {
    let _serial = serial();
    // Other tests of this binary run at the same time: count only what this test makes,
    // in its own pool's workers, and in this process after everything is dropped.
    let pool = Processes::new(2).expect("pool");
    let pids = pool.pids().expect("pids");
    let base: Vec<usize> = pids.iter().map(|&p| shm_mappings(p)).collect();
    {
        let input = SharedVec::from_slice(&data(50_000))
            .expect("alloc")
            .into_shared()
            .expect("freeze");
        let mut out = SharedVec::<u64>::zeroed(50_000).expect("alloc");
        pool.map_chunks(sum, &input, 5_000).expect("sum");
        pool.map_chunks_mut(fill_squares, &mut out, 5_000)
            .expect("fill");
        let mapped: Vec<usize> = pids.iter().map(|&p| shm_mappings(p)).collect();
        assert!(
            mapped.iter().zip(&base).all(|(m, b)| m > b),
            "the workers map the arrays: {mapped:?} vs {base:?}"
        );
    }
    // The arrays are gone here: the next call tells the workers to unmap them.
    let small = SharedVec::from_slice(&[1.0f64])
        .expect("alloc")
        .into_shared()
        .expect("freeze");
    pool.map_chunks(sum, &small, 1).expect("sum");
    drop(small);
    pool.map(|x: u8| x, [1u8, 2]).expect("another call");
    let after: Vec<usize> = pids.iter().map(|&p| shm_mappings(p)).collect();
    assert_eq!(after, base, "the workers unmapped the arrays");
    drop(pool);
    // No memfd stays open in this process once everything is dropped.
    assert_eq!(shm_fds(), 0, "memfds left open");
}

fn square(x: u64) -> u64 {
    x * x
}
