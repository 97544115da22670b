//! `kpool bench`: a thin front end over the `kernelpool-bench` harness (options in, table
//! on stdout, progress on stderr, JSON / CSV / report folder out, exit status).

use kernelpool::kernels::KernelName;
use kernelpool_bench::matrix::{self, ExecKind, Impl, Variant};
use kernelpool_bench::{Config, output};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Kernels (default: all but seed, which has its own section; `seed` alone runs only
    /// that section).
    #[arg(long = "kernel", value_delimiter = ',')]
    kernels: Vec<String>,
    /// Implementations: c, cpp, fortran, rust, jit-c (the C kernels compiled at run time;
    /// plain variant only) (default: all).
    #[arg(long = "lang", value_delimiter = ',')]
    langs: Vec<String>,
    /// Kernel variants: plain, tuned (default: both; a language without a tuned kernel
    /// has a plain row only).
    #[arg(long = "variant", value_delimiter = ',')]
    variants: Vec<String>,
    /// Executors: serial, threads, processes, mpi (default: all; mpi when this kpool has
    /// the `mpi` feature and mpirun runs, then only in each kernel's plain C group, since
    /// each MPI cell starts an mpirun job; named here, in every native language's group).
    #[arg(long = "execs", value_delimiter = ',')]
    execs: Vec<String>,
    /// Worker counts for threads and processes (default: all CPUs for the quick run,
    /// 1, 2, 4, ... and all CPUs for --full).
    #[arg(long = "workers", value_delimiter = ',')]
    workers: Vec<usize>,
    /// Quick sizes (the default): every serial cell at least 50 ms on a 2-core machine.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The Benchmarks Game's sizes (long: minutes per kernel).
    #[arg(long)]
    full: bool,
    /// Exactly this many timed rounds per cell (default: adapted to run length).
    #[arg(long)]
    repeat: Option<usize>,
    /// Seconds of measurement each cell should get (decides the rounds).
    #[arg(long)]
    budget: Option<f64>,
    /// N for every kernel chosen.
    #[arg(long)]
    n: Option<u64>,
    /// nbody systems (the ensemble form).
    #[arg(long)]
    systems: Option<u64>,
    /// Items per chunk for the pools.
    #[arg(long)]
    chunk: Option<u64>,
    /// Write the whole report as JSON to this file (`-`: stdout, instead of the table).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the cells as CSV to this file (`-`: stdout, instead of the table).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The report folder (report.md, results.json, results.csv, plots).
    #[arg(long, default_value = "target/kpool-report")]
    out: PathBuf,
    /// Write no report folder.
    #[arg(long)]
    no_report: bool,
    /// No Python or numba rows in the seed section (they say "not available").
    #[arg(long)]
    no_python: bool,
    /// Skip the seed section.
    #[arg(long)]
    no_seed: bool,
    /// Skip measuring the STREAM triad peak.
    #[arg(long)]
    no_peak: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Testing the harness: replace the C kernel of these kernels with one that computes
    /// nothing (JIT-compiled); the run must report them FAILED and exit 1.
    #[arg(long, hide = true, value_delimiter = ',')]
    sabotage: Vec<String>,
}

/// True when `mpirun --version` runs (Open MPI or MPICH on PATH).
fn mpirun_runs() -> bool {
    std::process::Command::new("mpirun")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn parse_kernel(s: &str) -> Result<KernelName, String> {
    s.parse::<KernelName>().map_err(|e| e.to_string())
}

/// `kpool bench`.
///
/// # Errors
/// A one-line message for bad options or a pool that does not start.
pub fn bench(a: &BenchArgs) -> Result<ExitCode, String> {
    let mut config = if a.full {
        Config::full()
    } else {
        Config::quick()
    };
    let all: Vec<KernelName> = KernelName::ALL.to_vec();
    let kernels = matrix::parse_list(&a.kernels, &all, parse_kernel)?;
    let seed_asked = a.kernels.is_empty() || kernels.contains(&KernelName::Seed);
    let sel = &mut config.selection;
    sel.kernels = if a.kernels.is_empty() {
        matrix::default_kernels()
    } else {
        kernels
            .into_iter()
            .filter(|&k| k != KernelName::Seed)
            .collect()
    };
    sel.imps = matrix::parse_list(&a.langs, &Impl::all(), |s| s.parse())?;
    sel.variants = matrix::parse_list(&a.variants, &Variant::ALL, |s| {
        s.parse()
            .map_err(|e: kernelpool::kernels::Error| e.to_string())
    })?;
    // MPI cells by default where this kpool can run them (feature `mpi`, mpirun found).
    let mpi_default = cfg!(feature = "mpi") && mpirun_runs();
    let default_execs: &[ExecKind] = if mpi_default {
        &ExecKind::ALL
    } else {
        &ExecKind::LOCAL
    };
    sel.execs = matrix::parse_list(&a.execs, default_execs, |s| s.parse())?;
    if sel.execs.contains(&ExecKind::Mpi) {
        if !cfg!(feature = "mpi") {
            return Err(format!("--execs mpi: {}", crate::NO_MPI));
        }
        // Asked for by name: in every native group, not only plain C.
        sel.mpi_everywhere = !a.execs.is_empty();
        let exe = std::env::current_exe().map_err(|e| format!("finding kpool itself: {e}"))?;
        config.mpi = Some(kernelpool_bench::mpi_job::MpiLauncher::new(exe));
    }
    if !a.workers.is_empty() {
        if a.workers.contains(&0) {
            return Err("--workers must be at least 1".into());
        }
        sel.workers = a.workers.clone();
    }
    if a.systems == Some(0) {
        return Err("--systems must be at least 1".into());
    }
    if a.chunk == Some(0) {
        return Err("--chunk must be at least 1".into());
    }
    sel.n = a.n;
    sel.systems = a.systems;
    config.chunk = a.chunk;
    if let Some(r) = a.repeat {
        if r == 0 {
            return Err("--repeat must be at least 1".into());
        }
        config.effort.min_reps = r;
        config.effort.max_reps = r;
    }
    if let Some(b) = a.budget {
        if b.is_nan() || b <= 0.0 {
            return Err("--budget must be positive".into());
        }
        config.effort.budget_s = b;
    }
    config.progress = !a.no_progress;
    config.stream_peak = !a.no_peak && config.selection.kernels.contains(&KernelName::Triad);
    if a.no_seed || !seed_asked {
        config.seed = None;
    } else if a.no_python {
        config.seed = config.seed.map(|s| s.without_python("--no-python"));
    }
    if let Some(s) = config.seed.as_mut() {
        if !a.workers.is_empty() || !a.execs.is_empty() {
            s.execs = config.selection.exec_specs();
            // The seed section compares in-process executors only.
            s.execs.retain(|e| e.kind != ExecKind::Mpi);
        }
    }
    let machine = kernelpool_bench::machine::Machine::detect();
    let mut groups = config.selection.groups(machine.llc_bytes)?;
    for name in &a.sabotage {
        let k = parse_kernel(name)?;
        let wrong = kernelpool_bench::measure::wrong_kernel(k)?;
        for g in groups
            .iter_mut()
            .filter(|g| g.kernel == k && g.imp == Impl::Native(kernelpool::kernels::Lang::C))
        {
            g.code = wrong.clone();
        }
    }
    let report = kernelpool_bench::run_groups(&config, machine, groups)?;
    let to_stdout = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if !to_stdout(&a.json) && !to_stdout(&a.csv) {
        print!("{}", output::tables(&report));
        if let Some(s) = &report.seed {
            print!("{}", output::seed_table(s));
        }
    }
    let write = |p: &PathBuf, text: &str| -> Result<(), String> {
        if p.as_os_str() == "-" {
            print!("{text}");
            Ok(())
        } else {
            std::fs::write(p, text).map_err(|e| format!("writing {}: {e}", p.display()))
        }
    };
    if let Some(p) = &a.json {
        write(p, &output::json(&report)?)?;
    }
    if let Some(p) = &a.csv {
        write(p, &output::csv(&report.cells))?;
    }
    if !a.no_report {
        let md = kernelpool_bench::report::write(&report, &a.out)?;
        eprintln!("kpool bench: report in {}", md.display());
    }
    eprintln!(
        "kpool bench: machine {} during the run (others kept {:.2} of {} cores busy)",
        report.load.verdict(),
        report.load.others_cores,
        report.machine.cores
    );
    if report.failures > 0 {
        eprintln!(
            "kpool bench: {} result(s) FAILED verification",
            report.failures
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
