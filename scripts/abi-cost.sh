#!/usr/bin/env bash
# Instructions per serial step of a trivial kernel (`seed`, 1 item), counted by callgrind
# (valgrind): through the Rust API and through the C ABI. Instruction counts do not move
# with the load on the machine, unlike times (cargo bench -p kernelpool-capi --bench ffi).
# Each program runs 100,000 steps; its baseline run (no steps) is subtracted.
# Needs valgrind (scripts/setup.sh --tests installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kernelpool-capi --example step_loop
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
rel="$target/release"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/lib"
cp "$rel/libkernelpool.so" "$tmp/lib/libkernelpool.so.0"
gcc -O2 -Iinclude crates/capi/benches/instructions/step_loop.c -L"$tmp/lib" -l:libkernelpool.so.0 -o "$tmp/c_step_loop"
count() { # program [arg]: instructions of one run
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_step() { # program
    local base full
    base=$(count "$1")
    full=$(count "$1" x)
    echo $(((full - base) / 100000))
}
rust=$(per_step "$rel/examples/step_loop")
c=$(LD_LIBRARY_PATH="$tmp/lib" per_step "$tmp/c_step_loop")
echo "instructions per serial step of seed (1 item): Rust API $rust, C ABI $c, C ABI over Rust $((c - rust))"
