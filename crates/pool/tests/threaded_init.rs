//! A program whose `init()` runs after another thread was started (here by a constructor
//! that runs before it): the fork server would be a process with two threads, which must
//! not fork, so it says so and exits, and every worker is exec'd instead. The pool works
//! the same.

use kernelpool_pool::Processes;
use std::time::Duration;

// SAFETY: runs before `main`; it starts a thread that sleeps and calls `init`, which reads
// the environment and, in a worker or the fork server, serves on its inherited socket and
// exits the process. Neither needs anything that libtest's `main` sets up.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
    kernelpool_pool::init();
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_fork_server_that_has_threads_does_not_fork_and_workers_are_execd() {
    let pool = Processes::new(2).expect("pool");
    assert_eq!(
        kernelpool_pool::fork_server_pid(),
        None,
        "no fork server runs"
    );
    assert_eq!(
        pool.map(square, 0..100u64).expect("map"),
        (0..100u64).map(square).collect::<Vec<_>>()
    );
    // Its workers are this process's children: exec'd.
    let me = std::process::id();
    for pid in pool.pids().expect("pids") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let ppid: u32 = stat[stat.rfind(')').expect(")") + 2..]
            .split(' ')
            .nth(1)
            .expect("ppid")
            .parse()
            .expect("a pid");
        assert_eq!(ppid, me, "worker {pid} is a child of this process");
    }
    // Later pools do not try again.
    let again = Processes::new(1).expect("pool");
    assert_eq!(again.map(square, [7]).expect("map"), vec![49]);
    assert_eq!(kernelpool_pool::fork_server_pid(), None);
}
