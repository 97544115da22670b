//! The published reference outputs kernels are checked against (Benchmarks Game, Rosetta
//! Code's splitmix64). A byte-identical copy of `../shared/reference-outputs` is vendored in
//! `reference-outputs/` so a clone of the repository is self-contained; the test
//! `vendored_reference_outputs_match_shared` keeps the copy honest.

use crate::registry::KernelName;

/// nbody, N=1000.
pub const NBODY_1000: &[u8] = include_bytes!("../../../reference-outputs/nbody-1000.out");
/// spectralnorm, N=100.
pub const SPECTRALNORM_100: &[u8] =
    include_bytes!("../../../reference-outputs/spectralnorm-100.out");
/// mandelbrot, N=200 (PBM P4).
pub const MANDELBROT_200: &[u8] = include_bytes!("../../../reference-outputs/mandelbrot-200.pbm");
/// fannkuch-redux, N=7.
pub const FANNKUCHREDUX_7: &[u8] = include_bytes!("../../../reference-outputs/fannkuchredux-7.out");
/// First five splitmix64 outputs for seed 1234567.
pub const SPLITMIX64_SEED1234567: &str =
    include_str!("../../../reference-outputs/splitmix64-seed1234567-first5.txt");

/// The published output for `kernel` at size `n`, when one exists.
pub fn expected(kernel: KernelName, n: u64) -> Option<&'static [u8]> {
    match (kernel, n) {
        (KernelName::Nbody, 1000) => Some(NBODY_1000),
        (KernelName::Spectralnorm, 100) => Some(SPECTRALNORM_100),
        (KernelName::Mandelbrot, 200) => Some(MANDELBROT_200),
        (KernelName::Fannkuch, 7) => Some(FANNKUCHREDUX_7),
        _ => None,
    }
}

/// The splitmix64 reference values.
///
/// # Panics
/// Never: the vendored file holds five integers (checked by the tests).
pub fn splitmix64_first5() -> Vec<u64> {
    SPLITMIX64_SEED1234567
        .split_whitespace()
        .map(|w| w.parse().expect("reference file holds integers"))
        .collect()
}

/// The size at which each kernel has a published reference output (seed, triad and pi have
/// none: they are checked against closed forms and STREAM's own validation instead).
pub fn reference_size(kernel: KernelName) -> Option<u64> {
    match kernel {
        KernelName::Nbody => Some(1000),
        KernelName::Spectralnorm => Some(100),
        KernelName::Mandelbrot => Some(200),
        KernelName::Fannkuch => Some(7),
        _ => None,
    }
}

/// Check an output against what is known for (kernel, n): the reference file where one
/// exists, the closed form of `seed` (10^7 x^2 per line). Returns `None` when nothing
/// outside the program can vouch for the output, `Some(false)` on a mismatch.
pub fn verify(kernel: KernelName, n: u64, stdout: &[u8]) -> Option<bool> {
    if let Some(exp) = expected(kernel, n) {
        return Some(exp == stdout);
    }
    match kernel {
        KernelName::Seed => {
            let want: String = (1..=n)
                .map(|x| {
                    format!(
                        "{}\n",
                        (crate::programs::SEED_ITERS as u64).wrapping_mul(x.wrapping_mul(x)) as i64
                    )
                })
                .collect();
            Some(want.as_bytes() == stdout)
        }
        _ => None,
    }
}
