//! `kpool mpi-serve` (hidden): the ranks of one MPI cell of `kpool bench`. Started as
//! `mpirun -n R kpool mpi-serve --kernel K --lang L --variant V --ranks R --control DIR`;
//! rank r reads commands from the FIFO `DIR/rank-r` (blocked in `read` between runs, so
//! an idle job uses no CPU): `run ID N SYSTEMS` runs the program on the `Mpi` executor,
//! and rank 0 writes its output to `DIR/output` and answers `ok ID SECONDS` or
//! `err ID MESSAGE` on stdout; end of file ends the job. The other side is
//! `kernelpool_bench::mpi_job`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct MpiServeArgs {
    /// Kernel.
    #[arg(long)]
    kernel: String,
    /// Language.
    #[arg(long)]
    lang: String,
    /// Variant.
    #[arg(long, default_value = "plain")]
    variant: String,
    /// The ranks the bench started: a job of another size (a launcher that does not
    /// match the MPI library starts singletons) stops at once, saying so.
    #[arg(long)]
    ranks: usize,
    /// The directory of the FIFOs `rank-0`, `rank-1`, ... and of `output`.
    #[arg(long)]
    control: PathBuf,
    /// Items per chunk.
    #[arg(long)]
    chunk: Option<u64>,
}

/// `kpool mpi-serve`.
///
/// # Errors
/// Bad options, MPI failing to start, the FIFO missing.
#[cfg(feature = "mpi")]
pub fn serve(a: &MpiServeArgs) -> Result<ExitCode, String> {
    use kernelpool::kernels::{Kernel, Options, programs};
    use std::io::{BufRead, Write};
    let kernel =
        Kernel::by_names_variant(&a.kernel, &a.lang, &a.variant).map_err(|e| e.to_string())?;
    let mut b = kernelpool::pool::Mpi::builder();
    if let Some(c) = a.chunk {
        b = b.chunk(c);
    }
    let mpi = b.build().map_err(|e| e.to_string())?;
    if mpi.size() != a.ranks {
        return Err(format!(
            "mpi-serve: this job has {} rank(s), not the {} it was started with: mpirun does \
             not match the MPI library kpool was built with",
            mpi.size(),
            a.ranks
        ));
    }
    let root = mpi.rank() == 0;
    let out = a.control.join("output");
    let fifo = a.control.join(format!("rank-{}", mpi.rank()));
    let file = std::fs::File::open(&fifo).map_err(|e| format!("{}: {e}", fifo.display()))?;
    let mut stdout = std::io::stdout().lock();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{}: {e}", fifo.display()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let (id, n, systems) = match words.as_slice() {
            ["run", id, n, systems] => match (n.parse::<u64>(), systems.parse::<u64>()) {
                (Ok(n), Ok(s)) => (*id, n, s),
                _ => return Err(format!("mpi-serve: bad command `{line}`")),
            },
            _ => return Err(format!("mpi-serve: unknown command `{line}`")),
        };
        let opts = Options::new().n(n).systems(systems);
        let reply = match programs::run(kernel.clone(), &opts, &mpi) {
            Ok(o) if root => match std::fs::write(&out, &o.stdout) {
                Ok(()) => format!("ok {id} {}", o.elapsed.as_secs_f64()),
                Err(e) => format!("err {id} writing {}: {e}", out.display()),
            },
            Err(e) if root => format!("err {id} {}", e.to_string().replace('\n', " ")),
            _ => continue,
        };
        writeln!(stdout, "{reply}")
            .and_then(|_| stdout.flush())
            .map_err(|e| format!("mpi-serve: stdout: {e}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `kpool mpi-serve` in a build without MPI.
///
/// # Errors
/// Always: the build has no MPI.
#[cfg(not(feature = "mpi"))]
pub fn serve(_: &MpiServeArgs) -> Result<ExitCode, String> {
    Err(crate::NO_MPI.into())
}
