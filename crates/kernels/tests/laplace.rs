//! laplace against an independent, straightforward computation (the classic loop: `Anew`
//! from `A`, the error, then the interior copied back), and the four languages against
//! the serial Rust output (no published reference output exists for laplace).

use kernelpool_kernels::{
    Buffer, Elem, Kernel, KernelName, Lang, Options, Serial, Step, StepArgs, programs,
};

/// The classic program, written out plainly: what `kpool run laplace --n N` must print.
fn classic(n: usize) -> String {
    let mut a = vec![0.0f64; n * n];
    for row in 0..n {
        a[row * n] = 1.0;
    }
    let mut anew = a.clone();
    let mut out = String::new();
    let (mut error, mut iter) = (1.0f64, 0);
    while error > 1e-6 && iter < 1000 {
        error = 0.0;
        for j in 1..n.saturating_sub(1) {
            for i in 1..n - 1 {
                anew[j * n + i] = 0.25
                    * (a[j * n + i + 1]
                        + a[j * n + i - 1]
                        + a[(j - 1) * n + i]
                        + a[(j + 1) * n + i]);
                error = error.max((anew[j * n + i] - a[j * n + i]).abs());
            }
        }
        for j in 1..n.saturating_sub(1) {
            for i in 1..n - 1 {
                a[j * n + i] = anew[j * n + i];
            }
        }
        if iter % 100 == 0 {
            out += &format!("{iter:5}, {error:.6}\n");
        }
        iter += 1;
    }
    out
}

fn run(lang: Lang, n: u64) -> String {
    let out = programs::run(
        Kernel::get(KernelName::Laplace, lang),
        &Options::new().n(n),
        &Serial,
    )
    .unwrap_or_else(|e| panic!("laplace/{lang} N={n}: {e}"));
    String::from_utf8(out.stdout).expect("text")
}

#[test]
fn small_grids_print_what_the_classic_loop_prints() {
    for n in [1, 2, 3, 4, 5, 8, 13, 32, 50] {
        let want = classic(n);
        for lang in Lang::ALL {
            assert_eq!(run(lang, n as u64), want, "laplace/{lang} N={n}");
        }
    }
    // Small grids converge before 1000 sweeps (the stop on the error is exercised)...
    assert_eq!(classic(4), "    0, 0.250000\n");
    assert!(classic(13).lines().count() < 10, "{}", classic(13));
    // ...larger ones run the 1000 sweeps and print 10 lines, from sweep 0.
    let big = classic(50);
    assert_eq!(big.lines().count(), 10, "{big}");
    assert!(big.starts_with("    0, 0.250000\n  100, "), "{big}");
}

#[test]
fn one_sweep_is_the_textbook_formula_bit_for_bit() {
    let n = 9usize;
    // A grid of distinct values, so every neighbour matters.
    let old: Vec<f64> = (0..n * n).map(|k| ((k * 37 % 101) as f64).sqrt()).collect();
    let mut want = old.clone();
    let mut want_err = 0.0f64;
    for i in 1..n - 1 {
        for j in 1..n - 1 {
            let k = i * n + j;
            let v = 0.25 * (old[k + 1] + old[k - 1] + old[k - n] + old[k + n]);
            want_err = want_err.max((v - old[k]).abs());
            want[k] = v;
        }
    }
    for lang in Lang::ALL {
        let mut a = Buffer::heap(Elem::F64, n * n, "old").expect("alloc");
        a.as_mut_slice::<f64>().expect("f64").copy_from_slice(&old);
        let mut b = Buffer::heap(Elem::F64, n * n, "new").expect("alloc");
        let p = {
            let k = Kernel::get(KernelName::Laplace, lang);
            let step = Step::new(k, StepArgs::new(n as u64, n as u64), vec![&mut a, &mut b])
                .expect("step");
            step.run_chunks([0..3, 3..4, 4..9]).expect("sweep")
        };
        let got = b.as_slice::<f64>().expect("f64");
        let same = got
            .iter()
            .zip(&want)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "laplace/{lang}: {got:?}\nwant {want:?}");
        assert_eq!(p.float(0).to_bits(), want_err.to_bits(), "laplace/{lang}");
    }
}

#[test]
fn every_language_prints_what_serial_rust_prints() {
    let want = run(Lang::Rust, 256);
    assert_eq!(want.lines().count(), 10);
    for lang in Lang::ALL {
        assert_eq!(run(lang, 256), want, "laplace/{lang} N=256");
    }
}

#[test]
fn bad_grids_are_refused_naming_the_problem() {
    let e = programs::validate(KernelName::Laplace, &Options::new().n(0)).expect_err("N=0");
    assert!(e.to_string().contains("N must be at least 1"), "{e}");
    let e = programs::validate(KernelName::Laplace, &Options::new().n(1 << 25)).expect_err("big");
    assert!(e.to_string().contains("laplace supports N up to"), "{e}");
    // A step whose grids are too short for N x N.
    let mut a = Buffer::heap(Elem::F64, 15, "old").expect("alloc");
    let mut b = Buffer::heap(Elem::F64, 16, "new").expect("alloc");
    let k = Kernel::get(KernelName::Laplace, Lang::C);
    let e = Step::new(k, StepArgs::new(4, 4), vec![&mut a, &mut b]).expect_err("short");
    assert!(e.to_string().contains("needs at least 16"), "{e}");
}
