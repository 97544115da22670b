//! Property tests: for random valid sizes and split points, the four languages agree with
//! each other bit for bit, and computing [0, n) in one call equals computing it in chunks.

use kernelpool_kernels::{
    Buffer, Elem, Kernel, KernelName, Lang, Partial, Step, StepArgs, Variant,
};
use proptest::prelude::*;
use std::ops::Range;

/// Turn sorted cut points into consecutive chunks of [0, n).
fn chunks_from_cuts(n: u64, mut cuts: Vec<u64>) -> Vec<Range<u64>> {
    cuts.iter_mut().for_each(|c| *c %= n + 1);
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([n]) {
        out.push(start..c);
        start = c;
    }
    out
}

/// Run one step of `k` in `lang` over `chunks`; returns (buffer bytes, partial).
fn run_step(kernel: &Kernel, args: StepArgs, chunks: &[Range<u64>]) -> (Vec<Vec<u8>>, Partial) {
    let specs =
        kernelpool_kernels::step::expected_buffers(kernel.name(), &args).expect("valid args");
    let mut bufs: Vec<Buffer> = specs
        .iter()
        .map(|(e, len)| Buffer::heap(*e, *len as usize, "test").expect("alloc"))
        .collect();
    // deterministic, non-trivial input for buffers that are read (spectralnorm u, triad)
    for (i, b) in bufs.iter_mut().enumerate() {
        if let Some(s) = b.as_mut_slice::<f64>() {
            for (j, v) in s.iter_mut().enumerate() {
                *v = 1.0 + (j as f64) * 0.25 + i as f64;
            }
        }
    }
    let partial = {
        let step = Step::new(kernel.clone(), args, bufs.iter_mut()).expect("step");
        step.run_chunks(chunks.iter().cloned()).expect("run")
    };
    let bytes = bufs
        .iter()
        .map(|b| match b.elem() {
            Elem::U8 => b.as_slice::<u8>().expect("u8").to_vec(),
            Elem::F64 => b
                .as_slice::<f64>()
                .expect("f64")
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect(),
            Elem::I64 => b
                .as_slice::<i64>()
                .expect("i64")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            other => panic!("no test view of {other:?}"),
        })
        .collect();
    (bytes, partial)
}

/// Every language and variant, on random chunks, gives the plain C kernel's one-call
/// result bit for bit (buffers and partials).
fn check_all(k: KernelName, args: StepArgs, cuts: Vec<u64>) -> Result<(), TestCaseError> {
    let whole = run_step(
        &Kernel::get(k, Lang::C),
        args,
        std::slice::from_ref(&(0..args.items)),
    );
    let chunks = chunks_from_cuts(args.items, cuts);
    for lang in Lang::ALL {
        for v in Kernel::variants(k, lang) {
            let kernel = Kernel::get_variant(k, lang, v).expect("listed variant");
            let got = run_step(&kernel, args, &chunks);
            prop_assert!(
                got == whole,
                "{:?} differs with chunks {:?} (args {:?})",
                kernel,
                chunks,
                args
            );
        }
    }
    Ok(())
}

/// STREAM over an array large enough for the tuned kernels' non-temporal stores, cut at
/// odd (unaligned) places: every op leaves the arrays bit-identical to plain C's.
#[test]
fn triad_with_streaming_stores_agrees_on_unaligned_chunks() {
    let n = (1u64 << 20) + 13;
    let cuts = vec![1, 7, 4099, 300_001, n - 3];
    for op in 0..5 {
        let mut a = StepArgs::new(n, n);
        a.iparam[0] = op;
        a.fparam[0] = 3.0;
        check_all(KernelName::Triad, a, cuts.clone()).expect("agrees");
    }
    assert!(Kernel::variants(KernelName::Triad, Lang::C).contains(&Variant::Tuned));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn seed_agrees(n in 1u64..40, iters in 0i64..2000, cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        let mut a = StepArgs::new(n, n);
        a.iparam[0] = iters;
        check_all(KernelName::Seed, a, cuts)?;
    }

    #[test]
    fn nbody_agrees(systems in 1u64..6, steps in 0i64..300, cuts in prop::collection::vec(any::<u64>(), 0..4)) {
        let mut a = StepArgs::new(steps as u64, systems);
        a.iparam[0] = steps;
        check_all(KernelName::Nbody, a, cuts)?;
    }

    #[test]
    fn spectralnorm_agrees(n in 1u64..120, t in 0i64..2, cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        let mut a = StepArgs::new(n, n);
        a.iparam[0] = t;
        check_all(KernelName::Spectralnorm, a, cuts)?;
    }

    #[test]
    fn mandelbrot_agrees(n in 1u64..90, cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        check_all(KernelName::Mandelbrot, StepArgs::new(n, n), cuts)?;
    }

    #[test]
    fn fannkuch_agrees(n in 1u64..=8, cuts in prop::collection::vec(any::<u64>(), 0..6)) {
        let items = kernelpool_kernels::step::factorial(n).expect("small n");
        check_all(KernelName::Fannkuch, StepArgs::new(n, items), cuts)?;
    }

    #[test]
    fn triad_agrees(n in 1u64..3000, op in 0i64..5, scalar in -10.0f64..10.0, cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        let mut a = StepArgs::new(n, n);
        a.iparam[0] = op;
        a.fparam[0] = scalar;
        check_all(KernelName::Triad, a, cuts)?;
    }

    #[test]
    fn pi_agrees(n in 1u64..20_000, seed in any::<i64>(), cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        let mut a = StepArgs::new(n, n);
        a.iparam[0] = seed;
        check_all(KernelName::Pi, a, cuts)?;
    }

    #[test]
    fn laplace_agrees(n in 1u64..40, cuts in prop::collection::vec(any::<u64>(), 0..5)) {
        check_all(KernelName::Laplace, StepArgs::new(n, n), cuts)?;
    }

    #[test]
    fn splitmix64_agrees(seed in any::<u64>(), k in any::<u64>()) {
        let r = kernelpool_kernels::splitmix64_at(Lang::Rust, seed, k);
        for l in Lang::ALL {
            prop_assert_eq!(kernelpool_kernels::splitmix64_at(l, seed, k), r);
        }
    }
}
