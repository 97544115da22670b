//! The machine's own STREAM triad peak: the C STREAM program at arrays of at least 4× the
//! last-level cache (less when memory is short), serial and on threads at every core; the
//! best triad rate of all is the peak memory-bound cells are reported against.

use crate::matrix::{ExecKind, ExecSpec, full_triad_n};
use kernelpool_kernels::{Kernel, KernelName, Lang, Options, programs};
use serde::Serialize;

/// The measured peak.
#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    /// Best triad rate, bytes/s.
    pub triad_bps: f64,
    /// Array length used.
    pub n: u64,
    /// Best triad rate of each executor measured (label, bytes/s).
    pub by_exec: Vec<(String, f64)>,
}

/// The best rate of STREAM's `name` operation in a program's notes, bytes/s.
pub fn note_rate(notes: &[String], name: &str) -> Option<f64> {
    let prefix = format!("{name}: best rate ");
    notes.iter().find_map(|n| {
        let mbs = n.strip_prefix(&prefix)?.split_whitespace().next()?;
        mbs.parse::<f64>().ok().map(|v| v * 1e6)
    })
}

/// Measure the peak (`runs` program runs per executor).
///
/// # Errors
/// A pool that fails to start, or a STREAM run that fails.
pub fn measure(llc_bytes: u64, cores: usize, runs: usize) -> Result<Peak, String> {
    let mut n = full_triad_n(llc_bytes);
    // Three arrays; stay within a quarter of the memory available now.
    let avail = kernelpool_kernels::buffer::available_memory();
    while 24 * n > avail / 4 && n > 1_000_000 {
        n /= 2;
    }
    let kernel = Kernel::get(KernelName::Triad, Lang::C);
    let opts = Options::new().n(n);
    let mut by_exec = Vec::new();
    let mut specs = vec![ExecSpec::SERIAL];
    if cores > 1 {
        specs.push(ExecSpec {
            kind: ExecKind::Threads,
            workers: cores,
        });
    }
    for spec in specs {
        let exec = spec.build(None)?;
        let mut best = 0.0f64;
        for _ in 0..runs.max(1) {
            let out = programs::run(kernel.clone(), &opts, exec.as_ref())
                .map_err(|e| format!("STREAM peak on {}: {e}", spec.label()))?;
            best = best.max(note_rate(&out.notes, "Triad").unwrap_or(0.0));
        }
        by_exec.push((spec.label(), best));
    }
    let triad_bps = by_exec.iter().map(|e| e.1).fold(0.0, f64::max);
    Ok(Peak {
        triad_bps,
        n,
        by_exec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_from_the_notes() {
        let notes = vec![
            "Copy: best rate 1000.0 MB/s (0.1 s)".to_string(),
            "Triad: best rate 12345.6 MB/s (0.000123 s)".to_string(),
        ];
        assert_eq!(note_rate(&notes, "Triad"), Some(12345.6e6));
        assert_eq!(note_rate(&notes, "Add"), None);
    }
}
