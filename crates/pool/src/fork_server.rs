//! The fork server: one process of this executable, started by the first process pool
//! that runs it, that starts every later worker by `fork` instead of `exec`.
//!
//! An exec of the program costs about 1 ms on a small VM (mapping it, the dynamic loader,
//! the runtime) and grows with the binary; a fork of a small single-threaded process costs
//! about 0.2 ms. The fork server is such a process: it is this program started again with
//! the fork-server token, and [`crate::init`] (first thing in `main`, before any thread
//! exists) turns it into a loop that waits for requests on its socket. Forking the server,
//! never the caller, keeps every hazard of `fork` away: the server has one thread, holds no
//! locks, and owns nothing of the caller (no memory, descriptors or buffered output).
//! Python's `multiprocessing` "forkserver" start method is the same idea.
//!
//! - A request to start a worker carries the worker's end of its socket pair (as
//!   `SCM_RIGHTS`); the server forks, and the child becomes the worker on that socket
//!   (`worker::main`). The server answers with the child's pid and a pidfd of it, opened
//!   before the child can have been reaped, so the pool can wait for it and signal it
//!   without ever naming a pid that might have been reused.
//! - Workers are the server's children, so only the server can reap them: it does so
//!   when the pool asks (after the pidfd said the worker exited), and answers with the
//!   exit status.
//! - The server exits when its socket closes (the program ended) and, armed with
//!   `PR_SET_PDEATHSIG`, when the program dies; workers die with the server in turn.
//!
//! Messages are fixed 16-byte records (`[kind, value]`, two little-endian u64) on a
//! `SOCK_SEQPACKET` pair, so each is read whole or not at all.

use crate::spawn::{self, ForkedProcess};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType, recvmsg, sendmsg, socketpair,
};
use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, waitpid};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the environment variable that turns a process into the fork server (same
/// format as the worker token, see `worker::enter_if_token`).
pub(crate) const TOKEN: &str = "KERNELPOOL_FORK_SERVER";

// Server to pool.
/// It serves requests.
const READY: u64 = 1;
/// It cannot fork safely (more than one thread, or no pidfds): it exits.
const NOT_FORKABLE: u64 = 2;
/// A worker started: value = pid, with its pidfd.
const SPAWNED: u64 = 3;
/// `fork` failed: value = errno.
const SPAWN_FAILED: u64 = 4;
/// A worker reaped: value = its raw wait status.
const REAPED: u64 = 5;
/// `waitpid` said nothing: value = errno (0 when the worker has not exited).
const NOT_REAPED: u64 = 6;

// Pool to server.
/// Start a worker on the socket that comes with it.
const SPAWN: u64 = 1;
/// Reap worker `value`.
const REAP: u64 = 2;

/// Why a worker could not be started by the fork server.
#[derive(Debug)]
pub(crate) enum ForkError {
    /// The fork server cannot be used here; start workers by exec.
    Unavailable,
    /// The fork server did not start, or failed to start the worker.
    Failed {
        reason: String,
        exit: Option<ExitStatus>,
    },
}

struct Server {
    sock: OwnedFd,
    child: Child,
    /// Counts servers started, so a worker asks the one that forked it.
    generation: u64,
}

enum State {
    Unstarted {
        generation: u64,
    },
    Running(Server),
    /// A server said it cannot fork: every worker is exec'd.
    Unavailable,
}

static STATE: Mutex<State> = Mutex::new(State::Unstarted { generation: 0 });

/// Start a worker on `worker_end` by the fork server of `program` (the current
/// executable), starting the server first when there is none.
pub(crate) fn spawn_worker(
    program: &Path,
    worker_end: OwnedFd,
    start_timeout: Duration,
) -> Result<ForkedProcess, ForkError> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    // A server that died since the last request (killed: its workers died with it) is
    // replaced once.
    let mut tries = 0;
    loop {
        tries += 1;
        if let State::Unstarted { generation } = *state {
            *state = match start(program, start_timeout, generation + 1)? {
                Some(server) => State::Running(server),
                None => State::Unavailable,
            };
        }
        let State::Running(server) = &mut *state else {
            return Err(ForkError::Unavailable);
        };
        let deadline = deadline_after(start_timeout);
        let answer = send(&server.sock, SPAWN, 0, Some(worker_end.as_fd()))
            .and_then(|()| receive(&server.sock, deadline));
        let trouble = match answer {
            Ok((SPAWNED, pid, Some(pidfd))) => {
                return Ok(ForkedProcess::new(pid as u32, pidfd, server.generation));
            }
            Ok((SPAWN_FAILED, errno, _)) => {
                return Err(ForkError::Failed {
                    reason: format!(
                        "the fork server could not fork: {}",
                        Errno::from_raw_os_error(errno as i32)
                    ),
                    exit: None,
                });
            }
            Ok((kind, value, _)) => Trouble::other(format!("answered {kind}/{value} to a start")),
            Err(trouble) => trouble,
        };
        let err = stop(&mut state, trouble.what);
        if !trouble.gone || tries == 2 {
            return Err(err);
        }
    }
}

/// The exit status of worker `pid` of server `generation`, which has exited (its pidfd
/// is readable); `None` when that server is gone or could not reap it.
pub(crate) fn reap(pid: u32, generation: u64) -> Option<ExitStatus> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let State::Running(server) = &mut *state else {
        return None;
    };
    if server.generation != generation {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = send(&server.sock, REAP, u64::from(pid), None)
        .and_then(|()| receive(&server.sock, deadline));
    match answer {
        Ok((REAPED, raw, _)) => Some(ExitStatus::from_raw(raw as u32 as i32)),
        Ok((NOT_REAPED, _, _)) => None,
        Ok((kind, value, _)) => {
            stop(&mut state, format!("answered {kind}/{value} to a reap"));
            None
        }
        Err(trouble) => {
            stop(&mut state, trouble.what);
            None
        }
    }
}

/// The fork server's pid, when one runs (for tests that look for left-over processes).
pub(crate) fn server_pid() -> Option<u32> {
    match &*STATE.lock().unwrap_or_else(|e| e.into_inner()) {
        State::Running(s) => Some(s.child.id()),
        _ => None,
    }
}

/// Start a server and wait for its first word: `Ok(None)` when it cannot fork.
fn start(
    program: &Path,
    start_timeout: Duration,
    generation: u64,
) -> Result<Option<Server>, ForkError> {
    let failed = |reason: String| ForkError::Failed { reason, exit: None };
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| failed(format!("cannot create the fork server's socket pair: {e}")))?;
    let mut child = spawn::exec(program.to_path_buf(), theirs, TOKEN)
        .map_err(|e| failed(format!("cannot start the fork server: {e}")))?;
    match receive(&ours, deadline_after(start_timeout)) {
        Ok((READY, _, _)) => Ok(Some(Server {
            sock: ours,
            child,
            generation,
        })),
        Ok((NOT_FORKABLE, _, _)) => {
            let _ = child.wait();
            Ok(None)
        }
        Ok((kind, value, _)) => {
            let _ = child.kill();
            Err(ForkError::Failed {
                reason: format!("the fork server started with {kind}/{value}"),
                exit: child.wait().ok(),
            })
        }
        Err(trouble) => {
            // It exited (the program did not call `init()` first) or did not answer.
            let _ = child.kill();
            let exit = child.wait().ok();
            let reason = if trouble.gone {
                "it exited before it was ready (a program that starts a process pool must \
                 call kernelpool_pool::init() first thing in main)"
                    .to_string()
            } else {
                format!("the fork server {}", trouble.what)
            };
            Err(ForkError::Failed { reason, exit })
        }
    }
}

/// Let a server that misbehaved go (the next start makes a new one; its workers die with
/// it) and say why.
fn stop(state: &mut State, reason: String) -> ForkError {
    let generation = match state {
        State::Running(s) => s.generation,
        State::Unstarted { generation } => *generation,
        State::Unavailable => 0,
    };
    if let State::Running(mut s) = std::mem::replace(state, State::Unstarted { generation }) {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    ForkError::Failed {
        reason: format!("the fork server {reason}"),
        exit: None,
    }
}

/// `d` from now, or far in the future when that does not fit.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(1 << 32))
}

/// What went wrong talking to the server; `gone` when it has closed its end (it exited).
struct Trouble {
    gone: bool,
    what: String,
}

impl Trouble {
    fn other(what: impl Into<String>) -> Self {
        Trouble {
            gone: false,
            what: what.into(),
        }
    }
}

fn send(
    sock: &OwnedFd,
    kind: u64,
    value: u64,
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(), Trouble> {
    let mut msg = [0u8; 16];
    msg[..8].copy_from_slice(&kind.to_le_bytes());
    msg[8..].copy_from_slice(&value.to_le_bytes());
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(Trouble::other("cannot attach a descriptor"));
        }
    }
    loop {
        match sendmsg(
            sock,
            &[IoSlice::new(&msg)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(16) => return Ok(()),
            Ok(n) => return Err(Trouble::other(format!("took {n} of 16 bytes"))),
            Err(Errno::INTR) => continue,
            Err(e) => {
                return Err(Trouble {
                    gone: matches!(e, Errno::PIPE | Errno::CONNRESET),
                    what: format!("cannot be written to ({e})"),
                });
            }
        }
    }
}

/// One record and the descriptor that came with it, waiting until `deadline`.
fn receive(sock: &OwnedFd, deadline: Instant) -> Result<(u64, u64, Option<OwnedFd>), Trouble> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Trouble::other("did not answer in time"));
        }
        let ts = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(sock, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(Trouble::other(format!("cannot be polled ({e})"))),
        }
    }
    match read_record(sock) {
        Ok(Some(r)) => Ok(r),
        Ok(None) | Err(Errno::CONNRESET) => Err(Trouble {
            gone: true,
            what: "exited before it answered".into(),
        }),
        Err(e) => Err(Trouble::other(format!("cannot be read ({e})"))),
    }
}

/// One record (blocking); `None` at end of stream. Descriptors beyond the first are
/// closed.
fn read_record(sock: &OwnedFd) -> rustix::io::Result<Option<(u64, u64, Option<OwnedFd>)>> {
    let mut msg = [0u8; 16];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut msg)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let r = match r {
            Err(Errno::INTR) => continue,
            r => r?,
        };
        let mut fd = None;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    fd.get_or_insert(f);
                }
            }
        }
        if r.bytes == 0 {
            return Ok(None);
        }
        if r.bytes != 16 {
            return Err(Errno::PROTO);
        }
        let kind = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
        let value = u64::from_le_bytes(msg[8..].try_into().expect("8 bytes"));
        return Ok(Some((kind, value, fd)));
    }
}

/// Be the fork server on `sock` (entered through [`crate::init`]); never returns.
pub(crate) fn serve(sock: OwnedFd, ppid: i32) -> ! {
    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    let _ = set_parent_process_death_signal(Some(Signal::KILL));
    if getppid().map(|p| p.as_raw_pid()) != Some(ppid) {
        std::process::exit(0);
    }
    let _ = rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC);
    let me = getpid();
    let forkable = crate::worker::single_threaded() && pidfd_open(me, PidfdFlags::empty()).is_ok();
    if !forkable {
        let _ = send(&sock, NOT_FORKABLE, 0, None);
        std::process::exit(0);
    }
    if send(&sock, READY, 0, None).is_err() {
        std::process::exit(0);
    }
    loop {
        let (kind, value, fd) = match read_record(&sock) {
            Ok(Some(r)) => r,
            // The program closed the socket (it ended) or broke it.
            Ok(None) | Err(_) => std::process::exit(0),
        };
        let answer = match (kind, fd) {
            (SPAWN, Some(worker_end)) => {
                // SAFETY: this process has a single thread (checked above, and it starts
                // none), so the child is a consistent copy of it: no lock can be held by
                // a thread that does not exist there. The child runs the worker on
                // `worker_end` and never returns into this loop.
                match unsafe { libc::fork() } {
                    0 => {
                        drop(sock);
                        crate::worker::main(worker_end, me.as_raw_pid())
                    }
                    -1 => (
                        SPAWN_FAILED,
                        std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u64,
                        None,
                    ),
                    pid => {
                        drop(worker_end);
                        // The child is not reaped before the pool asks, so the pid is
                        // still its own here.
                        let child = Pid::from_raw(pid).expect("fork returned a pid");
                        match pidfd_open(child, PidfdFlags::empty()) {
                            Ok(pidfd) => (SPAWNED, pid as u64, Some(pidfd)),
                            Err(e) => {
                                let _ = rustix::process::kill_process(child, Signal::KILL);
                                let _ = waitpid(Some(child), WaitOptions::empty());
                                (SPAWN_FAILED, e.raw_os_error() as u64, None)
                            }
                        }
                    }
                }
            }
            (REAP, _) => match Pid::from_raw(value as i32) {
                Some(pid) => match waitpid(Some(pid), WaitOptions::NOHANG) {
                    Ok(Some((_, status))) => (REAPED, status.as_raw() as u32 as u64, None),
                    Ok(None) => (NOT_REAPED, 0, None),
                    Err(e) => (NOT_REAPED, e.raw_os_error() as u64, None),
                },
                None => (NOT_REAPED, Errno::INVAL.raw_os_error() as u64, None),
            },
            _ => std::process::exit(70),
        };
        let (kind, value, fd) = answer;
        if send(&sock, kind, value, fd.as_ref().map(AsFd::as_fd)).is_err() {
            std::process::exit(0);
        }
    }
}
