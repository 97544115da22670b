#!/usr/bin/env bash
# The main job on quick defaults: set-up, the course's seed example, then the cross-language
# benchmark (every kernel x language, verified against the published outputs, timed).
# Extra arguments go to `kpool bench` (e.g. --execs serial,threads,processes).
# Works with any target directory (CARGO_TARGET_DIR, build.target-dir): kpool is run
# through `cargo run`, never from ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p kernelpool-cli --bin kpool
kpool() { cargo run --quiet --release -p kernelpool-cli --bin kpool -- "$@"; }
echo "== kpool run seed --n 3"
kpool run seed --n 3
echo "== kpool bench --quick $*"
kpool bench --quick "$@"
