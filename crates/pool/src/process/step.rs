//! Kernel steps on the process pool: the pool as an [`Executor`]. A step's buffers live
//! in shared memory that each worker maps once; only the kernel's portable name, the step's
//! arguments, buffer ids and chunk ranges cross the channel.

use super::sent::TAKEN_BACK;
use super::task::{Item, ItemData, Op, OpKind, Payload};
use super::{Engine, Processes};
use crate::error::{PoolError, StepChunk};
use crate::protocol::{BufRef, KernelRef};
use crate::shm::SharedMemory;
use kernelpool_kernels::{
    Buffer, Elem, Error, Executor, Kernel, Origin, Partial, Step, chunk_count, chunk_range,
    default_chunk,
};

impl Processes {
    /// The chunk size used for a step of `items` items of a built-in kernel (by default
    /// about four chunks per process that runs the step's chunks, the caller counted when
    /// it takes part; see
    /// [`ProcessesBuilder::caller_runs_chunks`](crate::ProcessesBuilder::caller_runs_chunks)).
    /// A kernel from a shared object runs on every worker, without the caller, and its
    /// chunks are sized for them.
    pub fn chunk_for(&self, items: u64) -> u64 {
        self.chunk_of(items, self.cfg.caller_runs_chunks)
    }

    /// The chunk size of a step of `items` items that the caller takes part in
    /// (`caller`) or not.
    fn chunk_of(&self, items: u64, caller: bool) -> u64 {
        let runners = self.step_workers(caller) + usize::from(caller);
        self.cfg
            .chunk
            .unwrap_or_else(|| default_chunk(items, runners))
    }

    /// How many workers a step's chunks go to: all of them, or, when the caller runs
    /// chunks too, as many as leave it a CPU of its own (at least one).
    fn step_workers(&self, caller: bool) -> usize {
        if caller {
            self.cfg
                .workers
                .min(self.cfg.cores.saturating_sub(1).max(1))
        } else {
            self.cfg.workers
        }
    }
}

impl Engine {
    /// Take back from a worker the last chunk of step `op` it holds and has not started,
    /// when it holds another before it (which it runs meanwhile): the caller, out of
    /// chunks of its own, runs it instead of waiting for the worker to get to it.
    fn take_back(&mut self, op: &mut Op) -> Option<Item> {
        for w in self.slots.iter_mut().flatten() {
            if w.end.is_some() || !w.ready || w.sent.len() < 2 {
                continue;
            }
            let control = &w.control;
            let Some(t) = w.sent.last_task_mut() else {
                continue;
            };
            let ItemData::Range(a, b) = t.data else {
                continue;
            };
            if t.generation != op.generation || !control.take_back(t.id) {
                continue;
            }
            t.generation = TAKEN_BACK;
            op.outstanding -= 1;
            #[cfg(test)]
            {
                self.taken_back += 1;
            }
            return Some(Item {
                idx: t.idx,
                data: ItemData::Range(a, b),
                tries: 0,
                arrays: Vec::new(),
            });
        }
        None
    }
}

/// A step whose chunks are out: if it ends before all of them are back (an error, or a
/// panic that unwinds through `run`), the workers holding its tasks are killed and reaped
/// before the caller gets its buffers back, as rayon's scope waits for its jobs.
struct RunningStep<'e> {
    engine: &'e mut Engine,
    op: Op,
    finished: bool,
}

impl Drop for RunningStep<'_> {
    fn drop(&mut self) {
        if !self.finished || !self.op.finished() {
            self.engine.abort(&self.op);
        }
    }
}

/// The portable name of a kernel.
fn kernel_ref(kernel: &Kernel) -> Result<KernelRef, PoolError> {
    let (name, lang) = (kernel.name(), kernel.lang());
    match kernel.origin() {
        // A built-in is whatever `Kernel::get` gives in the worker: make sure it is the
        // same function here.
        Origin::Builtin
            if Kernel::get_variant(name, lang, kernel.variant())
                .is_ok_and(|k| k.address() == kernel.address()) =>
        {
            Ok(KernelRef::Builtin {
                name,
                lang,
                variant: kernel.variant(),
            })
        }
        // Workers load it again by path, and check that they got the same file (which the
        // kernel found out when it was loaded: no read of /proc/self/maps per step).
        Origin::Library { path, symbol } => match kernel
            .library_file()
            .or_else(|| crate::protocol::mapped_file(kernel.address()))
        {
            Some(file) => Ok(KernelRef::Library {
                name,
                lang,
                path: path.clone(),
                symbol: symbol.clone(),
                file,
            }),
            None => Err(PoolError::KernelNotPortable(format!(
                "{kernel:?}, whose file cannot be identified in /proc/self/maps,"
            ))),
        },
        _ => Err(PoolError::KernelNotPortable(format!("{kernel:?}"))),
    }
}

impl Executor for Processes {
    fn describe(&self) -> String {
        match self.cfg.chunk {
            Some(c) => format!("processes({}, chunk {c})", self.cfg.workers),
            None => format!("processes({})", self.cfg.workers),
        }
    }

    fn workers(&self) -> usize {
        self.cfg.workers
    }

    /// Refuses a step cut into more than [`MAX_CHUNKS`](kernelpool_kernels::MAX_CHUNKS)
    /// chunks at this pool's chunk size (the smaller of a built-in kernel's and a shared
    /// object's).
    fn check_items(&self, items: u64) -> kernelpool_kernels::Result<()> {
        let chunk = self.chunk_of(items, false).min(self.chunk_for(items));
        chunk_count(items, chunk).map(drop)
    }

    fn alloc(&self, elem: Elem, len: usize, what: &str) -> kernelpool_kernels::Result<Buffer> {
        let bytes = len as u128 * elem.size() as u128;
        kernelpool_kernels::buffer::check_fits(bytes, what)?;
        let failed = |reason: String| Error::AllocFailed {
            what: what.to_string(),
            bytes,
            reason,
        };
        let size = usize::try_from(bytes)
            .map_err(|_| failed("more than this platform's address space".into()))?;
        let shm = SharedMemory::new(size).map_err(|e| {
            failed(kernelpool_kernels::buffer::explain_alloc_failure(
                "shared memory (memfd + mmap) was refused",
                e,
            ))
        })?;
        Buffer::from_memory(elem, len, Box::new(shm))
    }

    fn run(&self, step: &Step<'_>) -> kernelpool_kernels::Result<Partial> {
        let kernel = step.kernel();
        let name = kernel.name();
        let portable = kernel_ref(kernel)?;
        let mut bufs = Vec::with_capacity(step.buffers().len());
        let mut shms = Vec::with_capacity(step.buffers().len());
        for (slot, b) in step.buffers().enumerate() {
            let shm =
                b.memory()
                    .as_any()
                    .downcast_ref::<SharedMemory>()
                    .ok_or(PoolError::NotShared {
                        kernel: name.name(),
                        slot,
                    })?;
            bufs.push(BufRef {
                id: shm.id(),
                elem: b.elem(),
                len: b.len() as u64,
            });
            shms.push(shm.inner().clone());
        }
        let items = step.items();
        if items == 0 {
            return Ok(Partial::identity(name));
        }
        let caller = self.cfg.caller_runs_chunks && matches!(kernel.origin(), Origin::Builtin);
        let chunk = self.chunk_of(items, caller);
        let count = chunk_count(items, chunk)? as usize;
        let range = |i: usize| chunk_range(items, chunk, i as u64);

        let mut engine = self.lock()?;
        let op = engine.new_op(
            OpKind::Step {
                kernel: portable,
                args: *step.args(),
                bufs,
                shms,
            },
            1,
        );
        // Whatever happens below (an error or a panic), nothing of this step may go on
        // running once `run` has returned: the buffers are the caller's again.
        let mut running = RunningStep {
            engine: &mut engine,
            op,
            finished: false,
        };
        running.op.pending.extend((0..count).map(|i| {
            let r = range(i);
            Item {
                idx: i,
                data: ItemData::Range(r.start, r.end),
                tries: 0,
                arrays: Vec::new(),
            }
        }));
        let mut parts: Vec<Option<Partial>> = vec![None; count];
        let mut failure: Option<(usize, Error)> = None;
        // The caller's share: chunks from the end, which workers take last.
        running.op.workers = self.step_workers(caller);
        let mut mine: Vec<Item> = Vec::new();
        if caller {
            // A step of one chunk is the caller's alone: a worker would cost a round trip.
            let share = (count / (running.op.workers + 1)).max(usize::from(count == 1));
            let keep = running.op.pending.len() - share;
            mine = running.op.pending.split_off(keep).into();
        }
        while !running.op.finished() || !mine.is_empty() {
            if caller && failure.is_none() && mine.is_empty() && running.op.pending.is_empty() {
                // Out of chunks: rather than wait, take back one a worker has not started.
                mine.extend(running.engine.take_back(&mut running.op));
            }
            // With chunks of its own to run, the caller only sends and takes in.
            let block = mine.is_empty() && (!caller || running.op.pending.is_empty());
            running.engine.round(&mut running.op, &mut || None, block)?;
            if caller && failure.is_none() {
                let item = mine.pop().or_else(|| running.op.pending.pop_back());
                if let Some(Item {
                    idx,
                    data: ItemData::Range(a, b),
                    ..
                }) = item
                {
                    match step.run_chunk(a..b) {
                        Ok(p) => parts[idx] = Some(p),
                        Err(e) => {
                            failure = Some((idx, e));
                            running.op.halt();
                        }
                    }
                }
            }
            #[cfg(test)]
            tests::maybe_panic_mid_step();
            while let Some((i, r)) = running.op.ready.pop_front() {
                let err = match r {
                    Ok(Payload::Partial(p)) => {
                        parts[i] = Some(p);
                        continue;
                    }
                    Ok(Payload::KernelFailed(code)) => Error::KernelFailed {
                        kernel: name.to_string(),
                        lang: kernel.lang().to_string(),
                        code,
                        begin: range(i).start,
                        end: range(i).end,
                    },
                    Ok(Payload::Bytes(_) | Payload::Inline(_) | Payload::Mapped(_)) => {
                        PoolError::Internal(format!(
                            "a value came back for chunk {i} of a kernel step"
                        ))
                        .into()
                    }
                    // A crash, timeout or panic: name the kernel and the items as a
                    // kernel's own failure does.
                    Err(e) => e
                        .in_chunk(StepChunk {
                            kernel: name,
                            lang: kernel.lang(),
                            items: range(i),
                        })
                        .into(),
                };
                if failure.as_ref().is_none_or(|(j, _)| i < *j) {
                    failure = Some((i, err));
                }
                // No point in running the rest; wait for what is running.
                running.op.halt();
            }
            if failure.is_some() {
                mine.clear();
            }
        }
        running.finished = true;
        drop(running);
        drop(engine);
        if let Some((_, e)) = failure {
            return Err(e);
        }
        let mut total = Partial::identity(name);
        for p in parts {
            let p = p.ok_or_else(|| PoolError::Internal("a chunk produced no result".into()))?;
            total.combine(name, &p);
        }
        Ok(total)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use kernelpool_kernels::{KernelName, Lang, StepArgs};
    use std::cell::Cell;
    use std::panic::AssertUnwindSafe;

    thread_local!(static PANIC_MID_STEP: Cell<bool> = const { Cell::new(false) });

    /// Panics once, in the middle of a step, when a test asked for it.
    pub(in crate::process) fn maybe_panic_mid_step() {
        if PANIC_MID_STEP.replace(false) {
            panic!("a panic injected in the middle of a step");
        }
    }

    // SAFETY: runs before `main`; `init` reads one environment variable and returns,
    // except in a worker, where it serves the pool and exits.
    #[ctor::ctor(unsafe)]
    fn worker_entry() {
        crate::init();
    }

    /// Tasks given to each worker of `pool` so far.
    fn assigned(pool: &Processes) -> Vec<u64> {
        let engine = pool.lock().expect("engine");
        engine.slots.iter().flatten().map(|w| w.assigned).collect()
    }

    fn pi_step(samples: u64) -> Step<'static> {
        let mut args = StepArgs::new(samples, samples);
        args.iparam[0] = 99;
        Step::new(Kernel::get(KernelName::Pi, Lang::C), args, vec![]).expect("step")
    }

    #[test]
    fn a_chunk_its_worker_has_not_started_is_taken_back_and_runs_only_in_the_caller() {
        take_back_one_chunk(false);
    }

    #[test]
    fn a_chunk_taken_back_from_a_worker_that_dies_is_not_run_again() {
        take_back_one_chunk(true);
    }

    /// A step of two chunks on one worker: the second is taken back while the worker runs
    /// the first; when `kill`, the worker is killed then.
    fn take_back_one_chunk(kill: bool) {
        let pool = Processes::builder()
            .workers(1)
            .cores(2)
            .build()
            .expect("pool");
        let pid = pool.pids().expect("pids");
        // Chunk 0 keeps the worker busy (tens of milliseconds); chunk 1 waits behind it.
        let (big, total) = (40_000_000u64, 40_001_000u64);
        let step = pi_step(total);
        let mut engine = pool.lock().expect("engine");
        let kind = OpKind::Step {
            kernel: kernel_ref(step.kernel()).expect("portable"),
            args: *step.args(),
            bufs: Vec::new(),
            shms: Vec::new(),
        };
        let mut op = engine.new_op(kind, 1);
        op.pending.extend(
            [(0, big), (big, total)]
                .into_iter()
                .enumerate()
                .map(|(idx, (a, b))| Item {
                    idx,
                    data: ItemData::Range(a, b),
                    tries: 0,
                    arrays: Vec::new(),
                }),
        );
        engine.round(&mut op, &mut || None, false).expect("round");
        assert!(op.pending.is_empty(), "both chunks went to the worker");
        let w = engine.slots.iter().flatten().next().expect("a worker");
        let (first, _) = w.sent.id_range().expect("two tasks held");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while w.control.current().0 != first || !w.control.current().1 {
            assert!(
                std::time::Instant::now() < deadline,
                "chunk 0 never started"
            );
            std::thread::yield_now();
        }
        let item = engine.take_back(&mut op).expect("chunk 1 taken back");
        assert!(matches!(item.data, ItemData::Range(a, b) if (a, b) == (big, total)));
        assert!(
            engine.take_back(&mut op).is_none(),
            "the last chunk held is taken back already"
        );
        let mut parts = [None, Some(step.run_chunk(big..total).expect("chunk 1"))];
        if kill {
            engine.slots[0].as_mut().expect("the worker").kill();
        }
        while !op.finished() {
            engine.round(&mut op, &mut || None, true).expect("round");
            while let Some((i, r)) = op.ready.pop_front() {
                match r {
                    Ok(Payload::Partial(p)) => {
                        assert!(parts[i].replace(p).is_none(), "chunk {i} ran twice");
                    }
                    // The chunk it was running is the crash's; the one taken back is not
                    // the worker's any more.
                    Err(PoolError::Crashed { task: 0, .. }) if kill => {
                        parts[0] = Some(step.run_chunk(0..big).expect("chunk 0"));
                    }
                    other => panic!("chunk {i}: {other:?}"),
                }
            }
        }
        assert_eq!(engine.taken_back, 1);
        assert!(
            op.ready.is_empty() && op.pending.is_empty(),
            "nothing runs again"
        );
        if !kill {
            // The worker's answer to the chunk taken back: it did not run it.
            while engine.slots[0].as_ref().is_some_and(|w| !w.sent.is_empty()) {
                engine.round(&mut op, &mut || None, true).expect("round");
            }
            let w = engine.slots[0].as_ref().expect("the same worker");
            assert_eq!(w.control.totals().1, 1, "the worker ran one chunk");
        }
        drop(engine);
        let serial = kernelpool_kernels::Serial.run(&step).expect("serial");
        let mut total_partial = Partial::identity(KernelName::Pi);
        for p in parts {
            total_partial.combine(KernelName::Pi, &p.expect("every chunk ran"));
        }
        assert_eq!(total_partial, serial);
        // The worker passed over the chunk taken back, and goes on serving steps.
        for _ in 0..20 {
            assert_eq!(
                pool.run(&pi_step(5000)).expect("step"),
                kernelpool_kernels::Serial
                    .run(&pi_step(5000))
                    .expect("serial")
            );
        }
        if !kill {
            assert_eq!(pool.pids().expect("pids"), pid, "no worker was replaced");
        }
    }

    #[test]
    fn a_step_the_caller_takes_part_in_goes_to_no_more_workers_than_leave_it_a_cpu() {
        let serial = kernelpool_kernels::Serial;
        for (cores, used) in [(1, 1), (2, 1), (3, 2), (8, 3)] {
            let pool = Processes::builder()
                .workers(3)
                .cores(cores)
                .build()
                .expect("pool");
            for samples in [1u64, 2, 7, 64, 1000] {
                let step = pi_step(samples);
                assert_eq!(
                    pool.run(&step).expect("step"),
                    serial.run(&step).expect("serial"),
                    "{samples} samples, {cores} cores"
                );
            }
            let given = assigned(&pool);
            assert!(
                given[..used].iter().all(|&n| n > 0) && given[used..].iter().all(|&n| n == 0),
                "{cores} cores: tasks per worker {given:?}, expected the first {used} only"
            );
        }
    }

    #[test]
    fn chunks_are_sized_for_the_processes_that_run_them() {
        let pool = Processes::builder()
            .workers(3)
            .cores(2)
            .build()
            .expect("pool");
        // A built-in kernel: the caller and one worker; a shared object's: three workers.
        assert_eq!(pool.chunk_for(1200), default_chunk(1200, 2));
        assert_eq!(pool.chunk_of(1200, false), default_chunk(1200, 3));
        let off = Processes::builder()
            .workers(3)
            .cores(2)
            .caller_runs_chunks(false)
            .build()
            .expect("pool");
        assert_eq!(off.chunk_for(1200), default_chunk(1200, 3));
    }

    #[test]
    fn a_step_of_one_chunk_runs_in_the_caller_and_without_it_in_a_worker() {
        for (caller, sent) in [(true, 0), (false, 1)] {
            let pool = Processes::builder()
                .workers(2)
                .caller_runs_chunks(caller)
                .chunk(1_000_000)
                .build()
                .expect("pool");
            let step = pi_step(1000);
            assert_eq!(
                pool.run(&step).expect("step"),
                kernelpool_kernels::Serial.run(&step).expect("serial")
            );
            assert_eq!(assigned(&pool).iter().sum::<u64>(), sent, "caller {caller}");
        }
    }

    #[test]
    fn without_the_caller_a_step_goes_to_every_worker() {
        let pool = Processes::builder()
            .workers(3)
            .cores(2)
            .caller_runs_chunks(false)
            .build()
            .expect("pool");
        let step = pi_step(10_000);
        pool.run(&step).expect("step");
        let given = assigned(&pool);
        assert!(given.iter().all(|&n| n > 0), "tasks per worker {given:?}");
    }

    #[test]
    fn a_panic_mid_step_stops_the_workers_writing_its_buffers_before_it_unwinds_out() {
        // Workers only, so that both hold chunks whatever the number of CPUs.
        let pool = Processes::builder()
            .workers(2)
            .caller_runs_chunks(false)
            .build()
            .expect("pool");
        let before = pool.pids().expect("pids");
        let n = 4000u64;
        let kernel = Kernel::get(KernelName::Mandelbrot, Lang::C);
        let mut out = pool
            .alloc(Elem::U8, (n * n.div_ceil(8)) as usize, "bitmap")
            .expect("buffer");
        {
            let step =
                Step::new(kernel.clone(), StepArgs::new(n, n), vec![&mut out]).expect("step");
            PANIC_MID_STEP.set(true);
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| pool.run(&step)));
            assert!(r.is_err(), "the panic unwinds out of run");
        }
        // The workers that held chunks are gone (killed and reaped) ...
        for pid in &before {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} still exists after the step unwound"
            );
        }
        // ... so nothing writes into the buffer any more.
        let snapshot = out.as_slice::<u8>().expect("u8").to_vec();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            snapshot == out.as_slice::<u8>().expect("u8"),
            "the buffer changed"
        );
        // The pool is still usable, with new workers.
        let step = Step::new(kernel, StepArgs::new(64, 64), vec![&mut out]).expect("step");
        pool.run(&step).expect("a step after the panic");
        assert!(
            pool.pids()
                .expect("pids")
                .iter()
                .all(|p| !before.contains(p))
        );
    }
}
