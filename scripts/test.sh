#!/usr/bin/env bash
# The whole test suite, set-up included: every crate's unit, integration and doc tests,
# then the bindings and C header drift checks (bindgen and cbindgen regenerate, compare).
# The `mpi` feature is on: the MPI executor's tests run `mpirun -n 2` and `-n 3` (setup
# --tests installs Open MPI; the tests run as root here, which Open MPI refuses unless told).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# The seed section's Python side, which the tests run for real: target/kpool-venv with
# pinned numpy and numba. A failure here stops the suite (the tests need it).
if ! py="$(bash scripts/python-env.sh)"; then
    echo "kernelpool test: scripts/python-env.sh failed (above): the tests run kpool bench's seed section with Python and numba" >&2
    exit 1
fi
export KPOOL_PYTHON="$py"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo build --workspace --release --features mpi
# tests/c_abi.rs builds the C ABI itself, installs it in a scratch prefix and runs the C,
# C++, Python and CMake programs against it
cargo test --workspace --release --features mpi
cargo test --release -p kernelpool-kernels-sys --features bindgen
# the C header drift check: regenerates include/kernelpool.h with cbindgen and compares
cargo test --release -p kernelpool-capi --features cbindgen --lib
# the optional ndarray views over shared arrays
cargo test --release -p kernelpool-pool --features ndarray --lib shared_array
# the portable CPU switch: tuned kernels (runtime dispatch or scalar paths) build and give
# the plain kernels' answers without -march=native (own target directory: other flags)
RUSTFLAGS="-C target-cpu=x86-64-v2" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/portable" \
    cargo test --release -p kernelpool-kernels --test reference --test split
