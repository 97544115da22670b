//! The examples in `examples/` run and print what their docs say.
//!
//! `cargo test` builds the examples before it runs the tests; this test runs the built
//! binary (it fails, naming the path, if the example was not built).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, next to this test's own `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example binary {} is missing: run `cargo test` (which builds examples) or \
         `cargo build --examples` with the same profile",
        path.display()
    );
    path
}

/// Processes still running `exe`.
fn running(exe: &std::path::Path) -> Vec<String> {
    let exe = exe.canonicalize().expect("canonical path");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        if let Ok(target) = std::fs::read_link(entry.path().join("exe")) {
            if target == exe {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Run example `name` with `args`; its path and standard output, after checking that it
/// succeeded.
fn run_example(name: &str, args: &[&str]) -> (PathBuf, String) {
    let exe = example(name);
    let out = Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run the {name} example: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (exe, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn pool_map_prints_the_squares_and_leaves_no_worker() {
    let (exe, stdout) = run_example("pool_map", &[]);
    assert_eq!(stdout, "[1, 4, 9]\n");
    // Dropping the pool reaps its workers before `main` returns: none may outlive it.
    assert_eq!(running(&exe), Vec::<String>::new(), "workers left running");
}

#[test]
fn shared_arrays_sums_and_fills_without_copying() {
    let (exe, stdout) = run_example("shared_arrays", &[]);
    assert_eq!(
        stdout,
        "sums [393216.0, 393216.0, 393216.0, 393216.0] out[7] 2.25\n"
    );
    assert_eq!(running(&exe), Vec::<String>::new(), "workers left running");
}

#[test]
fn pool_costs_measures_start_tasks_and_an_idle_pool() {
    let (exe, text) = run_example("pool_costs", &["8"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "three lines of figures: {text}");
    assert!(
        lines[0].starts_with("Processes::new(2), started and ready: median "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("map of a tiny function, chunksize 1: "),
        "{text}"
    );
    // The idle figure is the bound (< 1 % of a core per worker), read back.
    let idle = lines[2]
        .split('[')
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("idle figures in brackets");
    for pct in idle.split(", ") {
        let pct: f64 = pct.parse().expect("a percentage");
        assert!(
            (0.0..1.0).contains(&pct),
            "an idle worker used {pct} % of a core: {text}"
        );
    }
    assert_eq!(running(&exe), Vec::<String>::new(), "workers left running");
}
