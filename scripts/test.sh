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
