#!/usr/bin/env bash
# The whole test suite, set-up included: every crate's unit, integration and doc tests,
# then the bindings drift check (regenerates the bindings with bindgen and compares).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# the C-ABI test links a C program to the cdylib, which `cargo test` alone does not build
cargo build --workspace --release
cargo test --workspace --release
cargo test --release -p kernelpool-kernels-sys --features bindgen
# the optional ndarray views over shared arrays
cargo test --release -p kernelpool-pool --features ndarray --lib shared_array
# the portable CPU switch: tuned kernels (runtime dispatch or scalar paths) build and give
# the plain kernels' answers without -march=native (own target directory: other flags)
RUSTFLAGS="-C target-cpu=x86-64-v2" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/portable" \
    cargo test --release -p kernelpool-kernels --test reference --test split
