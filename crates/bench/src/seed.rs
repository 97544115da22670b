//! The course's own benchmark, side by side: `f(x)` (10,000,000 trips of `j += x*x`) over
//! the arguments 1, 2, 3 in pure Python serially and with `multiprocessing.Pool()`, numba's
//! `@njit` (first call, compile included, and warm), and kernelpool's `seed` kernel in each
//! language and executor.
//!
//! gcc, g++, rustc and numba's LLVM fold the integer loop into `10000000*x*x` (its times
//! are call overhead; gfortran keeps a loop), so a second part runs the same loop with a
//! floating-point accumulator, which no compiler may fold without `-ffast-math`: in Python,
//! numba, and C, C++, Fortran (compiled at run time by kernelpool's JIT with the project's
//! flags, `-O3 -ffp-contract=off`) on every executor, and Rust (a plain function, serial).
//! Every row's results are checked: the integer ones against the closed form, the float
//! ones bit for bit against Rust's.
//!
//! Python is the interpreter [`find_python`] finds; without one, or with
//! [`SeedConfig::python`] `None`, its rows say "not available" and nothing fails.

use crate::matrix::{ExecKind, ExecSpec, Sizes};
use crate::measure::{Executors, describe_diff};
use crate::stats::{self, Summary};
use indicatif::ProgressBar;
use kernelpool_kernels::{
    Elem, Executor, Kernel, KernelName, Lang, Options, Step, StepArgs, programs, reference,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The Python side of the course's benchmark, run by the interpreter.
pub const PYTHON_SCRIPT: &str = include_str!("../python/seed_bench.py");

/// Trips of the loop (the course's).
pub const TRIPS: i64 = 10_000_000;

/// What the seed section runs.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// The course's arguments: 1..=args.
    pub args: u64,
    /// Executors for the kernelpool rows.
    pub execs: Vec<ExecSpec>,
    /// The Python interpreter (None: Python rows "not available").
    pub python: Option<PathBuf>,
    /// Why there is no Python, for the report.
    pub no_python_reason: String,
    /// Repetitions of the Python rows (each takes seconds).
    pub python_reps: usize,
    /// Compile the float loop in C, C++ and Fortran with the JIT.
    pub jit: bool,
}

impl SeedConfig {
    /// The defaults for `sizes`: arguments 1, 2, 3 (the course's), every executor at all
    /// cores, Python from [`find_python`].
    pub fn new(sizes: Sizes) -> SeedConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (python, no_python_reason) = match find_python() {
            Some(p) => (Some(p), String::new()),
            None => (None, "no python3 found".to_string()),
        };
        SeedConfig {
            args: 3,
            execs: vec![
                ExecSpec::SERIAL,
                ExecSpec {
                    kind: ExecKind::Threads,
                    workers: cores,
                },
                ExecSpec {
                    kind: ExecKind::Processes,
                    workers: cores,
                },
            ],
            python,
            no_python_reason,
            python_reps: if sizes == Sizes::Quick { 3 } else { 5 },
            jit: true,
        }
    }

    /// No Python rows (`--no-python`).
    #[must_use]
    pub fn without_python(mut self, reason: &str) -> SeedConfig {
        self.python = None;
        self.no_python_reason = reason.to_string();
        self
    }
}

/// The interpreter for the Python rows: `$KPOOL_PYTHON`, else the project's virtual
/// environment (`target/kpool-venv`, which `scripts/bench.sh` makes, or `.venv`), else
/// `python3` on PATH (then numba is probably missing: its rows say so).
pub fn find_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KPOOL_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for venv in ["target/kpool-venv", ".venv"] {
        let p = root.join(venv).join("bin/python");
        if p.exists() {
            return Some(p);
        }
    }
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("python3"))
}

/// How a row ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Measured, results right.
    Ok,
    /// Not run, and why (no Python, no numba, no compiler).
    NotAvailable(String),
    /// Results wrong, or the run failed.
    Failed(String),
}

/// One row of the seed section.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRow {
    /// `integer` (the course's loop) or `float` (the accumulator that cannot be folded).
    pub section: &'static str,
    /// `python`, `numba warm`, `c`, `jit c`, ...
    pub who: String,
    /// Executor label.
    pub exec: String,
    /// Samples, seconds.
    pub times_s: Vec<f64>,
    /// Their summary.
    pub time: Option<Summary>,
    /// How it ended.
    pub status: RowStatus,
    /// Anything to say (what the time includes).
    pub note: String,
}

/// The section's results.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSection {
    /// The arguments.
    pub args: Vec<i64>,
    /// Python's version, numba's, numpy's (when found).
    pub python: Option<String>,
    /// numba's version.
    pub numba: Option<String>,
    /// numpy's version.
    pub numpy: Option<String>,
    /// Every row.
    pub rows: Vec<SeedRow>,
}

impl SeedSection {
    /// Rows that failed.
    pub fn failures(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.status, RowStatus::Failed(_)))
            .count()
    }
}

/// The float loop in Rust (the reference of the float rows).
pub fn g_rust(x: f64) -> f64 {
    let mut j = 0.0f64;
    for _ in 0..TRIPS {
        j += std::hint::black_box(x) * x;
    }
    j
}

const G_C: &str = "double g(double x) {\n    double j = 0.0;\n    for (long i = 0; i < 10000000; i++) {\n        j += x * x;\n    }\n    return j;\n}\n";
const G_CPP: &str = "double g(double x) {\n    double j = 0.0;\n    for (long i = 0; i < 10'000'000; ++i) {\n        j += x * x;\n    }\n    return j;\n}\n";
const G_F90: &str = "function g(x) bind(C, name=\"g\") result(j)\n    use, intrinsic :: iso_c_binding, only: c_double, c_int64_t\n    implicit none\n    real(c_double), value :: x\n    real(c_double) :: j\n    integer(c_int64_t) :: i\n    j = 0.0_c_double\n    do i = 1, 10000000\n        j = j + x * x\n    end do\nend function g\n";

fn row(
    section: &'static str,
    who: &str,
    exec: &str,
    times: Vec<f64>,
    status: RowStatus,
) -> SeedRow {
    SeedRow {
        section,
        who: who.to_string(),
        exec: exec.to_string(),
        time: (!times.is_empty() && status == RowStatus::Ok).then(|| Summary::of(&times)),
        times_s: times,
        status,
        note: String::new(),
    }
}

/// Time `call` (its own timed region) after one warm-up, with repetitions filling
/// `budget_s`; `call` returns (seconds, error).
fn repeat(budget_s: f64, mut call: impl FnMut() -> Result<f64, String>) -> (Vec<f64>, RowStatus) {
    let warm = match call() {
        Ok(t) => t,
        Err(e) => return (Vec::new(), RowStatus::Failed(e)),
    };
    let reps = stats::repetitions(warm, budget_s, 5, 200);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        match call() {
            Ok(t) => times.push(t),
            Err(e) => return (times, RowStatus::Failed(e)),
        }
    }
    (times, RowStatus::Ok)
}

/// Run the section.
pub fn run(cfg: &SeedConfig, execs: &Executors, bar: &ProgressBar) -> SeedSection {
    let args: Vec<i64> = (1..=cfg.args as i64).collect();
    let fargs: Vec<f64> = args.iter().map(|&x| x as f64 * 1.1).collect();
    let mut rows = Vec::new();
    // Integer loop, kernelpool's seed kernel: every language and executor.
    let opts = Options::new().n(cfg.args);
    for lang in Lang::ALL {
        let k = Kernel::get(KernelName::Seed, lang);
        for &spec in &cfg.execs {
            bar.set_message(format!("seed {lang} {}", spec.label()));
            let exec = execs.get(spec);
            let (t, s) = repeat(0.2, || {
                let out = programs::run(k.clone(), &opts, exec).map_err(|e| e.to_string())?;
                match reference::verify(KernelName::Seed, cfg.args, &out.stdout) {
                    Some(true) => Ok(out.elapsed.as_secs_f64()),
                    _ => Err("disagrees with 10000000*x*x".into()),
                }
            });
            rows.push(row("integer", lang.name(), &spec.label(), t, s));
        }
    }
    // Float loop: Rust (the reference), then the JIT-compiled languages.
    bar.set_message("seed float rust");
    let want: Vec<u64> = fargs.iter().map(|&x| g_rust(x).to_bits()).collect();
    let (t, s) = repeat(0.3, || {
        let t0 = Instant::now();
        let r: Vec<f64> = fargs.iter().map(|&x| g_rust(x)).collect();
        let dt = t0.elapsed().as_secs_f64();
        check_bits(&want, &r).map(|()| dt)
    });
    rows.push(row("float", "rust", "serial", t, s));
    if cfg.jit {
        rows.extend(jit_rows(&fargs, &want, cfg, execs, bar));
    }
    let mut section = SeedSection {
        args,
        python: None,
        numba: None,
        numpy: None,
        rows,
    };
    python_rows(cfg, &want, &mut section, bar);
    section
}

fn check_bits(want: &[u64], got: &[f64]) -> Result<(), String> {
    let got_bits: Vec<u64> = got.iter().map(|v| v.to_bits()).collect();
    if got_bits == want {
        Ok(())
    } else {
        let w: Vec<f64> = want.iter().map(|&b| f64::from_bits(b)).collect();
        Err(format!(
            "expected {w:?}, got {got:?} (compared bit for bit with Rust)"
        ))
    }
}

/// The float loop in C, C++ and Fortran, compiled by the JIT, on every executor. Only
/// the kernel step is timed (its buffers are allocated and filled before).
fn jit_rows(
    fargs: &[f64],
    want: &[u64],
    cfg: &SeedConfig,
    execs: &Executors,
    bar: &ProgressBar,
) -> Vec<SeedRow> {
    let mut rows = Vec::new();
    let jit = match kernelpool_jit::Jit::new() {
        Ok(j) => j,
        Err(e) => {
            rows.push(row(
                "float",
                "jit",
                "-",
                vec![],
                RowStatus::NotAvailable(format!("the JIT cache: {e}")),
            ));
            return rows;
        }
    };
    for (lang, text) in [(Lang::C, G_C), (Lang::Cpp, G_CPP), (Lang::Fortran, G_F90)] {
        let who = format!("jit {lang}");
        bar.set_message(format!("seed float {who} (compiling)"));
        let src = kernelpool_jit::Source::string(text, lang);
        // SAFETY: `g` is a pure function of its argument, defined above: it touches no
        // memory but its own locals, so calling it from several threads or processes at
        // once is fine.
        let f = match unsafe { jit.element_fn::<f64>(&src, "g") } {
            Ok(f) => f,
            Err(e) => {
                rows.push(row(
                    "float",
                    &who,
                    "-",
                    vec![],
                    RowStatus::NotAvailable(format!("JIT compile failed: {e}")),
                ));
                continue;
            }
        };
        for &spec in &cfg.execs {
            bar.set_message(format!("seed float {who} {}", spec.label()));
            let exec = execs.get(spec);
            let (t, s) = repeat(0.3, || time_map(f.kernel(), fargs, exec, want));
            rows.push(row("float", &who, &spec.label(), t, s));
        }
    }
    rows
}

/// One element-function step over `args` on `exec`, only the step timed, checked.
fn time_map(
    kernel: &Kernel,
    args: &[f64],
    exec: &dyn Executor,
    want: &[u64],
) -> Result<f64, String> {
    let n = args.len();
    let mut input = exec
        .alloc(Elem::F64, n, "seed args")
        .map_err(|e| e.to_string())?;
    let mut output = exec
        .alloc(Elem::F64, n, "seed results")
        .map_err(|e| e.to_string())?;
    input
        .as_mut_slice::<f64>()
        .ok_or("the executor's buffer is not f64")?
        .copy_from_slice(args);
    let step = Step::new(
        kernel.clone(),
        StepArgs::new(n as u64, n as u64),
        vec![&mut input, &mut output],
    )
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    exec.run(&step).map_err(|e| e.to_string())?;
    let dt = t0.elapsed().as_secs_f64();
    drop(step);
    let got = output
        .as_slice::<f64>()
        .ok_or("the executor's buffer is not f64")?;
    check_bits(want, got).map(|()| dt)
}

/// What the Python script prints.
#[derive(Debug, serde::Deserialize)]
struct PyOut {
    python: String,
    numba: Option<String>,
    numpy: Option<String>,
    numba_missing: Option<String>,
    rows: Vec<PyRow>,
}

#[derive(Debug, serde::Deserialize)]
struct PyRow {
    section: String,
    who: String,
    exec: String,
    times: Vec<f64>,
    result: Option<Vec<String>>,
    note: String,
}

const PY_WHO: [&str; 4] = ["python", "python Pool()", "numba first call", "numba warm"];

fn python_rows(cfg: &SeedConfig, want: &[u64], section: &mut SeedSection, bar: &ProgressBar) {
    let not_available = |section: &mut SeedSection, why: &str, from: usize| {
        for sec in ["integer", "float"] {
            for who in &PY_WHO[from..] {
                section.rows.push(row(
                    if sec == "integer" { "integer" } else { "float" },
                    who,
                    "-",
                    vec![],
                    RowStatus::NotAvailable(why.to_string()),
                ));
            }
        }
    };
    let Some(py) = &cfg.python else {
        not_available(
            section,
            &format!("not available: {}", cfg.no_python_reason),
            0,
        );
        return;
    };
    bar.set_message("seed: Python and numba (seconds per run)");
    let dir = std::env::temp_dir().join(format!("kpool-seed-{}", std::process::id()));
    let script = dir.join("seed_bench.py");
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&script, PYTHON_SCRIPT));
    if let Err(e) = written {
        not_available(
            section,
            &format!("not available: writing the script: {e}"),
            0,
        );
        return;
    }
    let mut cmd = std::process::Command::new(py);
    cmd.arg(&script).arg(cfg.python_reps.to_string());
    cmd.args(section.args.iter().map(|a| a.to_string()));
    let out = cmd.output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let msg = String::from_utf8_lossy(&o.stderr);
            let last = msg.lines().last().unwrap_or("").to_string();
            not_available(
                section,
                &format!("not available: {} failed: {last}", py.display()),
                0,
            );
            return;
        }
        Err(e) => {
            not_available(section, &format!("not available: {}: {e}", py.display()), 0);
            return;
        }
    };
    let parsed: PyOut = match serde_json::from_slice(&out.stdout) {
        Ok(p) => p,
        Err(e) => {
            section.rows.push(row(
                "integer",
                "python",
                "-",
                vec![],
                RowStatus::Failed(format!("unreadable output of the Python script: {e}")),
            ));
            return;
        }
    };
    section.python = Some(parsed.python);
    section.numba = parsed.numba;
    section.numpy = parsed.numpy;
    let int_want: Vec<String> = section
        .args
        .iter()
        .map(|x| (TRIPS * x * x).to_string())
        .collect();
    for r in parsed.rows {
        let sec: &'static str = if r.section == "integer" {
            "integer"
        } else {
            "float"
        };
        let status = match &r.result {
            None => RowStatus::Ok,
            Some(res) if sec == "integer" => {
                if *res == int_want {
                    RowStatus::Ok
                } else {
                    RowStatus::Failed(describe_diff(
                        int_want.join("\n").as_bytes(),
                        res.join("\n").as_bytes(),
                    ))
                }
            }
            Some(res) => {
                let got: Result<Vec<f64>, _> = res.iter().map(|s| s.parse::<f64>()).collect();
                match got {
                    Ok(g) => match check_bits(want, &g) {
                        Ok(()) => RowStatus::Ok,
                        Err(e) => RowStatus::Failed(e),
                    },
                    Err(e) => RowStatus::Failed(format!("unreadable result: {e}")),
                }
            }
        };
        let mut sr = row(sec, &r.who, &r.exec, r.times, status);
        sr.note = r.note;
        section.rows.push(sr);
    }
    if let Some(why) = parsed.numba_missing {
        not_available(section, &format!("not available: numba: {why}"), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_python_the_rows_say_not_available() {
        let cfg = SeedConfig {
            jit: false,
            execs: vec![ExecSpec::SERIAL],
            ..SeedConfig::new(Sizes::Quick).without_python("--no-python")
        };
        let execs = Executors::start(&cfg.execs, None).expect("serial");
        let s = run(&cfg, &execs, &ProgressBar::hidden());
        assert_eq!(s.failures(), 0, "{s:?}");
        let py: Vec<&SeedRow> = s.rows.iter().filter(|r| r.who.contains("python")).collect();
        assert_eq!(py.len(), 4);
        assert!(
            py.iter().all(
                |r| matches!(&r.status, RowStatus::NotAvailable(w) if w.contains("--no-python"))
            )
        );
        // The kernelpool rows ran and are right.
        assert!(
            s.rows
                .iter()
                .any(|r| r.who == "c" && r.status == RowStatus::Ok)
        );
        assert!(
            s.rows
                .iter()
                .any(|r| r.who == "rust" && r.section == "float" && r.status == RowStatus::Ok)
        );
    }
}
