#!/usr/bin/env bash
# The main job on quick defaults: set-up (compilers, Open MPI), the Python side of the seed
# section (a project-local virtual environment with pinned numpy and numba, when python3
# is there), then `kpool bench`: every kernel x variant x language x executor, verified,
# timed, the table on stdout, the report (report.md, results.json, results.csv, plots) in
# target/kpool-report/. kpool is built with the `mpi` feature, so the MPI cells run too.
# Extra arguments go to `kpool bench` (e.g. --full, --kernel nbody, --no-python, --out DIR).
# Works with any target directory (CARGO_TARGET_DIR, build.target-dir): kpool is run
# through `cargo run`, never from ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --mpi
no_python=0
for arg in "$@"; do [ "$arg" = --no-python ] && no_python=1; done
if [ "$no_python" = 0 ]; then
    py="$(bash scripts/python-env.sh)" || true
    [ -n "$py" ] && export KPOOL_PYTHON="$py"
fi
# Open MPI refuses to start as root unless told (containers and CI run as root).
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cargo build --release -p kernelpool-cli --bin kpool --features mpi
kpool() { cargo run --quiet --release -p kernelpool-cli --bin kpool --features mpi -- "$@"; }
echo "== kpool bench $*"
kpool bench "$@"
