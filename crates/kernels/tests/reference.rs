//! Every kernel in every language against the published reference outputs, and the
//! languages against each other.

use kernelpool_kernels::{
    Kernel, KernelName, Lang, Options, Serial, programs, reference, splitmix64_at,
};

fn run(k: KernelName, l: Lang, n: u64) -> Vec<u8> {
    programs::run(Kernel::get(k, l), &Options::new().n(n), &Serial)
        .unwrap_or_else(|e| panic!("{k}/{l} N={n}: {e}"))
        .stdout
}

#[test]
fn every_kernel_in_every_language_matches_the_published_output() {
    for k in KernelName::ALL {
        let Some(n) = reference::reference_size(k) else {
            continue;
        };
        let want = reference::expected(k, n).expect("reference exists");
        for l in Lang::ALL {
            assert!(
                run(k, l, n) == want,
                "{k}/{l} N={n} differs from the published output"
            );
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
        let out = run(KernelName::Triad, l, 10_000);
        assert!(
            out.starts_with(b"Solution Validates"),
            "triad/{l}: {}",
            String::from_utf8_lossy(&out)
        );
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
        assert_eq!(run(KernelName::Pi, l, 100_000), c, "pi/{l}");
    }
}

#[test]
fn nbody_ensemble_system_zero_is_the_published_problem() {
    let opts = Options::new().n(1000).systems(5);
    let mut outs = Vec::new();
    for l in Lang::ALL {
        let out = programs::run(Kernel::get(KernelName::Nbody, l), &opts, &Serial)
            .expect("nbody")
            .stdout;
        assert!(
            out.starts_with(reference::NBODY_1000),
            "nbody/{l} ensemble system 0"
        );
        assert_eq!(String::from_utf8_lossy(&out).lines().count(), 10);
        outs.push(out);
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
