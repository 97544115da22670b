//! Source code to compile: a file (its language told by its extension, or named) or a
//! string, and the name diagnostics give it.

use crate::error::{JitError, Result};
use kernelpool_kernels::Lang;
use std::path::{Path, PathBuf};

/// The source of a kernel: its text, its language and the name the compiler's
/// diagnostics use for it (the path as given, or `<string>`).
///
/// ```
/// use kernelpool_jit::Source;
/// use kernelpool_kernels::Lang;
///
/// let src = Source::string("long f(long x) { return x * x; }", Lang::C);
/// assert_eq!(src.name(), "<string>");
/// assert_eq!(src.lang(), Lang::C);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    text: String,
    lang: Lang,
    name: String,
    dir: Option<PathBuf>,
    fixed_form: bool,
    upper: bool,
}

impl Source {
    /// Read the file at `path`; its language comes from the extension: `.c` C; `.cpp`,
    /// `.cc`, `.cxx`, `.c++`, `.C` C++; `.f90`, `.f95`, `.f03`, `.f08` free-form
    /// Fortran, `.f`, `.for`, `.ftn` fixed-form Fortran (upper-case Fortran extensions
    /// are preprocessed, as gfortran does). [`Source::with_lang`] names another.
    ///
    /// # Errors
    /// [`JitError::ReadSource`] when the file cannot be read (or is not UTF-8).
    pub fn file(path: impl AsRef<Path>) -> Result<Source> {
        let path = path.as_ref();
        let read_err = |source| JitError::ReadSource {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(read_err)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            read_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text ({e})"),
            ))
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (lang, fixed_form) = lang_of_extension(ext).unwrap_or((Lang::Rust, false));
        let dir = path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()));
        Ok(Source {
            text,
            lang,
            name: path.display().to_string(),
            dir,
            fixed_form,
            upper: ext.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && lang == Lang::Fortran,
        })
    }

    /// Source text in `lang`, named `<string>` in diagnostics (free-form for Fortran).
    pub fn string(text: impl Into<String>, lang: Lang) -> Source {
        Source {
            text: text.into(),
            lang,
            name: "<string>".into(),
            dir: None,
            fixed_form: false,
            upper: false,
        }
    }

    /// The same source in `lang`, whatever its extension says.
    #[must_use]
    pub fn with_lang(mut self, lang: Lang) -> Source {
        if lang != self.lang {
            self.fixed_form = false;
            self.upper = false;
        }
        self.lang = lang;
        self
    }

    /// The same source under another name in diagnostics.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Source {
        self.name = name.into();
        self
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The language ([`Lang::Rust`] when a file's extension named none: compiling it is
    /// then [`JitError::UnknownLanguage`]).
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The name diagnostics give the source.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory of a source file (its `#include "..."` files are found there).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Fixed-form Fortran (`.f`, `.for`, `.ftn`).
    pub fn is_fixed_form(&self) -> bool {
        self.fixed_form
    }

    /// The language, refusing one the JIT does not compile.
    pub(crate) fn checked_lang(&self) -> Result<Lang> {
        match self.lang {
            Lang::C | Lang::Cpp | Lang::Fortran => Ok(self.lang),
            Lang::Rust if self.dir.is_some() => Err(JitError::UnknownLanguage {
                path: PathBuf::from(&self.name),
            }),
            other => Err(JitError::UnsupportedLanguage(other)),
        }
    }

    /// The extension of the file the compiler is given (it decides the language and,
    /// for Fortran, the form and preprocessing).
    pub(crate) fn unit_extension(&self) -> &'static str {
        match (self.lang, self.fixed_form, self.upper) {
            (Lang::C, ..) => "c",
            (Lang::Cpp, ..) => "cpp",
            (_, true, false) => "f",
            (_, true, true) => "F",
            (_, false, true) => "F90",
            _ => "f90",
        }
    }
}

/// (language, fixed-form Fortran) of a file extension.
pub fn lang_of_extension(ext: &str) -> Option<(Lang, bool)> {
    Some(match ext {
        "c" => (Lang::C, false),
        "cpp" | "cc" | "cxx" | "c++" | "C" | "CPP" | "CC" | "CXX" => (Lang::Cpp, false),
        "f90" | "f95" | "f03" | "f08" | "F90" | "F95" | "F03" | "F08" => (Lang::Fortran, false),
        "f" | "for" | "ftn" | "F" | "FOR" | "FTN" => (Lang::Fortran, true),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_name_languages() {
        assert_eq!(lang_of_extension("c"), Some((Lang::C, false)));
        assert_eq!(lang_of_extension("cc"), Some((Lang::Cpp, false)));
        assert_eq!(lang_of_extension("f90"), Some((Lang::Fortran, false)));
        assert_eq!(lang_of_extension("f"), Some((Lang::Fortran, true)));
        assert_eq!(lang_of_extension("rs"), None);
        let s = Source::string("x", Lang::Fortran);
        assert_eq!(s.unit_extension(), "f90");
        assert!(matches!(
            Source::string("x", Lang::Rust).checked_lang(),
            Err(JitError::UnsupportedLanguage(Lang::Rust))
        ));
    }
}
