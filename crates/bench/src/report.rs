//! The report folder: `report.md` (machine, load, every table, the seed section, the
//! plots linked), `results.json`, `results.csv`, and the plots as SVG and PNG.

use crate::Report;
use crate::matrix::ExecKind;
use crate::measure::CellResult;
use crate::output::{fmt_rate, fmt_s, fmt_size, status};
use crate::plots::{self, Plot};
use crate::seed::RowStatus;
use kernelpool_kernels::KernelName;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Write the report folder `dir` (created when missing); returns the path of report.md.
///
/// # Errors
/// A file that cannot be written, or a plot that cannot be drawn.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    put("results.json", &crate::output::json(report)?)?;
    put("results.csv", &crate::output::csv(&report.cells))?;
    let plots = plots::write_all(report, dir)?;
    let md = markdown(report, &plots);
    put("report.md", &md)?;
    Ok(dir.join("report.md"))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The text of report.md.
pub fn markdown(r: &Report, plots: &[Plot]) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# kpool bench report\n");
    let _ = writeln!(
        s,
        "{} sizes; {} cells, {} failed verification. Every run was checked (see *How it was measured*).\n",
        match r.sizes {
            crate::matrix::Sizes::Quick => "Quick",
            crate::matrix::Sizes::Full => "Full (Benchmarks Game)",
        },
        r.cells.len(),
        r.failures
    );
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} |", m.cpu);
    let _ = writeln!(s, "| cores | {} |", m.cores);
    let _ = writeln!(
        s,
        "| memory | {:.1} GiB |",
        m.memory_bytes as f64 / (1u64 << 30) as f64
    );
    let _ = writeln!(s, "| last-level cache | {} MiB |", m.llc_bytes >> 20);
    let _ = writeln!(s, "| Linux | {} |", m.kernel);
    for (l, v) in &m.compilers {
        let _ = writeln!(s, "| {l} compiler | {v} |");
    }
    let _ = writeln!(s, "| native flags | {} |", m.flags);
    let l = &r.load;
    let _ = writeln!(
        s,
        "| load during the run | **{}**: other processes used {:.1} CPU-s in {:.1} s of wall time ({:.2} of {} cores on average); this run used {:.1} CPU-s; 1-min load average {:.2} → {:.2} |",
        l.verdict(),
        l.others_cpu_s,
        l.wall_s,
        l.others_cores,
        m.cores,
        l.ours_cpu_s,
        l.loadavg.0,
        l.loadavg.1
    );
    if let Some(p) = &r.peak {
        let by: Vec<String> = p
            .by_exec
            .iter()
            .map(|(e, b)| format!("{e} {:.2} GB/s", b / 1e9))
            .collect();
        let _ = writeln!(
            s,
            "| STREAM triad peak | {:.2} GB/s (C STREAM, N={} per array; {}) |",
            p.triad_bps / 1e9,
            p.n,
            by.join(", ")
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Summary\n");
    for k in kernels(&r.cells) {
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| c.kernel == k).collect();
        let mut line = format!("- **{k}**: ");
        let winners: Vec<&&CellResult> = cells.iter().filter(|c| c.winner).collect();
        if winners.is_empty() {
            line += "no winner (every cell noisy or failed)";
        }
        for (i, w) in winners.iter().enumerate() {
            let _ = write!(
                line,
                "{}fastest {} {} on {} ({})",
                if i > 0 { "; " } else { "" },
                w.variant,
                w.imp,
                w.exec_label,
                w.time.map_or("-".into(), |t| fmt_s(t.median))
            );
        }
        for kind in [ExecKind::Threads, ExecKind::Processes, ExecKind::Mpi] {
            let best = cells
                .iter()
                .filter(|c| c.exec.kind == kind && c.exec.workers == r.machine.cores)
                .filter_map(|c| c.efficiency)
                .collect::<Vec<_>>();
            if !best.is_empty() {
                let lo = best.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = best.iter().copied().fold(0.0, f64::max);
                let _ = write!(
                    line,
                    "; {kind}×{} efficiency {:.0}–{:.0} %",
                    r.machine.cores,
                    100.0 * lo,
                    100.0 * hi
                );
            }
        }
        let noisy = cells.iter().filter(|c| c.noisy).count();
        if noisy > 0 {
            let _ = write!(line, "; {noisy} of {} cells noisy", cells.len());
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Results\n");
    let _ = writeln!(
        s,
        "Median of the rounds, min–max, the 95 % bootstrap interval of the median (± half its width), the speedup over serial from paired rounds with its interval, efficiency (speedup / workers), throughput. *noisy*: interval wider than {:.0} % of the median: shown, not ranked. ★: fastest ranked cell of the kernel.\n",
        100.0 * r.effort.noise
    );
    for k in kernels(&r.cells) {
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| c.kernel == k).collect();
        let c0 = cells[0];
        let _ = writeln!(
            s,
            "### {k} ({}; checked: {})\n",
            fmt_size(k, c0.n, c0.systems),
            c0.check.label()
        );
        let _ = writeln!(
            s,
            "| lang | variant | executor | rounds | median | min – max | ± | speedup | eff. | rate | status |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---|---:|---|---:|---|---|");
        for c in cells {
            let (med, mm, ci) = match c.time {
                Some(t) => (
                    fmt_s(t.median),
                    format!("{} – {}", fmt_s(t.min), fmt_s(t.max)),
                    format!("{:.1} %", 50.0 * t.rel_interval()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let sp = c.speedup.map_or("-".into(), |s| {
                format!("{:.2}× [{:.2}–{:.2}]", s.median, s.lo, s.hi)
            });
            let eff = c
                .efficiency
                .map_or("-".into(), |e| format!("{:.0} %", 100.0 * e));
            let rate = c.rate.as_ref().map_or("-".into(), |x| {
                let mut t = fmt_rate(x.per_s, x.unit);
                if let Some(p) = x.of_peak {
                    let _ = write!(t, " ({:.0} % of peak)", 100.0 * p);
                }
                t
            });
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {med} | {mm} | {ci} | {sp} | {eff} | {rate} | {} |",
                c.imp,
                c.variant,
                c.exec_label,
                c.times_s.len(),
                status(c).replace('|', "\\|")
            );
        }
        let _ = writeln!(s);
    }

    if let Some(seed) = &r.seed {
        let _ = writeln!(s, "## The course's seed example, beside Python\n");
        let _ = writeln!(
            s,
            "`f(x)`: 10,000,000 trips of `j += x*x`, for x in {:?} (the course's). **gcc, g++, rustc and numba's LLVM fold the integer loop into `10000000*x*x`**: their integer times are call overhead, not loop speed (gfortran keeps a vectorised loop). The float part runs the same loop with a floating-point accumulator over x × 1.1, which no compiler may fold without `-ffast-math` (10,000,000 dependent additions per argument): in Python, numba, Rust (a plain function, serial) and C, C++, Fortran compiled at run time by kernelpool's JIT (`-O3 -ffp-contract=off`) on every executor. Integer results are checked against 10^7·x², float results bit for bit against Rust's.\n",
            seed.args
        );
        let _ = writeln!(
            s,
            "Python {}, numba {}, numpy {}.\n",
            seed.python.as_deref().unwrap_or("not available"),
            seed.numba.as_deref().unwrap_or("not available"),
            seed.numpy.as_deref().unwrap_or("not available")
        );
        let _ = writeln!(
            s,
            "| loop | who | executor | runs | median | min – max | status |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---|---|");
        for row in &seed.rows {
            let (med, mm) = match row.time {
                Some(t) => (
                    fmt_s(t.median),
                    format!("{} – {}", fmt_s(t.min), fmt_s(t.max)),
                ),
                None => ("-".into(), "-".into()),
            };
            let st = match &row.status {
                RowStatus::Ok if row.note.is_empty() => "ok".to_string(),
                RowStatus::Ok => format!("ok ({})", row.note),
                RowStatus::NotAvailable(w) => w.clone(),
                RowStatus::Failed(w) => format!("FAILED: {w}"),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {med} | {mm} | {} |",
                row.section,
                row.who,
                row.exec,
                row.times_s.len(),
                st.replace('|', "\\|")
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Plots\n");
    for p in plots {
        let _ = writeln!(
            s,
            "### {}\n\n![{}]({})\n\n[SVG]({})\n",
            p.title,
            p.name,
            file_name(&p.png),
            file_name(&p.svg)
        );
    }

    let _ = writeln!(s, "## How it was measured\n");
    let _ = writeln!(
        s,
        "- Every executor (threads and processes at each worker count) was started before the first measurement; pool start-up is never timed (nor is an MPI job's start). An MPI cell's time is kpool's own timing on rank 0 of the same region, the MPI transfers included.\n\
         - The timed region is the kernel steps of one program run: allocation, filling the inputs, formatting the output and verification are outside it. Its floor, a whole program run of `seed` at N = 1 on serial (clock reads, a checked step, one folded call), is {} — {:.1e} of the smallest median in the matrix, so the harness adds nothing measurable.\n\
         - Every run, warm-up included, was verified: at the published size against the vendored Benchmarks Game output (nbody, spectralnorm, mandelbrot, fannkuch), and at the benchmark size bit for bit against serial Rust (triad also passes STREAM's own validation). A wrong cell is FAILED with the first difference, and `kpool bench` exits 1.\n\
         - Cells of one kernel, variant and language (serial, threads, processes and MPI at each worker count; an MPI cell is an mpirun job started before the group is timed, its ranks idle between runs) are measured interleaved: {} warm-up run(s) each, then rounds in which every cell runs once, the order rotating each round, so drift of the machine hits all alike. Rounds fill about {:.1} s per cell ({}–{} rounds).\n\
         - Speedups are medians of the per-round ratios serial/cell (paired), with a 95 % percentile bootstrap interval; time intervals are bootstrap intervals of the median ({} resamples, fixed seed).\n\
         - Triad's rate is the whole STREAM program (10 × copy, scale, add, triad: 80 bytes per element per iteration) over its time, shown as a fraction of the machine's best triad rate, measured first. Compute kernels report items per second.\n",
        fmt_s(r.timing_floor_s),
        r.timing_floor_s
            / r.cells
                .iter()
                .filter_map(|c| c.time.map(|t| t.median))
                .fold(f64::INFINITY, f64::min),
        r.effort.warmup,
        r.effort.budget_s,
        r.effort.min_reps,
        r.effort.max_reps,
        crate::stats::RESAMPLES
    );
    s
}

fn kernels(cells: &[CellResult]) -> Vec<KernelName> {
    let mut out = Vec::new();
    for c in cells {
        if !out.contains(&c.kernel) {
            out.push(c.kernel);
        }
    }
    out
}
