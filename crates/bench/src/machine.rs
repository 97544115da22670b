//! Facts about the machine a run measured, and the load other processes put on it during
//! the run (read from `/proc`), so a reader can tell a quiet run from a disturbed one.

use kernelpool_kernels::ffi;
use serde::Serialize;
use std::time::Instant;

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// MemTotal, bytes.
    pub memory_bytes: u64,
    /// Last-level cache, bytes (sysfs; 32 MiB when unknown).
    pub llc_bytes: u64,
    /// /proc/sys/kernel/osrelease.
    pub kernel: String,
    /// Compilers that built the kernels, by language.
    pub compilers: Vec<(String, String)>,
    /// Flags of the native kernels.
    pub flags: String,
}

impl Machine {
    /// Read the facts of this machine.
    pub fn detect() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string());
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            llc_bytes: last_level_cache().unwrap_or(32 << 20),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            compilers: vec![
                ("c".into(), ffi::CC_VERSION.to_string()),
                ("cpp".into(), ffi::CXX_VERSION.to_string()),
                ("fortran".into(), ffi::FC_VERSION.to_string()),
                ("rust".into(), ffi::RUSTC_VERSION.to_string()),
            ],
            flags: format!(
                "{} {} (Fortran also -fwrapv); Rust -C target-cpu from .cargo/config.toml",
                ffi::NATIVE_FLAGS,
                ffi::MARCH
            ),
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The largest cache of CPU 0 (sysfs `cache/index*/size`).
fn last_level_cache() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("size")).ok())
        .filter_map(|s| {
            let s = s.trim();
            let (num, mul) = match s.strip_suffix('K') {
                Some(n) => (n, 1024),
                None => match s.strip_suffix('M') {
                    Some(n) => (n, 1 << 20),
                    None => (s, 1),
                },
            };
            num.parse::<u64>().ok().map(|n| n * mul)
        })
        .max()
}

/// CPU time of the whole machine and of this process tree, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    /// Busy time of all CPUs (user, nice, system, irq, softirq, steal), seconds.
    machine_busy_s: f64,
    /// This process, its waited-for children and its live children, seconds.
    ours_s: f64,
    loadavg1: f64,
}

/// Clock ticks per second of /proc's times (USER_HZ, 100 on every Linux ABI we run on).
const HZ: f64 = 100.0;

impl CpuSnapshot {
    /// Read /proc now.
    pub fn now() -> CpuSnapshot {
        let stat = read("/proc/stat");
        let machine_busy_s = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map_or(0.0, |rest| {
                let v: Vec<f64> = rest
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
                (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / HZ
            });
        let me = std::process::id();
        let mut ours_s = proc_times(&format!("/proc/{me}/stat"), true).map_or(0.0, |t| t.1);
        // Live children (the process pool's workers) are not in cutime until waited for.
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.filter_map(|e| e.ok()) {
                let name = e.file_name();
                let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                if let Some((ppid, t)) = proc_times(&format!("/proc/{pid}/stat"), true)
                    && ppid == me
                {
                    ours_s += t;
                }
            }
        }
        let loadavg1 = read("/proc/loadavg")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        CpuSnapshot {
            at: Instant::now(),
            machine_busy_s,
            ours_s,
            loadavg1,
        }
    }
}

/// (parent pid, utime + stime [+ cutime + cstime]) in seconds of a /proc/PID/stat.
fn proc_times(path: &str, with_children: bool) -> Option<(u32, f64)> {
    let s = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ppid = f.get(1)?.parse().ok()?;
    let mut t = field(14)? + field(15)?;
    if with_children {
        t += field(16)? + field(17)?;
    }
    Some((ppid, t / HZ))
}

/// The load during a run: what other processes used while it ran.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Load {
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// CPU time of every process not of this run, seconds.
    pub others_cpu_s: f64,
    /// `others_cpu_s / wall_s`: how many cores others kept busy on average.
    pub others_cores: f64,
    /// CPU time of this run (the harness and its worker processes), seconds.
    pub ours_cpu_s: f64,
    /// 1-minute load average at the start and at the end.
    pub loadavg: (f64, f64),
}

impl Load {
    /// The load between two snapshots.
    pub fn between(a: &CpuSnapshot, b: &CpuSnapshot) -> Load {
        let wall_s = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let ours_cpu_s = (b.ours_s - a.ours_s).max(0.0);
        let others_cpu_s = ((b.machine_busy_s - a.machine_busy_s) - ours_cpu_s).max(0.0);
        Load {
            wall_s,
            others_cpu_s,
            others_cores: others_cpu_s / wall_s,
            ours_cpu_s,
            loadavg: (a.loadavg1, b.loadavg1),
        }
    }

    /// "quiet" (others used under 5 % of one core), "light" (under half a core) or
    /// "loaded".
    pub fn verdict(&self) -> &'static str {
        if self.others_cores < 0.05 {
            "quiet"
        } else if self.others_cores < 0.5 {
            "light"
        } else {
            "loaded"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_facts() {
        let m = Machine::detect();
        assert!(
            m.cores >= 1 && m.memory_bytes > 0 && m.llc_bytes > 0,
            "{m:?}"
        );
        assert!(!m.kernel.is_empty());
    }

    #[test]
    fn our_own_cpu_time_is_not_counted_as_others() {
        let a = CpuSnapshot::now();
        // Spin until this process has used 0.1 CPU-s (however loaded the machine is).
        let t = Instant::now();
        let mut x = 0u64;
        while CpuSnapshot::now().ours_s - a.ours_s < 0.1 && t.elapsed().as_secs() < 30 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let b = CpuSnapshot::now();
        let load = Load::between(&a, &b);
        assert!(load.ours_cpu_s >= 0.1, "{load:?}");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        // Ours and others together never exceed what the CPUs could give (plus a tick).
        assert!(
            load.ours_cpu_s + load.others_cpu_s <= cores * load.wall_s + 0.05,
            "{load:?}"
        );
    }
}
