//! The harness itself: a wrong kernel is caught, the report files are well formed, and the
//! seed section runs for real with the project's Python (when there is one).

use kernelpool_bench::matrix::{ExecKind, Group, Impl, Selection, Sizes, Variant};
use kernelpool_bench::measure::{Effort, Executors};
use kernelpool_bench::seed::{self, RowStatus, SeedConfig};
use kernelpool_bench::{Config, machine::Machine, output, plots, report};
use kernelpool_kernels::{KernelName, Lang};
use std::path::PathBuf;

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// it needs nothing that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn init() {
    kernelpool_pool::init();
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kp-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small, fast configuration: few rounds, no seed section, no peak.
fn small(kernels: Vec<KernelName>, langs: Vec<Lang>) -> Config {
    Config {
        selection: Selection {
            kernels,
            imps: langs.into_iter().map(Impl::Native).collect(),
            variants: vec![Variant::Plain],
            workers: vec![2],
            sizes: Sizes::Quick,
            ..Selection::default()
        },
        effort: Effort {
            warmup: 1,
            budget_s: 0.0,
            min_reps: 3,
            max_reps: 3,
            noise: 0.2,
        },
        chunk: None,
        progress: false,
        stream_peak: false,
        seed: None,
        mpi: None,
    }
}

/// Groups of `config` with N set per kernel (small sizes).
fn groups(config: &Config, n: &[(KernelName, u64)]) -> (Machine, Vec<Group>) {
    let m = Machine::detect();
    let mut g = config.selection.groups(m.llc_bytes).expect("groups");
    for g in &mut g {
        if let Some((_, n)) = n.iter().find(|(k, _)| *k == g.kernel) {
            g.n = *n;
        }
        if g.kernel == KernelName::Nbody {
            g.systems = 4;
        }
    }
    (m, g)
}

#[test]
fn a_wrong_kernel_is_caught_on_every_executor() {
    let config = small(
        vec![KernelName::Mandelbrot, KernelName::Pi],
        vec![Lang::C, Lang::Rust],
    );
    let (m, mut gs) = groups(
        &config,
        &[(KernelName::Mandelbrot, 256), (KernelName::Pi, 100_000)],
    );
    for g in gs.iter_mut().filter(|g| g.imp == Impl::Native(Lang::C)) {
        g.code = kernelpool_bench::measure::wrong_kernel(g.kernel).expect("JIT compiles");
    }
    let report = kernelpool_bench::run_groups(&config, m, gs).expect("runs");
    // C: serial, threads×2, processes×2 for two kernels, all wrong; Rust all right.
    assert_eq!(report.failures, 6, "{:#?}", report.cells);
    for c in &report.cells {
        if c.lang == Lang::C {
            let f = c.failure.as_deref().expect("C cell failed");
            assert!(output::status(c).starts_with("FAILED"), "{f}");
            match c.kernel {
                // The published size first: mandelbrot's 200x200 bitmap differs by bytes.
                KernelName::Mandelbrot => {
                    assert!(f.contains("published size") && f.contains("byte"), "{f}")
                }
                // pi: no published output at N; the first line (hits) differs from Rust's.
                _ => assert!(f.contains("line 1: expected"), "{f}"),
            }
            assert!(c.time.is_none() && !c.winner);
        } else {
            assert!(c.ok(), "{c:?}");
            assert_eq!(c.times_s.len(), 3);
        }
    }
    let table = output::tables(&report);
    assert!(table.contains("FAILED"), "{table}");
}

#[test]
fn cells_of_a_group_are_paired_and_ranked() {
    let config = small(vec![KernelName::Fannkuch], vec![Lang::Fortran, Lang::Rust]);
    let (m, gs) = groups(&config, &[(KernelName::Fannkuch, 8)]);
    let report = kernelpool_bench::run_groups(&config, m, gs).expect("runs");
    assert_eq!(report.failures, 0);
    assert_eq!(report.cells.len(), 6);
    for c in &report.cells {
        let s = c.speedup.expect("speedup with serial present");
        if c.exec.kind == ExecKind::Serial {
            assert_eq!((s.median, s.min, s.max), (1.0, 1.0, 1.0));
        }
        assert!(c.efficiency.is_some());
        assert!(c.rate.as_ref().is_some_and(|r| r.unit == "permutations/s"));
    }
    let winners = report.cells.iter().filter(|c| c.winner).count();
    let ranked = report.cells.iter().filter(|c| !c.noisy).count();
    assert_eq!(winners, usize::from(ranked > 0));
    assert!(
        report.timing_floor_s > 0.0 && report.timing_floor_s < 1e-3,
        "timing floor {} s",
        report.timing_floor_s
    );
}

/// A minimal CSV reader (RFC 4180 quotes), enough to count fields.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn the_report_folder_is_well_formed() {
    let mut config = small(
        vec![KernelName::Spectralnorm, KernelName::Triad],
        vec![Lang::C, Lang::Cpp],
    );
    config.stream_peak = true;
    config.seed = Some(SeedConfig {
        jit: false,
        python_reps: 1,
        ..SeedConfig::new(Sizes::Quick).without_python("left out by this test")
    });
    let (m, gs) = groups(
        &config,
        &[
            (KernelName::Spectralnorm, 100),
            (KernelName::Triad, 200_000),
        ],
    );
    let r = kernelpool_bench::run_groups(&config, m, gs).expect("runs");
    assert_eq!(r.failures, 0, "{:#?}", r.cells);
    let dir = scratch("report");
    let md_path = report::write(&r, &dir).expect("report written");

    // JSON parses and holds every cell.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
            .expect("JSON parses");
    assert_eq!(json["cells"].as_array().map(Vec::len), Some(r.cells.len()));
    assert!(json["machine"]["cores"].as_u64().is_some());
    assert!(json["load"]["others_cpu_s"].as_f64().is_some());
    assert!(json["peak"]["triad_bps"].as_f64().is_some_and(|b| b > 0.0));

    // CSV: the header is the columns, every line has as many fields.
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(csv_fields(lines.next().unwrap()), output::CSV_COLUMNS);
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(rows.len(), r.cells.len());
    for row in &rows {
        assert_eq!(row.len(), output::CSV_COLUMNS.len(), "{row:?}");
        let median: f64 = row[9].parse().expect("median_s is a number");
        assert!(median > 0.0);
    }
    // Triad rows have a fraction of the peak.
    assert!(
        rows.iter()
            .filter(|r| r[0] == "triad")
            .all(|r| r[20].parse::<f64>().is_ok())
    );

    // Every plot: PNG decodes at the expected size, SVG is SVG, report.md links both.
    let md = std::fs::read_to_string(&md_path).unwrap();
    for name in ["speedup", "time", "triad", "seed"] {
        let png = dir.join(format!("{name}.png"));
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&png).unwrap_or_else(|e| panic!("{name}.png: {e}")),
        ));
        let reader = decoder.read_info().expect("PNG decodes");
        let want = if name == "seed" {
            plots::SEED_SIZE
        } else {
            plots::SIZE
        };
        assert_eq!((reader.info().width, reader.info().height), want, "{name}");
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg"
        );
        assert!(
            md.contains(&format!("]({name}.png)")),
            "report.md lacks {name}.png"
        );
        assert!(
            md.contains(&format!("]({name}.svg)")),
            "report.md lacks {name}.svg"
        );
    }
    for words in [
        "## Machine",
        "load during the run",
        "STREAM triad peak",
        "fold the integer loop",
        "not available",
    ] {
        assert!(md.contains(words), "report.md lacks `{words}`");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed section for real: the project's Python with numba (`scripts/python-env.sh`
/// makes `target/kpool-venv`; `scripts/test.sh` runs it first and sets `KPOOL_PYTHON`)
/// beside every kernelpool row. Without that Python the test fails, naming the fix.
#[test]
fn the_seed_section_runs_with_python_and_numba() {
    let mut cfg = SeedConfig::new(Sizes::Quick);
    cfg.python_reps = 1;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cfg.python.is_some(),
        "no Python for the seed section: run scripts/python-env.sh (scripts/test.sh does), \
         or set KPOOL_PYTHON to a python with numpy and numba"
    );
    cfg.execs.truncate(if cores > 1 { 3 } else { 1 });
    let execs = Executors::start(&cfg.execs, None).expect("pools start");
    let s = seed::run(&cfg, &execs, &indicatif::ProgressBar::hidden());
    assert_eq!(s.failures(), 0, "{:#?}", s.rows);
    assert!(s.python.is_some());
    let ok = |who: &str, section: &str| {
        s.rows
            .iter()
            .any(|r| r.who == who && r.section == section && r.status == RowStatus::Ok)
    };
    for section in ["integer", "float"] {
        assert!(ok("python", section), "{section}: {:#?}", s.rows);
        assert!(ok("python Pool()", section), "{section}");
    }
    assert!(ok("rust", "float") && ok("c", "integer") && ok("fortran", "integer"));
    assert!(
        ok("jit c", "float") && ok("jit fortran", "float"),
        "{:#?}",
        s.rows
    );
    assert!(
        s.numba.is_some(),
        "{} has no numba: run scripts/python-env.sh (scripts/test.sh does), or set \
         KPOOL_PYTHON to a python with numpy and numba",
        cfg.python
            .as_ref()
            .map_or("python".into(), |p| p.display().to_string())
    );
    for section in ["integer", "float"] {
        assert!(ok("numba warm", section), "{section}: {:#?}", s.rows);
        assert!(ok("numba first call", section), "{section}");
    }
}
