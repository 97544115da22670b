//! Every kernel in every language and variant against the published reference outputs,
//! and the languages and variants against each other.

use kernelpool_kernels::{
    Kernel, KernelName, Lang, Options, Serial, Variant, programs, reference, splitmix64_at,
};

fn run(k: KernelName, l: Lang, n: u64) -> Vec<u8> {
    run_opts(&Kernel::get(k, l), &Options::new().n(n))
}

fn run_opts(kernel: &Kernel, opts: &Options) -> Vec<u8> {
    programs::run(kernel.clone(), opts, &Serial)
        .unwrap_or_else(|e| panic!("{kernel:?} {opts:?}: {e}"))
        .stdout
}

/// Every variant of `k` written in `l` (plain first).
fn variants(k: KernelName, l: Lang) -> Vec<Kernel> {
    Kernel::variants(k, l)
        .into_iter()
        .map(|v| Kernel::get_variant(k, l, v).expect("listed variant exists"))
        .collect()
}

#[test]
fn every_kernel_in_every_language_matches_the_published_output() {
    for k in KernelName::ALL {
        let Some(n) = reference::reference_size(k) else {
            continue;
        };
        let want = reference::expected(k, n).expect("reference exists");
        for l in Lang::ALL {
            for kernel in variants(k, l) {
                assert!(
                    run_opts(&kernel, &Options::new().n(n)) == want,
                    "{kernel:?} N={n} differs from the published output"
                );
            }
        }
    }
}

/// The tuned variants exist where the README says, and nowhere else: `seed` has none.
#[test]
fn tuned_variants_are_listed_where_they_are_written() {
    let tuned: Vec<(KernelName, Lang)> = KernelName::ALL
        .into_iter()
        .flat_map(|k| Lang::ALL.into_iter().map(move |l| (k, l)))
        .filter(|&(k, l)| Kernel::variants(k, l).contains(&Variant::Tuned))
        .collect();
    let mut want = Vec::new();
    for k in [
        KernelName::Nbody,
        KernelName::Spectralnorm,
        KernelName::Mandelbrot,
        KernelName::Fannkuch,
        KernelName::Triad,
        KernelName::Pi,
    ] {
        for l in Lang::ALL {
            // no Fortran construct gets gfortran to emit the non-temporal stores the tuned
            // triad is about (native/fortran/tuned.f90)
            if !(k == KernelName::Triad && l == Lang::Fortran) {
                want.push((k, l));
            }
        }
    }
    assert_eq!(tuned, want);
    for k in KernelName::ALL {
        for l in Lang::ALL {
            assert_eq!(Kernel::variants(k, l)[0], Variant::Plain, "{k}/{l}");
            for v in Kernel::variants(k, l) {
                let kernel = Kernel::get_variant(k, l, v).expect("listed");
                assert_eq!((kernel.name(), kernel.lang(), kernel.variant()), (k, l, v));
            }
        }
    }
    let plain = Kernel::get_variant(KernelName::Pi, Lang::C, Variant::Plain).expect("plain");
    assert_eq!(
        plain.address(),
        Kernel::get(KernelName::Pi, Lang::C).address()
    );
    let e = Kernel::get_variant(KernelName::Seed, Lang::Fortran, Variant::Tuned).unwrap_err();
    let msg = e.to_string();
    for word in ["seed", "tuned", "fortran", "plain"] {
        assert!(msg.contains(word), "{msg}");
    }
    assert!(matches!(
        Kernel::by_names_variant("pi", "c", "fastest"),
        Err(kernelpool_kernels::Error::UnknownVariant(_))
    ));
    assert_eq!(Variant::Tuned as u32, 1);
    assert_eq!("TUNED".parse::<Variant>().expect("parses"), Variant::Tuned);
}

/// Sizes beyond the published ones (odd widths, sizes that are not multiples of the
/// tuned kernels' 8 lanes or rows, the ensemble form): every variant prints exactly what
/// the plain C kernel prints.
#[test]
fn every_variant_prints_what_plain_prints_at_other_sizes() {
    let cases: &[(KernelName, &[u64])] = &[
        (KernelName::Mandelbrot, &[1, 2, 7, 8, 9, 15, 63, 130, 257]),
        (KernelName::Spectralnorm, &[1, 2, 7, 8, 9, 17, 101, 250]),
        (KernelName::Nbody, &[1, 2, 17, 3000]),
        (KernelName::Fannkuch, &[1, 2, 3, 5, 8, 9]),
        (KernelName::Pi, &[1, 7, 8, 9, 1001, 250_003]),
        (KernelName::Triad, &[1, 9, 1001, (1 << 20) + 5]),
    ];
    for &(k, sizes) in cases {
        for &n in sizes {
            let opts = Options::new().n(n).systems(if n < 100 { 3 } else { 1 });
            let want = run_opts(&Kernel::get(k, Lang::C), &opts);
            for l in Lang::ALL {
                for kernel in variants(k, l) {
                    assert!(
                        run_opts(&kernel, &opts) == want,
                        "{kernel:?} N={n} differs from plain C"
                    );
                }
            }
        }
    }
}

#[test]
fn splitmix64_reproduces_vignas_reference_in_every_language() {
    let want = reference::splitmix64_first5();
    assert_eq!(want.len(), 5);
    for l in Lang::ALL {
        let got: Vec<u64> = (0..5).map(|k| splitmix64_at(l, 1234567, k)).collect();
        assert_eq!(got, want, "splitmix64 in {l}");
    }
}

#[test]
fn seed_prints_the_course_example() {
    for l in Lang::ALL {
        assert_eq!(
            run(KernelName::Seed, l, 3),
            b"10000000\n40000000\n90000000\n",
            "seed/{l}"
        );
        let out = run(KernelName::Seed, l, 50);
        assert_eq!(
            reference::verify(KernelName::Seed, 50, &out),
            Some(true),
            "seed/{l} N=50"
        );
    }
}

#[test]
fn triad_validates_and_pi_agrees_across_languages() {
    for l in Lang::ALL {
        for kernel in variants(KernelName::Triad, l) {
            let out = run_opts(&kernel, &Options::new().n(10_000));
            assert!(
                out.starts_with(b"Solution Validates"),
                "{kernel:?}: {}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    let c = run(KernelName::Pi, Lang::C, 100_000);
    let text = String::from_utf8(c.clone()).expect("utf8");
    let est: f64 = text
        .lines()
        .nth(1)
        .expect("estimate line")
        .parse()
        .expect("float");
    assert!(
        (est - std::f64::consts::PI).abs() < 0.02,
        "pi estimate {est}"
    );
    for l in Lang::ALL {
        for kernel in variants(KernelName::Pi, l) {
            assert_eq!(
                run_opts(&kernel, &Options::new().n(100_000)),
                c,
                "{kernel:?}"
            );
        }
    }
}

#[test]
fn nbody_ensemble_system_zero_is_the_published_problem() {
    let opts = Options::new().n(1000).systems(5);
    let mut outs = Vec::new();
    for l in Lang::ALL {
        for kernel in variants(KernelName::Nbody, l) {
            let out = run_opts(&kernel, &opts);
            assert!(
                out.starts_with(reference::NBODY_1000),
                "{kernel:?} ensemble system 0"
            );
            assert_eq!(String::from_utf8_lossy(&out).lines().count(), 10);
            outs.push(out);
        }
    }
    assert!(
        outs.windows(2).all(|w| w[0] == w[1]),
        "ensemble differs between languages"
    );
    // perturbed systems really differ from system 0
    let text = String::from_utf8(outs[0].clone()).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_ne!(lines[1], lines[3]);
}

/// The copy of the reference outputs in this repository is byte-identical to the published
/// ones in `../shared/reference-outputs` (CI always has them: there, their absence fails).
#[test]
fn vendored_reference_outputs_match_shared() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/reference-outputs");
    if !shared.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {}",
            shared.display()
        );
        eprintln!(
            "note: {} not present; vendored copy not compared",
            shared.display()
        );
        return;
    }
    let mut compared = 0;
    for entry in std::fs::read_dir(&shared).expect("read shared") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        let ours =
            std::fs::read(root.join("reference-outputs").join(&name)).expect("vendored copy");
        assert!(
            ours == std::fs::read(&path).expect("shared file"),
            "{name:?} differs"
        );
        compared += 1;
    }
    assert!(compared >= 6);
}
