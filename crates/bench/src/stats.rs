//! Statistics of repeated timings: median, min–max, a bootstrap interval of the median,
//! and speedups from paired repetitions (round r of one cell against round r of another).
//!
//! The bootstrap draws from a fixed-seed splitmix64 stream, so the same samples always
//! give the same interval (reports and tests are reproducible).

use serde::Serialize;

/// Confidence level of the bootstrap intervals.
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;

/// Summary of one cell's samples (seconds, or any positive quantity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Lower end of the bootstrap interval of the median.
    pub lo: f64,
    /// Upper end of the bootstrap interval of the median.
    pub hi: f64,
}

impl Summary {
    /// Summarise `samples` (at least one).
    ///
    /// # Panics
    /// When `samples` is empty or holds a NaN.
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among samples"));
        let (lo, hi) = bootstrap_median(&s);
        Summary {
            n: s.len(),
            median: median_sorted(&s),
            min: s[0],
            max: s[s.len() - 1],
            lo,
            hi,
        }
    }

    /// Width of the bootstrap interval relative to the median: what decides "noisy".
    pub fn rel_interval(&self) -> f64 {
        if self.median > 0.0 {
            (self.hi - self.lo) / self.median
        } else {
            0.0
        }
    }

    /// (max - min) / median.
    pub fn rel_spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// Median of sorted samples (mean of the two middle ones for an even count).
pub fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Median of unsorted samples.
///
/// # Panics
/// On an empty slice or a NaN.
pub fn median(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among samples"));
    median_sorted(&s)
}

/// splitmix64 (the same generator as the kernels' counter-based streams).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Percentile bootstrap interval ([`CONFIDENCE`]) of the median of sorted samples. With one
/// sample the interval is that sample.
fn bootstrap_median(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    if n == 1 {
        return (sorted[0], sorted[0]);
    }
    let mut state = 0x6b70_6f6f_6c21_u64 ^ n as u64;
    let mut medians = Vec::with_capacity(RESAMPLES);
    let mut draw = vec![0.0; n];
    for _ in 0..RESAMPLES {
        for d in draw.iter_mut() {
            *d = sorted[(splitmix64(&mut state) % n as u64) as usize];
        }
        draw.sort_by(|a, b| a.total_cmp(b));
        medians.push(median_sorted(&draw));
    }
    medians.sort_by(|a, b| a.total_cmp(b));
    let alpha = (1.0 - CONFIDENCE) / 2.0;
    let at = |q: f64| medians[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
    (at(alpha), at(1.0 - alpha))
}

/// Speedup of `cell` over `base` from paired samples: the ratios `base[r] / cell[r]` of
/// the same round `r` (both ran within moments of each other, so drift of the machine
/// cancels), summarised. Only the first `min(len)` rounds pair.
///
/// # Panics
/// When either slice is empty.
pub fn paired_speedup(base: &[f64], cell: &[f64]) -> Summary {
    let ratios: Vec<f64> = base.iter().zip(cell).map(|(b, c)| b / c).collect();
    Summary::of(&ratios)
}

/// Repetitions for a cell whose one run takes `run_s` seconds: enough to fill `budget_s`,
/// between `min` and `max`.
pub fn repetitions(run_s: f64, budget_s: f64, min: usize, max: usize) -> usize {
    if run_s <= 0.0 {
        return max;
    }
    ((budget_s / run_s).ceil() as usize).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn summary_of_known_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        // The interval holds the median and stays inside the samples.
        assert!(s.lo <= s.median && s.median <= s.hi, "{s:?}");
        assert!(s.lo >= 1.0 && s.hi <= 5.0, "{s:?}");
        assert!((s.rel_spread() - 4.0 / 3.0).abs() < 1e-12);
        // Deterministic.
        assert_eq!(s, Summary::of(&[1.0, 2.0, 3.0, 4.0, 5.0]));
    }

    #[test]
    fn constant_samples_have_a_zero_width_interval() {
        let s = Summary::of(&[2.0; 9]);
        assert_eq!((s.lo, s.hi, s.rel_interval()), (2.0, 2.0, 0.0));
    }

    #[test]
    fn the_interval_narrows_with_more_samples() {
        // The same spread of values, 5 and 45 samples: the median's interval narrows.
        let few: Vec<f64> = (0..5).map(|i| 1.0 + 0.1 * f64::from(i)).collect();
        let many: Vec<f64> = (0..45).map(|i| 1.0 + 0.1 * f64::from(i % 5)).collect();
        assert!(Summary::of(&many).rel_interval() < Summary::of(&few).rel_interval());
    }

    #[test]
    fn paired_speedup_cancels_drift() {
        // The machine slows down round after round; the cell is always exactly twice as
        // fast as the base in the same round. Unpaired medians would still give 2, but
        // their min-max would not; the paired ratios are all exactly 2.
        let base: Vec<f64> = (1..=7).map(|r| f64::from(r) * 0.1).collect();
        let cell: Vec<f64> = base.iter().map(|b| b / 2.0).collect();
        let s = paired_speedup(&base, &cell);
        assert_eq!(
            (s.median, s.min, s.max, s.lo, s.hi),
            (2.0, 2.0, 2.0, 2.0, 2.0)
        );
    }

    #[test]
    fn paired_speedup_of_known_ratios() {
        let s = paired_speedup(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
    }

    #[test]
    fn repetitions_fill_the_budget_within_bounds() {
        assert_eq!(repetitions(0.1, 1.0, 3, 30), 10);
        assert_eq!(repetitions(10.0, 1.0, 3, 30), 3);
        assert_eq!(repetitions(1e-6, 1.0, 3, 30), 30);
    }
}
