//! What a process pool leaves behind: nothing. No descriptors (sockets, memfds), no child
//! processes, no zombies, after normal use, crashes, timeouts and replacements, whether
//! the fork server forked its workers or they were exec'd; and neither its workers nor the
//! fork server outlive a parent that is killed outright. The fork server itself stays (one
//! process, one socket) from the first pool on, with no children once the pools are gone.
//!
//! One test per binary: it counts this process's descriptors and children, which other
//! tests running alongside would disturb.

use kernelpool_kernels::{Kernel, KernelName, Lang, Options, programs};
use kernelpool_pool::Processes;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

const ORPHAN_PARENT: &str = "KPOOL_TEST_ORPHAN_PARENT";

// SAFETY: runs before `main`. `init` reads one environment variable and returns, except
// in a worker, where it serves the pool on its inherited socket and exits the process;
// `orphan_parent` (only when its variable is set) starts a pool and never returns.
// Neither needs anything that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
    if std::env::var_os(ORPHAN_PARENT).is_some() {
        orphan_parent();
    }
}

/// The parent that the test kills: starts a pool, prints its workers' pids and the fork
/// server's, waits.
fn orphan_parent() -> ! {
    let pool = Processes::new(2).expect("pool");
    let mut pids = pool.pids().expect("pids");
    pids.push(kernelpool_pool::fork_server_pid().expect("a fork server"));
    println!(
        "{}",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(1)
}

fn square(x: u64) -> u64 {
    x * x
}

fn crash(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(9);
    }
    if x == 5 {
        std::thread::sleep(Duration::from_secs(30));
    }
    x
}

fn fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

/// Children of process `me` (zombies included), from /proc/*/stat.
fn children_of(me: u32) -> Vec<(u32, char)> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut f = rest.split(' ');
            let state = f.next()?.chars().next()?;
            let ppid: u32 = f.next()?.parse().ok()?;
            (ppid == me).then_some((pid, state))
        })
        .collect()
}

/// The workers of this process's pools (zombies included): children of this process but
/// the fork server, and the fork server's children.
fn children() -> Vec<(u32, char)> {
    let server = kernelpool_pool::fork_server_pid();
    let mut kids: Vec<_> = children_of(std::process::id())
        .into_iter()
        .filter(|c| Some(c.0) != server)
        .collect();
    if let Some(s) = server {
        kids.extend(children_of(s));
    }
    kids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

#[test]
fn nothing_is_left_behind() {
    assert!(
        children_of(std::process::id()).is_empty(),
        "{:?}",
        children_of(std::process::id())
    );
    // The first pool starts the fork server, which stays.
    drop(Processes::new(1).expect("pool"));
    let server = kernelpool_pool::fork_server_pid().expect("a fork server");
    // Right after the drop the server may still be reaping the workers ('R'); it must be
    // our only child and fall asleep soon (a server that spins would stay 'R').
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let kids = children_of(std::process::id());
        assert!(
            kids.len() == 1 && kids[0].0 == server && matches!(kids[0].1, 'S' | 'R'),
            "the fork server, alone and alive: {kids:?}"
        );
        if kids[0].1 == 'S' {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fork server did not fall asleep within 2 s: {kids:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for fork_server in [true, false] {
        leaves_nothing(fork_server);
    }
    assert_eq!(
        kernelpool_pool::fork_server_pid(),
        Some(server),
        "the same server"
    );
    parent_killed_outright();
}

fn leaves_nothing(fork_server: bool) {
    let fds_before = fds();
    assert!(children().is_empty(), "{:?}", children());
    {
        let pool = Processes::builder()
            .fork_server(fork_server)
            .workers(2)
            .task_timeout(Duration::from_millis(300))
            .max_tasks_per_worker(50)
            .build()
            .expect("pool");
        assert_eq!(children().len(), 2, "{:?}", children());
        assert!(
            fds().iter().filter(|f| f.starts_with("/memfd:")).count() >= 2,
            "control blocks"
        );
        assert_eq!(pool.map(square, 0..300u64).expect("map").len(), 300);
        // Shared buffers, several steps, kept mapped by the workers.
        let kernel = Kernel::get(KernelName::Spectralnorm, Lang::C);
        programs::run(kernel, &Options::new().n(30), &pool).expect("spectralnorm");
        let kernel = Kernel::get(KernelName::Triad, Lang::Rust);
        programs::run(kernel, &Options::new().n(1000), &pool).expect("triad");
        // A crash and a timeout: two workers replaced.
        let r: Vec<_> = pool
            .with_chunksize(1)
            .imap(crash, 0..8u64)
            .expect("imap")
            .collect();
        assert!(r[3].as_ref().is_err_and(|e| e.is_crash()), "{:?}", r[3]);
        assert!(r[5].as_ref().is_err_and(|e| e.is_timeout()), "{:?}", r[5]);
        assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 6);
        let kids = children();
        assert_eq!(kids.len(), 2, "dead workers are reaped: {kids:?}");
        assert!(kids.iter().all(|(_, s)| *s != 'Z'), "{kids:?}");
    }
    assert!(
        children().is_empty(),
        "no workers or zombies after drop: {:?}",
        children()
    );
    let fds_after = fds();
    assert!(
        !fds_after.iter().any(|f| f.starts_with("/memfd:")),
        "{fds_after:?}"
    );
    assert_eq!(
        fds_after.len(),
        fds_before.len(),
        "fork server {fork_server}: before {fds_before:?}\nafter {fds_after:?}"
    );
}

/// Workers and the fork server die with a parent that is killed outright.
fn parent_killed_outright() {
    let mut parent = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env(ORPHAN_PARENT, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the parent");
    let mut line = String::new();
    BufReader::new(parent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("pids");
    let workers: Vec<u32> = line
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(
        workers.len(),
        3,
        "two workers and the fork server: {line:?}"
    );
    assert!(workers.iter().all(|&p| alive(p)));
    parent.kill().expect("kill the parent");
    parent.wait().expect("reap the parent");
    let t = Instant::now();
    while workers.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        workers.iter().all(|&p| !alive(p)),
        "workers outlived their parent: {workers:?}"
    );
}
