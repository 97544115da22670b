//! MPI cells: one `mpirun` job per cell, started before its group is timed and kept for
//! all its rounds, so MPI cells are interleaved with the group's other cells like any
//! executor (starting `mpirun` costs about a second: once per cell, never timed).
//!
//! The job runs `kpool mpi-serve` on every rank. Each rank waits (blocked in `read`, no
//! CPU) on its own FIFO in a scratch directory; for a run the harness writes
//! `run N SYSTEMS OUT` to every FIFO, the ranks run the kernel program together on the
//! `Mpi` executor, and rank 0 writes the program's output to `OUT` and answers
//! `ok SECONDS` (kpool's own timing of the program: its steps and MPI transfers) or
//! `err MESSAGE` on its stdout. Closing the FIFOs ends the job.

use crate::matrix::Group;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to start MPI jobs: a kpool built with the `mpi` feature, and the launcher.
#[derive(Debug, Clone)]
pub struct MpiLauncher {
    /// A `kpool` executable that has the `mpi-serve` subcommand (feature `mpi`).
    pub kpool: PathBuf,
    /// The MPI launcher (default `mpirun`).
    pub mpirun: OsString,
    /// How long one run may take before the job is killed and the cell failed.
    pub timeout: Duration,
}

impl MpiLauncher {
    /// `kpool` with `mpirun` from PATH and a 10-minute limit per run.
    pub fn new(kpool: impl Into<PathBuf>) -> MpiLauncher {
        MpiLauncher {
            kpool: kpool.into(),
            mpirun: "mpirun".into(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// A running MPI job for one cell.
pub struct MpiJob {
    child: Child,
    fifos: Vec<std::fs::File>,
    replies: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    dir: PathBuf,
    out: PathBuf,
    timeout: Duration,
    ranks: usize,
}

impl std::fmt::Debug for MpiJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiJob")
            .field("ranks", &self.ranks)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A scratch directory no other process uses.
fn scratch_dir() -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kpool-mpi-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

impl MpiJob {
    /// Start `ranks` ranks of `kpool mpi-serve` for `g`'s kernel, and wait until every
    /// rank has opened its FIFO (MPI is initialised then).
    ///
    /// # Errors
    /// `mpirun` missing or refusing (its message), a rank that exits or does not come
    /// up within the timeout.
    pub fn start(
        l: &MpiLauncher,
        g: &Group,
        ranks: usize,
        cores: usize,
        chunk: Option<u64>,
    ) -> Result<MpiJob, String> {
        let dir = scratch_dir()?;
        let paths: Vec<PathBuf> = (0..ranks).map(|r| dir.join(format!("rank-{r}"))).collect();
        for p in &paths {
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                p,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            )
            .map_err(|e| format!("mkfifo {}: {e}", p.display()))?;
        }
        let mut cmd = Command::new(&l.mpirun);
        cmd.arg("-n").arg(ranks.to_string());
        if ranks > cores {
            cmd.arg("--oversubscribe");
        }
        cmd.arg(&l.kpool)
            .arg("mpi-serve")
            .arg("--kernel")
            .arg(g.kernel.name())
            .arg("--lang")
            .arg(g.imp.lang().name())
            .arg("--variant")
            .arg(g.variant.name())
            .arg("--control")
            .arg(&dir);
        if let Some(c) = chunk {
            cmd.arg("--chunk").arg(c.to_string());
        }
        // stdin: mpirun forwards it to rank 0, which reads its FIFO instead.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} (Open MPI: scripts/setup.sh --mpi installs it): {e}",
                l.mpirun.to_string_lossy()
            )
        })?;
        let (Some(stdout), Some(mut err_pipe)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("mpirun started without its pipes".into());
        };
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut job = MpiJob {
            child,
            fifos: Vec::new(),
            replies,
            stderr,
            dir,
            out: PathBuf::new(),
            timeout: l.timeout,
            ranks,
        };
        job.out = job.dir.join("output");
        // Open each FIFO for writing without blocking: that fails (ENXIO) until its rank
        // has opened it for reading, so a rank that never comes up cannot hang us.
        let deadline = Instant::now() + l.timeout.min(Duration::from_secs(120));
        for p in &paths {
            loop {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                    .open(p)
                {
                    Ok(f) => {
                        job.fifos.push(f);
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                        if let Ok(Some(status)) = job.child.try_wait() {
                            return Err(job.failed(&format!("mpirun exited ({status})")));
                        }
                        if Instant::now() > deadline {
                            return Err(job.failed("the ranks did not come up in time"));
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(job.failed(&format!("opening {}: {e}", p.display()))),
                }
            }
        }
        Ok(job)
    }

    /// What went wrong, with the job's stderr (its last lines).
    fn failed(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(20));
        let err = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let tail: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("----"))
            .collect();
        let tail = tail[tail.len().saturating_sub(4)..].join(" / ");
        if tail.is_empty() {
            format!("MPI job ({} ranks): {what}", self.ranks)
        } else {
            format!("MPI job ({} ranks): {what}: {tail}", self.ranks)
        }
    }

    /// One run of the program at `n` (and `systems`): its output and kpool's timing.
    ///
    /// # Errors
    /// The program's error as rank 0 reports it, or the job dying or timing out (it is
    /// killed then, and every later run fails at once).
    pub fn run(&mut self, n: u64, systems: u64) -> Result<(Vec<u8>, f64), String> {
        if self.fifos.is_empty() {
            return Err(format!("MPI job ({} ranks) already failed", self.ranks));
        }
        let line = format!("run {n} {systems} {}\n", self.out.display());
        for i in 0..self.fifos.len() {
            if let Err(e) = self.fifos[i].write_all(line.as_bytes()) {
                self.fifos.clear();
                return Err(self.failed(&format!("rank {i} is gone ({e})")));
            }
        }
        match self.replies.recv_timeout(self.timeout) {
            Ok(reply) => {
                if let Some(secs) = reply.strip_prefix("ok ") {
                    let t: f64 = secs
                        .trim()
                        .parse()
                        .map_err(|_| format!("MPI job: bad reply `{reply}`"))?;
                    let out = std::fs::read(&self.out)
                        .map_err(|e| format!("reading {}: {e}", self.out.display()))?;
                    Ok((out, t))
                } else if let Some(msg) = reply.strip_prefix("err ") {
                    Err(msg.to_string())
                } else {
                    Err(format!("MPI job: unexpected reply `{reply}`"))
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fifos.clear();
                Err(self.failed(&format!("no answer within {:?} (killed)", self.timeout)))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.fifos.clear();
                Err(self.failed("the job ended"))
            }
        }
    }
}

impl Drop for MpiJob {
    fn drop(&mut self) {
        // EOF on every FIFO: each rank leaves its loop and finalises MPI.
        self.fifos.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
