//! The translation unit the compiler is given: the user's source under a line marker that
//! keeps its own name and line numbers, and, for an element function, the generated range
//! kernel that calls it (`out[i] = f(in[i])`).
//!
//! The wrapper is generated in the source's own language and compiled in the same
//! translation unit, not in C and linked: the compiler then checks the element function
//! against the call (C: a conflicting redeclaration and a type assertion; C++: a
//! `static_cast` to the exact function pointer type; Fortran: a call through the module's
//! explicit interface whose result goes to a function of the element type), where a wrapper linked from another object would call a wrong
//! signature without a word. The call is also inlined into the loop, so the generated
//! kernel is as fast as one written by hand, and one compiler run builds everything.

use crate::error::{JitError, Result};
use crate::source::Source;
use kernelpool_kernels::{Elem, Lang};

/// Bumped whenever the generated code changes: it is part of every cache key.
pub(crate) const WRAPPER_VERSION: u32 = 1;

/// What the unit is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// A range kernel: the source as it is.
    Range,
    /// An element function `T f(T)` of element type `elem`, wrapped.
    Element { symbol: String, elem: Elem },
}

impl Form {
    /// The words of the key for this form.
    pub(crate) fn key_text(&self) -> String {
        match self {
            Form::Range => "range".into(),
            Form::Element { symbol, elem } => format!("element {symbol} {elem:?}"),
        }
    }
}

/// The name of the generated range kernel of element function `symbol`.
pub(crate) fn wrapper_symbol(symbol: &str) -> String {
    format!("kp_jit_map_{}", symbol.replace("::", "__"))
}

/// The name the diagnostics give the generated code.
pub(crate) fn wrapper_file(symbol: &str) -> String {
    format!("<kernelpool wrapper of {symbol}>")
}

/// The C (or C++) type of an element.
fn c_type(elem: Elem) -> &'static str {
    match elem {
        Elem::F64 => "double",
        _ => "int64_t",
    }
}

/// The signature the wrapper calls an element function with, as the user would write it.
pub(crate) fn expected_signature(lang: Lang, symbol: &str, elem: Elem) -> String {
    match lang {
        Lang::Fortran => {
            let t = fortran_type(elem);
            format!("{t} function {symbol}(x) with {t} :: x (value, bind(C) optional)")
        }
        _ => {
            let t = c_type(elem);
            format!("{t} {symbol}({t})")
        }
    }
}

fn fortran_type(elem: Elem) -> &'static str {
    match elem {
        Elem::F64 => "real(c_double)",
        _ => "integer(c_int64_t)",
    }
}

/// Refuse a symbol that the generated code cannot name.
///
/// # Errors
/// [`JitError::InvalidSymbol`].
pub(crate) fn check_element_symbol(lang: Lang, symbol: &str) -> Result<()> {
    let ident = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let ok = match lang {
        Lang::Cpp => {
            let s = symbol.strip_prefix("::").unwrap_or(symbol);
            s.split("::").all(ident)
        }
        Lang::Fortran => ident(symbol) && !symbol.starts_with('_') && symbol.len() <= 63,
        _ => ident(symbol),
    };
    if !ok {
        return Err(JitError::InvalidSymbol {
            symbol: symbol.to_string(),
            reason: match lang {
                Lang::Cpp => "it must be a C++ name (letters, digits, _ and ::)".into(),
                Lang::Fortran => {
                    "it must be a Fortran name (a letter, then up to 62 letters, digits and _)"
                        .into()
                }
                _ => "it must be a C identifier (letters, digits and _, not first a digit)".into(),
            },
        });
    }
    if symbol.to_ascii_lowercase().starts_with("kp_jit_") {
        return Err(JitError::InvalidSymbol {
            symbol: symbol.to_string(),
            reason: "names starting kp_jit_ are the generated code's".into(),
        });
    }
    Ok(())
}

/// `"name"` with `\` and `"` escaped, for a line marker.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A line marker: the following lines are line 1, 2, ... of `name`.
fn line_marker(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Fortran => format!("# 1 {}\n", quoted(name)),
        _ => format!("#line 1 {}\n", quoted(name)),
    }
}

/// The text of the unit the compiler is given for `src` in `form`.
///
/// # Errors
/// [`JitError::InvalidSymbol`] for an element function the wrapper cannot name; an
/// element function in fixed-form Fortran (the wrapper is free-form).
pub(crate) fn unit(src: &Source, form: &Form) -> Result<String> {
    let lang = src.checked_lang()?;
    let mut text = String::with_capacity(src.text().len() + 2048);
    let body = |text: &mut String| {
        text.push_str(&line_marker(lang, src.name()));
        text.push_str(src.text());
        if !src.text().ends_with('\n') {
            text.push('\n');
        }
    };
    let (symbol, elem) = match form {
        Form::Range => {
            body(&mut text);
            return Ok(text);
        }
        Form::Element { symbol, elem } => (symbol.as_str(), *elem),
    };
    check_element_symbol(lang, symbol)?;
    let wrapper = wrapper_symbol(symbol);
    let marker = line_marker(lang, &wrapper_file(symbol));
    match lang {
        Lang::C => {
            body(&mut text);
            let t = c_type(elem);
            text.push_str(&marker);
            text.push_str(&format!(
                r#"#include <stdint.h>
#include "kernels.h"
{t} {symbol}({t});
_Static_assert(__builtin_types_compatible_p(__typeof__({symbol}), {t}({t})),
               "kernelpool: the element function {symbol} must be {t} {symbol}({t})");
int32_t {wrapper}(const kp_kargs *a, uint64_t begin, uint64_t end) {{
    if (a == 0 || begin > end || end > a->items || a->len[0] < a->items ||
        a->len[1] < a->items)
        return KP_KERNEL_BAD_ARGS;
    const {t} *restrict in = (const {t} *)a->buf[0];
    {t} *restrict out = ({t} *)a->buf[1];
    for (uint64_t i = begin; i < end; i++) out[i] = {symbol}(in[i]);
    return KP_KERNEL_OK;
}}
"#
            ));
        }
        Lang::Cpp => {
            body(&mut text);
            let t = c_type(elem);
            text.push_str(&marker);
            text.push_str(&format!(
                r#"#include <cstdint>
#include "kernels.h"
extern "C" int32_t {wrapper}(const kp_kargs *a, uint64_t begin, uint64_t end) noexcept {{
    using kp_jit_elem_fn = {t} (*)({t});
    if (a == nullptr || begin > end || end > a->items || a->len[0] < a->items ||
        a->len[1] < a->items)
        return KP_KERNEL_BAD_ARGS;
    const {t} *__restrict in = static_cast<const {t} *>(a->buf[0]);
    {t} *__restrict out = static_cast<{t} *>(a->buf[1]);
    try {{
        for (uint64_t i = begin; i < end; i++)
            out[i] = static_cast<kp_jit_elem_fn>(&{symbol})(in[i]);
    }} catch (...) {{
        return KP_KERNEL_EXCEPTION;
    }}
    return KP_KERNEL_OK;
}}
"#
            ));
        }
        _ => {
            if src.is_fixed_form() {
                return Err(JitError::InvalidSymbol {
                    symbol: symbol.to_string(),
                    reason: "element functions need free-form Fortran (.f90): the generated \
                             wrapper is free-form"
                        .into(),
                });
            }
            let modules = fortran_modules(src.text());
            let uses = if modules.is_empty() {
                // A file of procedures: made a module, so that the wrapper sees the
                // function's interface and the compiler checks the call.
                text.push_str("module kp_jit_user\ncontains\n");
                body(&mut text);
                text.push_str(&marker);
                text.push_str("end module kp_jit_user\n");
                "  use kp_jit_user\n".to_string()
            } else {
                body(&mut text);
                text.push_str(&marker);
                modules.iter().map(|m| format!("  use {m}\n")).collect()
            };
            let t = fortran_type(elem);
            text.push_str(&format!(
                r#"function kp_jit_wrapper(args, b, e) bind(C, name="{wrapper}") result(rc)
  use, intrinsic :: iso_c_binding
{uses}  implicit none
  type, bind(C) :: kp_jit_kargs
    integer(c_int64_t) :: n, items, iparam(4)
    real(c_double) :: fparam(4)
    type(c_ptr) :: buf(4)
    integer(c_int64_t) :: len(4)
    type(c_ptr) :: partial
  end type kp_jit_kargs
  type(kp_jit_kargs), intent(in) :: args
  integer(c_int64_t), value, intent(in) :: b, e
  integer(c_int32_t) :: rc
  {t}, pointer :: xin(:), xout(:)
  integer(c_int64_t) :: i
  rc = -1
  if (b < 0 .or. e < b .or. e > args%items) return
  if (args%len(1) < args%items .or. args%len(2) < args%items) return
  call c_f_pointer(args%buf(1), xin, [args%items])
  call c_f_pointer(args%buf(2), xout, [args%items])
  do i = b + 1, e
    xout(i) = kp_jit_same({symbol}(xin(i)))
  end do
  rc = 0
contains
  ! The call above passes an argument of the element type, and this takes a result of
  ! it: neither converts, so another signature does not compile.
  pure function kp_jit_same(y) result(z)
    {t}, intent(in) :: y
    {t} :: z
    z = y
  end function kp_jit_same
end function kp_jit_wrapper
"#
            ));
        }
    }
    Ok(text)
}

/// The modules a free-form Fortran source defines (`module NAME` lines, not `module
/// procedure` and the like), in order.
fn fortran_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('!').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(first), Some(name), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if first.eq_ignore_ascii_case("module")
            && !matches!(
                name.as_str(),
                "procedure" | "function" | "subroutine" | "pure" | "elemental" | "recursive"
            )
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_the_wrapper_cannot_name_are_refused() {
        assert!(check_element_symbol(Lang::C, "f").is_ok());
        assert!(check_element_symbol(Lang::C, "f2_x").is_ok());
        assert!(check_element_symbol(Lang::C, "2f").is_err());
        assert!(check_element_symbol(Lang::C, "f;system").is_err());
        assert!(check_element_symbol(Lang::C, "").is_err());
        assert!(check_element_symbol(Lang::C, "kp_jit_map_f").is_err());
        assert!(check_element_symbol(Lang::Cpp, "ns::f").is_ok());
        assert!(check_element_symbol(Lang::Cpp, "ns::").is_err());
        assert!(check_element_symbol(Lang::Fortran, "_f").is_err());
        assert_eq!(wrapper_symbol("ns::f"), "kp_jit_map_ns__f");
    }

    #[test]
    fn line_markers_escape_the_name() {
        assert_eq!(
            line_marker(Lang::C, r#"a"b\c"#),
            "#line 1 \"a\\\"b\\\\c\"\n"
        );
        assert_eq!(line_marker(Lang::Fortran, "x.f90"), "# 1 \"x.f90\"\n");
    }

    #[test]
    fn fortran_modules_are_found() {
        let src = "module m1\ncontains\nend module m1\nMODULE M2 ! two\nmodule procedure p\n";
        assert_eq!(fortran_modules(src), vec!["m1", "m2"]);
    }
}
