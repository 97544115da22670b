//! The system compilers: which program compiles each language (`$CC`, `$CXX`, `$FC`, or
//! gcc, g++, gfortran), its `--version` (remembered per executable file), the project's
//! flags and the target CPU.

use crate::error::{JitError, Result};
use kernelpool_kernels::Lang;
use kernelpool_kernels_sys as sys;
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags every JIT compile gets, before the user's: the native kernels' (`-O3
/// -ffp-contract=off`, so results agree bit for bit with them), for a shared object in
/// which every symbol is defined (`-z defs`: a function that is declared but nowhere
/// defined fails the build, naming it, instead of the load).
pub const PROJECT_FLAGS: &[&str] = &[
    "-O3",
    "-fPIC",
    "-shared",
    "-ffp-contract=off",
    "-Wl,-z,defs",
];
/// What Fortran adds (splitmix64's wrapping arithmetic, as the native kernels).
pub const FORTRAN_FLAGS: &[&str] = &["-fwrapv"];

/// The environment variable that names `lang`'s compiler.
pub fn compiler_var(lang: Lang) -> &'static str {
    match lang {
        Lang::Cpp => "CXX",
        Lang::Fortran => "FC",
        _ => "CC",
    }
}

/// The default compiler of `lang`, which is also its Debian package.
pub fn default_compiler(lang: Lang) -> &'static str {
    match lang {
        Lang::Cpp => "g++",
        Lang::Fortran => "gfortran",
        _ => "gcc",
    }
}

/// A compiler found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiler {
    lang: Lang,
    /// The program, as an absolute path (found in `PATH` when named without a `/`).
    program: PathBuf,
    /// Words after the program in `$CC` (`CC="ccache gcc"` is program ccache, args gcc).
    args: Vec<String>,
    /// As it was named.
    named: String,
}

impl Compiler {
    /// The compiler of `lang`: `program` when given, else `$CC`/`$CXX`/`$FC`, else gcc,
    /// g++, gfortran. A value with spaces is a program and its first arguments.
    ///
    /// # Errors
    /// [`JitError::CompilerNotFound`], naming the Debian package to install.
    pub fn find(lang: Lang, program: Option<&OsStr>) -> Result<Compiler> {
        let var = compiler_var(lang);
        let (named, from) = match program {
            Some(p) => (p.to_string_lossy().into_owned(), String::new()),
            None => match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(v) => (v.to_string_lossy().into_owned(), format!(" (from ${var})")),
                None => (default_compiler(lang).to_string(), String::new()),
            },
        };
        let not_found = |reason: String| JitError::CompilerNotFound {
            lang,
            compiler: named.clone(),
            from: from.clone(),
            var,
            package: default_compiler(lang),
            reason,
        };
        let mut words = named.split_whitespace().map(str::to_string);
        let first = words
            .next()
            .ok_or_else(|| not_found("the name is empty".into()))?;
        let program = find_program(Path::new(&first)).map_err(not_found)?;
        Ok(Compiler {
            lang,
            program,
            args: words.collect(),
            named,
        })
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The compiler as named (`gcc`, `$CC`'s value).
    pub fn named(&self) -> &str {
        &self.named
    }

    /// The language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// A command running the compiler (program and its first arguments).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }

    /// What identifies the compiler in a cache key: the program's path and its words.
    pub(crate) fn key_text(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// The compiler's `--version` output (stdout and stderr). It is remembered in
    /// `memo_dir` under the identity of the program's file (path, device, inode, size,
    /// modification and change times): a compiler whose file changes is asked again, one
    /// that does not is not run at all.
    ///
    /// # Errors
    /// [`JitError::CompilerNotFound`] when the program does not run or `--version` fails.
    pub fn version(&self, memo_dir: Option<&Path>) -> Result<String> {
        let id = self.file_identity();
        let memo = match (memo_dir, &id) {
            (Some(dir), Some(id)) => Some(dir.join(id)),
            _ => None,
        };
        if let Some(text) = memo.as_ref().and_then(|m| std::fs::read_to_string(m).ok()) {
            return Ok(text);
        }
        let out = self.command().arg("--version").output();
        let text = match out {
            Ok(o) if o.status.success() => {
                let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
                t.push_str(&String::from_utf8_lossy(&o.stderr));
                t
            }
            Ok(o) => {
                return Err(
                    self.not_running(format!("`{} --version` failed ({})", self.named, o.status))
                );
            }
            Err(e) => return Err(self.not_running(e.to_string())),
        };
        if let (Some(dir), Some(memo)) = (memo_dir, memo) {
            // Best effort: a memo that cannot be written only costs a run next time.
            let _ = crate::cache::write_atomic(dir, &memo, text.as_bytes());
        }
        Ok(text)
    }

    fn not_running(&self, reason: String) -> JitError {
        JitError::CompilerNotFound {
            lang: self.lang,
            compiler: self.named.clone(),
            from: String::new(),
            var: compiler_var(self.lang),
            package: default_compiler(self.lang),
            reason,
        }
    }

    /// Hex digest of what identifies the program's file, through symbolic links.
    fn file_identity(&self) -> Option<String> {
        let real = std::fs::canonicalize(&self.program).ok()?;
        let m = std::fs::metadata(&real).ok()?;
        let mut h = Sha256::new();
        h.update(self.key_text().as_bytes());
        h.update([0]);
        h.update(real.as_os_str().as_encoded_bytes());
        for v in [
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
            m.ctime() as u64,
            m.ctime_nsec() as u64,
        ] {
            h.update(v.to_le_bytes());
        }
        Some(hex(&h.finalize()[..16]))
    }

    /// The flags of a compile, before the build directory's: the project's, `-march=`
    /// of the target CPU, Fortran's, then `user`'s.
    pub(crate) fn flags(&self, user: &[String], target_cpu: &str) -> Vec<String> {
        let mut f: Vec<String> = PROJECT_FLAGS.iter().map(|s| s.to_string()).collect();
        if !target_cpu.is_empty() {
            f.push(format!("-march={target_cpu}"));
        }
        if self.lang == Lang::Fortran {
            f.extend(FORTRAN_FLAGS.iter().map(|s| s.to_string()));
        }
        f.extend(user.iter().cloned());
        f
    }
}

/// The program named `name`: a path when it has a `/` (made absolute), else the first
/// executable file of that name in `PATH`.
fn find_program(name: &Path) -> std::result::Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.as_os_str().as_encoded_bytes().contains(&b'/') {
        let p = std::path::absolute(name).map_err(|e| e.to_string())?;
        return if executable(&p) {
            Ok(p)
        } else if p.exists() {
            Err(format!("{} is not an executable file", p.display()))
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let p = dir.join(name);
        if executable(&p) {
            return std::path::absolute(&p).map_err(|e| e.to_string());
        }
    }
    Err("not in PATH".into())
}

/// The target CPU the JIT compiles for: the build's ([`sys::TARGET_CPU`], from the
/// rustflags' `-C target-cpu`), so that jitted code agrees bit for bit with the built-in
/// kernels. For `native`, the key also needs to know which CPU that is
/// ([`host_cpu`]).
pub fn target_cpu() -> &'static str {
    sys::TARGET_CPU
}

/// The CPU this process runs on, from the first processor of `/proc/cpuinfo` (vendor,
/// family, model, stepping, model name and feature flags), as a short text: what
/// `-march=native` means here. Read once per process.
pub fn host_cpu() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let text = first_cpuinfo_block().unwrap_or_default();
        let mut model = String::new();
        let mut h = Sha256::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if matches!(
                k,
                "vendor_id"
                    | "cpu family"
                    | "model"
                    | "model name"
                    | "stepping"
                    | "flags"
                    | "Features"
                    | "CPU implementer"
                    | "CPU architecture"
                    | "CPU variant"
                    | "CPU part"
                    | "CPU revision"
                    | "isa"
                    | "uarch"
            ) {
                h.update(k.as_bytes());
                h.update(b"=");
                h.update(v.as_bytes());
                h.update(b"\n");
            }
            if k == "model name" || (model.is_empty() && k == "uarch") {
                model = v.to_string();
            }
        }
        format!("{model} [{}]", hex(&h.finalize()[..8]))
    })
}

/// The first processor's lines of `/proc/cpuinfo` (reading stops there: the file is
/// made as it is read, one block per CPU).
fn first_cpuinfo_block() -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/cpuinfo").ok()?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 4096];
    loop {
        let n = f.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            buf.truncate(end);
            break;
        }
        if buf.len() > 1 << 20 {
            break;
        }
    }
    String::from_utf8(buf).ok()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_compiler_names_its_package() {
        let e = Compiler::find(Lang::Fortran, Some(OsStr::new("/nonexistent/gfortran-99")))
            .expect_err("missing");
        let text = e.to_string();
        assert!(
            text.contains("sudo apt-get install gfortran") && text.contains("FC"),
            "{text}"
        );
        let e = Compiler::find(Lang::Cpp, Some(OsStr::new("no-such-compiler-xyz")))
            .expect_err("missing");
        assert!(
            e.to_string().contains("g++") && e.to_string().contains("not in PATH"),
            "{e}"
        );
    }

    #[test]
    fn the_host_cpu_is_described() {
        let cpu = host_cpu();
        assert!(cpu.contains('['), "{cpu}");
        assert_eq!(cpu, host_cpu());
    }
}
