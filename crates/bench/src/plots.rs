//! The report's plots, each as SVG and PNG (plotters). Text in the PNGs is drawn with
//! ab_glyph from the DejaVu Sans shipped in `assets/` (no system fonts needed); the SVGs
//! name the font family and leave the drawing to the viewer.
//!
//! - `speedup`: paired speedup over serial against workers, one panel per kernel, one
//!   line per executor (median over languages and variants, min–max over them as bars),
//!   and the ideal line;
//! - `time`: median time per language, one panel per kernel, one bar per executor and
//!   variant (tuned pale, beside plain), with min–max whiskers;
//! - `triad`: each triad cell's bandwidth against the machine's measured STREAM peak;
//! - `seed`: the seed section (Python, numba, kernelpool) on a log time axis.

use crate::Report;
use crate::matrix::ExecKind;
use crate::measure::CellResult;
use crate::seed::RowStatus;
use kernelpool_kernels::KernelName;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The DejaVu Sans font (Bitstream Vera licence, see `assets/DejaVu-LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Family name the plots ask for.
const FAMILY: &str = "sans-serif";

/// Width and height of each plot, pixels.
pub const SIZE: (u32, u32) = (1400, 900);
/// The seed plot's size.
pub const SEED_SIZE: (u32, u32) = (1400, 1000);

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the shipped font does not parse".to_string());
    });
    result
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing: {e:?}")
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A plot the report links: its name and the files written.
#[derive(Debug, Clone)]
pub struct Plot {
    /// `speedup`, `time`, `triad`, `seed`.
    pub name: &'static str,
    /// What it shows.
    pub title: &'static str,
    /// The SVG file.
    pub svg: PathBuf,
    /// The PNG file.
    pub png: PathBuf,
}

/// Draw every plot that has data into `dir`.
///
/// # Errors
/// A plot that cannot be drawn or written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<Plot>, String> {
    register_font()?;
    let mut plots = Vec::new();
    let list: [(&'static str, &'static str, (u32, u32)); 4] = [
        (
            "speedup",
            "Speedup over serial against workers (paired rounds), with the ideal line",
            SIZE,
        ),
        (
            "time",
            "Median time per language and executor, min–max whiskers",
            SIZE,
        ),
        (
            "triad",
            "STREAM bandwidth of each triad cell against the measured peak",
            SIZE,
        ),
        (
            "seed",
            "The course's seed example: Python, numba and kernelpool, log time axis",
            SEED_SIZE,
        ),
    ];
    for (name, title, size) in list {
        let svg = dir.join(format!("{name}.svg"));
        let png = dir.join(format!("{name}.png"));
        let drawn = {
            let root = SVGBackend::new(&svg, size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let d = draw(name, report, &root)?;
            root.present().map_err(err)?;
            d
        };
        if !drawn {
            let _ = std::fs::remove_file(&svg);
            continue;
        }
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            draw(name, report, &root)?;
            root.present().map_err(err)?;
        }
        plots.push(Plot {
            name,
            title,
            svg,
            png,
        });
    }
    Ok(plots)
}

/// Draw the plot `name` on `root`; false when there is nothing to draw.
fn draw<DB: DrawingBackend>(
    name: &str,
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<bool, String> {
    match name {
        "speedup" => speedup(report, root),
        "time" => times(report, root),
        "triad" => triad(report, root),
        _ => seed(report, root),
    }
}

/// The chart's legend: its series' labels in a framed, half-opaque box at `pos`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    font_size: u32,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font((FAMILY, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// The label of the category at axis position `at` (categories sit at 0, 1, 2, ...; other
/// positions get none); `top_down`: the first name is at the far end of the axis (for
/// rows listed top to bottom).
fn category_label(names: &[String], at: f64, top_down: bool) -> String {
    let i = at.round();
    if (at - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
        return String::new();
    }
    let i = i as usize;
    let i = if top_down { names.len() - 1 - i } else { i };
    names[i].clone()
}

fn kernels_of(cells: &[CellResult]) -> Vec<KernelName> {
    let mut out = Vec::new();
    for c in cells {
        if !out.contains(&c.kernel) {
            out.push(c.kernel);
        }
    }
    out
}

/// Panels in a grid of `cols` columns for `n` plots, with a title band on top.
fn panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    n: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>, String> {
    let body = root.titled(title, (FAMILY, 30).into_font()).map_err(err)?;
    let cols = n.clamp(1, 3);
    let rows = n.div_ceil(cols).max(1);
    Ok(body
        .split_evenly((rows, cols))
        .into_iter()
        .take(n)
        .collect())
}

fn speedup<DB: DrawingBackend>(
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<bool, String> {
    let cells: Vec<&CellResult> = report
        .cells
        .iter()
        .filter(|c| c.speedup.is_some() && c.exec.kind != ExecKind::Serial)
        .collect();
    if cells.is_empty() {
        return Ok(false);
    }
    let kernels = kernels_of(&report.cells);
    let max_w = cells
        .iter()
        .map(|c| c.exec.workers)
        .max()
        .unwrap_or(1)
        .max(2);
    let max_s = cells
        .iter()
        .filter_map(|c| c.speedup.map(|s| s.max))
        .fold(max_w as f64, f64::max)
        * 1.1;
    let areas = panels(
        root,
        "Speedup over serial (paired rounds; median over languages and variants, bars: min–max)",
        kernels.len(),
    )?;
    for (area, k) in areas.iter().zip(&kernels) {
        let mut chart = ChartBuilder::on(area)
            .caption(k.name(), (FAMILY, 24))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..max_w as f64 + 0.5, 0f64..max_s)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("workers")
            .y_desc("speedup over serial (×)")
            .x_labels(max_w + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                (1..=max_w).map(|w| (w as f64, w as f64)),
                BLACK.stroke_width(1),
            ))
            .map_err(err)?
            .label("ideal")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for (ci, kind) in [ExecKind::Threads, ExecKind::Processes, ExecKind::Mpi]
            .iter()
            .enumerate()
        {
            let color = COLORS[ci];
            let mut pts = Vec::new();
            for w in 1..=max_w {
                let s: Vec<f64> = cells
                    .iter()
                    .filter(|c| c.kernel == *k && c.exec.kind == *kind && c.exec.workers == w)
                    .filter_map(|c| c.speedup.map(|s| s.median))
                    .collect();
                if s.is_empty() {
                    continue;
                }
                let med = crate::stats::median(&s);
                let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = s.iter().copied().fold(0.0, f64::max);
                pts.push((w as f64, med, lo, hi));
            }
            if pts.is_empty() {
                continue;
            }
            // Offset the executors a little so their bars do not hide each other.
            let dx = (ci as f64 - 1.0) * 0.05;
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0 + dx, p.1)),
                    color.stroke_width(3),
                ))
                .map_err(err)?
                .label(kind.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart
                .draw_series(
                    pts.iter().map(|p| {
                        ErrorBar::new_vertical(p.0 + dx, p.2, p.1, p.3, color.filled(), 10)
                    }),
                )
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 16)?;
    }
    Ok(true)
}

fn times<DB: DrawingBackend>(
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<bool, String> {
    let cells: Vec<&CellResult> = report.cells.iter().filter(|c| c.time.is_some()).collect();
    if cells.is_empty() {
        return Ok(false);
    }
    let kernels = kernels_of(&report.cells);
    let mut execs: Vec<String> = Vec::new();
    for c in &cells {
        if !execs.contains(&c.exec_label) {
            execs.push(c.exec_label.clone());
        }
    }
    let areas = panels(
        root,
        "Median time per language (whiskers: min–max of the rounds, cut at the top)",
        kernels.len(),
    )?;
    for (area, k) in areas.iter().zip(&kernels) {
        let kc: Vec<&&CellResult> = cells.iter().filter(|c| c.kernel == *k).collect();
        let mut imps: Vec<String> = Vec::new();
        for c in &kc {
            if !imps.contains(&c.imp) {
                imps.push(c.imp.clone());
            }
        }
        // Headroom above the highest median for the legend (top right); a whisker that
        // goes higher is cut at the top edge.
        let ymax = kc
            .iter()
            .filter_map(|c| c.time.map(|t| t.median))
            .fold(0.0, f64::max)
            * 1e3
            * 2.3;
        let mut chart = ChartBuilder::on(area)
            .caption(k.name(), (FAMILY, 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..imps.len() as f64 - 0.5, 0f64..ymax.max(1e-3))
            .map_err(err)?;
        let names = imps.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(imps.len() * 2 + 1)
            .x_label_formatter(&move |x| category_label(&names, *x, false))
            .y_desc("median time (ms)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(err)?;
        // Per language: the executors' bars for plain, then (pale) for tuned.
        let variants: Vec<crate::matrix::Variant> = crate::matrix::Variant::ALL
            .into_iter()
            .filter(|v| kc.iter().any(|c| c.variant == *v))
            .collect();
        let slots = execs.len() * variants.len();
        let width = 0.8 / slots as f64;
        for (vi, v) in variants.iter().enumerate() {
            for (ei, e) in execs.iter().enumerate() {
                let base = COLORS[ei % COLORS.len()];
                let color = if vi == 0 {
                    base.mix(1.0)
                } else {
                    base.mix(0.4)
                };
                let slot = (vi * execs.len() + ei) as f64;
                let bars: Vec<(f64, f64, f64, f64)> = kc
                    .iter()
                    .filter(|c| &c.exec_label == e && c.variant == *v)
                    .filter_map(|c| {
                        let i = imps.iter().position(|x| *x == c.imp)? as f64;
                        let t = c.time?;
                        let x0 = i - 0.4 + slot * width;
                        Some((x0, t.median * 1e3, t.min * 1e3, t.max * 1e3))
                    })
                    .collect();
                let series = chart
                    .draw_series(bars.iter().map(|b| {
                        Rectangle::new([(b.0, 0.0), (b.0 + width * 0.9, b.1)], color.filled())
                    }))
                    .map_err(err)?;
                if vi == 0 {
                    series.label(e.clone()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                    });
                }
                chart
                    .draw_series(bars.iter().map(|b| {
                        ErrorBar::new_vertical(b.0 + width * 0.45, b.2, b.1, b.3, BLACK.filled(), 4)
                    }))
                    .map_err(err)?;
            }
        }
        if variants.len() > 1 {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                .map_err(err)?
                .label("pale: tuned (right of plain)")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], COLORS[0].mix(0.4).filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 14)?;
    }
    Ok(true)
}

fn triad<DB: DrawingBackend>(
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<bool, String> {
    let cells: Vec<&CellResult> = report
        .cells
        .iter()
        .filter(|c| c.kernel == KernelName::Triad && c.rate.is_some())
        .collect();
    let Some(peak) = &report.peak else {
        return Ok(false);
    };
    if cells.is_empty() {
        return Ok(false);
    }
    let peak_gbs = peak.triad_bps / 1e9;
    let labels: Vec<String> = cells
        .iter()
        .map(|c| format!("{} {} {}", c.imp, c.variant, c.exec_label))
        .collect();
    let ymax = cells
        .iter()
        .filter_map(|c| c.rate.as_ref().map(|r| r.per_s / 1e9))
        .fold(peak_gbs, f64::max)
        // Room on the right for the legend.
        * 1.35;
    let root = root
        .titled(
            &format!(
                "STREAM (copy, scale, add, triad) per cell against the measured triad peak ({peak_gbs:.1} GB/s, N={})",
                peak.n
            ),
            (FAMILY, 26).into_font(),
        )
        .map_err(err)?;
    // Horizontal bars: one row per cell, its label on the left, top to bottom in the
    // table's order.
    let rows = cells.len();
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..ymax, -0.5f64..rows as f64 - 0.5)
        .map_err(err)?;
    let names = labels.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows * 2 + 1)
        .y_label_formatter(&move |y| category_label(&names, *y, true))
        .x_desc("bandwidth (GB/s, 10^9 bytes per second)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(err)?;
    let langs: Vec<String> = crate::measure::imps_of(&report.cells);
    for (i, c) in cells.iter().enumerate() {
        let gbs = c.rate.as_ref().map_or(0.0, |r| r.per_s / 1e9);
        let color = COLORS[langs.iter().position(|l| *l == c.imp).unwrap_or(0) % COLORS.len()];
        let y = (rows - 1 - i) as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.35), (gbs, y + 0.35)],
                color.filled(),
            )))
            .map_err(err)?;
    }
    for (li, l) in langs.iter().enumerate() {
        let color = COLORS[li % COLORS.len()];
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(err)?
            .label(l.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(peak_gbs, -0.5), (peak_gbs, rows as f64 - 0.5)],
            RED.stroke_width(3),
        ))
        .map_err(err)?
        .label("measured triad peak")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
    legend(&mut chart, SeriesLabelPosition::UpperRight, 16)?;
    Ok(true)
}

fn seed<DB: DrawingBackend>(
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<bool, String> {
    let Some(s) = &report.seed else {
        return Ok(false);
    };
    let rows: Vec<_> = s
        .rows
        .iter()
        .filter(|r| r.status == RowStatus::Ok && r.time.is_some())
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let lo = rows
        .iter()
        .filter_map(|r| r.time.map(|t| t.min))
        .fold(f64::INFINITY, f64::min)
        .max(1e-9)
        / 3.0;
    let hi = rows
        .iter()
        .filter_map(|r| r.time.map(|t| t.max))
        .fold(0.0, f64::max)
        * 3.0;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {} {}", r.section, r.who, r.exec))
        .collect();
    let n = rows.len();
    let root = root
        .titled(
            &format!(
                "f(x) over x = {:?}: 10,000,000 trips of j += x*x (integer: folded by compilers; float: cannot be)",
                s.args
            ),
            (FAMILY, 24).into_font(),
        )
        .map_err(err)?;
    let names = labels.clone();
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(330)
        .build_cartesian_2d((lo..hi).log_scale(), -0.5f64..n as f64 - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&move |y| category_label(&names, *y, true))
        .x_desc("median time for all arguments (seconds, log scale; bars: min–max)")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(err)?;
    let kind_color = |who: &str| {
        if who.starts_with("python") {
            COLORS[0]
        } else if who.starts_with("numba") {
            COLORS[1]
        } else if who.starts_with("jit") {
            COLORS[4]
        } else {
            COLORS[2]
        }
    };
    for (i, r) in rows.iter().enumerate() {
        let Some(t) = r.time else { continue };
        let y = (n - 1 - i) as f64;
        let color = kind_color(&r.who);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(lo, y - 0.35), (t.median, y + 0.35)],
                color.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                y,
                t.min,
                t.median,
                t.max,
                BLACK.filled(),
                8,
            )))
            .map_err(err)?;
    }
    for (name, color) in [
        ("pure Python", COLORS[0]),
        ("numba", COLORS[1]),
        ("kernelpool (built in)", COLORS[2]),
        ("kernelpool JIT", COLORS[4]),
    ] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 16)?;
    Ok(true)
}
