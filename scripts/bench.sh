#!/usr/bin/env bash
# The main job on quick defaults: set-up, the Python side of the seed section (a project-local
# virtual environment with pinned numpy and numba, when python3 is there), then `kpool bench`:
# every kernel x language x executor x workers, verified, timed, the table on stdout, the
# report (report.md, results.json, results.csv, plots) in target/kpool-report/.
# Extra arguments go to `kpool bench` (e.g. --full, --kernel nbody, --no-python, --out DIR).
# Works with any target directory (CARGO_TARGET_DIR, build.target-dir): kpool is run
# through `cargo run`, never from ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
no_python=0
for arg in "$@"; do [ "$arg" = --no-python ] && no_python=1; done
if [ "$no_python" = 0 ]; then
    py="$(bash scripts/python-env.sh)" || true
    [ -n "$py" ] && export KPOOL_PYTHON="$py"
fi
cargo build --release -p kernelpool-cli --bin kpool
kpool() { cargo run --quiet --release -p kernelpool-cli --bin kpool -- "$@"; }
echo "== kpool bench $*"
kpool bench "$@"
