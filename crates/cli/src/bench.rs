//! `kpool bench`: every kernel x language x executor, each verified, then timed.
//!
//! Verification has two parts: at the size of the published reference output the program's
//! stdout must equal it byte for byte (seed: its closed form; triad: STREAM's validation),
//! and at the benchmark size every language and executor must print exactly what the first
//! one printed.
//!
//! Rows are grouped by kernel, language and variant, one row per executor, so that the `speedup`
//! column (best serial time / best time, measured in the same run) sits next to the serial
//! figure it is a ratio of.

use crate::{ExecArgs, ExecKind, fmt_duration, make_executor};
use kernelpool::kernels::{
    Executor, Kernel, KernelName, Lang, Options, Variant, programs, reference,
};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Kernels to run (default: all).
    #[arg(long = "kernel", value_delimiter = ',')]
    kernels: Vec<String>,
    /// Languages to run (default: all).
    #[arg(long = "lang", value_delimiter = ',')]
    langs: Vec<String>,
    /// Variants to run, e.g. `plain,tuned` (default: both); a kernel without a tuned
    /// variant in a language runs plain only there.
    #[arg(long = "variant", value_delimiter = ',')]
    variants: Vec<String>,
    /// Executors to compare; with `serial` among them each row shows its speedup over serial.
    #[arg(
        long = "execs",
        value_enum,
        value_delimiter = ',',
        default_value = "serial,threads,processes"
    )]
    execs: Vec<ExecKind>,
    /// Small sizes: a run of a few seconds.
    #[arg(long)]
    quick: bool,
    /// Timed repetitions per cell (best and median are reported; default 5, --quick 3).
    #[arg(long)]
    repeat: Option<usize>,
    /// Override N for every kernel chosen.
    #[arg(long)]
    n: Option<u64>,
    /// Override the number of nbody systems (the ensemble form).
    #[arg(long)]
    systems: Option<u64>,
    /// Also write the results as JSON lines to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    #[command(flatten)]
    exec: ExecArgs,
}

/// Benchmark size of each kernel: (N, nbody systems).
pub fn bench_size(kernel: KernelName, quick: bool) -> (u64, u64) {
    match (kernel, quick) {
        (KernelName::Seed, _) => (8, 1),
        (KernelName::Nbody, false) => (50_000, 32),
        (KernelName::Nbody, true) => (5_000, 8),
        (KernelName::Spectralnorm, false) => (1000, 1),
        (KernelName::Spectralnorm, true) => (400, 1),
        (KernelName::Mandelbrot, false) => (2000, 1),
        (KernelName::Mandelbrot, true) => (800, 1),
        (KernelName::Fannkuch, false) => (10, 1),
        (KernelName::Fannkuch, true) => (9, 1),
        (KernelName::Triad, false) => (8_000_000, 1),
        (KernelName::Triad, true) => (2_000_000, 1),
        (KernelName::Pi, false) => (20_000_000, 1),
        (KernelName::Pi, true) => (4_000_000, 1),
        (KernelName::Laplace, false) => (1024, 1),
        (KernelName::Laplace, true) => (256, 1),
        // A kernel added later runs at its reference size until it gets a size here.
        (k, _) => (programs::reference_n(k), 1),
    }
}

/// One cell of the benchmark: a kernel in one language on one executor.
#[derive(Debug, Serialize)]
struct Row {
    kernel: KernelName,
    lang: Lang,
    variant: Variant,
    executor: String,
    n: u64,
    systems: u64,
    #[serde(rename = "best_s", serialize_with = "secs")]
    best: Duration,
    #[serde(rename = "median_s", serialize_with = "secs")]
    median: Duration,
    /// Best serial time / best time of this row, when serial ran in the same bench.
    speedup: Option<f64>,
    verified: &'static str,
    agrees: bool,
    note: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn parse_list<T>(names: &[String], all: &[T]) -> Result<Vec<T>, String>
where
    T: Copy + std::str::FromStr<Err = kernelpool::kernels::Error>,
{
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|s| s.parse::<T>().map_err(|e| e.to_string()))
        .collect()
}

/// `kpool bench`: run the matrix, print the table (and the JSON lines when asked);
/// exit 1 when a cell disagrees with the reference.
///
/// # Errors
/// A one-line message for bad options (unknown kernel or language, `--repeat 0`, ...) or
/// a run that fails.
pub fn bench(args: &BenchArgs) -> Result<ExitCode, String> {
    let kernels = parse_list(&args.kernels, &KernelName::ALL)?;
    let langs = parse_list(&args.langs, &Lang::ALL)?;
    let variants = parse_list(&args.variants, &Variant::ALL)?;
    let repeat = args.repeat.unwrap_or(if args.quick { 3 } else { 5 });
    if repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if args.systems == Some(0) {
        return Err("--systems must be at least 1".into());
    }
    let mut kinds: Vec<ExecKind> = Vec::new();
    for &k in &args.execs {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    // Every executor is started once, before any timing, so pool start-up is not timed.
    let execs: Vec<(ExecKind, Box<dyn Executor>)> = kinds
        .iter()
        .map(|&k| make_executor(&args.exec, k).map(|e| (k, e)))
        .collect::<Result<_, _>>()?;
    // Under MPI every rank runs the bench (the ranks of each MPI run work together); only
    // rank 0 has the gathered outputs, so only it checks, reports and decides.
    let root = execs.iter().all(|(_, e)| e.is_root());
    let mut rows = Vec::new();
    let mut failures = 0;
    for &k in &kernels {
        let (n, systems) = bench_size(k, args.quick);
        let n = args.n.unwrap_or(n);
        let systems = args.systems.unwrap_or(systems);
        let opts = Options::new().n(n).systems(systems);
        programs::validate(k, &opts).map_err(|e| e.to_string())?;
        let mut first: Option<Vec<u8>> = None;
        for (l, v) in langs
            .iter()
            .flat_map(|&l| variants.iter().map(move |&v| (l, v)))
        {
            let Ok(kernel) = Kernel::get_variant(k, l, v) else {
                continue; // this language has no such variant of k
            };
            let mut serial_best = None;
            for (kind, exec) in &execs {
                let verified = verify_reference(&kernel, exec.as_ref())?;
                let mut times = Vec::with_capacity(repeat);
                let mut stdout = Vec::new();
                let mut note = String::new();
                for _ in 0..repeat {
                    let out = programs::run(kernel.clone(), &opts, exec.as_ref())
                        .map_err(|e| e.to_string())?;
                    times.push(out.elapsed);
                    stdout = out.stdout;
                    if let Some(n) = out.notes.iter().find(|n| n.starts_with("Triad")) {
                        note = n.clone();
                    }
                }
                times.sort();
                let agrees = match &first {
                    None => {
                        first = Some(stdout);
                        true
                    }
                    Some(f) => *f == stdout,
                };
                if !agrees || verified == "MISMATCH" {
                    failures += 1;
                }
                let best = times[0];
                if *kind == ExecKind::Serial {
                    serial_best = Some(best);
                }
                let row = Row {
                    kernel: k,
                    lang: l,
                    variant: v,
                    executor: exec.describe(),
                    n,
                    systems: if k == KernelName::Nbody { systems } else { 1 },
                    best,
                    median: times[times.len() / 2],
                    speedup: serial_best.map(|s| s.as_secs_f64() / best.as_secs_f64()),
                    verified,
                    agrees,
                    note,
                };
                if !root {
                    continue;
                }
                eprintln!(
                    "bench: {:<12} {:<8} {:<6} {:<26} N={:<9} {:>12} {:>7}  {}",
                    k.name(),
                    l.name(),
                    v.name(),
                    row.executor,
                    n,
                    fmt_duration(row.best),
                    fmt_speedup(row.speedup),
                    row.verified
                );
                rows.push(row);
            }
        }
    }
    if !root {
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        let mut text = String::new();
        for r in &rows {
            text += &serde_json::to_string(r).map_err(|e| format!("encoding JSON: {e}"))?;
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if failures > 0 {
        eprintln!("kpool bench: {failures} result(s) failed verification");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Run at the reference size and compare with the published output.
fn verify_reference(kernel: &Kernel, exec: &dyn Executor) -> Result<&'static str, String> {
    let k = kernel.name();
    let n = reference::reference_size(k).unwrap_or(programs::reference_n(k));
    let opts = Options::new().n(n);
    match programs::run(kernel.clone(), &opts, exec) {
        Ok(out) => Ok(match reference::verify(k, n, &out.stdout) {
            Some(true) => "reference",
            Some(false) => "MISMATCH",
            None if k == KernelName::Triad => "STREAM check",
            None => "cross-lang",
        }),
        Err(kernelpool::kernels::Error::Validation(_)) => Ok("MISMATCH"),
        Err(e) => Err(e.to_string()),
    }
}

fn fmt_speedup(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.2}x"))
}

fn print_table(rows: &[Row]) {
    println!(
        "| kernel | lang | variant | executor | N | best | median | speedup | verified | agrees | note |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---|---|---|");
    for r in rows {
        let n = if r.kernel == KernelName::Nbody {
            format!("{} x {} systems", r.n, r.systems)
        } else {
            r.n.to_string()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.kernel,
            r.lang,
            r.variant,
            r.executor,
            n,
            fmt_duration(r.best),
            fmt_duration(r.median),
            fmt_speedup(r.speedup),
            r.verified,
            if r.agrees { "yes" } else { "NO" },
            r.note
        );
    }
}
