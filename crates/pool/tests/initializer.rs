//! The pool's initializer: run once in every worker (replacements included) before it
//! takes tasks, its state kept for every later call; a failing one is a start error that
//! names it.

use kernelpool_pool::{PoolError, Processes};
use std::path::PathBuf;
use std::sync::OnceLock;

// SAFETY: runs before `main`; `init` reads one environment variable and returns, except
// in a worker, where it serves the pool and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

static TABLE: OnceLock<Vec<u64>> = OnceLock::new();

/// Build a table once per worker, and leave a line per run in `log`.
fn load_table((len, log): (usize, PathBuf)) {
    use std::io::Write;
    TABLE.get_or_init(|| (0..len as u64).map(|i| i * i + 1).collect());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    writeln!(f, "{}", std::process::id()).expect("write");
}

fn lookup(i: usize) -> (u32, u64) {
    (
        std::process::id(),
        TABLE.get().expect("the initializer ran in this worker")[i],
    )
}

fn broken(reason: String) {
    panic!("cannot open {reason}");
}

fn die(_: u8) -> u8 {
    std::process::abort()
}

#[test]
fn the_initializer_runs_once_per_worker_and_its_state_serves_every_call() {
    let log = std::env::temp_dir().join(format!("kp-init-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let pool = Processes::builder()
        .workers(2)
        .initializer(load_table, (1000usize, log.clone()))
        .build()
        .expect("pool");
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(lines(), 2, "once in each worker, before build returns");
    for _ in 0..3 {
        let got = pool.map(lookup, [0, 10, 999]).expect("map");
        assert_eq!(
            got.iter().map(|r| r.1).collect::<Vec<_>>(),
            [1, 101, 998_002]
        );
    }
    assert_eq!(lines(), 2, "not again for later calls");
    // A replacement worker runs it too.
    assert!(pool.with_chunksize(1).map(die, [0u8]).is_err());
    let got = pool.with_chunksize(1).map(lookup, 0..20).expect("map");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, r)| r.1 == (i * i + 1) as u64),
        "{got:?}"
    );
    assert_eq!(lines(), 3, "the replacement ran it");
    drop(pool);
    std::fs::remove_file(&log).expect("remove log");
}

#[test]
fn a_failing_initializer_is_a_start_error_that_names_it() {
    let e = Processes::builder()
        .workers(2)
        .initializer(broken, "the table".to_string())
        .build()
        .expect_err("the initializer panics");
    match &e {
        PoolError::Start { reason, .. } => {
            assert!(reason.contains("initializer"), "{e}");
            assert!(reason.contains("cannot open the table"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_initializer_needs_workers_that_run_this_executable() {
    let e = Processes::builder()
        .worker_program(env!("CARGO_BIN_EXE_kpool-worker"))
        .initializer(broken, String::new())
        .build()
        .expect_err("not with a worker_program");
    assert!(
        matches!(
            e,
            PoolError::InvalidOption {
                option: "initializer",
                ..
            }
        ),
        "{e}"
    );
}
