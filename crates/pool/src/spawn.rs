//! Starting worker processes.
//!
//! Every worker is started by one long-lived thread of this process, for two reasons:
//! `PR_SET_PDEATHSIG` fires when the *thread* that started a child ends, not the process,
//! so workers started from a short-lived thread would be killed with it; and that thread
//! is the global spawn lock: the child's end of a socket pair is made inheritable just
//! for the spawn, and no other pool spawn can run (and inherit it) meanwhile. Processes
//! started at that moment by other code of the program could still inherit it; they
//! would hold the worker's channel open, never more.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

struct Request {
    program: PathBuf,
    child_end: OwnedFd,
    reply: Sender<io::Result<Child>>,
}

static SPAWNER: Mutex<Option<Sender<Request>>> = Mutex::new(None);

/// Start `program` as a worker holding `child_end` (which is closed here afterwards).
pub(crate) fn spawn(program: PathBuf, child_end: OwnedFd) -> io::Result<Child> {
    let (reply, answer) = channel();
    let req = Request {
        program,
        child_end,
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
                            reply,
                        } = req;
                        let _ = reply.send(spawn_now(program, child_end));
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

fn spawn_now(program: PathBuf, child_end: OwnedFd) -> io::Result<Child> {
    use rustix::io::{FdFlags, fcntl_setfd};
    // Inheritable only for this spawn: this thread is the only one that spawns workers.
    fcntl_setfd(&child_end, FdFlags::empty())?;
    let inode = rustix::fs::fstat(&child_end)?.st_ino;
    let token = format!("{},{},{inode}", child_end.as_raw_fd(), std::process::id());
    let child = Command::new(&program)
        .env(crate::protocol::TOKEN, token)
        .stdin(Stdio::null())
        .spawn();
    drop(child_end);
    child
}
