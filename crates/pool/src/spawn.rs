//! Starting worker processes, and the pool's handle on one: signal it, wait for it, reap
//! it.
//!
//! A worker of the current executable is forked by the fork server (`crate::fork_server`)
//! where it can be; otherwise, and for a [`worker_program`], it is an exec of the program.
//!
//! Every exec is made by one long-lived thread of this process, for two reasons:
//! `PR_SET_PDEATHSIG` fires when the *thread* that started a child ends, not the process,
//! so children started from a short-lived thread would be killed with it; and that thread
//! is the global spawn lock: the child's end of a socket pair is made inheritable just
//! for the spawn, and no other pool spawn can run (and inherit it) meanwhile. Processes
//! started at that moment by other code of the program could still inherit it; they
//! would hold the worker's channel open, never more.
//!
//! [`worker_program`]: crate::ProcessesBuilder::worker_program

use crate::fork_server::{self, ForkError};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

/// How a worker is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartMethod {
    /// Forked by the fork server (falls back to `Exec` where the server cannot fork).
    ForkServer,
    /// An exec of the program.
    Exec,
}

/// Why a worker did not start.
#[derive(Debug)]
pub(crate) struct StartError {
    pub reason: String,
    pub exit: Option<ExitStatus>,
}

/// Start a worker of `program` holding `child_end` (closed here afterwards).
pub(crate) fn spawn_worker(
    program: &Path,
    child_end: OwnedFd,
    method: StartMethod,
    start_timeout: Duration,
) -> Result<WorkerProcess, StartError> {
    if method == StartMethod::ForkServer {
        match fork_server::spawn_worker(
            program,
            child_end.try_clone().map_err(io_start)?,
            start_timeout,
        ) {
            Ok(forked) => return Ok(WorkerProcess::Forked(forked)),
            Err(ForkError::Unavailable) => {}
            Err(ForkError::Failed { reason, exit }) => return Err(StartError { reason, exit }),
        }
    }
    exec(program.to_path_buf(), child_end, crate::protocol::TOKEN)
        .map(WorkerProcess::Exec)
        .map_err(io_start)
}

fn io_start(e: io::Error) -> StartError {
    StartError {
        reason: e.to_string(),
        exit: None,
    }
}

/// A worker process: a child of this process (exec'd), or of the fork server.
#[derive(Debug)]
pub(crate) enum WorkerProcess {
    Exec(Child),
    Forked(ForkedProcess),
}

/// A worker forked by the fork server: only the server can reap it.
#[derive(Debug)]
pub(crate) struct ForkedProcess {
    pid: u32,
    /// Refers to this very process, even after it was reaped and its pid reused.
    pidfd: OwnedFd,
    /// Which fork server forked it.
    server: u64,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
    /// Reaped without a status (the server is gone).
    lost: bool,
}

impl ForkedProcess {
    pub(crate) fn new(pid: u32, pidfd: OwnedFd, server: u64) -> Self {
        ForkedProcess {
            pid,
            pidfd,
            server,
            status: None,
            lost: false,
        }
    }

    /// Exited (the pidfd is readable) by `deadline`.
    fn exited_by(&self, deadline: Option<Instant>) -> bool {
        loop {
            let ts = deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                })
            });
            let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) if deadline.is_some_and(|d| Instant::now() < d) => continue,
                Ok(0) => return false,
                Ok(_) => return true,
                Err(Errno::INTR) => continue,
                // Cannot happen for a valid pidfd; do not wait on it forever.
                Err(_) => return true,
            }
        }
    }

    fn try_reap(&mut self, deadline: Option<Instant>) -> Option<ExitStatus> {
        if self.status.is_some() || self.lost {
            return self.status;
        }
        if !self.exited_by(deadline) {
            return None;
        }
        self.status = fork_server::reap(self.pid, self.server)
            .or_else(|| exit_from_pidfd(&self.pidfd, Duration::from_millis(20)));
        self.lost = self.status.is_none();
        self.status
    }
}

/// The exit status of the process `pidfd` refers to, from the kernel's record of it
/// (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`, Linux 6.15 and later), once some parent has
/// reaped it: how a worker whose fork server died (and which `init` or a subreaper then
/// reaped) still reports its cause. Waits up to `patience` for that reaping; `None` when
/// the kernel keeps no such record, or no one reaped it by then (an `init` that leaves
/// orphans as zombies: the cause is unknown then).
fn exit_from_pidfd(pidfd: &OwnedFd, patience: Duration) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    let give_up = Instant::now() + patience;
    let mut nap = Duration::from_micros(20);
    loop {
        // SAFETY: `pidfd_info` is plain integers, for which all zeros is a value.
        let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
        info.mask = u64::from(libc::PIDFD_INFO_EXIT);
        // SAFETY: PIDFD_GET_INFO reads the request mask from, and writes the answer into,
        // the `pidfd_info` the pointer points at (its size is encoded in the request
        // code, and the struct lives through the call); `pidfd` is an open pidfd of ours.
        let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), libc::PIDFD_GET_INFO, &mut info) };
        if r != 0 {
            // Too old a kernel (ENOTTY, EINVAL), or not reaped yet (ESRCH).
            if Errno::from_io_error(&io::Error::last_os_error()) != Some(Errno::SRCH) {
                return None;
            }
        } else if info.mask & u64::from(libc::PIDFD_INFO_EXIT) != 0 {
            return Some(ExitStatus::from_raw(info.exit_code));
        }
        if Instant::now() >= give_up {
            return None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

impl WorkerProcess {
    pub(crate) fn id(&self) -> u32 {
        match self {
            WorkerProcess::Exec(c) => c.id(),
            WorkerProcess::Forked(f) => f.pid,
        }
    }

    /// Send it SIGKILL (nothing once it was reaped).
    pub(crate) fn kill(&mut self) {
        match self {
            WorkerProcess::Exec(c) => {
                let _ = c.kill();
            }
            WorkerProcess::Forked(f) => {
                if f.status.is_none() && !f.lost {
                    let _ = pidfd_send_signal(&f.pidfd, Signal::KILL);
                }
            }
        }
    }

    /// Has it ended (reaped, with or without a known status)?
    pub(crate) fn ended(&mut self) -> bool {
        match self {
            WorkerProcess::Exec(c) => !matches!(c.try_wait(), Ok(None)),
            WorkerProcess::Forked(f) => {
                f.try_reap(Some(Instant::now()));
                f.status.is_some() || f.lost
            }
        }
    }

    /// Wait for it to end until `deadline`, kill it if it has not, and reap it; its exit
    /// status when known.
    pub(crate) fn reap(&mut self, deadline: Instant) -> Option<ExitStatus> {
        match self {
            WorkerProcess::Exec(c) => reap_child(c, deadline),
            WorkerProcess::Forked(f) => {
                if let Some(s) = f.try_reap(Some(deadline)) {
                    return Some(s);
                }
                if f.lost {
                    return None;
                }
                let _ = pidfd_send_signal(&f.pidfd, Signal::KILL);
                f.try_reap(None)
            }
        }
    }

    /// Kill it and reap it.
    pub(crate) fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        self.kill();
        self.reap(Instant::now() + Duration::from_secs(5))
    }
}

fn reap_child(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let pid = rustix::process::Pid::from_child(child);
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Err(Errno::INTR) | Ok(0) => continue,
                _ => break,
            }
        },
        Err(_) => {
            let mut nap = Duration::from_micros(50);
            while Instant::now() < deadline {
                if let Ok(Some(s)) = child.try_wait() {
                    return Some(s);
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        }
    }
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let _ = child.kill();
    child.wait().ok()
}

struct Request {
    program: PathBuf,
    child_end: OwnedFd,
    token: &'static str,
    reply: Sender<io::Result<Child>>,
}

static SPAWNER: Mutex<Option<Sender<Request>>> = Mutex::new(None);

/// Start `program` with `child_end` (closed here afterwards) named by the environment
/// variable `token`, from the spawner thread.
pub(crate) fn exec(program: PathBuf, child_end: OwnedFd, token: &'static str) -> io::Result<Child> {
    let (reply, answer) = channel();
    let req = Request {
        program,
        child_end,
        token,
        reply,
    };
    {
        let mut guard = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("kpool-spawner".into())
                .spawn(move || {
                    for req in rx {
                        let Request {
                            program,
                            child_end,
                            token,
                            reply,
                        } = req;
                        let _ = reply.send(exec_now(program, child_end, token));
                    }
                })?;
            *guard = Some(tx);
        }
        let tx = guard.as_ref().expect("spawner started above");
        tx.send(req)
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    }
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn exec_now(program: PathBuf, child_end: OwnedFd, token: &str) -> io::Result<Child> {
    use rustix::io::{FdFlags, fcntl_setfd};
    // Inheritable only for this spawn: this thread is the only one that spawns workers.
    fcntl_setfd(&child_end, FdFlags::empty())?;
    let inode = rustix::fs::fstat(&child_end)?.st_ino;
    let value = format!("{},{},{inode}", child_end.as_raw_fd(), std::process::id());
    let child = Command::new(&program)
        .env(token, value)
        .stdin(Stdio::null())
        .spawn();
    drop(child_end);
    child
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']);
        let v: Vec<u32> = parts
            .by_ref()
            .take(2)
            .filter_map(|p| p.parse().ok())
            .collect();
        v.len() == 2 && (v[0], v[1]) >= (major, minor)
    }

    #[test]
    fn the_exit_of_a_reaped_process_is_read_through_its_pidfd() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .spawn()
            .expect("sh");
        let pidfd = pidfd_open(
            rustix::process::Pid::from_child(&child),
            PidfdFlags::empty(),
        )
        .expect("pidfd");
        let status = child.wait().expect("reaped here");
        assert_eq!(status.signal(), Some(9));
        let read = exit_from_pidfd(&pidfd, Duration::from_millis(20));
        if kernel_at_least(6, 15) {
            assert_eq!(read.and_then(|s| s.signal()), Some(9), "{read:?}");
        } else {
            assert_eq!(read, None);
        }
    }
}
