//! The table on stdout (one table per kernel, winner marked), JSON and CSV.

use crate::Report;
use crate::measure::CellResult;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use kernelpool_kernels::KernelName;
use std::fmt::Write as _;

/// Seconds with a unit that fits.
pub fn fmt_s(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// A rate with an SI prefix.
pub fn fmt_rate(v: f64, unit: &str) -> String {
    let (d, p) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    format!("{:.2} {p}{unit}", v / d)
}

/// Size in words: `N=700`, `N=20000 × 16 systems`.
pub fn fmt_size(kernel: KernelName, n: u64, systems: u64) -> String {
    if kernel == KernelName::Nbody {
        format!("N={n} × {systems} systems")
    } else {
        format!("N={n}")
    }
}

/// What the status column says.
pub fn status(c: &CellResult) -> String {
    match &c.failure {
        Some(f) => format!("FAILED: {f}"),
        None if c.noisy => "ok, noisy (not ranked)".into(),
        None if c.winner => "ok ★ winner".into(),
        None => "ok".into(),
    }
}

/// The tables, one per kernel, as text.
pub fn tables(report: &Report) -> String {
    let mut out = String::new();
    let mut kernels: Vec<KernelName> = Vec::new();
    for c in &report.cells {
        if !kernels.contains(&c.kernel) {
            kernels.push(c.kernel);
        }
    }
    let many_variants = report
        .cells
        .iter()
        .any(|c| c.variant != crate::matrix::Variant::Plain);
    for k in kernels {
        let cells: Vec<&CellResult> = report.cells.iter().filter(|c| c.kernel == k).collect();
        let first = cells[0];
        let _ = writeln!(
            out,
            "\n{k}  ({}, {})",
            fmt_size(k, first.n, first.systems),
            first.check.label()
        );
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled);
        let mut header = vec!["lang"];
        if many_variants {
            header.push("variant");
        }
        header.extend([
            "executor",
            "median",
            "min – max",
            "95% CI",
            "speedup (paired)",
            "eff.",
            "rate",
            "status",
        ]);
        t.set_header(header);
        for c in cells {
            let mut row = vec![Cell::new(&c.imp)];
            if many_variants {
                row.push(Cell::new(c.variant.name()));
            }
            row.push(Cell::new(&c.exec_label));
            match c.time {
                Some(s) => {
                    row.push(Cell::new(fmt_s(s.median)).set_alignment(CellAlignment::Right));
                    row.push(Cell::new(format!("{} – {}", fmt_s(s.min), fmt_s(s.max))));
                    row.push(Cell::new(format!("±{:.1} %", 50.0 * s.rel_interval())));
                }
                None => row.extend([Cell::new("-"), Cell::new("-"), Cell::new("-")]),
            }
            row.push(Cell::new(c.speedup.map_or("-".into(), |s| {
                format!("{:.2}× [{:.2}–{:.2}]", s.median, s.lo, s.hi)
            })));
            row.push(Cell::new(
                c.efficiency
                    .map_or("-".into(), |e| format!("{:.0} %", 100.0 * e)),
            ));
            row.push(Cell::new(c.rate.as_ref().map_or("-".into(), |r| {
                let mut s = fmt_rate(r.per_s, r.unit);
                if let Some(p) = r.of_peak {
                    let _ = write!(s, " ({:.0} % of peak)", 100.0 * p);
                }
                s
            })));
            row.push(Cell::new(status(c)));
            t.add_row(row);
        }
        let _ = writeln!(out, "{t}");
    }
    out
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "kernel",
    "variant",
    "impl",
    "lang",
    "executor",
    "workers",
    "n",
    "systems",
    "reps",
    "median_s",
    "min_s",
    "max_s",
    "ci_lo_s",
    "ci_hi_s",
    "speedup",
    "speedup_lo",
    "speedup_hi",
    "efficiency",
    "rate",
    "rate_unit",
    "of_peak",
    "check",
    "noisy",
    "winner",
    "status",
];

/// The cells as CSV (a header line, then one line per cell).
pub fn csv(cells: &[CellResult]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:e}"));
    for c in cells {
        let t = c.time;
        let s = c.speedup;
        let fields = [
            c.kernel.name().to_string(),
            c.variant.name().to_string(),
            c.imp.clone(),
            c.lang.name().to_string(),
            c.exec.kind.name().to_string(),
            c.exec.workers.to_string(),
            c.n.to_string(),
            c.systems.to_string(),
            c.times_s.len().to_string(),
            opt(t.map(|t| t.median)),
            opt(t.map(|t| t.min)),
            opt(t.map(|t| t.max)),
            opt(t.map(|t| t.lo)),
            opt(t.map(|t| t.hi)),
            opt(s.map(|s| s.median)),
            opt(s.map(|s| s.lo)),
            opt(s.map(|s| s.hi)),
            opt(c.efficiency),
            opt(c.rate.as_ref().map(|r| r.per_s)),
            c.rate
                .as_ref()
                .map_or(String::new(), |r| r.unit.to_string()),
            opt(c.rate.as_ref().and_then(|r| r.of_peak)),
            format!("{:?}", c.check),
            c.noisy.to_string(),
            c.winner.to_string(),
            status(c),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out += &line.join(",");
        out.push('\n');
    }
    out
}

/// Quote a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The whole report as JSON.
///
/// # Errors
/// serde_json's (none expected: every field is plain data).
pub fn json(report: &Report) -> Result<String, String> {
    serde_json::to_string_pretty(report).map_err(|e| format!("encoding JSON: {e}"))
}

/// The seed section as a table.
pub fn seed_table(s: &crate::seed::SeedSection) -> String {
    use crate::seed::RowStatus;
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(["loop", "who", "executor", "median", "min – max", "status"]);
    for r in &s.rows {
        let (med, mm) = match r.time {
            Some(x) => (
                fmt_s(x.median),
                format!("{} – {}", fmt_s(x.min), fmt_s(x.max)),
            ),
            None => ("-".into(), "-".into()),
        };
        let st = match &r.status {
            RowStatus::Ok => "ok".to_string(),
            RowStatus::NotAvailable(w) => w.clone(),
            RowStatus::Failed(w) => format!("FAILED: {w}"),
        };
        t.add_row([
            r.section.to_string(),
            r.who.clone(),
            r.exec.clone(),
            med,
            mm,
            st,
        ]);
    }
    format!(
        "\nseed: f(x) over x = {:?}, 10,000,000 trips of j += x*x (integer: folded by gcc, g++, rustc and numba; float accumulator: cannot be folded)\n{t}\n",
        s.args
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_s(0.0123), "12.30 ms");
        assert_eq!(fmt_s(2.5), "2.500 s");
        assert_eq!(fmt_s(3e-6), "3.00 µs");
        assert_eq!(fmt_rate(2.5e9, "B/s"), "2.50 GB/s");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
