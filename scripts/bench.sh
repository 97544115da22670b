#!/usr/bin/env bash
# The main job on quick defaults: set-up, the course's seed example, then the cross-language
# benchmark (every kernel x language, verified against the published outputs, timed).
# Extra arguments go to `kpool bench` (e.g. --execs serial,threads,processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p kernelpool-cli
echo "== kpool run seed --n 3"
./target/release/kpool run seed --n 3
echo "== kpool bench --quick $*"
./target/release/kpool bench --quick "$@"
