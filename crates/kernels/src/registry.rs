//! The kernel registry: every built-in kernel in every language, named by
//! (kernel, language), behind the one C-compatible range signature.

use crate::error::{Error, Result};
use crate::rust::raw;
use crate::signature::{Signature, SignatureRef};
use kernelpool_kernels_sys as sys;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// The C-compatible signature every kernel has (see `native/include/kernels.h`).
pub type RawKernelFn = unsafe extern "C" fn(*const sys::kp_kargs, u64, u64) -> i32;

/// Implementation language of a kernel. More may come (JIT languages): matches outside
/// this crate need a wildcard arm.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Lang;
/// fn suffix(l: Lang) -> &'static str {
///     match l { Lang::C => "c", Lang::Cpp => "cpp", Lang::Fortran => "f90", Lang::Rust => "rs" }
/// }
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Lang {
    /// C, compiled by gcc.
    C,
    /// C++, compiled by g++.
    Cpp,
    /// Fortran, compiled by gfortran (`bind(C)`).
    Fortran,
    /// Rust, compiled by rustc.
    Rust,
}

impl Lang {
    /// All languages, in display order.
    pub const ALL: [Lang; 4] = [Lang::C, Lang::Cpp, Lang::Fortran, Lang::Rust];

    /// Short name used on the command line (`c`, `cpp`, `fortran`, `rust`).
    pub fn name(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Fortran => "fortran",
            Lang::Rust => "rust",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Lang {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "c" => Ok(Lang::C),
            "cpp" | "c++" | "cxx" => Ok(Lang::Cpp),
            "fortran" | "f" | "f90" => Ok(Lang::Fortran),
            "rust" | "rs" => Ok(Lang::Rust),
            _ => Err(Error::UnknownLang(s.to_string())),
        }
    }
}

pub use crate::signature::Reduce;

/// Which implementation of a kernel: the plain reference algorithm (what a scientist
/// writes first; the default everywhere), or the tuned one (SIMD, several rows or pixels
/// per iteration, tables), which follows the same contract and [`Signature`] and prints
/// the same answers. Not every kernel has every variant in every language:
/// [`Kernel::variants`] says which exist. More variants may come: matches outside this
/// crate need a wildcard arm. The discriminants are explicit and never reused, so the
/// enum can cross a C ABI as an integer.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Variant;
/// fn tag(v: Variant) -> u8 { match v { Variant::Plain => 0, Variant::Tuned => 1 } }
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
#[repr(u32)]
pub enum Variant {
    /// The reference algorithm, written plainly; every built-in kernel has it in every
    /// language.
    #[default]
    Plain = 0,
    /// Written for speed, with the same answers as [`Variant::Plain`] (bit for bit: each
    /// kernel's documentation says how).
    Tuned = 1,
}

impl Variant {
    /// All variants, in display order.
    pub const ALL: [Variant; 2] = [Variant::Plain, Variant::Tuned];

    /// Short name used on the command line (`plain`, `tuned`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Tuned => "tuned",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownVariant(s.to_string()))
    }
}

/// The contract a kernel follows: one of the built-in kernels, or a signature of its own
/// ([`KernelName::Custom`]). More built-in kernels will come: matches outside this crate
/// need a wildcard arm.
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::KernelName as K;
/// fn size(k: K) -> u64 {
///     match k {
///         K::Seed | K::Nbody | K::Spectralnorm | K::Mandelbrot => 1,
///         K::Fannkuch | K::Triad | K::Pi | K::Laplace => 2,
///     }
/// }
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KernelName {
    /// The course example: a 10,000,000-trip loop `j += x*x` per argument.
    Seed,
    /// Benchmarks Game n-body (and its ensemble form).
    Nbody,
    /// Benchmarks Game spectral-norm.
    Spectralnorm,
    /// Benchmarks Game mandelbrot (PBM P4).
    Mandelbrot,
    /// Benchmarks Game fannkuch-redux.
    Fannkuch,
    /// STREAM copy/scale/add/triad.
    Triad,
    /// Monte Carlo pi over counter-based splitmix64.
    Pi,
    /// 2D Jacobi solve of Laplace's equation on an N x N grid (one step per sweep).
    Laplace,
    /// A kernel with a signature of its own (a JIT-compiled kernel, a user's shared
    /// object): [`KernelName::custom`] makes one. It is not a built-in: it has no
    /// program, and [`Kernel::get`] refuses it. It displays as the signature's name, and
    /// serializes as the whole signature (so it crosses to worker processes by value).
    Custom(SignatureRef),
}

impl KernelName {
    /// All kernels, in display order.
    pub const ALL: [KernelName; 8] = [
        KernelName::Seed,
        KernelName::Nbody,
        KernelName::Spectralnorm,
        KernelName::Mandelbrot,
        KernelName::Fannkuch,
        KernelName::Triad,
        KernelName::Pi,
        KernelName::Laplace,
    ];

    /// The contract of a kernel with its own signature (validated, then interned for the
    /// life of the process).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when the contract cannot carry it
    /// ([`Signature::validate`]).
    pub fn custom(sig: Signature) -> Result<KernelName> {
        Ok(KernelName::Custom(SignatureRef::new(sig)?))
    }

    /// True for the built-in kernels (not [`KernelName::Custom`]).
    pub fn is_builtin(self) -> bool {
        !matches!(self, KernelName::Custom(_))
    }

    /// What the kernel reads and writes: the one [`Signature`] every front end uses.
    pub fn signature(self) -> &'static Signature {
        crate::signature::builtin(self)
    }

    /// The kernel's name (a custom kernel's: its signature's).
    pub fn name(self) -> &'static str {
        match self {
            KernelName::Seed => "seed",
            KernelName::Nbody => "nbody",
            KernelName::Spectralnorm => "spectralnorm",
            KernelName::Mandelbrot => "mandelbrot",
            KernelName::Fannkuch => "fannkuch",
            KernelName::Triad => "triad",
            KernelName::Pi => "pi",
            KernelName::Laplace => "laplace",
            KernelName::Custom(sig) => sig.get().name(),
        }
    }

    /// How the slots of the kernel's partial combine (empty: not a reduction): its
    /// signature's partials.
    pub fn reduction(self) -> &'static [Reduce] {
        self.signature().partials()
    }
}

impl fmt::Display for KernelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KernelName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KernelName::ALL
            .into_iter()
            .find(|k| {
                k.name().eq_ignore_ascii_case(s)
                    || (s.eq_ignore_ascii_case("fannkuchredux") && *k == KernelName::Fannkuch)
            })
            .ok_or_else(|| Error::UnknownKernel(s.to_string()))
    }
}

/// Where a kernel's code comes from, in a form that survives process boundaries and ASLR.
/// More may come (JIT-compiled sources, kernels registered through the C ABI).
///
/// ```compile_fail,E0004
/// # use kernelpool_kernels::Origin;
/// fn builtin(o: &Origin) -> bool { match o { Origin::Builtin => true, Origin::Library { .. } => false } }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Origin {
    /// Built into kernelpool: named by (kernel, language).
    Builtin,
    /// A function in a shared object, loaded by explicit path.
    Library {
        /// Path of the shared object.
        path: PathBuf,
        /// Symbol of the range kernel in it.
        symbol: String,
    },
    /// A function pointer handed over in this process (the C ABI's
    /// `kp_kernel_from_fn`): it cannot be named in another process, so only executors
    /// that run in this process (serial, threads) run it.
    Function,
}

/// A kernel ready to be called: which contract it follows, its language, its function, and
/// where it came from. Kernels loaded from a shared object keep the library loaded for as
/// long as any clone of the `Kernel` lives.
#[derive(Clone)]
pub struct Kernel {
    name: KernelName,
    lang: Lang,
    variant: Variant,
    f: RawKernelFn,
    origin: Origin,
    lib: Option<Arc<LoadedLibrary>>,
}

/// A shared object a kernel was loaded from, and which file it is.
struct LoadedLibrary {
    _lib: libloading::Library,
    /// Read from `/proc/self/maps` once, at load (it cannot change while loaded).
    file: Option<crate::mapped_file::FileId>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Builtin if self.variant == Variant::Plain => {
                write!(f, "Kernel({}/{})", self.name, self.lang)
            }
            Origin::Builtin => write!(f, "Kernel({}/{}/{})", self.name, self.lang, self.variant),
            Origin::Function => write!(
                f,
                "Kernel({}/{} at {:#x}, a function pointer)",
                self.name, self.lang, self.f as usize
            ),
            Origin::Library { path, symbol } => {
                write!(
                    f,
                    "Kernel({}/{} from {}:{symbol})",
                    self.name,
                    self.lang,
                    path.display()
                )
            }
        }
    }
}

impl Kernel {
    /// Look up a built-in kernel in its [`Variant::Plain`] variant (which every built-in
    /// kernel has in every language; [`Kernel::get_variant`] chooses another). A
    /// [`KernelName::Custom`] has no built-in code: what comes back refuses every call with
    /// `KP_KERNEL_BAD_ARGS` (a step of it fails with [`Error::KernelFailed`]); load such a
    /// kernel with [`Kernel::load_with_signature`].
    pub fn get(name: KernelName, lang: Lang) -> Kernel {
        use KernelName::*;
        let f: RawKernelFn = match (lang, name) {
            (Lang::C, Seed) => sys::kp_c_seed,
            (Lang::C, Nbody) => sys::kp_c_nbody,
            (Lang::C, Spectralnorm) => sys::kp_c_spectralnorm,
            (Lang::C, Mandelbrot) => sys::kp_c_mandelbrot,
            (Lang::C, Fannkuch) => sys::kp_c_fannkuch,
            (Lang::C, Triad) => sys::kp_c_triad,
            (Lang::C, Pi) => sys::kp_c_pi,
            (Lang::C, Laplace) => sys::kp_c_laplace,
            (Lang::Cpp, Seed) => sys::kp_cpp_seed,
            (Lang::Cpp, Nbody) => sys::kp_cpp_nbody,
            (Lang::Cpp, Spectralnorm) => sys::kp_cpp_spectralnorm,
            (Lang::Cpp, Mandelbrot) => sys::kp_cpp_mandelbrot,
            (Lang::Cpp, Fannkuch) => sys::kp_cpp_fannkuch,
            (Lang::Cpp, Triad) => sys::kp_cpp_triad,
            (Lang::Cpp, Pi) => sys::kp_cpp_pi,
            (Lang::Cpp, Laplace) => sys::kp_cpp_laplace,
            (Lang::Fortran, Seed) => sys::kp_f_seed,
            (Lang::Fortran, Nbody) => sys::kp_f_nbody,
            (Lang::Fortran, Spectralnorm) => sys::kp_f_spectralnorm,
            (Lang::Fortran, Mandelbrot) => sys::kp_f_mandelbrot,
            (Lang::Fortran, Fannkuch) => sys::kp_f_fannkuch,
            (Lang::Fortran, Triad) => sys::kp_f_triad,
            (Lang::Fortran, Pi) => sys::kp_f_pi,
            (Lang::Fortran, Laplace) => sys::kp_f_laplace,
            (Lang::Rust, Seed) => raw::seed,
            (Lang::Rust, Nbody) => raw::nbody,
            (Lang::Rust, Spectralnorm) => raw::spectralnorm,
            (Lang::Rust, Mandelbrot) => raw::mandelbrot,
            (Lang::Rust, Fannkuch) => raw::fannkuch,
            (Lang::Rust, Triad) => raw::triad,
            (Lang::Rust, Pi) => raw::pi,
            (Lang::Rust, Laplace) => raw::laplace,
            (_, Custom(_)) => refuse_every_call,
        };
        Kernel {
            name,
            lang,
            variant: Variant::Plain,
            f,
            origin: Origin::Builtin,
            lib: None,
        }
    }

    /// Look up a built-in kernel in a given variant. Same contract, same [`Signature`] and
    /// same answers as the plain kernel, so every program and executor runs it unchanged.
    ///
    /// ```
    /// use kernelpool_kernels::{Kernel, KernelName, Lang, Options, Serial, Variant, programs};
    ///
    /// let k = Kernel::get_variant(KernelName::Mandelbrot, Lang::C, Variant::Tuned)?;
    /// let plain = Kernel::get(KernelName::Mandelbrot, Lang::C);
    /// let opts = Options::new().n(64);
    /// assert_eq!(programs::run(k, &opts, &Serial)?.stdout, programs::run(plain, &opts, &Serial)?.stdout);
    /// assert!(Kernel::get_variant(KernelName::Seed, Lang::C, Variant::Tuned).is_err());
    /// # Ok::<(), kernelpool_kernels::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NoVariant`] when the kernel has no such variant in `lang` (see
    /// [`Kernel::variants`]); a [`KernelName::Custom`] has only its refusing plain one.
    pub fn get_variant(name: KernelName, lang: Lang, variant: Variant) -> Result<Kernel> {
        let f = match variant {
            Variant::Plain => return Ok(Kernel::get(name, lang)),
            Variant::Tuned => tuned_fn(name, lang),
        };
        match f {
            Some(f) => Ok(Kernel {
                name,
                lang,
                variant,
                f,
                origin: Origin::Builtin,
                lib: None,
            }),
            None => Err(Error::NoVariant {
                kernel: name.name(),
                lang: lang.name(),
                variant: variant.name(),
                available: Kernel::variants(name, lang)
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The variants a built-in kernel has in `lang`, in [`Variant::ALL`] order: always
    /// [`Variant::Plain`], and [`Variant::Tuned`] where one is written.
    pub fn variants(name: KernelName, lang: Lang) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| match v {
                Variant::Plain => true,
                Variant::Tuned => tuned_fn(name, lang).is_some(),
            })
            .collect()
    }

    /// Load a range kernel from the shared object at `path` under `symbol`. It follows the
    /// contract `contract`: a built-in kernel's (same buffers, same reduction), so every
    /// program and executor can run it, or a signature of its own
    /// ([`KernelName::Custom`], as [`Kernel::load_with_signature`] makes), which every
    /// executor can run as a [`Step`](crate::Step).
    ///
    /// `path` is a path, never a name to search for: a path without `/` (`libk.so`) means
    /// the file in the current directory (`./libk.so`), not a library found through
    /// `LD_LIBRARY_PATH` or the system's library directories. [`Kernel::origin`] gives
    /// the path that was loaded.
    ///
    /// # Safety
    /// Loading runs the library's initialisers, and `symbol` must be a function with the
    /// signature [`RawKernelFn`] that obeys the contract of `native/include/kernels.h` for
    /// `contract`: it reads and writes only the items of its range, within the checked
    /// buffers. Nothing can verify that from here.
    ///
    /// # Errors
    /// [`Error::Io`] when the library cannot be loaded (no such file, not a shared object
    /// for this machine) or has no `symbol`, with the loader's message.
    pub unsafe fn load(
        path: &Path,
        symbol: &str,
        contract: KernelName,
        lang: Lang,
    ) -> Result<Kernel> {
        let path = explicit_path(path);
        let io = |e: libloading::Error| Error::Io {
            context: format!("loading `{symbol}` from {}", path.display()),
            source: std::io::Error::other(e),
        };
        // SAFETY: the caller vouches for the library's initialisers (see # Safety); the
        // path holds a `/`, so the loader opens that file and searches nothing.
        let lib = unsafe { libloading::Library::new(&path) }.map_err(io)?;
        // SAFETY: the caller vouches that the symbol has the RawKernelFn signature; the
        // pointer is kept next to an Arc of its library, so it never outlives it.
        let f: RawKernelFn = unsafe { *lib.get::<RawKernelFn>(symbol.as_bytes()).map_err(io)? };
        Ok(Kernel {
            name: contract,
            lang,
            variant: Variant::Plain,
            f,
            origin: Origin::Library {
                path,
                symbol: symbol.to_string(),
            },
            lib: Some(Arc::new(LoadedLibrary {
                _lib: lib,
                file: crate::mapped_file::mapped_file(f as usize),
            })),
        })
    }

    /// Load a range kernel with a signature of its own from the shared object at `path`
    /// under `symbol`: [`Kernel::load`] with the contract [`KernelName::custom`]`(sig)`.
    /// Its buffers, partials and argument checks are `sig`'s; the process pool sends the
    /// signature to its workers with the path, the symbol and the file's identity.
    ///
    /// # Safety
    /// As [`Kernel::load`], for the contract `sig` describes: the kernel reads and writes
    /// only the items of its range within the buffers `sig` lists (at least their
    /// declared lengths, `args->len[i]` for [`Len::Any`](crate::signature::Len::Any)),
    /// and writes only the partial slots `sig` declares (float slots as `double` bits).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when the contract cannot carry `sig`, and those of
    /// [`Kernel::load`].
    pub unsafe fn load_with_signature(
        path: &Path,
        symbol: &str,
        sig: Signature,
        lang: Lang,
    ) -> Result<Kernel> {
        let contract = KernelName::custom(sig)?;
        // SAFETY: the caller vouches for the library and the symbol under `sig`, which is
        // the contract `contract` names (see # Safety).
        unsafe { Kernel::load(path, symbol, contract, lang) }
    }

    /// A kernel given as a function of this process (a pointer from C, a Rust
    /// `extern "C" fn`) following the contract `contract` (a built-in kernel's, or
    /// [`KernelName::custom`]). Its [`Origin`] is [`Origin::Function`]: serial and
    /// threaded executors run it; a process pool refuses it (it cannot be named in a
    /// worker), so load such a kernel from a shared object for that.
    ///
    /// # Safety
    /// `f` must obey the contract of `native/include/kernels.h` for `contract`, as
    /// [`Kernel::load`] says, must not unwind, and must stay callable for as long as
    /// any clone of the returned `Kernel` lives.
    pub unsafe fn from_fn(f: RawKernelFn, contract: KernelName, lang: Lang) -> Kernel {
        Kernel {
            name: contract,
            lang,
            variant: Variant::Plain,
            f,
            origin: Origin::Function,
            lib: None,
        }
    }

    /// For a kernel loaded from a shared object ([`Origin::Library`]): which file that is
    /// (device major, minor, inode, as `/proc/self/maps` shows them), read once when it
    /// was loaded. The process pool sends it to workers, which check that they load the
    /// same file. `None` for other origins, or when /proc could not tell.
    pub fn library_file(&self) -> Option<crate::mapped_file::FileId> {
        self.lib.as_ref().and_then(|l| l.file)
    }

    /// What the kernel reads and writes.
    pub fn signature(&self) -> &'static Signature {
        self.name.signature()
    }

    /// Where the kernel comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Look up a kernel by its command-line names (`"nbody"`, `"fortran"`).
    ///
    /// # Errors
    /// [`Error::UnknownKernel`] or [`Error::UnknownLang`].
    pub fn by_names(name: &str, lang: &str) -> Result<Kernel> {
        Ok(Kernel::get(name.parse()?, lang.parse()?))
    }

    /// Look up a kernel by its command-line names, variant included (`"mandelbrot"`,
    /// `"rust"`, `"tuned"`).
    ///
    /// # Errors
    /// [`Error::UnknownKernel`], [`Error::UnknownLang`], [`Error::UnknownVariant`], or
    /// [`Error::NoVariant`] when the kernel has no such variant in that language.
    pub fn by_names_variant(name: &str, lang: &str, variant: &str) -> Result<Kernel> {
        Kernel::get_variant(name.parse()?, lang.parse()?, variant.parse()?)
    }

    /// Which kernel.
    pub fn name(&self) -> KernelName {
        self.name
    }

    /// Which language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Which variant ([`Variant::Plain`] for kernels loaded from a shared object).
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The address of the kernel's function: a number that identifies the code (to find
    /// the object it lives in, or to compare two kernels), never something to call.
    pub fn address(&self) -> usize {
        self.f as usize
    }

    /// The raw function (escape hatch: calling it is unchecked).
    ///
    /// # Safety
    /// The pointer is valid only while this `Kernel` (or a clone of it) lives: a kernel
    /// loaded from a shared object unloads the library when its last clone is dropped.
    /// Calling it also needs the arguments that [`Step`](crate::Step) would check.
    pub unsafe fn raw(&self) -> RawKernelFn {
        self.f
    }
}

/// The tuned variant of a built-in kernel in `lang`, where one is written: the one list
/// of which exist (`Kernel::variants` and `kpool info` read it).
fn tuned_fn(name: KernelName, lang: Lang) -> Option<RawKernelFn> {
    use KernelName::*;
    let f: RawKernelFn = match (lang, name) {
        (Lang::C, Nbody) => sys::kp_c_nbody_tuned,
        (Lang::C, Spectralnorm) => sys::kp_c_spectralnorm_tuned,
        (Lang::C, Mandelbrot) => sys::kp_c_mandelbrot_tuned,
        (Lang::C, Fannkuch) => sys::kp_c_fannkuch_tuned,
        (Lang::C, Triad) => sys::kp_c_triad_tuned,
        (Lang::C, Pi) => sys::kp_c_pi_tuned,
        (Lang::Cpp, Nbody) => sys::kp_cpp_nbody_tuned,
        (Lang::Cpp, Spectralnorm) => sys::kp_cpp_spectralnorm_tuned,
        (Lang::Cpp, Mandelbrot) => sys::kp_cpp_mandelbrot_tuned,
        (Lang::Cpp, Fannkuch) => sys::kp_cpp_fannkuch_tuned,
        (Lang::Cpp, Triad) => sys::kp_cpp_triad_tuned,
        (Lang::Cpp, Pi) => sys::kp_cpp_pi_tuned,
        (Lang::Fortran, Nbody) => sys::kp_f_nbody_tuned,
        (Lang::Fortran, Spectralnorm) => sys::kp_f_spectralnorm_tuned,
        (Lang::Fortran, Mandelbrot) => sys::kp_f_mandelbrot_tuned,
        (Lang::Fortran, Fannkuch) => sys::kp_f_fannkuch_tuned,
        // No Fortran triad: its C, C++ and Rust gain is non-temporal stores, which no
        // Fortran construct gets from gfortran (native/fortran/tuned.f90 says what was tried).
        (Lang::Fortran, Pi) => sys::kp_f_pi_tuned,
        (Lang::Rust, Nbody) => raw::nbody_tuned,
        (Lang::Rust, Spectralnorm) => raw::spectralnorm_tuned,
        (Lang::Rust, Mandelbrot) => raw::mandelbrot_tuned,
        (Lang::Rust, Fannkuch) => raw::fannkuch_tuned,
        (Lang::Rust, Triad) => raw::triad_tuned,
        (Lang::Rust, Pi) => raw::pi_tuned,
        _ => return None,
    };
    Some(f)
}

/// What [`Kernel::get`] gives for a [`KernelName::Custom`]: a kernel that refuses every
/// call.
unsafe extern "C" fn refuse_every_call(_: *const sys::kp_kargs, _: u64, _: u64) -> i32 {
    sys::KP_KERNEL_BAD_ARGS
}

/// `path` with `./` in front when it has no `/`: the dynamic loader searches its library
/// path for a bare file name, and opens a path with a `/` as it is.
fn explicit_path(path: &Path) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
}

/// splitmix64 output `k` of the stream seeded with `seed`, computed in `lang`.
pub fn splitmix64_at(lang: Lang, seed: u64, k: u64) -> u64 {
    match lang {
        // SAFETY: the native splitmix64 functions are pure and take no pointers.
        Lang::C => unsafe { sys::kp_c_splitmix64_at(seed, k) },
        // SAFETY: as above.
        Lang::Cpp => unsafe { sys::kp_cpp_splitmix64_at(seed, k) },
        // SAFETY: as above.
        Lang::Fortran => unsafe { sys::kp_f_splitmix64_at(seed, k) },
        Lang::Rust => crate::rust::splitmix64_at(seed, k),
    }
}
