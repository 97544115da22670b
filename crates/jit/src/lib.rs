//! Just-in-time kernels: a C, C++ or Fortran source compiled at run time by the system
//! compiler, cached by content hash, loaded with `libloading`, and run on any executor
//! (serial, threads, worker processes): what numba's `@njit(cache=True)` is to Python,
//! for compiled languages.
//!
//! Two ways to write a kernel:
//! - a **plain element function**, as the course writes `f(x)`: `int64_t f(int64_t)` or
//!   `double f(double)` (Fortran: a function of one `integer(c_int64_t)` or
//!   `real(c_double)` argument). The JIT generates the range kernel `out[i] = f(in[i])`
//!   around it, in the same language and translation unit ([`ElementFn`], [`map`]);
//! - a **range kernel** following the one contract of `native/include/kernels.h`
//!   (`int32_t k(const kp_kargs *, uint64_t begin, uint64_t end)`), with a
//!   [`Signature`] of its own or a built-in kernel's
//!   ([`Jit::range_kernel`]). `#include "kernels.h"` finds the contract.
//!
//! ```
//! use kernelpool_jit::{Cache, Jit, Source};
//! use kernelpool_kernels::{Lang, Serial};
//!
//! # let dir = std::env::temp_dir().join(format!("kp-jit-doc-{}", std::process::id()));
//! let jit = Jit::with_cache(Cache::open(&dir)?); // Jit::new(): the default cache
//! let src = Source::string(
//!     "#include <stdint.h>\n\
//!      int64_t f(int64_t x) { int64_t j = 0; for (int i = 0; i < 10000000; i++) j += x * x; return j; }",
//!     Lang::C,
//! );
//! // SAFETY: `f` is a pure function of its argument.
//! let f = unsafe { jit.element_fn::<i64>(&src, "f") }?;
//! assert_eq!(f.map(&[1, 2, 3], &Serial)?, [10000000, 40000000, 90000000]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), kernelpool_jit::JitError>(())
//! ```
//!
//! With `kernelpool_pool::Processes` as the executor, the workers load the same cached
//! library by path (checked by file identity) and get the kernel's signature with it.
//!
//! # Compiling
//! The compiler is `$CC`, `$CXX` or `$FC` (or gcc, g++, gfortran; [`Jit::compiler`]
//! names another), run with the project's flags (`-O3 -fPIC -shared -ffp-contract=off`,
//! `-fwrapv` for Fortran, `-march=` of the build's target CPU, so that results agree bit
//! for bit with the built-in kernels), then the user's ([`Jit::flags`]). Diagnostics name
//! the user's file and lines (`<string>` for a string).
//!
//! # The cache
//! The key is a SHA-256 of the source text, the language, the kernel form, the compiler's
//! path and `--version`, the flags, the target CPU (for `native`: which CPU this is) and
//! the kernelpool version; a change in any of them misses, nothing else does (headers the
//! source includes are not part of it: change a flag or [`Cache::clear`] after editing
//! one). It lives in `$KERNELPOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/kernelpool`, else
//! `~/.cache/kernelpool`, created mode 0700; a directory owned by another user or
//! writable by group or others is refused. See [`cache`] for publishing, checking and
//! eviction.
//!
//! # Safety
//! Compiling and loading run the user's code in this process (its initialisers on load,
//! the kernel on every call): nothing can check native code from here, so the functions
//! that load are `unsafe`, with what they need in `# Safety`.
//!
//! The C ABI (`kp_jit_*`) is not there yet: it waits for the C ABI's user-kernel entry
//! points. Everything it needs is here ([`Jit`], [`Source`], [`Signature`] from the
//! kernels crate, [`JitError`]'s typed causes).
//!
//! [`Signature`]: kernelpool_kernels::Signature

pub mod cache;
pub mod compiler;
mod elf;
pub mod error;
pub mod source;
mod wrapper;

pub use cache::{Cache, CacheInfo};
pub use compiler::Compiler;
pub use error::{JitError, Result};
pub use source::Source;

use cache::{Lookup, Meta};
use kernelpool_kernels::{
    Buffer, Element, Error as KernelError, Executor, Kernel, KernelName, Lang, Signature, Step,
    StepArgs, signature::Len,
};
use kernelpool_kernels_sys as sys;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wrapper::Form;

/// The kernelpool version in every cache key.
pub const KERNELPOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Compiles, caches and loads kernels. Cheap to make; holds no compiled code itself.
#[derive(Debug, Clone)]
pub struct Jit {
    cache: Cache,
    flags: Vec<String>,
    compilers: HashMap<Lang, OsString>,
    target_cpu: Option<String>,
    version: String,
}

/// How a kernel was had: from the cache or compiled, how long it took, and where the
/// library is. Fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Build {
    /// True when the cache had it (the compiler did not run).
    pub cached: bool,
    /// Time the compiler ran (zero on a hit).
    pub compile_time: Duration,
    /// Time from the call to the loaded kernel (key, lookup or compile, load).
    pub total_time: Duration,
    /// The cached shared object (what workers load).
    pub library: PathBuf,
    /// The cache key (the entry's directory name).
    pub key: String,
    /// The target CPU the library was built for (`native (model [id])`, a `-march`
    /// name, or `compiler default`).
    pub target_cpu: String,
    /// Why an entry that was in the cache was not loaded but rebuilt (truncated,
    /// corrupted), if one was.
    pub rebuilt_because: Option<String>,
}

/// A JIT-compiled kernel and how it was had.
#[derive(Debug, Clone)]
pub struct JitKernel {
    kernel: Kernel,
    build: Build,
}

impl JitKernel {
    /// The kernel: run it in a [`Step`] on any executor.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The kernel, by value.
    pub fn into_kernel(self) -> Kernel {
        self.kernel
    }

    /// How it was had.
    pub fn build(&self) -> &Build {
        &self.build
    }
}

/// Element types of element functions: `i64` (`int64_t`) and `f64` (`double`).
pub trait MapElem: Element + private::Sealed {}
impl MapElem for i64 {}
impl MapElem for f64 {}
mod private {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
}

/// A JIT-compiled element function `T f(T)` with its generated range kernel
/// (`out[i] = f(in[i])`, signature `in T[items], out T[items]`).
#[derive(Debug, Clone)]
pub struct ElementFn<T> {
    inner: JitKernel,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: MapElem> ElementFn<T> {
    /// `f` applied to every argument, on `exec`: `Pool.map(f, args)` for a compiled `f`.
    /// The arguments are copied into a buffer of the executor (shared memory for worker
    /// processes), the results out of another.
    ///
    /// # Errors
    /// [`JitError::Kernel`] with the executor's or the kernel's error (a crash or a
    /// timeout of a worker, too many chunks, an allocation refused, ...).
    pub fn map(&self, args: &[T], exec: &dyn Executor) -> Result<Vec<T>> {
        if args.is_empty() {
            return Ok(Vec::new());
        }
        let n = args.len() as u64;
        exec.check_items(n)?;
        let mut input = alloc::<T>(exec, args.len(), "the arguments of a JIT map")?;
        let mut output = alloc::<T>(exec, args.len(), "the results of a JIT map")?;
        match input.as_mut_slice::<T>() {
            Some(s) => s.copy_from_slice(args),
            None => return Err(wrong_memory(&input, "the arguments of a JIT map")),
        }
        {
            let step = Step::new(
                self.inner.kernel.clone(),
                StepArgs::new(n, n),
                vec![&mut input, &mut output],
            )?;
            exec.run(&step)?;
        }
        // Under MPI: the results come together on rank 0 (elsewhere they are partial).
        exec.gather(&mut output)?;
        Ok(output
            .as_slice::<T>()
            .ok_or_else(|| wrong_memory(&output, "the results of a JIT map"))?
            .to_vec())
    }

    /// The generated range kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.inner.kernel
    }

    /// How it was had.
    pub fn build(&self) -> &Build {
        &self.inner.build
    }
}

/// A buffer of `len` `T` from `exec`, checked to be that.
fn alloc<T: MapElem>(exec: &dyn Executor, len: usize, what: &str) -> Result<Buffer> {
    let buf = exec.alloc(T::ELEM, len, what)?;
    if buf.elem() != T::ELEM || buf.len() != len {
        return Err(KernelError::BadMemory {
            what: what.into(),
            elem: T::ELEM,
            len,
            bytes: buf.memory().bytes(),
            reason: format!(
                "{}'s alloc returned {} x {:?}",
                exec.describe(),
                buf.len(),
                buf.elem()
            ),
        }
        .into());
    }
    Ok(buf)
}

fn wrong_memory(buf: &Buffer, what: &str) -> JitError {
    KernelError::BadMemory {
        what: what.into(),
        elem: buf.elem(),
        len: buf.len(),
        bytes: buf.memory().bytes(),
        reason: "not a buffer of the element type".into(),
    }
    .into()
}

/// Compile (or find in the default cache) the element function `symbol` of `src` and
/// apply it to every argument on `exec`: `Pool.map(f, args)` for a compiled `f`, in one
/// call.
///
/// ```no_run
/// use kernelpool_jit::Source;
/// use kernelpool_kernels::Serial;
///
/// let src = Source::file("examples/jit/seed.c")?;
/// // SAFETY: the course's f is a pure function of its argument.
/// let ys = unsafe { kernelpool_jit::map(&src, "f", &[1i64, 2, 3], &Serial) }?;
/// assert_eq!(ys, [10000000, 40000000, 90000000]);
/// # Ok::<(), kernelpool_jit::JitError>(())
/// ```
///
/// # Safety
/// As [`Jit::element_fn`].
///
/// # Errors
/// Those of [`Jit::new`], [`Jit::element_fn`] and [`ElementFn::map`].
pub unsafe fn map<T: MapElem>(
    src: &Source,
    symbol: &str,
    args: &[T],
    exec: &dyn Executor,
) -> Result<Vec<T>> {
    let jit = Jit::new()?;
    // SAFETY: the caller vouches for the source (see # Safety).
    unsafe { jit.element_fn::<T>(src, symbol) }?.map(args, exec)
}

impl Jit {
    /// A JIT over the cache the environment names ([`Cache::from_env`]).
    ///
    /// # Errors
    /// Those of [`Cache::from_env`].
    pub fn new() -> Result<Jit> {
        Ok(Jit::with_cache(Cache::from_env()?))
    }

    /// A JIT over `cache`.
    pub fn with_cache(cache: Cache) -> Jit {
        Jit {
            cache,
            flags: Vec::new(),
            compilers: HashMap::new(),
            target_cpu: None,
            version: KERNELPOOL_VERSION.to_string(),
        }
    }

    /// Add flags after the project's (`-DN=4`, `-fopenmp`, `-std=c++20`, ...).
    #[must_use]
    pub fn flags<I, S>(mut self, flags: I) -> Jit
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.flags.extend(flags.into_iter().map(Into::into));
        self
    }

    /// Compile `lang` with `program` instead of `$CC`/`$CXX`/`$FC` or the default (a
    /// value with spaces is a program and its first arguments, as in `$CC`).
    #[must_use]
    pub fn compiler(mut self, lang: Lang, program: impl Into<OsString>) -> Jit {
        self.compilers.insert(lang, program.into());
        self
    }

    /// Compile for `cpu` (a `-march=` name) instead of the build's target CPU
    /// ([`compiler::target_cpu`]). Results may then differ from the built-in kernels in
    /// the last bits.
    #[must_use]
    pub fn target_cpu(mut self, cpu: impl Into<String>) -> Jit {
        self.target_cpu = Some(cpu.into());
        self
    }

    /// For tests of the cache key: another kernelpool version than this one's.
    #[doc(hidden)]
    #[must_use]
    pub fn kernelpool_version_for_tests(mut self, version: impl Into<String>) -> Jit {
        self.version = version.into();
        self
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Compile (or find in the cache) the range kernel `symbol` of `src` and load it as
    /// a kernel following `contract`: a built-in kernel's ([`KernelName::Pi`], ...), so
    /// that its programs run it, or a signature of its own
    /// ([`KernelName::custom`]`(sig)`), run as a [`Step`] on any executor.
    ///
    /// # Safety
    /// Loading runs the library's initialisers, and `symbol` must be a function
    /// `int32_t symbol(const kp_kargs *, uint64_t begin, uint64_t end)` that keeps to
    /// `contract`: it reads and writes only the items of its range within the buffers
    /// the contract lists, and only the partial slots it declares (float slots as
    /// `double` bits). Nothing can check that from here.
    ///
    /// # Errors
    /// [`JitError::UnknownLanguage`], [`JitError::CompilerNotFound`],
    /// [`JitError::CompileFailed`] (with the compiler's diagnostics),
    /// [`JitError::MissingSymbol`] (with the symbols the object exports),
    /// [`JitError::UnsafeCacheDir`] and [`JitError::Io`] from the cache,
    /// [`JitError::Load`] when the library does not load.
    pub unsafe fn range_kernel(
        &self,
        src: &Source,
        symbol: &str,
        contract: KernelName,
    ) -> Result<JitKernel> {
        let t0 = Instant::now();
        let (entry, mut build) = self.obtain(src, &Form::Range)?;
        check_exported(src, symbol, &entry.bytes)?;
        // SAFETY: the caller vouches for the library and the symbol under `contract`.
        let kernel = unsafe { Kernel::load(&entry.lib, symbol, contract, src.lang()) }
            .map_err(JitError::Load)?;
        build.total_time = t0.elapsed();
        Ok(JitKernel { kernel, build })
    }

    /// Compile (or find in the cache) the element function `symbol` of `src` (`int64_t
    /// symbol(int64_t)` for `T = i64`, `double symbol(double)` for `f64`; in Fortran a
    /// function of one such argument) with the generated range kernel that applies it
    /// to a buffer, and load that.
    ///
    /// For C++ the symbol may be qualified (`ns::f`) and need not be `extern "C"`; for
    /// Fortran it is the function's name (its `bind(C)` label, if any, does not matter),
    /// in a free-form source.
    ///
    /// # Safety
    /// Loading runs the library's initialisers, and `symbol` must return for every
    /// argument without undefined behaviour, touching no memory but its own (it is
    /// called from several threads or processes at once). The generated kernel stays
    /// within its buffers.
    ///
    /// # Errors
    /// Those of [`Jit::range_kernel`], [`JitError::InvalidSymbol`] for a symbol the
    /// generated code cannot name, and [`JitError::WrongSignature`] when the function
    /// does not have the signature the wrapper calls it with.
    pub unsafe fn element_fn<T: MapElem>(
        &self,
        src: &Source,
        symbol: &str,
    ) -> Result<ElementFn<T>> {
        let t0 = Instant::now();
        let form = Form::Element {
            symbol: symbol.to_string(),
            elem: T::ELEM,
        };
        let (entry, mut build) = self.obtain(src, &form)?;
        let wrapper = wrapper::wrapper_symbol(symbol);
        check_exported(src, &wrapper, &entry.bytes)?;
        let sig = Signature::new(symbol)
            .input(T::ELEM, Len::Items(1))
            .output(T::ELEM, Len::Items(1));
        // SAFETY: the wrapper is generated code of the signature `sig` (it checks its
        // range and buffer lengths, reads in[i] and writes out[i] for i in the range);
        // the caller vouches for the library and the element function it calls.
        let kernel = unsafe { Kernel::load_with_signature(&entry.lib, &wrapper, sig, src.lang()) }
            .map_err(JitError::Load)?;
        build.total_time = t0.elapsed();
        Ok(ElementFn {
            inner: JitKernel { kernel, build },
            _t: PhantomData,
        })
    }

    /// The target CPU: (the `-march` value, its text in the key and the build report).
    fn target(&self) -> (String, String) {
        let cpu = self
            .target_cpu
            .clone()
            .unwrap_or_else(|| compiler::target_cpu().to_string());
        let text = match cpu.as_str() {
            "" => "compiler default".to_string(),
            "native" => format!("native ({})", compiler::host_cpu()),
            other => other.to_string(),
        };
        (cpu, text)
    }

    /// The checked cache entry of `src` in `form`, compiled when missing or broken.
    fn obtain(&self, src: &Source, form: &Form) -> Result<(cache::Entry, Build)> {
        let lang = src.checked_lang()?;
        let compiler = Compiler::find(lang, self.compilers.get(&lang).map(|p| p.as_os_str()))?;
        let version = compiler.version(self.cache.memo_dir().as_deref())?;
        let (cpu, target_text) = self.target();
        let flags = compiler.flags(&self.flags, &cpu);
        let unit_text = wrapper::unit(src, form)?;
        let key = {
            let mut h = Sha256::new();
            let mut field = |bytes: &[u8]| {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            };
            field(b"kernelpool-jit key 1");
            field(self.version.as_bytes());
            field(&wrapper::WRAPPER_VERSION.to_le_bytes());
            field(lang.name().as_bytes());
            field(src.unit_extension().as_bytes());
            field(form.key_text().as_bytes());
            field(compiler.key_text().as_bytes());
            field(version.as_bytes());
            field(flags.join("\u{1f}").as_bytes());
            field(target_text.as_bytes());
            field(sys::KERNELS_H.as_bytes());
            field(src.text().as_bytes());
            compiler::hex(&h.finalize())
        };
        let mut build = Build {
            cached: true,
            compile_time: Duration::ZERO,
            total_time: Duration::ZERO,
            library: self.cache.dir().join(&key).join("lib.so"),
            key: key.clone(),
            target_cpu: target_text.clone(),
            rebuilt_because: None,
        };
        // A few rounds: another process may publish, or break, the entry meanwhile.
        for _ in 0..4 {
            match self.cache.lookup(&key) {
                Lookup::Hit(entry) => return Ok((entry, build)),
                Lookup::Corrupt(why) => {
                    self.cache.discard(&key);
                    build.rebuilt_because = Some(why);
                }
                Lookup::Miss => {}
            }
            build.cached = false;
            let dir = self.cache.build_dir()?;
            let t = Instant::now();
            let lib = self.compile(src, form, &compiler, &flags, &unit_text, dir.path())?;
            build.compile_time += t.elapsed();
            let meta = Meta::of_library(
                &lib,
                vec![
                    ("lang".into(), lang.name().into()),
                    ("source".into(), src.name().into()),
                    ("form".into(), form.key_text()),
                    ("compiler".into(), compiler.key_text()),
                    ("flags".into(), flags.join(" ")),
                    ("target".into(), target_text.clone()),
                    ("kernelpool".into(), self.version.clone()),
                ],
            );
            if self.cache.publish(&key, dir, &meta)? {
                return Ok((
                    cache::Entry {
                        lib: build.library.clone(),
                        bytes: lib,
                    },
                    build,
                ));
            }
        }
        Err(JitError::io(
            format!("the cache entry {key} was replaced or broken while it was being published"),
            std::io::Error::other("try again"),
        ))
    }

    /// Run the compiler on `unit_text` in `dir`; the library's bytes.
    fn compile(
        &self,
        src: &Source,
        form: &Form,
        compiler: &Compiler,
        flags: &[String],
        unit_text: &str,
        dir: &std::path::Path,
    ) -> Result<Vec<u8>> {
        let io = |what: &str, e| JitError::io(format!("{what} in {}", dir.display()), e);
        std::fs::write(dir.join("kernels.h"), sys::KERNELS_H)
            .map_err(|e| io("writing kernels.h", e))?;
        let run = |text: &str, name: &str| -> Result<Compiled> {
            let unit = dir.join(format!("{name}.{}", src.unit_extension()));
            let lib = dir.join(format!("{name}.so"));
            std::fs::write(&unit, text).map_err(|e| io("writing the source", e))?;
            let mut cmd = compiler.command();
            cmd.args(flags).arg("-I").arg(dir);
            if let Some(d) = src.dir() {
                match src.lang() {
                    Lang::Fortran => cmd.arg("-I").arg(d),
                    _ => cmd.arg("-iquote").arg(d),
                };
            }
            if src.lang() == Lang::Fortran {
                cmd.arg("-J").arg(dir);
            }
            cmd.arg("-o").arg(&lib).arg(&unit).current_dir(dir);
            if src.lang() == Lang::C {
                // <math.h> functions resolve to libm wherever the library is loaded
                // (g++ and gfortran link theirs already); after the unit, for --as-needed.
                cmd.arg("-lm");
            }
            let out = cmd.output().map_err(|e| JitError::CompilerNotFound {
                lang: src.lang(),
                compiler: compiler.named().to_string(),
                from: String::new(),
                var: compiler::compiler_var(src.lang()),
                package: compiler::default_compiler(src.lang()),
                reason: e.to_string(),
            })?;
            if out.status.success() {
                let bytes = std::fs::read(&lib).map_err(|e| io("reading the library", e))?;
                return Ok(Ok(bytes));
            }
            let mut diag = String::from_utf8_lossy(&out.stderr).into_owned();
            diag.push_str(&String::from_utf8_lossy(&out.stdout));
            Ok(Err((out.status.code(), diag.trim_end().to_string())))
        };
        match run(unit_text, "lib")? {
            Ok(bytes) => {
                // Only what the entry needs stays (Fortran leaves .mod files).
                if let Ok(d) = std::fs::read_dir(dir) {
                    for e in d.flatten() {
                        if e.path().extension().is_some_and(|x| x == "mod") {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
                Ok(bytes)
            }
            Err((status, diagnostics)) => {
                let failed = |status, diagnostics| JitError::CompileFailed {
                    source_name: src.name().to_string(),
                    compiler: compiler.named().to_string(),
                    status,
                    diagnostics,
                };
                let Form::Element { symbol, elem } = form else {
                    return Err(failed(status, diagnostics));
                };
                // Whose fault: compile the source alone. Its own errors are reported as
                // they are; if it compiles, the element function is missing or does not
                // have the signature the wrapper calls.
                let alone = wrapper::unit(src, &Form::Range)?;
                match run(&alone, "alone")? {
                    Err((status, own)) => Err(failed(status, own)),
                    Ok(bytes) => {
                        let exports = elf::exports(&bytes);
                        if defines(&exports, src.lang(), symbol) {
                            Err(JitError::WrongSignature {
                                symbol: symbol.clone(),
                                expected: wrapper::expected_signature(src.lang(), symbol, *elem),
                                source_name: src.name().to_string(),
                                diagnostics,
                            })
                        } else {
                            Err(JitError::MissingSymbol {
                                symbol: symbol.clone(),
                                source_name: src.name().to_string(),
                                exports,
                                hint: String::new(),
                            })
                        }
                    }
                }
            }
        }
    }
}

/// What one compiler run gave: the library's bytes, or (exit status, diagnostics).
type Compiled = std::result::Result<Vec<u8>, (Option<i32>, String)>;

/// Does an object exporting `exports` define the function `symbol` of `lang` (under its
/// own name, C++'s mangled one, Fortran's `name_` or module `__m_MOD_name`)?
fn defines(exports: &[String], lang: Lang, symbol: &str) -> bool {
    let last = symbol.rsplit("::").next().unwrap_or(symbol);
    let lower = symbol.to_ascii_lowercase();
    exports.iter().any(|e| {
        e == symbol
            || match lang {
                Lang::Cpp => e.starts_with("_Z") && e.contains(&format!("{}{last}", last.len())),
                Lang::Fortran => {
                    *e == lower
                        || *e == format!("{lower}_")
                        || e.ends_with(&format!("_MOD_{lower}"))
                }
                _ => false,
            }
    })
}

/// Refuse, before loading, a library that does not export `symbol`, listing what it does.
fn check_exported(src: &Source, symbol: &str, lib: &[u8]) -> Result<()> {
    let exports = elf::exports(lib);
    if exports.iter().any(|e| e == symbol) {
        return Ok(());
    }
    let hint = if defines(&exports, src.lang(), symbol) {
        match src.lang() {
            Lang::Cpp => " as a C name (C++ mangles it: declare it extern \"C\")".to_string(),
            Lang::Fortran => format!(" as a C name (give it bind(C, name=\"{symbol}\"))"),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    Err(JitError::MissingSymbol {
        symbol: symbol.to_string(),
        source_name: src.name().to_string(),
        exports,
        hint,
    })
}
