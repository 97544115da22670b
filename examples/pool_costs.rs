//! What a process pool costs on this machine, in this program: how long `Processes::new(2)`
//! takes to start both workers (forked by the fork server, and exec'd) and drop them, how much CPU the caller and each worker
//! spend per tiny task of a `map` at chunksize 1, and how much CPU an idle pool uses.
//!
//! `cargo run --release --example pool_costs [ROUNDS]` (default 200 starts, 50 maps).
//! On-CPU times come from `/proc/<pid>/schedstat` (Linux), in nanoseconds.

use kernelpool::pool::Processes;
use std::error::Error;
use std::time::{Duration, Instant};

const TASKS: u64 = 20_000;

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Nanoseconds `what` (a `/proc` path) has run on a CPU.
fn on_cpu_ns(what: &str) -> Result<u64, Box<dyn Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{what}/schedstat"))?;
    let first = stat.split_whitespace().next().ok_or("empty schedstat")?;
    Ok(first.parse()?)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn Error>> {
    kernelpool::init();
    let rounds: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);

    // The first pool starts the fork server (one exec); it is timed on its own.
    let t = Instant::now();
    let first = Processes::new(2)?;
    let first_start = t.elapsed();
    drop(first);
    // Interleaved: a pool whose workers the fork server forks, and one whose workers are
    // exec'd.
    let (mut starts, mut drops, mut exec_starts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let pool = Processes::new(2)?;
        starts.push(t.elapsed());
        let t = Instant::now();
        drop(pool);
        drops.push(t.elapsed());
        let t = Instant::now();
        let pool = Processes::builder().workers(2).fork_server(false).build()?;
        exec_starts.push(t.elapsed());
        drop(pool);
    }
    println!(
        "Processes::new(2), started and ready: median {:.2} ms; dropped: median {:.2} ms ({} rounds); \
         the first pool, which starts the fork server: {:.2} ms; workers exec'd (fork_server(false)): median {:.2} ms",
        median_ms(starts),
        median_ms(drops),
        rounds.max(1),
        first_start.as_secs_f64() * 1e3,
        median_ms(exec_starts),
    );

    let pool = Processes::new(2)?;
    let maps = (rounds / 4).max(1);
    for _ in 0..5 {
        pool.with_chunksize(1).map(tiny, 0..TASKS)?;
    }
    let pids = pool.pids()?;
    let caller0 = on_cpu_ns("thread-self")?;
    let workers0 = pids
        .iter()
        .map(|p| on_cpu_ns(&p.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let t = Instant::now();
    for _ in 0..maps {
        pool.with_chunksize(1).map(tiny, 0..TASKS)?;
    }
    let tasks = (maps as u64 * TASKS) as f64;
    let wall = t.elapsed().as_secs_f64() * 1e9 / tasks;
    let caller = (on_cpu_ns("thread-self")? - caller0) as f64 / tasks;
    let mut workers = Vec::new();
    for (p, before) in pids.iter().zip(workers0) {
        workers.push((on_cpu_ns(&p.to_string())? - before) as f64 / tasks);
    }
    println!(
        "map of a tiny function, chunksize 1: {:.2} M tasks/s; CPU per task: caller {caller:.0} ns, workers {workers:.0?} ns",
        1e3 / wall
    );

    std::thread::sleep(Duration::from_millis(100));
    let window = Duration::from_secs(2);
    let idle0 = pids
        .iter()
        .map(|p| on_cpu_ns(&p.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(window);
    let mut idle = Vec::new();
    for (p, before) in pids.iter().zip(idle0) {
        idle.push((on_cpu_ns(&p.to_string())? - before) as f64 / window.as_nanos() as f64 * 100.0);
    }
    println!(
        "an idle pool, from 100 ms after its last call, over 2 s: workers {idle:.3?} % of a core"
    );
    Ok(())
}
