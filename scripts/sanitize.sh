#!/usr/bin/env bash
# The kernels' and the pool's tests under AddressSanitizer (nightly toolchain): Rust code
# with -Zsanitizer=address, and the C, C++ and Fortran kernels with -fsanitize=address
# (crates/kernels-sys/build.rs adds it when the target has cfg sanitize="address"); rustc's
# ASan runtime serves both. Builds in target/asan (its own directory: nothing else is
# rebuilt), in release mode as scripts/test.sh, for the CPU that .cargo/config.toml names.
#
# Runs the unit, integration and doc tests of kernelpool-kernels and kernelpool-pool
# (doc tests get the flags through RUSTDOCFLAGS: built without them, they do not link),
# worker processes included (they are the test binaries again). Left out, and why:
#   - benches: timings, not correctness (criterion; `cargo test` does not run them);
#   - func::tests::functions_outside_the_executable_are_refused: it takes the address of
#     libc's strlen as a function outside the executable, but ASan's runtime, linked into
#     the executable, intercepts strlen, so the address it gets is inside (the check it
#     tests is unaffected; scripts/test.sh runs it).
# ASAN_OPTIONS (yours are kept after these):
#   handle_segv=0, handle_sigbus=0: a worker that dies of SIGSEGV or SIGBUS must die of the
#     signal, as the fault tests expect, not exit 1 after ASan's report (ASan still reports
#     every bad access it instruments: those are caught before they fault);
#   detect_leaks=1: LeakSanitizer at exit in every test process and worker;
#   abort_on_error=0, exitcode=23 (the default): an ASan error fails the test (a worker that
#     finds one exits 23, which the pool reports as a crash with status 23, failing its test);
#   detect_stack_use_after_return=0: the runtime's fake stack (on by default since LLVM 15)
#     gives frames 32-byte alignment, and gcc's instrumented kernels load their 64-byte
#     aligned locals with aligned AVX-512 moves on CPUs that have it: a SIGSEGV in the tuned
#     C++ mandelbrot (`vmovdqa64` from a fake frame). Stack use after return is then not
#     checked; every other access is.
#
# Usage: scripts/sanitize.sh [cargo test options, e.g. --test chaos]  (no `--`: the
# script passes the test harness its own arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require-nightly.sh
require_nightly sanitize

target="$(rustc +nightly -vV | sed -n 's/^host: //p')"
if [ "$target" != x86_64-unknown-linux-gnu ]; then
    echo "kernelpool sanitize: AddressSanitizer is set up for x86_64-unknown-linux-gnu, this host is $target" >&2
    exit 1
fi

# RUSTFLAGS replaces .cargo/config.toml's rustflags: name the CPU again (build.rs reads it).
export RUSTFLAGS="-Zsanitizer=address -Ctarget-cpu=native"
export RUSTDOCFLAGS="$RUSTFLAGS"
export ASAN_OPTIONS="handle_segv=0:handle_sigbus=0:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# The soak's default is 30 s; under ASan it runs 15 s (and still at least 10^6 tasks).
export KERNELPOOL_SOAK_SECS="${KERNELPOOL_SOAK_SECS:-15}"
echo "kernelpool sanitize: RUSTFLAGS=\"$RUSTFLAGS\" ASAN_OPTIONS=\"$ASAN_OPTIONS\"" >&2
for arg in "$@"; do
    if [ "$arg" = -- ]; then
        echo "kernelpool sanitize: pass cargo test options only (no --)" >&2
        exit 2
    fi
done
cargo +nightly test --release --target "$target" --target-dir target/asan --no-fail-fast \
    -p kernelpool-kernels -p kernelpool-pool "$@" -- \
    --skip func::tests::functions_outside_the_executable_are_refused
echo "kernelpool sanitize: no error found" >&2
