#!/usr/bin/env bash
# Fuzzes the process pool's wire with cargo-fuzz (libFuzzer, nightly toolchain): each
# target of fuzz/ runs for SECONDS (default 20), starting from its committed seeds
# (fuzz/corpus/<target>/seed-*, made by fuzz/make-corpus.py) and from what earlier runs
# found (fuzz/target/corpus/<target>, kept between runs, never committed). Any crash, panic,
# failed check, hang (10 s on one input) or leak fails the script; libFuzzer saves the input
# in fuzz/artifacts/<target>/ and prints the command that replays it.
#
#   frames       the frame decoder (RecvBuffer, next_frame) fed a stream in arbitrary chunks
#   messages     postcard decoding of ToWorker and FromWorker frames; worker-token and
#                /proc/self/maps parsers
#   rings        the consumer of a ring of frames in the control block, its indices and
#                bytes forged
#   descriptors  frames and memfds (up to 16 on one message) over a real socket pair,
#                received through the pool's Channel::receive
#
# frames and messages exercise safe Rust only: they run without a sanitizer (3 to 7 times
# the executions). descriptors runs under AddressSanitizer (rustix's control-message code
# is unsafe), and so does rings (raw copies out of shared memory). Each sanitizer has its own target directory, so neither rebuilds the other.
# Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) when it is missing.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (e.g. scripts/fuzz.sh 180 descriptors)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/require-nightly.sh

secs="${1:-20}"
[ $# -gt 0 ] && shift
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "kernelpool fuzz: SECONDS must be a whole number of seconds, got '$secs'" >&2
    exit 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frames messages rings descriptors)

require_nightly fuzz
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "kernelpool fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi
echo "kernelpool fuzz: $(cargo fuzz --version)" >&2

sanitizer_of() {
    case "$1" in
    frames | messages) echo none ;;
    descriptors | rings) echo address ;;
    *)
        echo "kernelpool fuzz: unknown target '$1' (frames, messages, rings, descriptors)" >&2
        exit 2
        ;;
    esac
}

cd fuzz
for t in "${targets[@]}"; do
    san="$(sanitizer_of "$t")"
    found="target/corpus/$t"
    mkdir -p "$found"
    echo "kernelpool fuzz: $t for ${secs} s (sanitizer: $san)" >&2
    start=$SECONDS
    # New inputs go into the first corpus directory; the committed seeds are only read.
    # (libFuzzer's progress lines are left out of the log.)
    set +e
    cargo +nightly fuzz run --sanitizer "$san" --target-dir "target/$san" "$t" \
        "$found" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 2>&1 |
        grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" != 0 ]; then
        echo "kernelpool fuzz: $t FAILED (status $status; the input is in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    echo "kernelpool fuzz: $t: no crash in $((SECONDS - start)) s" >&2
done
