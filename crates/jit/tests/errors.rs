//! What goes wrong is named: compile errors carry the compiler's diagnostics at the user's
//! file and line (never the build directory's copy), a missing compiler names its Debian
//! package, a missing symbol lists what the object exports, and an element function of
//! another signature is caught by the generated wrapper failing to compile.

mod common;

use common::{TempDir, course_f, jit};
use kernelpool_jit::{JitError, Source};
use kernelpool_kernels::{KernelName, Lang};

fn compile_error(e: &JitError) -> &str {
    assert!(e.is_compile_error(), "not a compile error: {e}");
    e.diagnostics().expect("diagnostics")
}

#[test]
fn compile_errors_point_at_the_users_file_and_line() {
    let dir = TempDir::new("diag");
    let jit = jit(&dir);
    let cases = [
        (
            "bad.c",
            "#include <stdint.h>\n\nint64_t f(int64_t x) {\n    return x * y;\n}\n",
            "bad.c:4:",
        ),
        (
            "bad.cpp",
            "#include <cstdint>\n\nstd::int64_t f(std::int64_t x) {\n    return x * y;\n}\n",
            "bad.cpp:4:",
        ),
        (
            "bad.f90",
            "function f(x) result(j)\n  use, intrinsic :: iso_c_binding\n  implicit none\n  integer(c_int64_t), value :: x\n  integer(c_int64_t) :: j\n  j = x * y\nend function f\n",
            "bad.f90:6:",
        ),
    ];
    for (name, text, at) in cases {
        let path = dir.write(name, text);
        let src = Source::file(&path).expect("read");
        let want = format!("{}", path.display()).replace(name, at);
        // Both forms: the element function's failure is the source's own, not the
        // wrapper's.
        // SAFETY: nothing is loaded: the source does not compile.
        let e = unsafe { jit.element_fn::<i64>(&src, "f") }.expect_err("does not compile");
        assert!(matches!(e, JitError::CompileFailed { .. }), "{name}: {e}");
        let diag = compile_error(&e);
        assert!(diag.contains(&want), "{name}: {want} not in:\n{diag}");
        assert!(
            !diag.contains(".tmp-") && !diag.contains("wrapper"),
            "{name}:\n{diag}"
        );
        assert!(e.to_string().contains(&want), "{e}");
        let sig = KernelName::custom(kernelpool_kernels::Signature::new("f")).expect("sig");
        // SAFETY: as above.
        let e = unsafe { jit.range_kernel(&src, "f", sig) }.expect_err("does not compile");
        assert!(compile_error(&e).contains(&want), "{name}: {e}");
    }
    // A string source is `<string>`.
    let src = Source::string("int f(void) {\n  return nope;\n}\n", Lang::C);
    // SAFETY: nothing is loaded.
    let e = unsafe { jit.range_kernel(&src, "f", KernelName::Pi) }.expect_err("fails");
    assert!(compile_error(&e).contains("<string>:2:"), "{e}");
    // Nothing was cached.
    assert!(common::entries(&dir.join("cache")).is_empty());
}

#[test]
fn an_element_function_of_another_signature_is_named_as_such() {
    let dir = TempDir::new("signature");
    let jit = jit(&dir);
    let cases = [
        (
            Lang::C,
            "#include <stdint.h>\nint64_t f(int64_t x, int64_t y) { return x * y; }\n",
            "int64_t f(int64_t)",
        ),
        (
            Lang::C,
            "double f(double x) { return x * 2; }\n",
            "int64_t f(int64_t)",
        ),
        (
            Lang::Cpp,
            "#include <cstdint>\nstd::int64_t f(std::int64_t x, std::int64_t y) { return x * y; }\n",
            "int64_t f(int64_t)",
        ),
        (
            Lang::Cpp,
            "double f(double x) { return x * 2; }\n",
            "int64_t f(int64_t)",
        ),
        (
            Lang::Fortran,
            "function f(x, y) result(j)\n  use, intrinsic :: iso_c_binding\n  integer(c_int64_t), value :: x, y\n  integer(c_int64_t) :: j\n  j = x * y\nend function f\n",
            "integer(c_int64_t) function f(x)",
        ),
        (
            Lang::Fortran,
            "function f(x) result(j)\n  use, intrinsic :: iso_c_binding\n  integer(c_int64_t), value :: x\n  real(c_double) :: j\n  j = x * 2\nend function f\n",
            "integer(c_int64_t) function f(x)",
        ),
    ];
    for (lang, text, expected) in cases {
        // SAFETY: nothing is loaded: the wrapper does not compile.
        let e = unsafe { jit.element_fn::<i64>(&Source::string(text, lang), "f") }
            .expect_err("wrong signature");
        let JitError::WrongSignature {
            symbol,
            expected: exp,
            diagnostics,
            ..
        } = &e
        else {
            panic!("{lang}: {e}");
        };
        assert_eq!(symbol, "f");
        assert!(exp.starts_with(expected), "{lang}: {exp}");
        assert!(
            diagnostics.contains("<kernelpool wrapper of f>"),
            "{lang}:\n{diagnostics}"
        );
        assert!(e.to_string().contains(expected), "{e}");
    }
    // The f64 wrapper refuses the course's (integer) f, and says what it wanted.
    // SAFETY: nothing is loaded.
    let e = unsafe { jit.element_fn::<f64>(&Source::string(course_f(Lang::C), Lang::C), "f") }
        .expect_err("wrong type");
    assert!(e.to_string().contains("double f(double)"), "{e}");
}

#[test]
fn a_missing_symbol_lists_what_the_object_exports() {
    let dir = TempDir::new("symbol");
    let jit = jit(&dir);
    for lang in common::LANGS {
        let src = Source::string(course_f(lang), lang);
        // SAFETY: nothing is loaded: there is no `g`.
        let e = unsafe { jit.element_fn::<i64>(&src, "g") }.expect_err("no g");
        match &e {
            JitError::MissingSymbol {
                symbol, exports, ..
            } => {
                assert_eq!(symbol, "g");
                assert!(
                    exports.iter().any(|s| s == "f" || s.contains("1f")),
                    "{lang}: {exports:?}"
                );
            }
            other => panic!("{lang}: {other}"),
        }
        assert!(e.to_string().contains("exports: "), "{e}");
        // A range kernel that is not there: the library is compiled (and cached), but not
        // loaded.
        // SAFETY: nothing is loaded.
        let e = unsafe { jit.range_kernel(&src, "kernel", KernelName::Pi) }.expect_err("none");
        match &e {
            JitError::MissingSymbol { exports, .. } => assert!(!exports.is_empty(), "{lang}"),
            other => panic!("{lang}: {other}"),
        }
    }
    // A C++ kernel without extern "C": named, with the hint.
    let src = Source::string(
        "#include \"kernels.h\"\nint32_t counts(const kp_kargs *a, uint64_t b, uint64_t e) { a->partial[0] += e - b; return 0; }\n",
        Lang::Cpp,
    );
    // SAFETY: nothing is loaded.
    let e = unsafe { jit.range_kernel(&src, "counts", KernelName::Pi) }.expect_err("mangled");
    let text = e.to_string();
    assert!(
        text.contains("extern \"C\"") && text.contains("_Z6counts"),
        "{text}"
    );
}

#[test]
fn a_missing_compiler_names_the_package_to_install() {
    let dir = TempDir::new("compiler");
    for (lang, package) in [
        (Lang::C, "gcc"),
        (Lang::Cpp, "g++"),
        (Lang::Fortran, "gfortran"),
    ] {
        let jit = jit(&dir).compiler(lang, "/nonexistent/bin/cc-9");
        // SAFETY: nothing is compiled or loaded.
        let e = unsafe { jit.element_fn::<i64>(&Source::string(course_f(lang), lang), "f") }
            .expect_err("no compiler");
        assert!(matches!(e, JitError::CompilerNotFound { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("sudo apt-get install {package}"))
                && text.contains("/nonexistent/bin/cc-9"),
            "{text}"
        );
    }
    // A program that exists but is no compiler (its --version fails).
    let jit = jit(&dir).compiler(Lang::C, "false");
    // SAFETY: nothing is compiled or loaded.
    let e = unsafe { jit.element_fn::<i64>(&Source::string(course_f(Lang::C), Lang::C), "f") }
        .expect_err("false is no compiler");
    assert!(e.to_string().contains("--version"), "{e}");
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let dir = TempDir::new("input");
    let jit = jit(&dir);
    let path = dir.write("k.txt", "int f;");
    let src = Source::file(&path).expect("read");
    // SAFETY: nothing is compiled or loaded.
    let e = unsafe { jit.element_fn::<i64>(&src, "f") }.expect_err("no language");
    assert!(matches!(e, JitError::UnknownLanguage { .. }), "{e}");
    assert!(e.to_string().contains("--lang"), "{e}");
    let e = Source::file(dir.join("missing.c")).expect_err("no file");
    assert!(matches!(e, JitError::ReadSource { .. }), "{e}");
    let src = Source::string(course_f(Lang::C), Lang::C);
    for bad in ["", "2f", "f(x)", "f; system", "kp_jit_map_f"] {
        // SAFETY: nothing is compiled or loaded.
        let e = unsafe { jit.element_fn::<i64>(&src, bad) }.expect_err(bad);
        assert!(matches!(e, JitError::InvalidSymbol { .. }), "{bad}: {e}");
    }
    let src = Source::string("fn f() {}", Lang::Rust);
    // SAFETY: nothing is compiled or loaded.
    let e = unsafe { jit.range_kernel(&src, "f", KernelName::Pi) }.expect_err("rust");
    assert!(
        matches!(e, JitError::UnsupportedLanguage(Lang::Rust)),
        "{e}"
    );
    // Fixed-form Fortran element functions are refused (the wrapper is free-form).
    let path = dir.write(
        "old.f",
        "      INTEGER*8 FUNCTION F(X)\n      INTEGER*8 X\n      F = X\n      END\n",
    );
    // SAFETY: nothing is compiled or loaded.
    let e = unsafe { jit.element_fn::<i64>(&Source::file(&path).expect("read"), "f") }
        .expect_err("fixed form");
    assert!(e.to_string().contains("free-form"), "{e}");
}
