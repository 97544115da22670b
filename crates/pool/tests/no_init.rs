//! A program that starts a process pool without calling `init()` first: its workers (and
//! its fork server) are the program started again, and they run `main` instead of serving
//! the pool. The pool reports that within the start timeout, naming `init()`, and the
//! restarted program does not start pools of its own (which would start it again, without
//! end). This binary has no `init()` on purpose: the libtest harness is its `main`, so each
//! restarted copy runs this test again and must get the error at once.

use kernelpool_pool::{PoolError, Processes};
use std::time::{Duration, Instant};

#[test]
fn a_pool_without_init_is_an_error_that_names_init() {
    for fork_server in [true, false] {
        let t = Instant::now();
        let e = Processes::builder()
            .workers(1)
            .fork_server(fork_server)
            .start_timeout(Duration::from_secs(20))
            .build()
            .expect_err("workers cannot start without init()");
        // Here, in the restarted copies: the refusal to start a pool.
        if std::env::var_os("KERNELPOOL_WORKER").is_some()
            || std::env::var_os("KERNELPOOL_FORK_SERVER").is_some()
        {
            assert!(e.to_string().contains("did not become one"), "{e}");
            return;
        }
        assert!(matches!(e, PoolError::Start { .. }), "{e}");
        assert!(
            e.to_string().contains("init()"),
            "fork server {fork_server}: {e}"
        );
        // The copy exits at once (the test harness reports its failure or success): well
        // within the start timeout, without a chain of copies.
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "fork server {fork_server}: {:?}",
            t.elapsed()
        );
    }
}
