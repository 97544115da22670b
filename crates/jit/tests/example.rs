//! The crate's example (`examples/map.rs`) prints the course's result, compiling on the
//! first run and hitting the cache on the second. `cargo test` builds examples before it
//! runs tests; this runs the built binary with a fresh cache of its own.

mod common;

use common::TempDir;
use std::process::Command;

#[test]
fn the_map_example_prints_the_course_result_twice_compiling_once() {
    let exe = std::env::current_exe().expect("test executable");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples/map");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` (or `cargo build --examples`) builds it",
        path.display()
    );
    let dir = TempDir::new("example");
    let cache = dir.join("cache");
    for _ in 0..2 {
        let out = Command::new(&path)
            .env("KERNELPOOL_CACHE_DIR", &cache)
            .output()
            .expect("run the example");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"[10000000, 40000000, 90000000]\n");
    }
    assert_eq!(common::entries(&cache).len(), 1);
}
