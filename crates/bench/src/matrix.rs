//! The benchmark matrix: kernel × variant × implementation (language) × executor × workers.
//!
//! A [`Group`] is one (kernel, variant, implementation) at one size; its [`ExecSpec`]s are
//! the cells compared with each other (serial, threads and processes at each worker
//! count), so they are measured interleaved, round-robin. New dimensions slot in as enum
//! variants here:
//! - a kernel **variant**: a [`Variant`] value (kernelpool's own: plain, tuned) and its
//!   arm in [`Impl::kernel`];
//! - another **implementation** row (JIT-compiled C++, say): an [`Impl`] value, its label
//!   and its arm in [`Impl::kernel`];
//! - another **executor** (MPI): an [`ExecKind`] value and its arm in
//!   [`ExecSpec::build`].

use kernelpool_kernels::{Executor, Kernel, KernelName, Lang, Serial};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

pub use kernelpool_kernels::Variant;

/// An implementation row of the table: a built-in kernel in one language, or the C
/// kernels compiled at run time by kernelpool's JIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Impl {
    /// The kernel built into kernelpool in this language.
    Native(Lang),
    /// The same source as [`Impl::Native`]`(lang)`, compiled when the bench runs by
    /// `kernelpool-jit` (cached by content hash, loaded with libloading): what a user's
    /// JIT kernel costs beside the built-in one. C only (`native/c/kernels.c`, plain
    /// variant).
    Jit(Lang),
}

/// The plain C kernels, compiled by the JIT for the `jit-c` row (the JIT's build directory
/// has `kernels.h`).
const C_KERNELS_SOURCE: &str = include_str!("../../../native/c/kernels.c");

impl Impl {
    /// All implementations, in display order: the four languages, then JIT-compiled C.
    pub fn all() -> Vec<Impl> {
        let mut all: Vec<Impl> = Lang::ALL.iter().map(|&l| Impl::Native(l)).collect();
        all.push(Impl::Jit(Lang::C));
        all
    }

    /// Label in tables and plots (`c`, `cpp`, `fortran`, `rust`, `jit-c`).
    pub fn label(self) -> &'static str {
        match self {
            Impl::Native(l) => l.name(),
            Impl::Jit(Lang::C) => "jit-c",
            Impl::Jit(_) => "jit",
        }
    }

    /// The language of the code.
    pub fn lang(self) -> Lang {
        match self {
            Impl::Native(l) | Impl::Jit(l) => l,
        }
    }

    /// The kernel to run for `kernel` in `variant`; `Ok(None)` when this implementation
    /// has no such variant (a tuned kernel some language lacks; the JIT row is plain).
    ///
    /// # Errors
    /// The JIT's, as a message (no C compiler, a compile that fails, a cache refused).
    pub fn kernel(self, kernel: KernelName, variant: Variant) -> Result<Option<Kernel>, String> {
        match self {
            Impl::Native(l) => Ok(Kernel::get_variant(kernel, l, variant).ok()),
            Impl::Jit(Lang::C) if variant == Variant::Plain => jit_c_kernel(kernel).map(Some),
            Impl::Jit(_) => Ok(None),
        }
    }
}

/// `kp_c_<kernel>` of `native/c/kernels.c`, compiled (or found in the cache) by the JIT.
fn jit_c_kernel(kernel: KernelName) -> Result<Kernel, String> {
    let jit = kernelpool_jit::Jit::new().map_err(|e| format!("jit-c: {e}"))?;
    let src = kernelpool_jit::Source::string(C_KERNELS_SOURCE, Lang::C).with_name("kernels.c");
    let symbol = format!("kp_c_{}", kernel.name());
    // SAFETY: `kp_c_<kernel>` is the C kernel that kernelpool builds in for `kernel`,
    // compiled from the same source with the same flags: it has the range-kernel
    // signature and keeps to that kernel's contract (the native tests check it).
    let k = unsafe { jit.range_kernel(&src, &symbol, kernel) }
        .map_err(|e| format!("jit-c {}: {e}", kernel.name()))?;
    Ok(k.into_kernel())
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Impl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("jit-c") {
            return Ok(Impl::Jit(Lang::C));
        }
        s.parse::<Lang>()
            .map(Impl::Native)
            .map_err(|e| format!("{e}; or jit-c (the C kernels compiled at run time)"))
    }
}

/// Kind of executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExecKind {
    /// One call on the calling thread.
    Serial,
    /// kernelpool's rayon thread pool.
    Threads,
    /// kernelpool's pool of worker processes (shared memory).
    Processes,
    /// The ranks of an MPI job (`mpirun -n workers`, one job per cell: see
    /// [`crate::mpi_job`]). Needs a kpool built with the `mpi` feature.
    Mpi,
}

impl ExecKind {
    /// The kinds that run in this process (the default without an MPI launcher).
    pub const LOCAL: [ExecKind; 3] = [ExecKind::Serial, ExecKind::Threads, ExecKind::Processes];

    /// All kinds, in display order.
    pub const ALL: [ExecKind; 4] = [
        ExecKind::Serial,
        ExecKind::Threads,
        ExecKind::Processes,
        ExecKind::Mpi,
    ];

    /// Name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ExecKind::Serial => "serial",
            ExecKind::Threads => "threads",
            ExecKind::Processes => "processes",
            ExecKind::Mpi => "mpi",
        }
    }
}

impl fmt::Display for ExecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExecKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ExecKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown executor `{s}` (known: serial, threads, processes, mpi)")
            })
    }
}

/// One executor at one worker count (serial: always 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ExecSpec {
    /// Which executor.
    pub kind: ExecKind,
    /// Workers (threads or processes).
    pub workers: usize,
}

impl ExecSpec {
    /// The serial executor.
    pub const SERIAL: ExecSpec = ExecSpec {
        kind: ExecKind::Serial,
        workers: 1,
    };

    /// Start the executor (before any timing: pool start-up is never timed). MPI cells
    /// have a job of their own instead ([`crate::mpi_job::MpiJob`]).
    ///
    /// # Errors
    /// The pool's error, as a message; for [`ExecKind::Mpi`], always.
    pub fn build(self, chunk: Option<u64>) -> Result<Box<dyn Executor>, String> {
        match self.kind {
            ExecKind::Mpi => Err("an MPI cell runs as an MPI job of its own".into()),
            ExecKind::Serial => Ok(Box::new(Serial)),
            ExecKind::Threads => {
                let mut b = kernelpool_pool::Threads::builder().workers(self.workers);
                if let Some(c) = chunk {
                    b = b.chunk(c);
                }
                Ok(Box::new(b.build().map_err(|e| e.to_string())?))
            }
            ExecKind::Processes => {
                // `×n` is n processes running chunks, as for threads: the caller takes
                // part only at n = all the cores (the pool then runs a built-in kernel's
                // steps on the caller and cores - 1 workers), not as an (n + 1)-th.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let mut b = kernelpool_pool::Processes::builder()
                    .workers(self.workers)
                    .caller_runs_chunks(self.workers >= cores);
                if let Some(c) = chunk {
                    b = b.chunk(c);
                }
                Ok(Box::new(b.build().map_err(|e| e.to_string())?))
            }
        }
    }

    /// `serial`, `threads×2`, `processes×1`, ...
    pub fn label(self) -> String {
        match self.kind {
            ExecKind::Serial => "serial".into(),
            k => format!("{k}×{}", self.workers),
        }
    }
}

/// Quick (default) or full sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizes {
    /// Every plain cell's serial time ≥ 50 ms on this project's 2-core machine (tuned
    /// cells run the same N, so they are shorter: ≥ 10 ms); the whole default run within
    /// about 2 minutes.
    Quick,
    /// The Benchmarks Game's performance sizes; triad arrays ≥ 4× the last-level cache.
    Full,
}

/// N and nbody systems of `kernel` at `sizes`; `llc_bytes` is the last-level cache (for
/// the full triad size).
pub fn size(kernel: KernelName, sizes: Sizes, llc_bytes: u64) -> (u64, u64) {
    match (kernel, sizes) {
        (KernelName::Seed, _) => (kernelpool_kernels::programs::reference_n(kernel), 1),
        (KernelName::Nbody, Sizes::Quick) => (50_000, 16),
        // The published problem is one system; the ensemble of 4 gives the executors
        // something to split (each system is the Benchmarks Game's 50,000,000 steps).
        (KernelName::Nbody, Sizes::Full) => (50_000_000, 4),
        (KernelName::Spectralnorm, Sizes::Quick) => (850, 1),
        (KernelName::Spectralnorm, Sizes::Full) => (5500, 1),
        (KernelName::Mandelbrot, Sizes::Quick) => (1000, 1),
        (KernelName::Mandelbrot, Sizes::Full) => (16000, 1),
        (KernelName::Fannkuch, Sizes::Quick) => (10, 1),
        (KernelName::Fannkuch, Sizes::Full) => (12, 1),
        // Arrays above the last-level cache even in the quick run (a memory-bound cell).
        (KernelName::Triad, Sizes::Quick) => (2_000_000, 1),
        (KernelName::Triad, Sizes::Full) => (full_triad_n(llc_bytes), 1),
        (KernelName::Pi, Sizes::Quick) => (16_000_000, 1),
        (KernelName::Pi, Sizes::Full) => (400_000_000, 1),
        // A 360² grid is 2 MB of doubles (two arrays); 2048² is 64 MB, beyond the cache.
        (KernelName::Laplace, Sizes::Quick) => (360, 1),
        (KernelName::Laplace, Sizes::Full) => (2048, 1),
        (k, _) => (kernelpool_kernels::programs::reference_n(k), 1),
    }
}

/// Elements of each STREAM array for arrays of at least 4× the last-level cache (and at
/// least 10,000,000, STREAM's own floor).
pub fn full_triad_n(llc_bytes: u64) -> u64 {
    (4 * llc_bytes).div_ceil(8).max(10_000_000)
}

/// The kernels of the main matrix by default: all but `seed`, whose integer loop compilers
/// fold (it has its own section, beside Python).
pub fn default_kernels() -> Vec<KernelName> {
    KernelName::ALL
        .into_iter()
        .filter(|&k| k != KernelName::Seed)
        .collect()
}

/// One (kernel, variant, implementation) at one size, and the executors compared on it.
#[derive(Debug, Clone)]
pub struct Group {
    /// The kernel's contract.
    pub kernel: KernelName,
    /// Which version of its code.
    pub variant: Variant,
    /// Which implementation row.
    pub imp: Impl,
    /// The code that runs (normally `imp.kernel(kernel, variant)`; tests put a wrong one).
    pub code: Kernel,
    /// N.
    pub n: u64,
    /// nbody systems (1 otherwise).
    pub systems: u64,
    /// The cells compared, serial first when it was asked for.
    pub execs: Vec<ExecSpec>,
}

/// What to run: the filters of `kpool bench`.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Kernels (default [`default_kernels`]).
    pub kernels: Vec<KernelName>,
    /// Variants.
    pub variants: Vec<Variant>,
    /// Implementations.
    pub imps: Vec<Impl>,
    /// Executor kinds.
    pub execs: Vec<ExecKind>,
    /// Worker counts for threads and processes.
    pub workers: Vec<usize>,
    /// Sizes.
    pub sizes: Sizes,
    /// N for every kernel, overriding the sizes.
    pub n: Option<u64>,
    /// nbody systems, overriding the sizes.
    pub systems: Option<u64>,
    /// MPI cells in every group of a native language; when false (the default run,
    /// where every MPI cell costs an `mpirun` start), only in each kernel's plain C group.
    /// JIT rows never have MPI cells (the ranks load built-in kernels by name).
    pub mpi_everywhere: bool,
}

/// The worker counts measured by default: for the quick run only all cores (serial is the
/// one-worker point); for the full run 1, 2, 4, ... and all cores.
pub fn default_workers(sizes: Sizes) -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match sizes {
        Sizes::Quick => vec![cores],
        Sizes::Full => {
            let mut w: Vec<usize> = std::iter::successors(Some(1usize), |&w| w.checked_mul(2))
                .take_while(|&w| w < cores)
                .collect();
            w.push(cores);
            w
        }
    }
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            kernels: default_kernels(),
            variants: Variant::ALL.to_vec(),
            imps: Impl::all(),
            execs: ExecKind::LOCAL.to_vec(),
            workers: default_workers(Sizes::Quick),
            sizes: Sizes::Quick,
            n: None,
            systems: None,
            mpi_everywhere: false,
        }
    }
}

impl Selection {
    /// The executors of every group: serial once, then each parallel kind at each worker
    /// count.
    pub fn exec_specs(&self) -> Vec<ExecSpec> {
        let mut out = Vec::new();
        for &kind in &self.execs {
            if kind == ExecKind::Serial {
                if !out.contains(&ExecSpec::SERIAL) {
                    out.insert(0, ExecSpec::SERIAL);
                }
                continue;
            }
            for &workers in &self.workers {
                let spec = ExecSpec { kind, workers };
                if !out.contains(&spec) {
                    out.push(spec);
                }
            }
        }
        out
    }

    /// The groups to measure, in display order. A (variant, implementation) with no such
    /// kernel (a tuned kernel some language lacks) has no group.
    ///
    /// # Errors
    /// The JIT's, for the `jit-c` row.
    pub fn groups(&self, llc_bytes: u64) -> Result<Vec<Group>, String> {
        let execs = self.exec_specs();
        let mut out = Vec::new();
        for &kernel in &self.kernels {
            let (n, systems) = size(kernel, self.sizes, llc_bytes);
            let n = self.n.unwrap_or(n);
            let systems = if kernel == KernelName::Nbody {
                self.systems.unwrap_or(systems)
            } else {
                1
            };
            for &variant in &self.variants {
                for &imp in &self.imps {
                    let Some(code) = imp.kernel(kernel, variant)? else {
                        continue;
                    };
                    let mpi_here = match imp {
                        Impl::Native(l) => {
                            self.mpi_everywhere || (l == Lang::C && variant == Variant::Plain)
                        }
                        Impl::Jit(_) => false,
                    };
                    let execs = execs
                        .iter()
                        .copied()
                        .filter(|e| mpi_here || e.kind != ExecKind::Mpi)
                        .collect();
                    out.push(Group {
                        kernel,
                        variant,
                        imp,
                        code,
                        n,
                        systems,
                        execs,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Parse a comma-separated list with `parse`, or `all` when empty.
///
/// # Errors
/// The first item that does not parse.
pub fn parse_list<T: Clone>(
    items: &[String],
    all: &[T],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if items.is_empty() {
        return Ok(all.to_vec());
    }
    items.iter().map(|s| parse(s.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_comes_first_and_once() {
        let sel = Selection {
            execs: vec![ExecKind::Threads, ExecKind::Serial, ExecKind::Processes],
            workers: vec![1, 2, 2],
            ..Selection::default()
        };
        let labels: Vec<String> = sel.exec_specs().iter().map(|e| e.label()).collect();
        assert_eq!(
            labels,
            [
                "serial",
                "threads×1",
                "threads×2",
                "processes×1",
                "processes×2"
            ]
        );
    }

    #[test]
    fn the_default_matrix_leaves_seed_to_its_section() {
        let sel = Selection::default();
        let groups = sel.groups(32 << 20).expect("groups");
        assert!(groups.iter().all(|g| g.kernel != KernelName::Seed));
        // 7 kernels; plain in 4 languages and JIT-compiled C; tuned where a language
        // has it.
        let tuned: usize = default_kernels()
            .into_iter()
            .map(|k| {
                Lang::ALL
                    .iter()
                    .filter(|&&l| Kernel::variants(k, l).contains(&Variant::Tuned))
                    .count()
            })
            .sum();
        assert!(tuned >= 20, "{tuned} tuned kernels");
        assert_eq!(groups.len(), 7 * 5 + tuned);
        assert!(
            groups
                .iter()
                .any(|g| g.imp == Impl::Jit(Lang::C) && g.kernel == KernelName::Laplace)
        );
    }

    #[test]
    fn full_triad_arrays_are_four_times_the_cache() {
        assert_eq!(full_triad_n(32 << 20), 16 << 20);
        assert_eq!(full_triad_n(1 << 20), 10_000_000);
    }
}
