//! kernelpool's benchmark harness: the matrix of kernel × variant × language × executor ×
//! workers, every measured run verified, timed with honest statistics, and reported as a
//! table, JSON, CSV, `report.md` and plots (SVG and PNG). `kpool bench` is a thin front
//! end over [`run`].
//!
//! ```no_run
//! use kernelpool_bench::{Config, matrix::{Selection, Sizes}};
//! use kernelpool_kernels::KernelName;
//!
//! let mut config = Config::quick();
//! config.selection.kernels = vec![KernelName::Mandelbrot];
//! config.selection.workers = vec![1, 2];
//! let report = kernelpool_bench::run(&config)?;
//! print!("{}", kernelpool_bench::output::tables(&report));
//! assert_eq!(report.failures, 0);
//! # Ok::<(), String>(())
//! ```
//!
//! How it measures (the module docs say more):
//! - every executor is started before any timing; the timed region is the kernel steps
//!   of one program run ([`kernelpool_kernels::programs::run`]'s `elapsed`);
//! - every run, warm-up included, is checked: byte for byte against the published output
//!   at the published size where one is vendored, and bit for bit against serial Rust at
//!   the benchmark size ([`measure`]); a wrong cell is FAILED with the difference;
//! - the cells of one (kernel, language) are measured interleaved, round-robin, in a
//!   rotating order, after a warm-up; repetitions fill a time budget ([`stats`]);
//! - medians with min–max and a bootstrap interval; speedups from paired rounds; a cell
//!   whose interval is wider than the noise threshold is flagged and not ranked;
//! - the machine's facts and the load of other processes during the run ([`machine`]);
//!   STREAM triad peak ([`stream`]); the course's seed section beside Python ([`seed`]).

pub mod machine;
pub mod matrix;
pub mod measure;
pub mod mpi_job;
pub mod output;
pub mod plots;
pub mod report;
pub mod seed;
pub mod stats;
pub mod stream;

use machine::{CpuSnapshot, Load, Machine};
use matrix::{Group, Selection, Sizes};
use measure::{CellResult, Effort, Executors};
use serde::Serialize;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to run.
    pub selection: Selection,
    /// How hard to measure.
    pub effort: Effort,
    /// Items per chunk for the pools (default: theirs).
    pub chunk: Option<u64>,
    /// Show the progress bar on stderr.
    pub progress: bool,
    /// Measure the STREAM triad peak.
    pub stream_peak: bool,
    /// The seed section (none: skipped).
    pub seed: Option<seed::SeedConfig>,
    /// How to start the MPI cells' jobs (none: a selection with MPI cells fails them).
    pub mpi: Option<mpi_job::MpiLauncher>,
}

impl Config {
    /// The quick run's defaults (what `kpool bench` does), seed section included with
    /// Python found as [`seed::find_python`] finds it.
    pub fn quick() -> Config {
        Config {
            selection: Selection::default(),
            effort: Effort::QUICK,
            chunk: None,
            progress: true,
            stream_peak: true,
            seed: Some(seed::SeedConfig::new(Sizes::Quick)),
            mpi: None,
        }
    }

    /// The full run's defaults.
    pub fn full() -> Config {
        let mut c = Config::quick();
        c.selection.sizes = Sizes::Full;
        c.selection.workers = matrix::default_workers(Sizes::Full);
        c.effort = Effort::FULL;
        c.seed = Some(seed::SeedConfig::new(Sizes::Full));
        c
    }
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The load others put on it during the run.
    pub load: Load,
    /// Quick or full.
    pub sizes: Sizes,
    /// Measurement effort.
    pub effort: Effort,
    /// Median time of the smallest program run (seed, N = 1, serial): what the timed
    /// region costs around a kernel, seconds.
    pub timing_floor_s: f64,
    /// STREAM triad peak (when measured).
    pub peak: Option<stream::Peak>,
    /// Every cell of the matrix.
    pub cells: Vec<CellResult>,
    /// The seed section (when run).
    pub seed: Option<seed::SeedSection>,
    /// Cells (and seed rows) that failed verification.
    pub failures: usize,
}

/// Run the matrix of `config`.
///
/// # Errors
/// A message when a pool cannot start or the selection is empty or invalid.
pub fn run(config: &Config) -> Result<Report, String> {
    let machine = Machine::detect();
    let groups = config.selection.groups(machine.llc_bytes)?;
    run_groups(config, machine, groups)
}

/// Run `groups` (as [`Config::selection`] would make them, or changed: a test puts a
/// wrong kernel in one).
///
/// # Errors
/// As [`run`].
pub fn run_groups(config: &Config, machine: Machine, groups: Vec<Group>) -> Result<Report, String> {
    for g in &groups {
        kernelpool_kernels::programs::validate(
            g.kernel,
            &kernelpool_kernels::Options::new().n(g.n).systems(g.systems),
        )
        .map_err(|e| e.to_string())?;
    }
    let start = CpuSnapshot::now();
    let mut specs: Vec<_> = groups.iter().flat_map(|g| g.execs.clone()).collect();
    if let Some(s) = &config.seed {
        specs.extend(s.execs.clone());
    }
    specs.sort();
    specs.dedup();
    // MPI cells start a job of their own, per cell, before their group is timed.
    specs.retain(|s| s.kind != matrix::ExecKind::Mpi);
    // Every pool starts here, before anything is timed.
    let execs = Executors::start(&specs, config.chunk)?;
    let timing_floor_s = measure::timing_floor();
    let total: u64 = groups.iter().map(|g| g.execs.len() as u64).sum();
    let bar = measure::progress(total, config.progress);
    let peak = if config.stream_peak {
        bar.set_message("STREAM triad peak");
        Some(stream::measure(machine.llc_bytes, machine.cores, 3)?)
    } else {
        None
    };
    let mut cells = Vec::new();
    let mut wants = std::collections::HashMap::new();
    for g in &groups {
        let want = wants.entry((g.kernel, g.n, g.systems)).or_insert_with(|| {
            bar.set_message(format!("{} serial Rust reference", g.kernel));
            measure::serial_rust_output(g.kernel, g.n, g.systems)
        });
        cells.extend(measure::measure_group(
            g,
            want,
            &execs,
            &measure::MpiCells {
                launcher: config.mpi.as_ref(),
                chunk: config.chunk,
            },
            &config.effort,
            &bar,
        ));
    }
    if let Some(p) = &peak {
        for c in cells.iter_mut().filter(|c| measure::memory_bound(c.kernel)) {
            if let Some(r) = c.rate.as_mut() {
                r.of_peak = Some(r.per_s / p.triad_bps);
            }
        }
    }
    measure::mark_winners(&mut cells);
    let seed = config.seed.as_ref().map(|s| seed::run(s, &execs, &bar));
    bar.finish_and_clear();
    let load = Load::between(&start, &CpuSnapshot::now());
    let failures =
        cells.iter().filter(|c| !c.ok()).count() + seed.as_ref().map_or(0, |s| s.failures());
    Ok(Report {
        machine,
        load,
        sizes: config.selection.sizes,
        effort: config.effort,
        timing_floor_s,
        peak,
        cells,
        seed,
        failures,
    })
}
