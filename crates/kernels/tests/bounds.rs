//! Every kernel's N is bounded where its arithmetic needs it, in every language: the bound
//! itself is accepted, one past it is refused at once with `Error::InvalidSize` naming the
//! kernel, N and the bound, and the native kernels refuse it themselves.

use kernelpool_kernels::ffi::{KP_KERNEL_BAD_ARGS, KP_KERNEL_OK, kp_kargs};
use kernelpool_kernels::step::{max_n, max_systems};
use kernelpool_kernels::{
    Error, Kernel, KernelName, Lang, Options, Serial, Step, StepArgs, programs,
};
use std::time::{Duration, Instant};

#[test]
fn the_bounds_are_those_of_the_arithmetic() {
    let per_f64 = isize::MAX as u64 / 8;
    let want = [
        (KernelName::Seed, per_f64),
        (KernelName::Nbody, i64::MAX as u64),
        (KernelName::Spectralnorm, 1 << 30),
        (KernelName::Mandelbrot, 1 << 32),
        (KernelName::Fannkuch, 12),
        (KernelName::Triad, per_f64),
        (KernelName::Pi, 1 << 62),
    ];
    for (k, max) in want {
        assert_eq!(max_n(k), max, "{k}");
    }
    assert_eq!(max_systems(), isize::MAX as u64 / 16);
}

#[test]
fn n_at_the_bound_is_accepted_and_past_it_refused() {
    for k in KernelName::ALL {
        let max = max_n(k);
        // At the bound, N may still be too large for this machine's memory, never invalid.
        match programs::validate(k, &Options::new().n(max)) {
            Ok(n) => assert_eq!(n, max),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => panic!("{k} N={max}: {e}"),
        }
        let e = programs::validate(k, &Options::new().n(max + 1)).expect_err("past the bound");
        assert!(
            matches!(e, Error::InvalidSize { n, .. } if n == max + 1),
            "{k}: {e}"
        );
        let text = e.to_string();
        for word in [
            k.name().to_string(),
            format!("N={}", max + 1),
            max.to_string(),
        ] {
            assert!(text.contains(&word), "{k}: `{text}` lacks {word}");
        }
    }
    let max = max_systems();
    let at = Options::new().n(1).systems(max);
    assert!(matches!(
        programs::validate(KernelName::Nbody, &at),
        Err(Error::TooLarge { .. }) | Ok(_)
    ));
    let past = Options::new().n(1).systems(max + 1);
    let e = programs::validate(KernelName::Nbody, &past).expect_err("too many systems");
    assert!(
        matches!(e, Error::InvalidSize { .. }) && e.to_string().contains("--systems"),
        "{e}"
    );
}

#[test]
fn nbody_with_2_pow_63_steps_is_refused_in_every_language() {
    // It used to wrap to a negative step count (C, C++, Fortran: the initial energy twice,
    // success) or to run "forever" (Rust).
    for lang in Lang::ALL {
        for n in [1u64 << 63, u64::MAX] {
            let t = Instant::now();
            let e = programs::run(
                Kernel::get(KernelName::Nbody, lang),
                &Options::new().n(n),
                &Serial,
            )
            .expect_err("too many steps");
            assert!(t.elapsed() < Duration::from_secs(1), "{lang}");
            assert!(matches!(e, Error::InvalidSize { .. }), "{lang}: {e}");
            assert!(e.to_string().contains("9223372036854775807"), "{e}");
        }
    }
}

#[test]
fn steps_refuse_sizes_and_counts_past_the_bounds() {
    let spectral = |n| {
        Step::new(
            Kernel::get(KernelName::Spectralnorm, Lang::C),
            StepArgs::new(n, n),
            vec![],
        )
        .expect_err("refused before the buffers are looked at")
    };
    assert!(
        matches!(spectral((1 << 30) + 1), Error::InvalidSize { .. }),
        "past the bound"
    );
    // At the bound only the (missing) buffers are wrong.
    assert!(matches!(spectral(1 << 30), Error::BadBuffers { .. }));
    let mut args = StepArgs::new(1, 1);
    args.iparam[0] = -1;
    for k in [KernelName::Seed, KernelName::Nbody] {
        let e = Step::new(Kernel::get(k, Lang::C), args, vec![]).expect_err("negative count");
        assert!(e.to_string().contains("iparam[0] >= 0"), "{k}: {e}");
    }
    let pi = |items| {
        Step::new(
            Kernel::get(KernelName::Pi, Lang::C),
            StepArgs::new(items, items),
            vec![],
        )
    };
    assert!(pi(1 << 62).is_ok());
    assert!(matches!(pi((1 << 62) + 1), Err(Error::InvalidSize { .. })));
    let e = Step::new(
        Kernel::get(KernelName::Seed, Lang::C),
        StepArgs::new(1, 1 << 63),
        vec![],
    )
    .expect_err("more items than an int64 counts");
    assert!(matches!(e, Error::InvalidSize { .. }), "{e}");
}

/// Call `kernel` on the empty range `0..0` with these arguments and a real (small)
/// buffer in every slot, so a kernel that accepts its arguments writes nothing and one
/// that refuses returns first.
fn raw_call(k: KernelName, lang: Lang, n: u64, items: u64, iparam0: i64) -> i32 {
    let kernel = Kernel::get(k, lang);
    let mut partial = [0i64; 4];
    let mut room = [[0f64; 8]; 4];
    let args = kp_kargs {
        n,
        items,
        iparam: [iparam0, 0, 0, 0],
        fparam: [0.0; 4],
        buf: room.each_mut().map(|b| b.as_mut_ptr().cast()),
        len: [8; 4],
        partial: partial.as_mut_ptr(),
    };
    // SAFETY: `kernel` outlives the call; the range is empty and every slot points to 8
    // writable f64, so an accepting kernel touches nothing past them (no item is computed),
    // and a refusing one returns before it looks at a buffer.
    unsafe { (kernel.raw())(&args, 0, 0) }
}

#[test]
fn native_kernels_refuse_the_same_bounds_themselves() {
    let max_items = i64::MAX as u64;
    for lang in Lang::ALL {
        let cases = [
            // (kernel, (n, items, iparam[0]) at the bound, the same past it)
            (KernelName::Seed, (1, max_items, 0), (1, max_items + 1, 0)),
            (KernelName::Seed, (1, 1, 0), (1, 1, -1)),
            (KernelName::Nbody, (1, 1, i64::MAX), (1, 1, -1)),
            (KernelName::Nbody, (1, max_items, 0), (1, max_items + 1, 0)),
            (
                KernelName::Spectralnorm,
                (1 << 30, 1, 0),
                ((1 << 30) + 1, 1, 0),
            ),
            (
                KernelName::Mandelbrot,
                (1 << 32, 1, 0),
                ((1 << 32) + 1, 1, 0),
            ),
            (KernelName::Fannkuch, (12, 479_001_600, 0), (13, 1, 0)),
            (KernelName::Triad, (1, max_items, 0), (1, max_items + 1, 0)),
            (KernelName::Pi, (1, 1 << 62, 0), (1, (1 << 62) + 1, 0)),
        ];
        for (k, (n, items, p), (n2, items2, p2)) in cases {
            // Rust's spectralnorm views all of u (n elements) even for no rows: no call at
            // the bound with a small buffer.
            if !(lang == Lang::Rust && k == KernelName::Spectralnorm) {
                assert_eq!(
                    raw_call(k, lang, n, items, p),
                    KP_KERNEL_OK,
                    "{k}/{lang} at the bound"
                );
            }
            assert_eq!(
                raw_call(k, lang, n2, items2, p2),
                KP_KERNEL_BAD_ARGS,
                "{k}/{lang} past the bound: n={n2} items={items2} iparam[0]={p2}"
            );
        }
        // An empty image is no error in any language.
        assert_eq!(
            raw_call(KernelName::Mandelbrot, lang, 0, 0, 0),
            KP_KERNEL_OK,
            "{lang}"
        );
    }
}
