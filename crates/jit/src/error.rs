//! The error type of the JIT: what went wrong compiling, caching or loading a kernel, with
//! the cause carried (the compiler's diagnostics, the symbols an object exports, the OS
//! error), not flattened into a string.

use kernelpool_kernels::Lang;
use std::path::PathBuf;

/// Everything that can go wrong turning source into a runnable kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JitError {
    /// The file's extension names no language the JIT compiles.
    #[error(
        "{}: cannot tell the language from the extension (C: .c; C++: .cpp .cc .cxx; \
         Fortran: .f90 .f95 .f03 .f08 .f .for); name it (--lang c|cpp|fortran)",
        path.display()
    )]
    UnknownLanguage {
        /// The source file.
        path: PathBuf,
    },
    /// The JIT compiles C, C++ and Fortran only.
    #[error("the JIT compiles C, C++ and Fortran, not {0}")]
    UnsupportedLanguage(Lang),
    /// The source file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadSource {
        /// The source file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The compiler for the language is not installed (or `$CC`/`$CXX`/`$FC` names a
    /// program that does not run).
    #[error(
        "the {lang} compiler `{compiler}`{from} was not found ({reason}); install it \
         (Debian/Ubuntu: `sudo apt-get install {package}`) or name another with {var}"
    )]
    CompilerNotFound {
        /// The language.
        lang: Lang,
        /// The program that was looked for.
        compiler: String,
        /// ` (from $CC)` when an environment variable named it, else empty.
        from: String,
        /// The environment variable that names this language's compiler.
        var: &'static str,
        /// The Debian package that provides the default compiler.
        package: &'static str,
        /// Why it was not found.
        reason: String,
    },
    /// The compiler refused the source: its diagnostics, with `file:line` of the user's
    /// file (`<string>` for a source given as a string).
    #[error("{compiler} failed to compile {source_name}{}:\n{diagnostics}", status_text(*status))]
    CompileFailed {
        /// The source's name in the diagnostics.
        source_name: String,
        /// The compiler that ran.
        compiler: String,
        /// Its exit status (`None`: killed by a signal).
        status: Option<i32>,
        /// What the compiler printed.
        diagnostics: String,
    },
    /// The element function does not have the signature the generated wrapper calls it
    /// with (two arguments, another type, ...): the wrapper, compiled with the source,
    /// failed to compile while the source alone compiles.
    #[error(
        "the element function `{symbol}` in {source_name} is not `{expected}`: the generated \
         wrapper that calls it failed to compile:\n{diagnostics}"
    )]
    WrongSignature {
        /// The element function.
        symbol: String,
        /// The signature the wrapper expects (`int64_t f(int64_t)`).
        expected: String,
        /// The source's name.
        source_name: String,
        /// What the compiler said about the wrapper.
        diagnostics: String,
    },
    /// The compiled object does not export the symbol asked for.
    #[error(
        "`{symbol}` is not defined in {source_name}{hint}; the object exports: {}",
        if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
    )]
    MissingSymbol {
        /// The symbol asked for.
        symbol: String,
        /// The source's name.
        source_name: String,
        /// The functions and data the compiled object exports.
        exports: Vec<String>,
        /// A hint (C++ names need `extern "C"`, ...), or empty.
        hint: String,
    },
    /// A symbol that cannot name an element function (the wrapper is generated code).
    #[error("`{symbol}` cannot name an element function: {reason}")]
    InvalidSymbol {
        /// The symbol.
        symbol: String,
        /// Why.
        reason: String,
    },
    /// No cache directory can be found: none of `KERNELPOOL_CACHE_DIR`, `XDG_CACHE_HOME`
    /// and `HOME` is set.
    #[error("no cache directory: set KERNELPOOL_CACHE_DIR (or XDG_CACHE_HOME or HOME)")]
    NoCacheDir,
    /// The cache directory is not safe to load code from: owned by another user, or
    /// writable by group or others (anyone who can write there can run code as you).
    #[error("refusing the cache directory {}: {reason}", dir.display())]
    UnsafeCacheDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An I/O error in the cache or the build directory.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The compiled library cannot be loaded.
    #[error("{0}")]
    Load(#[source] kernelpool_kernels::Error),
    /// Running the kernel failed (the kernels layer's error: bad buffers, a kernel
    /// status, an executor's fault).
    #[error("{0}")]
    Kernel(#[from] kernelpool_kernels::Error),
}

fn status_text(status: Option<i32>) -> String {
    match status {
        Some(code) => format!(" (exit status {code})"),
        None => " (killed by a signal)".to_string(),
    }
}

impl JitError {
    /// True when the source did not compile (its own errors, or a wrong element
    /// signature).
    pub fn is_compile_error(&self) -> bool {
        matches!(
            self,
            JitError::CompileFailed { .. } | JitError::WrongSignature { .. }
        )
    }

    /// The compiler's diagnostics, for compile errors.
    pub fn diagnostics(&self) -> Option<&str> {
        match self {
            JitError::CompileFailed { diagnostics, .. }
            | JitError::WrongSignature { diagnostics, .. } => Some(diagnostics),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> JitError {
        JitError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = JitError> = std::result::Result<T, E>;
