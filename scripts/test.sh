#!/usr/bin/env bash
# The whole test suite, set-up included: every crate's unit, integration and doc tests,
# then the bindings and C header drift checks (bindgen and cbindgen regenerate, compare).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# the seed section's Python side (tests run it for real): target/kpool-venv with numba
if py="$(bash scripts/python-env.sh)"; then
    export KPOOL_PYTHON="$py" KPOOL_REQUIRE_PYTHON=1
fi
cargo build --workspace --release
# tests/c_abi.rs builds the C ABI itself, installs it in a scratch prefix and runs the C,
# C++, Python and CMake programs against it
cargo test --workspace --release
cargo test --release -p kernelpool-kernels-sys --features bindgen
# the C header drift check: regenerates include/kernelpool.h with cbindgen and compares
cargo test --release -p kernelpool-capi --features cbindgen --lib
# the optional ndarray views over shared arrays
cargo test --release -p kernelpool-pool --features ndarray --lib shared_array
