//! Bad input to the safe API gives a clear error, never a panic or a crash.

use kernelpool_kernels::{
    Buffer, Elem, Error, Kernel, KernelName, Lang, Options, Serial, Step, StepArgs, programs,
};

#[test]
fn unknown_names_are_errors() {
    let e = Kernel::by_names("nope", "c").unwrap_err();
    assert!(
        matches!(e, Error::UnknownKernel(ref s) if s == "nope"),
        "{e}"
    );
    let e = Kernel::by_names("pi", "cobol").unwrap_err();
    assert!(e.to_string().contains("cobol"));
}

#[test]
fn invalid_sizes_are_refused_before_allocation() {
    for k in KernelName::ALL {
        let e = programs::validate(k, &Options::new().n(0)).unwrap_err();
        assert!(matches!(e, Error::InvalidSize { .. }), "{k}: {e}");
    }
    let fk = Options::new().n(13);
    assert!(programs::validate(KernelName::Fannkuch, &fk).is_err());
    let huge = Options::new().n(u64::MAX / 2);
    for k in [
        KernelName::Seed,
        KernelName::Mandelbrot,
        KernelName::Triad,
        KernelName::Spectralnorm,
    ] {
        let e = programs::run(Kernel::get(k, Lang::C), &huge, &Serial).unwrap_err();
        assert!(
            matches!(e, Error::TooLarge { .. } | Error::InvalidSize { .. }),
            "{k}: {e}"
        );
    }
    let no_systems = Options::new().systems(0);
    assert!(programs::validate(KernelName::Nbody, &no_systems).is_err());
}

#[test]
fn steps_check_their_buffers() {
    let k = Kernel::get(KernelName::Spectralnorm, Lang::Fortran);
    let mut short = Buffer::heap(Elem::F64, 5, "t").expect("alloc");
    let mut ok = Buffer::heap(Elem::F64, 10, "t").expect("alloc");
    let e = Step::new(k.clone(), StepArgs::new(10, 10), vec![&mut short, &mut ok]).unwrap_err();
    assert!(e.to_string().contains("buffer 0"), "{e}");
    let mut wrong_type = Buffer::heap(Elem::I64, 10, "t").expect("alloc");
    assert!(
        Step::new(
            k.clone(),
            StepArgs::new(10, 10),
            vec![&mut wrong_type, &mut ok]
        )
        .is_err()
    );
    assert!(Step::new(k.clone(), StepArgs::new(10, 10), vec![&mut ok]).is_err());
    let mut other = Buffer::heap(Elem::F64, 10, "t").expect("alloc");
    let step = Step::new(k, StepArgs::new(10, 10), vec![&mut ok, &mut other]).expect("valid");
    let e = step.run_chunk(5..11).unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    let mut triad_args = StepArgs::new(4, 4);
    triad_args.iparam[0] = 9;
    let mut bufs: Vec<Buffer> = (0..3)
        .map(|_| Buffer::heap(Elem::F64, 4, "t").expect("alloc"))
        .collect();
    assert!(
        Step::new(
            Kernel::get(KernelName::Triad, Lang::C),
            triad_args,
            bufs.iter_mut()
        )
        .is_err()
    );
}

#[test]
fn native_kernels_reject_bad_ranges_themselves() {
    // Called through the raw escape hatch, every language's kernel refuses a range past
    // `items` with KP_KERNEL_BAD_ARGS instead of writing out of bounds.
    let mut out = [0i64; 4];
    for l in Lang::ALL {
        for k in KernelName::ALL {
            let kernel = Kernel::get(k, l);
            // SAFETY: `kernel` lives until the end of this iteration, past every call.
            let f = unsafe { kernel.raw() };
            let mut partial = [0i64; 4];
            let args = kernelpool_kernels::ffi::kp_kargs {
                n: 3,
                items: 4,
                iparam: [0; 4],
                fparam: [0.0; 4],
                buf: [
                    out.as_mut_ptr().cast(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ],
                len: [4, 0, 0, 0],
                partial: partial.as_mut_ptr(),
            };
            // SAFETY: the kernels check the range before touching any buffer; 5 > items.
            let code = unsafe { f(&args, 0, 5) };
            assert_eq!(code, kernelpool_kernels::ffi::KP_KERNEL_BAD_ARGS, "{k}/{l}");
            // SAFETY: as above; begin > end.
            let code = unsafe { f(&args, 3, 2) };
            assert_eq!(code, kernelpool_kernels::ffi::KP_KERNEL_BAD_ARGS, "{k}/{l}");
        }
    }
}

#[test]
fn memory_that_cannot_hold_a_buffer_is_a_typed_error_without_a_kernel() {
    let mem = kernelpool_kernels::HeapMemory::new(16, "small").expect("alloc");
    let e = Buffer::from_memory(Elem::F64, 4, Box::new(mem)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadMemory {
                elem: Elem::F64,
                len: 4,
                bytes: 16,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("kernel"), "{e}");
}

/// An executor that refuses steps over `max_items`, counts its allocations, and can hand
/// out buffers of another element type or length than asked for.
#[derive(Debug)]
struct Picky {
    max_items: u64,
    allocs: std::sync::atomic::AtomicUsize,
    wrong: Option<(Elem, usize)>,
}

impl Picky {
    fn new(max_items: u64, wrong: Option<(Elem, usize)>) -> Picky {
        Picky {
            max_items,
            allocs: 0.into(),
            wrong,
        }
    }
}

impl kernelpool_kernels::Executor for Picky {
    fn describe(&self) -> String {
        "picky".into()
    }
    fn workers(&self) -> usize {
        1
    }
    fn check_items(&self, items: u64) -> kernelpool_kernels::Result<()> {
        if items > self.max_items {
            return Err(Error::TooManyChunks {
                items,
                chunk: 1,
                count: items,
                max: self.max_items,
            });
        }
        Ok(())
    }
    fn alloc(&self, elem: Elem, len: usize, what: &str) -> kernelpool_kernels::Result<Buffer> {
        self.allocs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.wrong {
            Some((elem, extra)) => Buffer::heap(elem, len + extra, what),
            None => Buffer::heap(elem, len, what),
        }
    }
    fn run(&self, step: &Step<'_>) -> kernelpool_kernels::Result<kernelpool_kernels::Partial> {
        kernelpool_kernels::Executor::run(&Serial, step)
    }
}

#[test]
fn a_step_size_the_executor_refuses_is_refused_before_any_allocation() {
    for k in KernelName::ALL {
        let picky = Picky::new(0, None);
        let e = programs::run(Kernel::get(k, Lang::C), &Options::new().n(5), &picky)
            .expect_err("every step has items");
        assert!(matches!(e, Error::TooManyChunks { .. }), "{k}: {e}");
        assert_eq!(
            picky.allocs.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{k}: a buffer was allocated before the step size was refused"
        );
        // The step sizes asked about are the real ones: 5! for fannkuch, systems for nbody.
        let enough = programs::step_items(k, 5, &Options::new().n(5));
        let picky = Picky::new(enough, None);
        programs::run(Kernel::get(k, Lang::C), &Options::new().n(5), &picky)
            .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
}

#[test]
fn an_executor_alloc_of_the_wrong_type_or_length_is_an_error_not_a_panic() {
    let with_buffers = [
        KernelName::Seed,
        KernelName::Nbody,
        KernelName::Spectralnorm,
        KernelName::Mandelbrot,
        KernelName::Triad,
    ];
    for k in with_buffers {
        for wrong in [
            (Elem::U8, 0),
            (Elem::I64, 0),
            (Elem::F64, 0),
            (Elem::F64, 3),
        ] {
            let picky = Picky::new(u64::MAX, Some(wrong));
            let r = std::panic::catch_unwind(|| {
                programs::run(Kernel::get(k, Lang::Rust), &Options::new().n(16), &picky)
            })
            .unwrap_or_else(|_| panic!("{k} with {wrong:?} panicked"));
            let right = match k {
                KernelName::Seed => Elem::I64,
                KernelName::Mandelbrot => Elem::U8,
                _ => Elem::F64,
            };
            if wrong == (right, 0) {
                assert!(r.is_ok(), "{k}: {r:?}");
                continue;
            }
            let e = r.expect_err("a buffer other than the one asked for");
            assert!(matches!(e, Error::BadMemory { .. }), "{k} {wrong:?}: {e}");
            assert!(e.to_string().contains("picky's alloc returned"), "{e}");
        }
    }
}
