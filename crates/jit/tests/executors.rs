//! JIT kernels of both forms, in all three languages, on every executor: the course's f as
//! an element function (i64) and a float one, range kernels with a signature of their
//! own (float and integer partials), and the built-in kernels' own sources compiled by
//! the JIT under their built-in contracts, which must agree bit for bit with the built-in
//! library.

mod common;

use common::{LANGS, TempDir, course_f, course_f_of, jit};
use kernelpool_jit::Source;
use kernelpool_kernels::{
    Buffer, Elem, Executor, Kernel, KernelName, Lang, Options, Partial, Serial, Signature, Step,
    StepArgs, programs, reference,
};
use kernelpool_pool::{Processes, Threads};

/// Serial, two threads and two worker processes, with chunks of `chunk` items.
fn executors(chunk: u64) -> Vec<Box<dyn Executor>> {
    vec![
        Box::new(Serial),
        Box::new(
            Threads::builder()
                .workers(2)
                .chunk(chunk)
                .build()
                .expect("threads"),
        ),
        Box::new(
            Processes::builder()
                .workers(2)
                .chunk(chunk)
                .build()
                .expect("processes"),
        ),
    ]
}

#[test]
fn the_course_f_maps_on_every_executor_in_every_language() {
    let dir = TempDir::new("course-f");
    let jit = jit(&dir);
    let xs: Vec<i64> = (1..=7).chain([-3, 0, 1 << 20]).collect();
    let want: Vec<i64> = xs.iter().map(|&x| course_f_of(x)).collect();
    for lang in LANGS {
        let src = Source::string(course_f(lang), lang);
        // SAFETY: the course's f is a pure function of its argument.
        let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("compile");
        assert!(!f.build().cached, "{lang}: a fresh cache compiles");
        for exec in executors(3) {
            assert_eq!(
                f.map(&xs, &*exec).expect("map"),
                want,
                "{lang} on {}",
                exec.describe()
            );
        }
        assert_eq!(f.map(&[], &Serial).expect("empty"), Vec::<i64>::new());
    }
}

#[test]
fn float_element_functions_agree_bit_for_bit_with_rust() {
    let dir = TempDir::new("float-f");
    let jit = jit(&dir);
    let sources = [
        (
            Lang::C,
            "#include <math.h>\ndouble g(double x) { return sqrt(x) * 0.5 + x / 3.0; }\n",
        ),
        (
            Lang::Cpp,
            "#include <cmath>\nnamespace k { double g(double x) { return std::sqrt(x) * 0.5 + x / 3.0; } }\n",
        ),
        (
            // No bind(C) and no value: the wrapper calls it as Fortran, through its module.
            Lang::Fortran,
            "function g(x) result(y)\n  use, intrinsic :: iso_c_binding\n  real(c_double) :: x, y\n  y = sqrt(x) * 0.5_c_double + x / 3.0_c_double\nend function g\n",
        ),
    ];
    let xs: Vec<f64> = (0..101).map(|i| 0.37 * i as f64 + 0.001).collect();
    let want: Vec<u64> = xs
        .iter()
        .map(|x| (x.sqrt() * 0.5 + x / 3.0).to_bits())
        .collect();
    for (lang, text) in sources {
        let symbol = if lang == Lang::Cpp { "k::g" } else { "g" };
        // SAFETY: g is a pure function of its argument.
        let g =
            unsafe { jit.element_fn::<f64>(&Source::string(text, lang), symbol) }.expect("compile");
        for exec in executors(10) {
            let got: Vec<u64> = g
                .map(&xs, &*exec)
                .expect("map")
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(got, want, "{lang} on {}", exec.describe());
        }
    }
}

/// out[i] = in[i]^2; partial 0: their float sum, partial 1: the largest item index.
fn range_source(lang: Lang) -> &'static str {
    match lang {
        Lang::C => {
            r#"#include "kernels.h"
int32_t squares(const kp_kargs *a, uint64_t begin, uint64_t end) {
    if (begin > end || end > a->items) return KP_KERNEL_BAD_ARGS;
    const double *in = (const double *)a->buf[0];
    double *out = (double *)a->buf[1];
    double *fp = (double *)a->partial;
    for (uint64_t i = begin; i < end; i++) {
        out[i] = in[i] * in[i];
        fp[0] += out[i];
        if ((int64_t)i > a->partial[1]) a->partial[1] = (int64_t)i;
    }
    return KP_KERNEL_OK;
}
"#
        }
        Lang::Cpp => {
            r#"#include <algorithm>
#include <cstdint>
#include <cstring>
#include "kernels.h"
namespace {
double square(double x) { return x * x; }
}
extern "C" int32_t squares(const kp_kargs *a, uint64_t begin, uint64_t end) noexcept {
    if (begin > end || end > a->items) return KP_KERNEL_BAD_ARGS;
    auto in = static_cast<const double *>(a->buf[0]);
    auto out = static_cast<double *>(a->buf[1]);
    double sum;
    std::memcpy(&sum, &a->partial[0], sizeof sum);
    for (auto i = begin; i < end; i++) {
        out[i] = square(in[i]);
        sum += out[i];
        a->partial[1] = std::max<std::int64_t>(a->partial[1], static_cast<std::int64_t>(i));
    }
    std::memcpy(&a->partial[0], &sum, sizeof sum);
    return KP_KERNEL_OK;
}
"#
        }
        _ => {
            r#"module squares_mod
  use, intrinsic :: iso_c_binding
  implicit none
  type, bind(C) :: kp_kargs
    integer(c_int64_t) :: n, items, iparam(4)
    real(c_double) :: fparam(4)
    type(c_ptr) :: buf(4)
    integer(c_int64_t) :: len(4)
    type(c_ptr) :: partial
  end type kp_kargs
contains
  function squares(a, b, e) bind(C, name="squares") result(rc)
    type(kp_kargs), intent(in) :: a
    integer(c_int64_t), value :: b, e
    integer(c_int32_t) :: rc
    real(c_double), pointer :: xin(:), xout(:), fp(:)
    integer(c_int64_t), pointer :: ip(:)
    integer(c_int64_t) :: i
    rc = -1
    if (b < 0 .or. e < b .or. e > a%items) return
    call c_f_pointer(a%buf(1), xin, [a%items])
    call c_f_pointer(a%buf(2), xout, [a%items])
    call c_f_pointer(a%partial, fp, [4])
    call c_f_pointer(a%partial, ip, [4])
    do i = b + 1, e
      xout(i) = xin(i) * xin(i)
      fp(1) = fp(1) + xout(i)
      ip(2) = max(ip(2), i - 1)
    end do
    rc = 0
  end function squares
end module squares_mod
"#
        }
    }
}

#[test]
fn range_kernels_with_their_own_signature_run_on_every_executor() {
    let dir = TempDir::new("range");
    let jit = jit(&dir);
    let sig = Signature::parse("squares", "in f64[items], out f64[items], sum f64, max i64")
        .expect("spec");
    let n = 1001usize;
    let chunk = 64u64;
    let input: Vec<f64> = (0..n).map(|i| 0.1 * i as f64 + 0.3).collect();
    let squares: Vec<u64> = input.iter().map(|x| (x * x).to_bits()).collect();
    // The float sum combined in chunk order, as every executor does: chunk by chunk, then
    // the chunk sums left to right.
    let sum_in_chunks = |chunk: usize| {
        input
            .chunks(chunk)
            .map(|c| c.iter().fold(-0.0, |s, x| s + x * x))
            .fold(-0.0, |s, c| s + c)
    };
    for lang in LANGS {
        let src = Source::string(range_source(lang), lang);
        // SAFETY: `squares` keeps to `sig`: it reads in[i], writes out[i] for i in its
        // range and writes partial slots 0 (a double) and 1.
        let k = unsafe {
            jit.range_kernel(
                &src,
                "squares",
                KernelName::custom(sig.clone()).expect("sig"),
            )
        }
        .expect("compile")
        .into_kernel();
        for exec in executors(chunk) {
            let mut bin = exec.alloc(Elem::F64, n, "in").expect("alloc");
            bin.as_mut_slice::<f64>()
                .expect("f64")
                .copy_from_slice(&input);
            let mut bout = exec.alloc(Elem::F64, n, "out").expect("alloc");
            let p: Partial = exec
                .run(
                    &Step::new(
                        k.clone(),
                        StepArgs::new(n as u64, n as u64),
                        vec![&mut bin, &mut bout],
                    )
                    .expect("step"),
                )
                .expect("run");
            let what = format!("{lang} on {}", exec.describe());
            let out: Vec<u64> = bout
                .as_slice::<f64>()
                .expect("f64")
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(out, squares, "{what}");
            assert_eq!(p.int(1), n as i64 - 1, "{what}");
            // Serial is one chunk; the pools cut it into chunks of 64: the float sum
            // depends on the chunk size only.
            let chunked = if exec.workers() == 1 {
                n
            } else {
                chunk as usize
            };
            assert_eq!(
                p.float(0).to_bits(),
                sum_in_chunks(chunked).to_bits(),
                "{what}"
            );
        }
    }
}

#[test]
fn the_builtin_sources_jitted_under_their_contracts_agree_with_the_library() {
    let dir = TempDir::new("contract");
    let jit = jit(&dir);
    let native = concat!(env!("CARGO_MANIFEST_DIR"), "/../../native");
    let cases = [
        (Lang::C, "c/kernels.c", "kp_c_"),
        (Lang::Cpp, "cpp/kernels.cpp", "kp_cpp_"),
        (Lang::Fortran, "fortran/kernels.f90", "kp_f_"),
    ];
    for (lang, file, prefix) in cases {
        let src = Source::file(format!("{native}/{file}")).expect("read");
        assert_eq!(src.lang(), lang);
        for (kernel, n) in [
            (KernelName::Mandelbrot, 200),
            (KernelName::Spectralnorm, 100),
            (KernelName::Fannkuch, 7),
            (KernelName::Pi, 100_000),
        ] {
            let symbol = format!("{prefix}{kernel}");
            // SAFETY: the built-in kernels' own code, under their own contracts.
            let k = unsafe { jit.range_kernel(&src, &symbol, kernel) }
                .expect("compile")
                .into_kernel();
            let opts = Options::new().n(n);
            let builtin = programs::run(Kernel::get(kernel, lang), &opts, &Serial)
                .expect("built-in")
                .stdout;
            if let Some(want) = reference::expected(kernel, n) {
                assert_eq!(builtin, want);
            }
            for exec in executors(7) {
                let got = programs::run(k.clone(), &opts, &*exec)
                    .expect("jitted")
                    .stdout;
                assert!(got == builtin, "{symbol} on {} differs", exec.describe());
            }
        }
    }
    // One compile per source: every kernel after the first came from the cache.
    assert_eq!(common::entries(&dir.join("cache")).len(), 3);
}

#[test]
fn the_examples_run() {
    let dir = TempDir::new("examples");
    let jit = jit(&dir);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jit");
    for file in ["seed.c", "seed.cpp", "seed.f90"] {
        let src = Source::file(format!("{examples}/{file}")).expect("read");
        // SAFETY: the course's f is a pure function of its argument.
        let f = unsafe { jit.element_fn::<i64>(&src, "f") }.expect("compile");
        assert_eq!(
            f.map(&[1, 2, 3], &Serial).expect("map"),
            [10000000, 40000000, 90000000]
        );
    }
    let src = Source::file(format!("{examples}/seed_range.c")).expect("read");
    let sig = Signature::parse("seed_sum", "out i64[items], sum i64, iparam[0]>=0").expect("spec");
    // SAFETY: seed_sum keeps to `sig`.
    let k = unsafe { jit.range_kernel(&src, "seed_sum", KernelName::custom(sig).expect("sig")) }
        .expect("compile")
        .into_kernel();
    let mut out = Buffer::heap(Elem::I64, 3, "out").expect("alloc");
    let mut args = StepArgs::new(3, 3);
    args.iparam[0] = 10_000_000;
    let p = Serial
        .run(&Step::new(k.clone(), args, vec![&mut out]).expect("step"))
        .expect("run");
    assert_eq!(p.int(0), 140_000_000);
    assert_eq!(
        out.as_slice::<i64>().expect("i64"),
        [10000000, 40000000, 90000000]
    );
    args.iparam[0] = -1;
    assert!(
        Step::new(k, args, vec![&mut out]).is_err(),
        "the signature's check"
    );
}
