//! The cache of compiled kernels: one directory per key, published atomically, checked by
//! a stored hash before anything is loaded, bounded in size with least-recently-used
//! eviction.
//!
//! Layout of the cache directory (mode 0700, owned by the user):
//!
//! ```text
//! <key>/lib.so        the compiled shared object        <key>: 64 hex digits (SHA-256)
//! <key>/meta          its SHA-256 and size, and what it was built from (text)
//! <key>/unit.<ext>    the translation unit that was compiled, kernels.h beside it
//! compilers/<id>      `--version` of a compiler, per identity of its executable file
//! .tmp-<pid>-...      a build in progress (renamed to <key> when done)
//! .trash-<pid>-...    an entry being removed
//! ```
//!
//! A build happens in a fresh `.tmp-` directory inside the cache directory and is
//! published by renaming that directory to `<key>`: rename is atomic, and refuses to
//! replace a directory that is not empty, so when several processes compile the same
//! source at once the first to finish publishes, the others find its entry, check it and
//! use it, and exactly one entry remains. An entry whose `lib.so` does not have the size
//! and SHA-256 its `meta` records (truncated, corrupted) or whose `meta` does not parse is
//! moved away and rebuilt; it is never loaded. The modification time of `meta` is the
//! entry's last use: it is set on every hit, and after each new entry the oldest entries
//! go until the total size is within the bound.

use crate::compiler::hex;
use crate::error::{JitError, Result};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The size bound of a cache unless `KERNELPOOL_CACHE_MAX_BYTES` or
/// [`Cache::with_max_bytes`] says otherwise: 256 MiB (a kernel takes about 20 KB).
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The cache directory the environment names: `$KERNELPOOL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/kernelpool` (an absolute `XDG_CACHE_HOME` only, as the XDG spec
/// says), else `$HOME/.cache/kernelpool`; `None` when none of them is set. `var` reads
/// a variable (`std::env::var_os`, or a map in tests).
pub fn dir_from_env(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("KERNELPOOL_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("kernelpool"));
    }
    set("HOME").map(|home| home.join(".cache").join("kernelpool"))
}

/// A checked cache directory and its size bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What [`Cache::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The directory.
    pub dir: PathBuf,
    /// Number of compiled kernels in it.
    pub entries: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The size bound.
    pub max_bytes: u64,
}

/// An entry found and checked.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `<dir>/<key>/lib.so`.
    pub lib: PathBuf,
    /// Its contents (checked against the stored hash).
    pub bytes: Vec<u8>,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Entry),
    Miss,
    /// An entry that must not be loaded, and why.
    Corrupt(String),
}

/// What `meta` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub lib_sha256: String,
    pub lib_bytes: u64,
    /// Free-form lines (`lang c`, `source x.c`, ...), for people.
    pub about: Vec<(String, String)>,
}

const META_MAGIC: &str = "kernelpool-jit-entry 1";

impl Meta {
    pub(crate) fn of_library(lib: &[u8], about: Vec<(String, String)>) -> Meta {
        Meta {
            lib_sha256: hex(&Sha256::digest(lib)),
            lib_bytes: lib.len() as u64,
            about,
        }
    }

    fn to_text(&self) -> String {
        let mut s = format!(
            "{META_MAGIC}\nlib_sha256 {}\nlib_bytes {}\n",
            self.lib_sha256, self.lib_bytes
        );
        for (k, v) in &self.about {
            let v = v.replace('\n', " ");
            s.push_str(&format!("{k} {v}\n"));
        }
        s
    }

    fn parse(text: &str) -> Option<Meta> {
        let mut lines = text.lines();
        if lines.next()? != META_MAGIC {
            return None;
        }
        let (mut sha, mut bytes, mut about) = (None, None, Vec::new());
        for line in lines {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "lib_sha256" if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    sha = Some(v.to_string())
                }
                "lib_bytes" => bytes = Some(v.parse().ok()?),
                _ => about.push((k.to_string(), v.to_string())),
            }
        }
        Some(Meta {
            lib_sha256: sha?,
            lib_bytes: bytes?,
            about,
        })
    }
}

/// True for the name of an entry: 64 lower-case hex digits.
fn is_entry_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A name no other process or thread uses: `<prefix><pid>-<counter>-<nanos>`.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when the `.tmp-<pid>-...` or `.trash-<pid>-...` name belongs to a process that
/// still runs (its build may still be going on).
fn owner_alive(name: &str) -> bool {
    let rest = name
        .strip_prefix(".tmp-")
        .or_else(|| name.strip_prefix(".trash-"))
        .unwrap_or("");
    match rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Write `bytes` to `path` (in `dir`) through a temporary file in `dir` and a rename.
pub(crate) fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(unique_name(".tmp-"));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// A build directory in the cache, removed on drop unless published.
#[derive(Debug)]
pub(crate) struct BuildDir {
    path: PathBuf,
    published: bool,
}

impl BuildDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Cache {
    /// The cache in the directory the environment names ([`dir_from_env`]).
    ///
    /// # Errors
    /// [`JitError::NoCacheDir`], and those of [`Cache::open`].
    pub fn from_env() -> Result<Cache> {
        let dir = dir_from_env(|v| std::env::var_os(v)).ok_or(JitError::NoCacheDir)?;
        Cache::open(dir)
    }

    /// The cache in `dir`, created (with its missing parents) mode 0700 when it does not
    /// exist. Its size bound is `$KERNELPOOL_CACHE_MAX_BYTES` (bytes, or with a `K`, `M`
    /// or `G` suffix) or [`DEFAULT_MAX_BYTES`].
    ///
    /// # Errors
    /// [`JitError::UnsafeCacheDir`] when `dir` is not a directory, is owned by another
    /// user or is writable by group or others (anyone who can write there could make
    /// this process load their code); [`JitError::Io`] when it cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache> {
        let dir = dir.into();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| {
                    JitError::io(format!("creating the cache directory {}", dir.display()), e)
                })?;
        }
        let unsafe_dir = |reason: String| JitError::UnsafeCacheDir {
            dir: dir.clone(),
            reason,
        };
        let m = std::fs::metadata(&dir)
            .map_err(|e| JitError::io(format!("reading {}", dir.display()), e))?;
        if !m.is_dir() {
            return Err(unsafe_dir("it is not a directory".into()));
        }
        let me = rustix::process::geteuid().as_raw();
        if m.uid() != me {
            return Err(unsafe_dir(format!(
                "it is owned by uid {}, not by this user (uid {me}): use a directory of your own \
                 (KERNELPOOL_CACHE_DIR)",
                m.uid()
            )));
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(unsafe_dir(format!(
                "it is writable by {} (mode {mode:04o}): `chmod 700 {}`",
                match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "group and others",
                    (true, false) => "its group",
                    _ => "others",
                },
                dir.display()
            )));
        }
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| JitError::io(format!("resolving {}", dir.display()), e))?;
        let max_bytes = std::env::var("KERNELPOOL_CACHE_MAX_BYTES")
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(DEFAULT_MAX_BYTES);
        Ok(Cache { dir, max_bytes })
    }

    /// The same cache with another size bound (bytes).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Cache {
        self.max_bytes = max_bytes;
        self
    }

    /// The directory (resolved).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The entries, their total size and the bound.
    ///
    /// # Errors
    /// [`JitError::Io`] when the directory cannot be read.
    pub fn info(&self) -> Result<CacheInfo> {
        let entries = self.entries()?;
        Ok(CacheInfo {
            dir: self.dir.clone(),
            entries: entries.len(),
            bytes: entries.iter().map(|e| e.2).sum(),
            max_bytes: self.max_bytes,
        })
    }

    /// Remove every compiled kernel (and the remembered compiler versions and what
    /// dead builds left); the directory stays. Returns how many kernels were removed.
    /// Kernels already loaded keep running; pools that start new workers for them will
    /// not find their library any more.
    ///
    /// # Errors
    /// [`JitError::Io`] when the directory cannot be read.
    pub fn clear(&self) -> Result<usize> {
        let mut removed = 0;
        for (name, ..) in self.entries()? {
            if self.discard(&name) {
                removed += 1;
            }
        }
        self.remove_leftovers(true);
        let _ = std::fs::remove_dir_all(self.dir.join("compilers"));
        Ok(removed)
    }

    /// The directory that remembers compiler versions (created on demand).
    pub(crate) fn memo_dir(&self) -> Option<PathBuf> {
        let dir = self.dir.join("compilers");
        if !dir.is_dir() {
            std::fs::DirBuilder::new().mode(0o700).create(&dir).ok()?;
        }
        Some(dir)
    }

    /// (name, last use, size in bytes) of every entry.
    fn entries(&self) -> Result<Vec<(String, SystemTime, u64)>> {
        let read = std::fs::read_dir(&self.dir)
            .map_err(|e| JitError::io(format!("reading {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for e in read.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_entry_name(&name) {
                continue;
            }
            let path = e.path();
            let used = std::fs::metadata(path.join("meta"))
                .or_else(|_| std::fs::metadata(&path))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = std::fs::read_dir(&path)
                .map(|d| {
                    d.flatten()
                        .filter_map(|f| f.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            out.push((name, used, bytes));
        }
        Ok(out)
    }

    /// Look `key` up and check what is there.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let dir = self.dir.join(key);
        let meta_path = dir.join("meta");
        let text = match std::fs::read_to_string(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if dir.exists() {
                    Lookup::Corrupt("its meta file is missing".into())
                } else {
                    Lookup::Miss
                };
            }
            Err(e) => return Lookup::Corrupt(format!("its meta file cannot be read ({e})")),
        };
        let Some(meta) = Meta::parse(&text) else {
            return Lookup::Corrupt("its meta file does not parse".into());
        };
        let lib = dir.join("lib.so");
        let bytes = match std::fs::read(&lib) {
            Ok(b) => b,
            Err(e) => return Lookup::Corrupt(format!("lib.so cannot be read ({e})")),
        };
        if bytes.len() as u64 != meta.lib_bytes {
            return Lookup::Corrupt(format!(
                "lib.so has {} bytes, {} were stored (truncated?)",
                bytes.len(),
                meta.lib_bytes
            ));
        }
        if hex(&Sha256::digest(&bytes)) != meta.lib_sha256 {
            return Lookup::Corrupt("lib.so does not have the SHA-256 that was stored".into());
        }
        // Last use, for eviction (best effort).
        if let Ok(f) = std::fs::File::options().write(true).open(&meta_path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Lookup::Hit(Entry { lib, bytes })
    }

    /// Move the entry `name` away and remove it; false when it was not there.
    pub(crate) fn discard(&self, name: &str) -> bool {
        let trash = self.dir.join(unique_name(".trash-"));
        if std::fs::rename(self.dir.join(name), &trash).is_err() {
            return false;
        }
        let _ = std::fs::remove_dir_all(&trash);
        true
    }

    /// A fresh build directory in the cache (mode 0700).
    ///
    /// # Errors
    /// [`JitError::Io`].
    pub(crate) fn build_dir(&self) -> Result<BuildDir> {
        let path = self.dir.join(unique_name(".tmp-"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| JitError::io(format!("creating {}", path.display()), e))?;
        Ok(BuildDir {
            path,
            published: false,
        })
    }

    /// Publish the build in `build` as entry `key` with `meta`. `Ok(false)`: another
    /// process published `key` first (look it up again).
    ///
    /// # Errors
    /// [`JitError::Io`] when the meta file cannot be written or the rename fails for
    /// another reason.
    pub(crate) fn publish(&self, key: &str, mut build: BuildDir, meta: &Meta) -> Result<bool> {
        let meta_path = build.path.join("meta");
        std::fs::write(&meta_path, meta.to_text())
            .map_err(|e| JitError::io(format!("writing {}", meta_path.display()), e))?;
        match std::fs::rename(&build.path, self.dir.join(key)) {
            Ok(()) => {
                build.published = true;
                self.evict(key);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(JitError::io(
                format!("publishing {key} in {}", self.dir.display()),
                e,
            )),
        }
    }

    /// Remove the least recently used entries (never `keep`) until the total is within
    /// the bound, and what dead builds left.
    fn evict(&self, keep: &str) {
        self.remove_leftovers(false);
        let Ok(mut entries) = self.entries() else {
            return;
        };
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort_by_key(|e| e.1);
        for (name, _, bytes) in entries {
            if total <= self.max_bytes {
                break;
            }
            if name != keep && self.discard(&name) {
                total = total.saturating_sub(bytes);
            }
        }
    }

    /// Remove `.tmp-` and `.trash-` directories and files of processes that are gone
    /// (`all`: also those of live processes older than an hour).
    fn remove_leftovers(&self, all: bool) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in read.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !(name.starts_with(".tmp-") || name.starts_with(".trash-")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago);
            if !owner_alive(&name) || (all && old) || name.starts_with(".trash-") && old {
                let p = e.path();
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
    }
}

/// `1048576`, `512K`, `64M`, `2G`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_directory_comes_from_the_environment_in_order() {
        let env = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, OsString> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            dir_from_env(move |k| m.get(k).cloned())
        };
        let all = [
            ("KERNELPOOL_CACHE_DIR", "/a/kp"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(env(&all), Some(PathBuf::from("/a/kp")));
        assert_eq!(env(&all[1..]), Some(PathBuf::from("/x/kernelpool")));
        assert_eq!(
            env(&all[2..]),
            Some(PathBuf::from("/home/u/.cache/kernelpool"))
        );
        // An empty or relative XDG_CACHE_HOME is ignored, as the spec says.
        assert_eq!(
            env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/kernelpool"))
        );
        assert_eq!(
            env(&[("KERNELPOOL_CACHE_DIR", ""), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/kernelpool"))
        );
        assert_eq!(env(&[]), None);
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let m = Meta::of_library(b"\x7fELF...", vec![("lang".into(), "c".into())]);
        assert_eq!(Meta::parse(&m.to_text()), Some(m.clone()));
        assert_eq!(Meta::parse("garbage"), None);
        assert_eq!(Meta::parse(&m.to_text().replace("lib_bytes", "x")), None);
        assert!(is_entry_name(&m.lib_sha256));
        assert!(!is_entry_name(".tmp-1-2-3"));
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
    }
}
