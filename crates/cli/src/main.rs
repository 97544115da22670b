//! `kpool`: run, benchmark and inspect kernelpool's kernels from the command line.
//!
//! ```text
//! kpool run mandelbrot --lang fortran --n 200 > out.pbm
//! kpool run nbody --lang cpp --exec threads --workers 2
//! kpool bench --quick
//! kpool jit examples/jit/seed.c --symbol f --map 1,2,3 --exec processes
//! kpool info
//! ```
//! The binary is also the process pool's worker: `kernelpool::init()` comes first in `main`.

use clap::{Parser, Subcommand, ValueEnum};
use kernelpool::kernels::{
    Executor, Kernel, KernelName, Lang, Options, Serial, Variant, ffi, programs, reference,
};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod jit;
mod mpi_serve;

/// What a build without the `mpi` feature says when asked for MPI.
pub const NO_MPI: &str = "this kpool was built without MPI: build it with `cargo build --release --features mpi` (needs Open MPI: scripts/setup.sh --mpi)";

#[derive(Parser, Debug)]
#[command(
    name = "kpool",
    version,
    about = "Run and compare numerical kernels in C, C++, Fortran and Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one kernel program; its canonical output goes to stdout, timings to stderr.
    Run(RunArgs),
    /// The cross-language benchmark: every kernel x language x executor, verified and timed.
    Bench(bench::BenchArgs),
    /// Compile a C, C++ or Fortran source at run time (cached) and run it on any executor.
    Jit(jit::JitArgs),
    /// List kernels, languages and the compilers that built them.
    Info,
    /// The ranks of one MPI cell of `kpool bench` (started by it under mpirun).
    #[command(hide = true)]
    MpiServe(mpi_serve::MpiServeArgs),
}

/// Which executor runs the kernel steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecKind {
    /// One call on the calling thread.
    Serial,
    /// A rayon thread pool owned by the run.
    Threads,
    /// A pool of worker processes sharing the buffers through shared memory.
    Processes,
    /// The ranks of an MPI job (`mpirun -n N kpool ... --exec mpi`; alone: one rank).
    /// Needs a build with the `mpi` feature.
    Mpi,
}

/// Worker options shared by `run` and `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// Number of workers (threads or processes); default: the number of CPUs.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Items per chunk; default ceil(items / (4 x workers)).
    #[arg(long)]
    pub chunk: Option<u64>,
    /// mpi: threads that run each rank's chunks (default 1; one rank per node with a
    /// thread per core is the hybrid layout).
    #[arg(long)]
    pub threads_per_rank: Option<usize>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Kernel: seed, nbody, spectralnorm, mandelbrot, fannkuch, triad, pi.
    kernel: String,
    /// Language: c, cpp, fortran, rust.
    #[arg(long, default_value = "c")]
    lang: String,
    /// Variant: plain (the reference algorithm) or tuned (same answers, written for
    /// speed; `kpool info` lists which kernels have one in which language).
    #[arg(long, default_value = "plain")]
    variant: String,
    /// Problem size (see `kpool info`); default: the size of the published reference output.
    #[arg(long)]
    n: Option<u64>,
    /// nbody: number of independent systems (the ensemble form); 1 is the published problem.
    #[arg(long, default_value_t = 1)]
    systems: u64,
    /// pi: seed of the counter-based splitmix64 stream.
    #[arg(long, default_value_t = programs::PI_SEED)]
    seed: u64,
    /// Executor.
    #[arg(long = "exec", value_enum, default_value = "serial")]
    exec_kind: ExecKind,
    #[command(flatten)]
    exec: ExecArgs,
}

/// Build the executor asked for.
///
/// # Errors
/// A one-line message when `--workers` or `--chunk` is 0 or the pool cannot start.
pub fn make_executor(args: &ExecArgs, kind: ExecKind) -> Result<Box<dyn Executor>, String> {
    if args.workers == Some(0) {
        return Err("--workers must be at least 1".into());
    }
    if args.chunk == Some(0) {
        return Err("--chunk must be at least 1".into());
    }
    if args.threads_per_rank == Some(0) {
        return Err("--threads-per-rank must be at least 1".into());
    }
    if args.threads_per_rank.is_some() && kind != ExecKind::Mpi {
        return Err("--threads-per-rank applies to --exec mpi only".into());
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match kind {
        ExecKind::Serial => Ok(Box::new(Serial)),
        ExecKind::Threads => {
            let mut b = kernelpool::pool::Threads::builder().workers(workers);
            if let Some(c) = args.chunk {
                b = b.chunk(c);
            }
            Ok(Box::new(b.build().map_err(|e| e.to_string())?))
        }
        ExecKind::Processes => {
            let mut b = kernelpool::pool::Processes::builder().workers(workers);
            if let Some(c) = args.chunk {
                b = b.chunk(c);
            }
            Ok(Box::new(b.build().map_err(|e| e.to_string())?))
        }
        ExecKind::Mpi => make_mpi(args),
    }
}

#[cfg(feature = "mpi")]
fn make_mpi(args: &ExecArgs) -> Result<Box<dyn Executor>, String> {
    let mut b =
        kernelpool::pool::Mpi::builder().threads_per_rank(args.threads_per_rank.unwrap_or(1));
    if let Some(c) = args.chunk {
        b = b.chunk(c);
    }
    Ok(Box::new(b.build().map_err(|e| e.to_string())?))
}

#[cfg(not(feature = "mpi"))]
fn make_mpi(_: &ExecArgs) -> Result<Box<dyn Executor>, String> {
    Err(NO_MPI.into())
}

fn run(args: &RunArgs) -> Result<ExitCode, String> {
    let kernel = Kernel::by_names_variant(&args.kernel, &args.lang, &args.variant)
        .map_err(|e| e.to_string())?;
    let mut opts = Options::new().systems(args.systems).seed(args.seed);
    opts.n = args.n;
    let n = programs::validate(kernel.name(), &opts).map_err(|e| e.to_string())?;
    let exec = make_executor(&args.exec, args.exec_kind)?;
    // Under MPI only rank 0 prints: the output, and the error every rank shares.
    let root = exec.is_root();
    let outcome = match programs::run(kernel.clone(), &opts, &*exec) {
        Ok(o) => o,
        Err(_) if !root => return Ok(ExitCode::from(2)),
        Err(kernelpool::kernels::Error::Validation(msg)) => {
            eprintln!("kpool: {msg}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            // Printed here, while the executor lives: under MPI the other ranks' exit
            // (after finalising MPI, which waits for this rank) may end the job at once.
            eprintln!("kpool: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if !root {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&outcome.stdout)
        .and_then(|_| out.flush())
        .map_err(|e| format!("writing stdout: {e}"))?;
    eprintln!(
        "kpool: {}/{}/{} N={n} on {}: {}",
        kernel.name(),
        kernel.lang(),
        kernel.variant(),
        exec.describe(),
        fmt_duration(outcome.elapsed)
    );
    for note in &outcome.notes {
        eprintln!("kpool: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds with a unit that fits.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn info() {
    println!("kernelpool {}", env!("CARGO_PKG_VERSION"));
    println!();
    println!(
        "{:<13} {:<28} {:>9}  {:<24}  tuned variant in",
        "kernel", "N means", "reference", "languages (plain)"
    );
    for k in KernelName::ALL {
        let langs: Vec<&str> = Lang::ALL.iter().map(|l| l.name()).collect();
        let tuned: Vec<&str> = Lang::ALL
            .iter()
            .filter(|&&l| Kernel::variants(k, l).contains(&Variant::Tuned))
            .map(|l| l.name())
            .collect();
        let refn = reference::reference_size(k).map_or("-".to_string(), |n| format!("N={n}"));
        println!(
            "{:<13} {:<28} {:>9}  {:<24}  {}",
            k.name(),
            programs::n_meaning(k),
            refn,
            langs.join(", "),
            if tuned.is_empty() {
                "-".to_string()
            } else {
                tuned.join(", ")
            }
        );
    }
    println!("variants: plain (default), tuned (`kpool run ... --variant tuned`)");
    println!();
    println!("compilers (as used to build the kernels):");
    println!("  c        {}", ffi::CC_VERSION);
    println!("  cpp      {}", ffi::CXX_VERSION);
    println!("  fortran  {}", ffi::FC_VERSION);
    println!("  rust     {}", ffi::RUSTC_VERSION);
    println!(
        "native flags: {} {} (Fortran also -fwrapv)",
        ffi::NATIVE_FLAGS,
        ffi::MARCH
    );
    let mpi = if cfg!(feature = "mpi") {
        "mpi"
    } else {
        "(mpi: not built; --features mpi)"
    };
    println!("executors: serial, threads, processes, {mpi}");
}

fn main() -> ExitCode {
    kernelpool::init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(a) => run(a),
        Command::Bench(a) => bench::bench(a),
        Command::Jit(a) => jit::jit(a),
        Command::MpiServe(a) => mpi_serve::serve(a),
        Command::Info => {
            info();
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("kpool: error: {msg}");
            ExitCode::from(2)
        }
    }
}
