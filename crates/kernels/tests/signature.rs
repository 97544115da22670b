//! Kernels with a signature of their own: loaded from a shared object built at test time,
//! checked by `Step::new` against their signature like any built-in kernel, with integer
//! and float partial slots combined in chunk order.

use kernelpool_kernels::signature::{Check, Len};
use kernelpool_kernels::{
    Buffer, Elem, Error, Kernel, KernelName, Lang, Options, Partial, Reduce, Serial, Signature,
    Step, StepArgs, programs,
};
use std::path::PathBuf;
use std::process::Command;

/// out[i] = in[i] * fparam[0]; partials: float sum, float max, integer min of the outputs
/// (rounded towards zero), and a count.
const SOURCE: &str = r#"
#include <stdint.h>
#include <string.h>
#include "kernels.h"
int32_t scale(const kp_kargs *a, uint64_t begin, uint64_t end) {
    if (begin > end || end > a->items) return KP_KERNEL_BAD_ARGS;
    const double *in = (const double *)a->buf[0];
    double *out = (double *)a->buf[1];
    double *fp = (double *)a->partial;
    for (uint64_t i = begin; i < end; i++) {
        out[i] = in[i] * a->fparam[0];
        fp[0] += out[i];
        if (out[i] > fp[1]) fp[1] = out[i];
        if ((int64_t)out[i] < a->partial[2]) a->partial[2] = (int64_t)out[i];
        a->partial[3] += 1;
    }
    return KP_KERNEL_OK;
}
"#;

fn library() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kp-signature-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("scale.c"), SOURCE).expect("write");
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../../native/include");
    let status = Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-I", include])
        .args(["-o", "libscale.so", "scale.c"])
        .current_dir(&dir)
        .status()
        .expect("gcc runs");
    assert!(status.success());
    dir.join("libscale.so")
}

fn signature() -> Signature {
    Signature::new("scale")
        .input(Elem::F64, Len::Items(1))
        .output(Elem::F64, Len::Items(1))
        .partial(Reduce::SumF64)
        .partial(Reduce::MaxF64)
        .partial(Reduce::Min)
        .partial(Reduce::Sum)
}

#[test]
fn a_kernel_with_its_own_signature_runs_checked_steps_and_combines_float_partials() {
    let lib = library();
    // SAFETY: `scale` keeps to `signature()`: it reads in[i], writes out[i] for i in its
    // range and writes the four declared partial slots.
    let kernel =
        unsafe { Kernel::load_with_signature(&lib, "scale", signature(), Lang::C) }.expect("load");
    assert!(!kernel.name().is_builtin());
    assert_eq!(kernel.name().to_string(), "scale");
    assert_eq!(kernel.signature(), &signature());
    let n = 1000usize;
    let mut input = Buffer::heap(Elem::F64, n, "in").expect("alloc");
    for (i, v) in input
        .as_mut_slice::<f64>()
        .expect("f64")
        .iter_mut()
        .enumerate()
    {
        *v = 0.1 * i as f64 - 7.0;
    }
    let mut output = Buffer::heap(Elem::F64, n, "out").expect("alloc");
    let mut args = StepArgs::new(n as u64, n as u64);
    args.fparam[0] = 3.0;
    let step = Step::new(kernel.clone(), args, vec![&mut input, &mut output]).expect("step");
    let whole = step.run_chunk(0..n as u64).expect("one chunk");
    let in_order = |chunk: u64| {
        step.run_chunks(kernelpool_kernels::chunks(n as u64, chunk))
            .expect("chunks")
    };
    // The float sum is combined left to right: the same chunk size gives the same bits,
    // and the result is the sequential one's up to rounding.
    let (a, b) = (in_order(7), in_order(7));
    assert_eq!(a.float(0).to_bits(), b.float(0).to_bits());
    assert!(
        (a.float(0) - whole.float(0)).abs() < 1e-9,
        "{a:?} {whole:?}"
    );
    let want: f64 = (0..n)
        .map(|i| (0.1 * i as f64 - 7.0) * 3.0)
        .fold(-0.0, |s, v| s + v);
    assert_eq!(whole.float(0).to_bits(), want.to_bits());
    // Max, min and the count do not depend on the split.
    for p in [a, in_order(1), in_order(333)] {
        assert_eq!(p.float(1), whole.float(1));
        assert_eq!(p.int(2), whole.int(2));
        assert_eq!(p.int(3), n as i64);
    }
    assert_eq!(whole.float(1), (0.1 * 999.0 - 7.0) * 3.0);
    assert_eq!(whole.int(2), -21);
    let empty = Partial::identity(kernel.name());
    assert!(empty.float(0).is_sign_negative() && empty.float(0) == 0.0);
    assert_eq!(empty.float(1), f64::NEG_INFINITY);
    assert_eq!(empty.int(2), i64::MAX);
    drop(step);
    assert_eq!(
        output.as_slice::<f64>().expect("f64")[10],
        (0.1 * 10.0 - 7.0) * 3.0
    );

    // Step::new checks its buffers against the signature.
    let mut short = Buffer::heap(Elem::F64, n - 1, "short").expect("alloc");
    let e = Step::new(kernel.clone(), args, vec![&mut input, &mut short]).unwrap_err();
    assert!(e.to_string().contains("buffer 1"), "{e}");
    let mut ints = Buffer::heap(Elem::I64, n, "ints").expect("alloc");
    assert!(Step::new(kernel.clone(), args, vec![&mut ints, &mut output]).is_err());
    assert!(Step::new(kernel.clone(), args, vec![&mut input]).is_err());
    // It has no program.
    let e = programs::run(kernel, &Options::new().n(3), &Serial).unwrap_err();
    assert!(matches!(e, Error::NoProgram { .. }), "{e}");
    let _ = std::fs::remove_dir_all(lib.parent().expect("dir"));
}

#[test]
fn signature_checks_refuse_arguments_before_any_buffer() {
    let sig = Signature::parse("k", "out i64[2*n], iparam[1] in 0..=3, n<=10").expect("parse");
    let name = KernelName::custom(sig).expect("valid");
    let s = name.signature();
    let mut args = StepArgs::new(4, 4);
    assert_eq!(
        s.buffers_for(&args).expect("ok"),
        vec![(Elem::I64, Some(8))]
    );
    args.iparam[1] = 4;
    let e = s.buffers_for(&args).unwrap_err();
    assert!(e.to_string().contains("iparam[1] in 0..=3 (got 4)"), "{e}");
    args.iparam[1] = 0;
    args.n = 11;
    let e = s.buffers_for(&args).unwrap_err();
    assert!(matches!(e, Error::InvalidSize { .. }), "{e}");
    // A custom name has no built-in code: what `get` gives refuses every call.
    let k = Kernel::get(name, Lang::C);
    let mut out = Buffer::heap(Elem::I64, 8, "out").expect("alloc");
    let step = Step::new(k, StepArgs::new(4, 4), vec![&mut out]).expect("step");
    assert!(matches!(
        step.run_chunk(0..4),
        Err(Error::KernelFailed { code: -1, .. })
    ));
    // Signatures the contract cannot carry are refused.
    let five = (0..5).fold(Signature::new("k"), |s, _| s.partial(Reduce::Sum));
    assert!(matches!(
        KernelName::custom(five),
        Err(Error::InvalidSignature { .. })
    ));
    let bad = Signature::new("k").check(Check::IParam {
        slot: 9,
        min: 0,
        max: 1,
        what: String::new(),
    });
    assert!(KernelName::custom(bad).is_err());
}
