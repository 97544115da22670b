//! One serial step of the built-in `seed` kernel (C, 1 item) through the Rust API, 100,000
//! times: the Rust side of what `scripts/abi-cost.sh` counts. No argument: 0 steps.

use kernelpool_kernels::{Elem, Executor, Kernel, KernelName, Lang, Serial, Step, StepArgs};

fn main() {
    let kernel = Kernel::get(KernelName::Seed, Lang::C);
    let mut buf = Serial.alloc(Elem::I64, 1, "out").expect("buffer");
    let n = if std::env::args().count() > 1 {
        100_000
    } else {
        0
    };
    let mut args = StepArgs::new(1, 1);
    args.iparam[0] = 1;
    for _ in 0..n {
        let step = Step::new(kernel.clone(), args, [&mut buf]).expect("step");
        std::hint::black_box(Serial.run(std::hint::black_box(&step)).expect("run"));
    }
    println!("{n}");
}
