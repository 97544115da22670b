//! Helpers of the JIT tests: temporary directories, a fresh cache each, and a compiler
//! wrapper that logs every time it runs.
#![allow(dead_code)]

#[path = "../../../../tests/support/executable.rs"]
mod executable;

use executable::write_executable;
use kernelpool_jit::{Cache, Jit};
use kernelpool_kernels::Lang;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

// SAFETY: runs before `main`; `init` reads one environment variable and returns, except in
// a worker of a process pool, where it serves the pool and exits.
#[ctor::ctor(unsafe)]
fn worker_entry() {
    kernelpool_pool::init();
}

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kp-jit-test-{}-{what}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// Write `text` to `name` here; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A JIT over a fresh cache in `dir/cache`.
pub fn jit(dir: &TempDir) -> Jit {
    Jit::with_cache(Cache::open(dir.join("cache")).expect("cache"))
}

/// The entries (64-hex directories) of a cache directory.
pub fn entries(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache)
        .expect("cache dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    v.sort();
    v
}

/// A compiler wrapper: logs its arguments to `log` (one line per run), answers
/// `--version` with `version`, and runs `real` otherwise. Written to a new file and
/// renamed over `path`, as an installer replaces a program.
pub fn logging_compiler(path: &Path, real: &str, log: &Path, version: &str) {
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\nexec {real} \"$@\"\n",
        log.display()
    );
    let tmp = path.with_extension("new");
    write_executable(&tmp, &script);
    std::fs::rename(&tmp, path).expect("install the wrapper");
}

/// Lines of a log (0 when it does not exist).
pub fn runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Compile runs in a log (not `--version`).
pub fn compiles(log: &Path) -> usize {
    runs(log)
        .iter()
        .filter(|l| !l.starts_with("--version"))
        .count()
}

/// The course's f in each language.
pub fn course_f(lang: Lang) -> &'static str {
    match lang {
        Lang::C => {
            "#include <stdint.h>\nint64_t f(int64_t x) {\n    uint64_t j = 0, ux = (uint64_t)x;\n    for (int i = 0; i < 10000000; i++) j += ux * ux;\n    return (int64_t)j;\n}\n"
        }
        Lang::Cpp => {
            "#include <cstdint>\nstd::int64_t f(std::int64_t x) {\n    std::uint64_t j = 0, ux = x;\n    for (int i = 0; i < 10000000; i++) j += ux * ux;\n    return static_cast<std::int64_t>(j);\n}\n"
        }
        _ => {
            "function f(x) bind(C, name=\"f\") result(j)\n  use, intrinsic :: iso_c_binding\n  implicit none\n  integer(c_int64_t), value :: x\n  integer(c_int64_t) :: j, i\n  j = 0\n  do i = 1, 10000000\n    j = j + x * x\n  end do\nend function f\n"
        }
    }
}

/// The course's f of x.
pub fn course_f_of(x: i64) -> i64 {
    10_000_000i64.wrapping_mul(x.wrapping_mul(x))
}

pub const LANGS: [Lang; 3] = [Lang::C, Lang::Cpp, Lang::Fortran];
