//! The benchmark programs: each kernel's driver (allocation, the loop of parallel steps,
//! the serial epilogue) and its canonical output, formatted once, here, for every language.
//!
//! A program runs on any [`Executor`]; its stdout is the same for all of them.

use crate::buffer::{Buffer, Elem, Element};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::registry::{Kernel, KernelName};
use crate::step::{self, Step, StepArgs, factorial};
use std::time::{Duration, Instant};

/// Loop trips of the `seed` example per argument.
pub const SEED_ITERS: i64 = 10_000_000;
/// Seed of the `pi` sample stream unless one is given.
pub const PI_SEED: u64 = 1234567;
/// STREAM's scalar.
pub const STREAM_SCALAR: f64 = 3.0;
/// STREAM's repetitions.
pub const STREAM_NTIMES: usize = 10;
/// laplace stops once the largest change of a sweep is at most this...
pub const LAPLACE_TOL: f64 = 1.0e-6;
/// ... or after this many sweeps.
pub const LAPLACE_MAX_ITERS: u64 = 1000;
/// laplace prints the sweep number and its error every this many sweeps, from sweep 0.
pub const LAPLACE_PRINT_EVERY: u64 = 100;

/// What to run besides the kernel and N: build it with [`Options::new`] and its setters.
///
/// ```
/// use kernelpool_kernels::Options;
/// let opts = Options::new().n(64).systems(4);
/// assert_eq!((opts.n, opts.systems), (Some(64), 4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// N (kernel specific); `None` for the kernel's reference size.
    pub n: Option<u64>,
    /// nbody: number of independent systems (1 = the published problem).
    pub systems: u64,
    /// pi: seed of the sample stream.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            n: None,
            systems: 1,
            seed: PI_SEED,
        }
    }
}

impl Options {
    /// The defaults: the kernel's reference N, one nbody system, [`PI_SEED`].
    pub fn new() -> Options {
        Options::default()
    }

    /// Problem size N.
    #[must_use]
    pub fn n(mut self, n: u64) -> Options {
        self.n = Some(n);
        self
    }

    /// nbody: number of independent systems.
    #[must_use]
    pub fn systems(mut self, systems: u64) -> Options {
        self.systems = systems;
        self
    }

    /// pi: seed of the sample stream.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Options {
        self.seed = seed;
        self
    }
}

/// Result of a program run. Only programs make one; fields may be added.
///
/// ```compile_fail,E0639
/// # use kernelpool_kernels::programs::Outcome;
/// let o = Outcome { stdout: vec![], notes: vec![], elapsed: std::time::Duration::ZERO };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The canonical output (what `kpool run` prints on stdout).
    pub stdout: Vec<u8>,
    /// Human-oriented extra lines (bandwidth, ...), for stderr.
    pub notes: Vec<String>,
    /// Time spent in the kernel steps (allocation and formatting excluded).
    pub elapsed: Duration,
}

/// The size each kernel's reference output was published for (used when N is not given).
pub fn reference_n(kernel: KernelName) -> u64 {
    match kernel {
        KernelName::Seed => 3,
        KernelName::Nbody => 1000,
        KernelName::Spectralnorm => 100,
        KernelName::Mandelbrot => 200,
        KernelName::Fannkuch => 7,
        KernelName::Triad => 1_000_000,
        KernelName::Pi => 1_000_000,
        // No published output: the size of the classic example.
        KernelName::Laplace => 1024,
        // Not a program (validate refuses it); N = 1 is a size every kernel may take.
        KernelName::Custom(_) => 1,
    }
}

/// What N means for each kernel, for help texts.
pub fn n_meaning(kernel: KernelName) -> &'static str {
    match kernel {
        KernelName::Seed => "number of arguments (1..=N)",
        KernelName::Nbody => "time steps",
        KernelName::Spectralnorm => "matrix order",
        KernelName::Mandelbrot => "image width and height",
        KernelName::Fannkuch => "permutation length (1..=12)",
        KernelName::Triad => "array length",
        KernelName::Pi => "samples",
        KernelName::Laplace => "grid width and height",
        KernelName::Custom(_) => "the kernel's own (it has its own signature)",
    }
}

/// Check N (and the options) before anything is allocated; returns N.
///
/// # Errors
/// [`Error::InvalidSize`] when N is outside the kernel's bounds ([`step::max_n`]) or the
/// nbody systems are 0 or too many; [`Error::TooLarge`] when the buffers would not fit in
/// the memory available now; [`Error::NoProgram`] for a kernel with a signature of its own.
pub fn validate(kernel: KernelName, opts: &Options) -> Result<u64> {
    if !kernel.is_builtin() {
        return Err(Error::NoProgram {
            kernel: kernel.name().to_string(),
        });
    }
    let n = opts.n.unwrap_or_else(|| reference_n(kernel));
    step::check_n(kernel, n)?;
    if kernel == KernelName::Nbody && !(1..=step::max_systems()).contains(&opts.systems) {
        return Err(Error::InvalidSize {
            kernel: kernel.name(),
            n,
            reason: format!(
                "--systems {} is outside 1..={}",
                opts.systems,
                step::max_systems()
            ),
        });
    }
    let bytes: u128 = match kernel {
        KernelName::Seed => 8 * n as u128,
        KernelName::Nbody => 16 * opts.systems as u128,
        KernelName::Spectralnorm => 3 * 8 * n as u128,
        KernelName::Mandelbrot => n as u128 * n.div_ceil(8) as u128,
        KernelName::Triad => 3 * 8 * n as u128,
        KernelName::Laplace => 2 * 8 * n as u128 * n as u128,
        KernelName::Fannkuch | KernelName::Pi | KernelName::Custom(_) => 0,
    };
    crate::buffer::check_fits(bytes, &format!("the buffers of {kernel} N={n}"))?;
    Ok(n)
}

/// Items of every step of `kernel`'s program for N = `n` (each program's steps all have
/// the same number of items).
pub fn step_items(kernel: KernelName, n: u64, opts: &Options) -> u64 {
    match kernel {
        KernelName::Nbody => opts.systems,
        KernelName::Fannkuch => factorial(n).unwrap_or(u64::MAX),
        _ => n,
    }
}

/// A buffer from `exec`, checked to be what was asked for.
fn alloc(exec: &dyn Executor, elem: Elem, len: u64, what: &str) -> Result<Buffer> {
    let too_large = || Error::TooLarge {
        what: what.to_string(),
        bytes: len as u128 * elem.size() as u128,
        available: crate::buffer::available_memory(),
        total: crate::buffer::physical_memory(),
    };
    let len = usize::try_from(len).map_err(|_| too_large())?;
    let buf = exec.alloc(elem, len, what)?;
    if buf.elem() != elem || buf.len() != len {
        return Err(Error::BadMemory {
            what: what.to_string(),
            elem,
            len,
            bytes: buf.memory().bytes(),
            reason: format!(
                "{}'s alloc returned {} x {:?}",
                exec.describe(),
                buf.len(),
                buf.elem()
            ),
        });
    }
    Ok(buf)
}

/// The contents of a buffer made by [`alloc`] (its element type is checked there).
fn view<T: Element>(buf: &Buffer) -> Result<&[T]> {
    buf.as_slice::<T>().ok_or_else(|| Error::BadMemory {
        what: "a program buffer".into(),
        elem: buf.elem(),
        len: buf.len(),
        bytes: buf.memory().bytes(),
        reason: format!("not a buffer of {:?}", T::ELEM),
    })
}

/// Run `kernel`'s program on `exec`.
///
/// # Errors
/// Those of [`validate`]; [`Executor::check_items`]'s refusal of the step size (before
/// anything is allocated); allocation errors ([`Error::TooLarge`], [`Error::AllocFailed`],
/// [`Error::BadMemory`] when the executor's `alloc` returns another element type or
/// length); the kernel's and the executor's errors ([`Error::KernelFailed`],
/// [`Error::Executor`]); [`Error::Validation`] when STREAM's check fails.
pub fn run(kernel: Kernel, opts: &Options, exec: &dyn Executor) -> Result<Outcome> {
    let name = kernel.name();
    let n = validate(name, opts)?;
    exec.check_items(step_items(name, n, opts))?;
    let mut out = String::new();
    let mut notes = Vec::new();
    let mut stdout_bytes = Vec::new();
    let elapsed;
    match name {
        KernelName::Seed => {
            let mut buf = alloc(exec, Elem::I64, n, "seed results")?;
            let mut args = StepArgs::new(n, n);
            args.iparam[0] = SEED_ITERS;
            let t = Instant::now();
            exec.run(&Step::new(kernel.clone(), args, vec![&mut buf])?)?;
            exec.gather(&mut buf)?;
            elapsed = t.elapsed();
            for v in view::<i64>(&buf)? {
                out += &format!("{v}\n");
            }
        }
        KernelName::Nbody => {
            let systems = opts.systems;
            let mut buf = alloc(exec, Elem::F64, 2 * systems, "nbody energies")?;
            let mut args = StepArgs::new(n, systems);
            // n <= i64::MAX (validate): the step count every language reads as an int64.
            args.iparam[0] = n as i64;
            let t = Instant::now();
            exec.run(&Step::new(kernel.clone(), args, vec![&mut buf])?)?;
            exec.gather(&mut buf)?;
            elapsed = t.elapsed();
            for e in view::<f64>(&buf)? {
                out += &format!("{e:.9}\n");
            }
        }
        KernelName::Spectralnorm => {
            let mut u = alloc(exec, Elem::F64, n, "spectralnorm u")?;
            let mut v = alloc(exec, Elem::F64, n, "spectralnorm v")?;
            let mut tmp = alloc(exec, Elem::F64, n, "spectralnorm tmp")?;
            if let Some(u) = u.as_mut_slice::<f64>() {
                u.fill(1.0);
            }
            let t = Instant::now();
            for _ in 0..10 {
                // v = A^T A u, then u = A^T A v: four parallel row steps.
                at_a_times(&kernel, n, &mut u, &mut tmp, &mut v, exec)?;
                at_a_times(&kernel, n, &mut v, &mut tmp, &mut u, exec)?;
            }
            exec.gather(&mut u)?;
            exec.gather(&mut v)?;
            elapsed = t.elapsed();
            let (u, v) = (view::<f64>(&u)?, view::<f64>(&v)?);
            let (mut vbv, mut vv) = (0.0f64, 0.0f64);
            for (ui, vi) in u.iter().zip(v) {
                vbv += ui * vi;
                vv += vi * vi;
            }
            out += &format!("{:.9}\n", (vbv / vv).sqrt());
        }
        KernelName::Mandelbrot => {
            let mut buf = alloc(exec, Elem::U8, n * n.div_ceil(8), "mandelbrot bitmap")?;
            let t = Instant::now();
            exec.run(&Step::new(
                kernel.clone(),
                StepArgs::new(n, n),
                vec![&mut buf],
            )?)?;
            exec.gather(&mut buf)?;
            elapsed = t.elapsed();
            stdout_bytes.extend_from_slice(format!("P4\n{n} {n}\n").as_bytes());
            stdout_bytes.extend_from_slice(view::<u8>(&buf)?);
        }
        KernelName::Fannkuch => {
            let items = step_items(name, n, opts);
            let t = Instant::now();
            let p = exec.run(&Step::new(kernel.clone(), StepArgs::new(n, items), vec![])?)?;
            elapsed = t.elapsed();
            out += &format!("{}\nPfannkuchen({n}) = {}\n", p.0[0], p.0[1]);
        }
        KernelName::Triad => {
            let (out_text, note, t) = stream(&kernel, n, exec)?;
            out = out_text;
            notes.extend(note);
            elapsed = t;
        }
        KernelName::Pi => {
            let mut args = StepArgs::new(n, n);
            // The seed's bits, as the kernels read them (uint64 in C).
            args.iparam[0] = opts.seed as i64;
            let t = Instant::now();
            let p = exec.run(&Step::new(kernel.clone(), args, vec![])?)?;
            elapsed = t.elapsed();
            let hits = p.0[0];
            out += &format!("{hits}\n{:.9}\n", 4.0 * hits as f64 / n as f64);
        }
        KernelName::Laplace => {
            let (text, t) = laplace(&kernel, n, exec)?;
            out = text;
            elapsed = t;
        }
        // Refused by `validate` above.
        KernelName::Custom(_) => {
            return Err(Error::NoProgram {
                kernel: name.name().to_string(),
            });
        }
    }
    if stdout_bytes.is_empty() {
        stdout_bytes = out.into_bytes();
    }
    if !exec.is_root() {
        // Only the root gathered the buffers: what was formatted here means nothing.
        stdout_bytes.clear();
        notes.clear();
    }
    Ok(Outcome {
        stdout: stdout_bytes,
        notes,
        elapsed,
    })
}

/// dst = A^T (A src), each product one parallel step over rows.
fn at_a_times(
    kernel: &Kernel,
    n: u64,
    src: &mut Buffer,
    tmp: &mut Buffer,
    dst: &mut Buffer,
    exec: &dyn Executor,
) -> Result<()> {
    let mut args = StepArgs::new(n, n);
    args.iparam[0] = 0;
    exec.run(&Step::new(kernel.clone(), args, vec![src, tmp])?)?;
    args.iparam[0] = 1;
    exec.run(&Step::new(kernel.clone(), args, vec![tmp, dst])?)?;
    Ok(())
}

/// laplace: Jacobi sweeps until the largest change is at most [`LAPLACE_TOL`] or after
/// [`LAPLACE_MAX_ITERS`] sweeps, printing `"%5d, %0.6f\n"` (sweep, error) every
/// [`LAPLACE_PRINT_EVERY`] sweeps from sweep 0.
///
/// The classic loop computes `Anew` from `A`, then copies `Anew`'s interior back into `A`.
/// Here two grids take turns (each sweep reads one and writes the other, boundaries
/// included), which gives the same iterates without the copy; each sweep is one parallel
/// step over rows, over buffers that persist between steps.
fn laplace(kernel: &Kernel, n: u64, exec: &dyn Executor) -> Result<(String, Duration)> {
    let mut a = alloc(exec, Elem::F64, n * n, "laplace grid")?;
    let mut b = alloc(exec, Elem::F64, n * n, "laplace grid (next)")?;
    // All zero but column 0, fixed at 1.0 in every row (of both grids: boundaries are
    // copied by every sweep, so either may be the one read).
    for grid in [&mut a, &mut b] {
        if let Some(g) = grid.as_mut_slice::<f64>() {
            g.iter_mut().step_by(n as usize).for_each(|v| *v = 1.0);
        }
    }
    let mut out = String::new();
    let t = Instant::now();
    let mut error = 1.0f64;
    let mut iter = 0u64;
    while error > LAPLACE_TOL && iter < LAPLACE_MAX_ITERS {
        let (old, new) = if iter.is_multiple_of(2) {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let p = exec.run(&Step::new(
            kernel.clone(),
            StepArgs::new(n, n),
            vec![old, new],
        )?)?;
        // A grid without interior points (N <= 2) changes nowhere: its error is 0.
        error = p.float(0).max(0.0);
        if iter.is_multiple_of(LAPLACE_PRINT_EVERY) {
            out += &format!("{iter:5}, {error:.6}\n");
        }
        iter += 1;
    }
    Ok((out, t.elapsed()))
}

/// STREAM: init, then NTIMES x (copy, scale, add, triad), then STREAM's validation.
fn stream(kernel: &Kernel, n: u64, exec: &dyn Executor) -> Result<(String, Vec<String>, Duration)> {
    let mut a = alloc(exec, Elem::F64, n, "STREAM a")?;
    let mut b = alloc(exec, Elem::F64, n, "STREAM b")?;
    let mut c = alloc(exec, Elem::F64, n, "STREAM c")?;
    let mut args = StepArgs::new(n, n);
    args.fparam[0] = STREAM_SCALAR;
    exec.run(&Step::new(
        kernel.clone(),
        args,
        vec![&mut a, &mut b, &mut c],
    )?)?;
    const NAMES: [&str; 4] = ["Copy", "Scale", "Add", "Triad"];
    const WORDS: [f64; 4] = [2.0, 2.0, 3.0, 3.0];
    let mut best = [f64::INFINITY; 4];
    let total = Instant::now();
    for k in 0..STREAM_NTIMES {
        for (op, slot) in best.iter_mut().enumerate() {
            args.iparam[0] = op as i64 + 1;
            let t = Instant::now();
            exec.run(&Step::new(
                kernel.clone(),
                args,
                vec![&mut a, &mut b, &mut c],
            )?)?;
            let dt = t.elapsed().as_secs_f64();
            // STREAM skips the first iteration when it reports rates.
            if k > 0 {
                *slot = slot.min(dt);
            }
        }
    }
    for buf in [&mut a, &mut b, &mut c] {
        exec.gather(buf)?;
    }
    let elapsed = total.elapsed();
    let notes = NAMES
        .iter()
        .zip(WORDS)
        .zip(best)
        .map(|((name, words), t)| {
            let bytes = words * 8.0 * n as f64;
            format!(
                "{name}: best rate {:.1} MB/s ({:.6} s)",
                1e-6 * bytes / t,
                t
            )
        })
        .collect();
    let text = if exec.is_root() {
        stream_validate(view(&a)?, view(&b)?, view(&c)?)?
    } else {
        String::new()
    };
    Ok((text, notes, elapsed))
}

/// STREAM's checkSTREAMresults: average absolute error of each array against the value the
/// recurrence gives, relative to it, must be at most 1e-13.
///
/// # Errors
/// [`Error::Validation`] naming each array that fails.
pub fn stream_validate(a: &[f64], b: &[f64], c: &[f64]) -> Result<String> {
    let (mut aj, mut bj, mut cj) = (1.0f64, 2.0f64, 0.0f64);
    aj *= 2.0;
    for _ in 0..STREAM_NTIMES {
        cj = aj;
        bj = STREAM_SCALAR * cj;
        cj = aj + bj;
        aj = bj + STREAM_SCALAR * cj;
    }
    let avg = |xs: &[f64], x: f64| xs.iter().map(|v| (v - x).abs()).sum::<f64>() / xs.len() as f64;
    let epsilon = 1.0e-13;
    let mut failures = Vec::new();
    for (name, xs, x) in [("a", a, aj), ("b", b, bj), ("c", c, cj)] {
        let err = avg(xs, x);
        if (err / x).abs() > epsilon {
            failures.push(format!(
                "Failed Validation on array {name}[], AvgRelAbsErr > epsilon (1.000000e-13): expected {x}, avg abs error {err:e}"
            ));
        }
    }
    if failures.is_empty() {
        Ok("Solution Validates: avg error less than 1.000000e-13 on all three arrays\n".into())
    } else {
        Err(Error::Validation(failures.join("; ")))
    }
}
