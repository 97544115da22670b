//! MPI cells: one `mpirun` job per cell, started before its group is timed and kept for
//! all its rounds, so MPI cells are interleaved with the group's other cells like any
//! executor (starting `mpirun` costs about a second: once per cell, never timed).
//!
//! The job runs `kpool mpi-serve` on every rank. Each rank waits (blocked in `read`, no
//! CPU) on its own FIFO in a scratch directory; for a run the harness writes
//! `run ID N SYSTEMS` to every FIFO, the ranks run the kernel program together on the
//! `Mpi` executor, and rank 0 writes the program's output to `output` in that directory
//! and answers `ok ID SECONDS` (kpool's own timing of the program: its steps and MPI
//! transfers, as for every other cell) or `err ID MESSAGE` on its stdout. Closing the
//! FIFOs ends the job; a job that breaks the protocol, dies or times out is torn down
//! (SIGTERM to its process group, then SIGKILL) and its cell fails.
//!
//! Open MPI's `mpirun` is assumed: jobs get `--oversubscribe` (its slots are physical
//! cores, while the bench counts logical CPUs) and `--bind-to none` (the threads and
//! processes cells are not pinned either).

use crate::matrix::Group;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    dir: ScratchDir,
    timeout: Duration,
    ranks: usize,
    runs: u64,
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for MpiJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiJob")
            .field("ranks", &self.ranks)
            .field("dir", &self.dir.0)
            .finish_non_exhaustive()
    }
}

/// Remove the scratch directories of bench processes that are gone (an interrupted
/// bench skips its destructors): `kpool-mpi-PID-N` whose PID has no `/proc` entry.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kpool-mpi-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A scratch directory no other process uses.
fn scratch_dir() -> Result<ScratchDir, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_stale_dirs);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kpool-mpi-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(ScratchDir(dir))
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
        chunk: Option<u64>,
    ) -> Result<MpiJob, String> {
        let dir = scratch_dir()?;
        let paths: Vec<PathBuf> = (0..ranks)
            .map(|r| dir.0.join(format!("rank-{r}")))
            .collect();
        for p in &paths {
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                p,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            )
            .map_err(|e| format!("mkfifo {}: {e}", p.display()))?;
        }
        let mut cmd = Command::new(&l.mpirun);
        cmd.arg("-n")
            .arg(ranks.to_string())
            .args(["--oversubscribe", "--bind-to", "none"]);
        cmd.arg(&l.kpool)
            .arg("mpi-serve")
            .arg("--kernel")
            .arg(g.kernel.name())
            .arg("--lang")
            .arg(g.imp.lang().name())
            .arg("--variant")
            .arg(g.variant.name())
            .arg("--ranks")
            .arg(ranks.to_string())
            .arg("--control")
            .arg(&dir.0);
        if let Some(c) = chunk {
            cmd.arg("--chunk").arg(c.to_string());
        }
        // stdin: mpirun forwards it to rank 0, which reads its FIFO instead. Its own
        // process group, so that a teardown reaches the ranks too.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
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
        let stderr_reader = std::thread::spawn(move || {
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
            stderr_reader: Some(stderr_reader),
            dir,
            timeout: l.timeout,
            ranks,
            runs: 0,
        };
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

    /// End the job: SIGTERM to its process group (mpirun tears the ranks down), then
    /// SIGKILL to whatever is left after `grace`.
    fn teardown(&mut self, grace: Duration) {
        self.fifos.clear();
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pgid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What went wrong, with the job's stderr (its last lines); the job is torn down.
    fn failed(&mut self, what: &str) -> String {
        self.teardown(Duration::from_secs(3));
        // The reader ends when the last holder of the pipe is gone: wait a little for it.
        if let Some(h) = self.stderr_reader.take() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
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
        self.runs += 1;
        let id = self.runs;
        let line = format!("run {id} {n} {systems}\n");
        for i in 0..self.fifos.len() {
            if let Err(e) = self.fifos[i].write_all(line.as_bytes()) {
                return Err(self.failed(&format!("rank {i} is gone ({e})")));
            }
        }
        let reply = match self.replies.recv_timeout(self.timeout) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.failed(&format!("no answer within {:?} (killed)", self.timeout)));
            }
            Err(RecvTimeoutError::Disconnected) => return Err(self.failed("the job ended")),
        };
        let mut words = reply.splitn(3, ' ');
        let (kind, got, rest) = (words.next(), words.next(), words.next().unwrap_or(""));
        if got != Some(id.to_string().as_str()) {
            return Err(self.failed(&format!("reply `{reply}` to run {id}: protocol broken")));
        }
        match kind {
            Some("ok") => {
                let Ok(t) = rest.trim().parse::<f64>() else {
                    return Err(self.failed(&format!("bad reply `{reply}`")));
                };
                let path = self.dir.0.join("output");
                let out =
                    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                let _ = std::fs::remove_file(&path);
                Ok((out, t))
            }
            Some("err") => Err(rest.to_string()),
            _ => Err(self.failed(&format!("unexpected reply `{reply}`"))),
        }
    }
}

impl Drop for MpiJob {
    fn drop(&mut self) {
        // EOF on every FIFO: each rank leaves its loop and finalises MPI; a job still
        // there after 10 s is torn down.
        self.fifos.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        self.teardown(Duration::from_secs(3));
    }
}
