//! Running the matrix: verification of every measured run, warm-up, repetitions adapted
//! to run length, and the cells of a group interleaved round-robin.
//!
//! The timed region is [`programs::run`]'s `elapsed`: the kernel steps only (allocation,
//! buffer set-up, output formatting and STREAM's validation are outside it), and every
//! executor is started before the first measurement. The harness's own work (comparing
//! the output, bookkeeping) happens between runs, outside the timed region.

use crate::matrix::{ExecKind, ExecSpec, Group, Variant};
use crate::mpi_job::{MpiJob, MpiLauncher};
use crate::stats::{self, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use kernelpool_kernels::{Error, Executor, Kernel, KernelName, Lang, Options, Serial};
use kernelpool_kernels::{programs, reference};
use serde::Serialize;
use std::collections::HashMap;

/// How hard to measure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Effort {
    /// Untimed runs of each cell before the rounds (each still verified).
    pub warmup: usize,
    /// Seconds of measurement each cell should get (decides the repetitions).
    pub budget_s: f64,
    /// Fewest rounds.
    pub min_reps: usize,
    /// Most rounds.
    pub max_reps: usize,
    /// A cell whose bootstrap interval of the median is wider than this fraction of the
    /// median is "noisy": shown, never ranked.
    pub noise: f64,
}

impl Effort {
    /// The quick run's.
    pub const QUICK: Effort = Effort {
        warmup: 1,
        budget_s: 0.25,
        min_reps: 5,
        max_reps: 20,
        noise: 0.20,
    };
    /// The full run's.
    pub const FULL: Effort = Effort {
        warmup: 1,
        budget_s: 10.0,
        min_reps: 3,
        max_reps: 20,
        noise: 0.20,
    };
}

/// How a cell's output was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// At the published reference size, byte for byte against the vendored output; at the
    /// benchmark size, bit for bit against serial Rust.
    Reference,
    /// Bit for bit against the serial Rust result at the benchmark size.
    SerialRust,
    /// STREAM's own validation, and bit for bit against serial Rust.
    Stream,
}

impl Check {
    /// Words for the table.
    pub fn label(self) -> &'static str {
        match self {
            Check::Reference => "published + =rust",
            Check::SerialRust => "=serial rust",
            Check::Stream => "STREAM + =rust",
        }
    }
}

/// What a rate counts.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Per second.
    pub per_s: f64,
    /// Unit (`system-steps/s`, `B/s`, ...).
    pub unit: &'static str,
    /// Memory-bound cells: fraction of the machine's measured STREAM triad peak.
    pub of_peak: Option<f64>,
}

/// One measured cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// Kernel.
    pub kernel: KernelName,
    /// Variant.
    pub variant: Variant,
    /// Implementation row (its label).
    pub imp: String,
    /// Language of the code.
    pub lang: Lang,
    /// Executor.
    pub exec: ExecSpec,
    /// `serial`, `threads×2`, ...
    pub exec_label: String,
    /// N.
    pub n: u64,
    /// nbody systems.
    pub systems: u64,
    /// The timed samples, seconds, in round order.
    pub times_s: Vec<f64>,
    /// Their summary (none when the cell failed before any round).
    pub time: Option<Summary>,
    /// Speedup over serial of the same group, from paired rounds.
    pub speedup: Option<Summary>,
    /// Median speedup / workers.
    pub efficiency: Option<f64>,
    /// How its output was checked.
    pub check: Check,
    /// Why it failed (the difference, or the error); `None` when every run was right.
    pub failure: Option<String>,
    /// Interval wider than the noise threshold.
    pub noisy: bool,
    /// Fastest ranked cell of its kernel.
    pub winner: bool,
    /// Throughput.
    pub rate: Option<Rate>,
}

impl CellResult {
    /// True when every run of the cell was verified right.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Counted work of one program run, for items/s (or bytes for triad).
pub fn work(kernel: KernelName, n: u64, systems: u64) -> (f64, &'static str) {
    let n_f = n as f64;
    match kernel {
        KernelName::Nbody => (n_f * systems as f64, "system-steps/s"),
        // 10 iterations x 2 (A^T A) x 2 steps, each N^2 matrix elements.
        KernelName::Spectralnorm => (40.0 * n_f * n_f, "A(i,j)/s"),
        KernelName::Mandelbrot => (n_f * n_f, "pixels/s"),
        KernelName::Fannkuch => ((1..=n).map(|k| k as f64).product(), "permutations/s"),
        // STREAM: 10 x (copy 2 + scale 2 + add 3 + triad 3 words of 8 bytes).
        KernelName::Triad => (10.0 * 10.0 * 8.0 * n_f, "B/s"),
        KernelName::Pi => (n_f, "samples/s"),
        // Interior points x sweeps: at the bench's sizes the tolerance is never reached,
        // so every run makes LAPLACE_MAX_ITERS (1000) sweeps.
        KernelName::Laplace => (
            (n.saturating_sub(2) as f64).powi(2) * programs::LAPLACE_MAX_ITERS as f64,
            "point-updates/s",
        ),
        _ => (n_f, "calls/s"),
    }
}

/// True for the memory-bound kernels (reported as a fraction of the triad peak).
pub fn memory_bound(kernel: KernelName) -> bool {
    kernel == KernelName::Triad
}

/// The first difference between what was expected and what came, in words.
pub fn describe_diff(expected: &[u8], got: &[u8]) -> String {
    if let (Ok(e), Ok(g)) = (std::str::from_utf8(expected), std::str::from_utf8(got)) {
        let (el, gl): (Vec<&str>, Vec<&str>) = (e.lines().collect(), g.lines().collect());
        for i in 0..el.len().max(gl.len()) {
            let (a, b) = (el.get(i).copied(), gl.get(i).copied());
            if a != b {
                return format!(
                    "line {}: expected `{}`, got `{}`",
                    i + 1,
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                );
            }
        }
        return "outputs differ in line endings".into();
    }
    let differ = expected.iter().zip(got).filter(|(a, b)| a != b).count()
        + expected.len().abs_diff(got.len());
    match expected.iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => format!(
            "byte {i} of {}: expected {:#04x}, got {:#04x}; {differ} byte(s) differ",
            expected.len(),
            expected[i],
            got[i]
        ),
        None => format!(
            "lengths differ: expected {} bytes, got {}",
            expected.len(),
            got.len()
        ),
    }
}

/// What runs a cell: an executor of this process, or the cell's own MPI job.
enum Runner<'a> {
    Local(&'a dyn Executor),
    Mpi(Result<MpiJob, String>),
}

/// What MPI cells need: the launcher (none: they fail, saying why) and the pools' chunk.
#[derive(Debug, Clone, Copy)]
pub struct MpiCells<'a> {
    /// How to start jobs.
    pub launcher: Option<&'a MpiLauncher>,
    /// Items per chunk.
    pub chunk: Option<u64>,
}

/// One run: its time, or why it is wrong.
fn run_once(
    code: &Kernel,
    opts: &Options,
    runner: &mut Runner<'_>,
    want: &[u8],
) -> Result<f64, String> {
    let (stdout, t) = match runner {
        Runner::Local(exec) => match programs::run(code.clone(), opts, *exec) {
            Ok(out) => (out.stdout, out.elapsed.as_secs_f64()),
            Err(Error::Validation(msg)) => return Err(msg),
            Err(e) => return Err(e.to_string()),
        },
        Runner::Mpi(Ok(job)) => job.run(
            opts.n.unwrap_or_else(|| programs::reference_n(code.name())),
            opts.systems,
        )?,
        Runner::Mpi(Err(e)) => return Err(e.clone()),
    };
    if stdout == want {
        Ok(t)
    } else {
        Err(describe_diff(want, &stdout))
    }
}

/// At the published size, against the published output (when one is vendored).
fn check_published(code: &Kernel, runner: &mut Runner<'_>) -> Option<Result<(), String>> {
    let k = code.name();
    let n = reference::reference_size(k)?;
    let want = reference::expected(k, n)?;
    Some(run_once(code, &Options::new().n(n), runner, want).map(|_| ()))
}

/// What serial Rust prints at the group's size: the bit-for-bit reference of every cell.
///
/// # Errors
/// The run's error (STREAM's validation failing included).
pub fn serial_rust_output(kernel: KernelName, n: u64, systems: u64) -> Result<Vec<u8>, String> {
    let opts = Options::new().n(n).systems(systems);
    let out = programs::run(Kernel::get(kernel, Lang::Rust), &opts, &Serial)
        .map_err(|e| format!("serial Rust reference of {kernel} N={n}: {e}"))?;
    if kernel == KernelName::Seed && reference::verify(kernel, n, &out.stdout) != Some(true) {
        return Err("serial Rust seed disagrees with its closed form".into());
    }
    Ok(out.stdout)
}

/// The executors of a run, started once, before any timing.
#[derive(Debug, Default)]
pub struct Executors {
    pools: HashMap<ExecSpec, Box<dyn Executor>>,
}

impl Executors {
    /// Start every executor in `specs` (each once).
    ///
    /// # Errors
    /// The first pool that fails to start.
    pub fn start(specs: &[ExecSpec], chunk: Option<u64>) -> Result<Executors, String> {
        let mut pools = HashMap::new();
        for &s in specs {
            if let std::collections::hash_map::Entry::Vacant(e) = pools.entry(s) {
                e.insert(s.build(chunk)?);
            }
        }
        Ok(Executors { pools })
    }

    /// The executor of `spec`.
    ///
    /// # Panics
    /// When `spec` was not started.
    pub fn get(&self, spec: ExecSpec) -> &dyn Executor {
        self.pools.get(&spec).expect("executor started").as_ref()
    }
}

/// A progress bar on stderr (hidden when `show` is false or stderr is not a terminal).
pub fn progress(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Measure one group: every cell verified at the published size (where one exists),
/// warmed up, then `reps` rounds in rotating order, every run verified bit for bit
/// against `want`.
pub fn measure_group(
    g: &Group,
    want: &Result<Vec<u8>, String>,
    execs: &Executors,
    mpi: &MpiCells<'_>,
    effort: &Effort,
    bar: &ProgressBar,
) -> Vec<CellResult> {
    let opts = Options::new().n(g.n).systems(g.systems);
    let check = if reference::reference_size(g.kernel).is_some() {
        Check::Reference
    } else if g.kernel == KernelName::Triad {
        Check::Stream
    } else {
        Check::SerialRust
    };
    let cells = g.execs.len();
    let mut failure: Vec<Option<String>> = vec![None; cells];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cells];
    let label = |i: usize| format!("{}/{} {}", g.kernel, g.imp.label(), g.execs[i].label());
    match want {
        Err(e) => failure.iter_mut().for_each(|f| *f = Some(e.clone())),
        Ok(want) => {
            // MPI jobs start here (never timed), then the published output and the
            // warm-up (untimed, verified).
            let mut runners: Vec<Runner<'_>> = g
                .execs
                .iter()
                .enumerate()
                .map(|(i, spec)| match spec.kind {
                    ExecKind::Mpi => {
                        bar.set_message(format!("{} (mpirun)", label(i)));
                        Runner::Mpi(match mpi.launcher {
                            Some(l) => MpiJob::start(l, g, spec.workers, mpi.chunk),
                            None => Err("this kpool was built without MPI: build it with \
                                         `cargo build --release --features mpi` (Open MPI: \
                                         scripts/setup.sh --mpi)"
                                .into()),
                        })
                    }
                    _ => Runner::Local(execs.get(*spec)),
                })
                .collect();
            let mut warm = 0.0f64;
            for i in 0..cells {
                bar.set_message(format!("{} (verify, warm-up)", label(i)));
                let runner = &mut runners[i];
                if let Some(Err(e)) = check_published(&g.code, runner) {
                    failure[i] = Some(format!(
                        "at the published size N={}: {e}",
                        reference::reference_size(g.kernel).unwrap_or(0)
                    ));
                    continue;
                }
                for _ in 0..effort.warmup.max(1) {
                    match run_once(&g.code, &opts, runner, want) {
                        Ok(t) => warm = warm.max(t),
                        Err(e) => {
                            failure[i] = Some(e);
                            break;
                        }
                    }
                }
            }
            let reps = stats::repetitions(warm, effort.budget_s, effort.min_reps, effort.max_reps);
            for r in 0..reps {
                // Rotate the order each round: no cell always runs first (or last).
                for k in 0..cells {
                    let i = (k + r) % cells;
                    if failure[i].is_some() {
                        continue;
                    }
                    bar.set_message(format!("{} (round {}/{reps})", label(i), r + 1));
                    match run_once(&g.code, &opts, &mut runners[i], want) {
                        Ok(t) => times[i].push(t),
                        Err(e) => failure[i] = Some(format!("round {}: {e}", r + 1)),
                    }
                }
            }
        }
    }
    bar.inc(cells as u64);
    let serial = g.execs.iter().position(|e| e.kind == ExecKind::Serial);
    (0..cells)
        .map(|i| {
            let spec = g.execs[i];
            let ok = failure[i].is_none() && !times[i].is_empty();
            let time = ok.then(|| Summary::of(&times[i]));
            let speedup = match serial {
                Some(s) if ok && failure[s].is_none() && !times[s].is_empty() => {
                    Some(stats::paired_speedup(&times[s], &times[i]))
                }
                _ => None,
            };
            let (work, unit) = work(g.kernel, g.n, g.systems);
            CellResult {
                kernel: g.kernel,
                variant: g.variant,
                imp: g.imp.label().to_string(),
                lang: g.imp.lang(),
                exec: spec,
                exec_label: spec.label(),
                n: g.n,
                systems: g.systems,
                times_s: times[i].clone(),
                noisy: time.is_some_and(|t| t.rel_interval() > effort.noise),
                efficiency: speedup.map(|s| s.median / spec.workers as f64),
                speedup,
                rate: time.map(|t| Rate {
                    per_s: work / t.median,
                    unit,
                    of_peak: None,
                }),
                time,
                check,
                failure: failure[i].clone(),
                winner: false,
            }
        })
        .collect()
}

/// A deliberately wrong kernel following `kernel`'s contract: it computes nothing (the
/// outputs stay as allocated, the partials zero). JIT-compiled C; for testing that the
/// harness catches a wrong cell (`kpool bench --sabotage`).
///
/// # Errors
/// The JIT's (no C compiler, a cache directory refused).
pub fn wrong_kernel(kernel: KernelName) -> Result<Kernel, String> {
    const SRC: &str = "#include <stdint.h>\nstruct kp_kargs;\n\
        int32_t kp_wrong(const struct kp_kargs *a, uint64_t b, uint64_t e) {\n\
        (void)a; (void)b; (void)e; return 0; }\n";
    let jit = kernelpool_jit::Jit::new().map_err(|e| e.to_string())?;
    let src = kernelpool_jit::Source::string(SRC, Lang::C);
    // SAFETY: `kp_wrong` has the range-kernel signature and touches no memory at all,
    // which keeps to every contract.
    let k = unsafe { jit.range_kernel(&src, "kp_wrong", kernel) }.map_err(|e| e.to_string())?;
    Ok(k.into_kernel())
}

/// Mark the winner of each kernel: the fastest median among cells that passed and are
/// not noisy.
pub fn mark_winners(cells: &mut [CellResult]) {
    let mut best: HashMap<(KernelName, Variant), (usize, f64)> = HashMap::new();
    for (i, c) in cells.iter().enumerate() {
        let Some(t) = c.time else { continue };
        if !c.ok() || c.noisy {
            continue;
        }
        let e = best.entry((c.kernel, c.variant)).or_insert((i, t.median));
        if t.median < e.1 {
            *e = (i, t.median);
        }
    }
    for (i, _) in best.values() {
        cells[*i].winner = true;
    }
}

/// The implementations of a cell set, in order of first appearance.
pub fn imps_of(cells: &[CellResult]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in cells {
        if !out.contains(&c.imp) {
            out.push(c.imp.clone());
        }
    }
    out
}

/// Median time of a program run of `kernel` at N = 1 on serial (the floor of the timed
/// region: a clock read pair, a checked `Step` and a kernel call), seconds.
pub fn timing_floor() -> f64 {
    let k = Kernel::get(KernelName::Seed, Lang::Rust);
    let opts = Options::new().n(1);
    let mut t: Vec<f64> = (0..2000)
        .filter_map(|_| programs::run(k.clone(), &opts, &Serial).ok())
        .map(|o| o.elapsed.as_secs_f64())
        .collect();
    if t.is_empty() {
        return 0.0;
    }
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_differences_name_the_line() {
        assert_eq!(
            describe_diff(b"1\n2\n3\n", b"1\n5\n3\n"),
            "line 2: expected `2`, got `5`"
        );
        assert_eq!(
            describe_diff(b"1\n2\n", b"1\n"),
            "line 2: expected `2`, got `<end>`"
        );
    }

    #[test]
    fn binary_differences_name_the_byte() {
        let a = [0xffu8, 0x00, 0x80, 0x81];
        let b = [0xffu8, 0x00, 0x00, 0x00];
        assert_eq!(
            describe_diff(&a, &b),
            "byte 2 of 4: expected 0x80, got 0x00; 2 byte(s) differ"
        );
    }

    #[test]
    fn work_counts() {
        assert_eq!(work(KernelName::Fannkuch, 5, 1).0, 120.0);
        assert_eq!(work(KernelName::Nbody, 10, 4).0, 40.0);
    }
}
