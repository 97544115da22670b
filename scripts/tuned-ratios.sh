#!/usr/bin/env bash
# Speed of the tuned variants against the plain ones: for each kernel at the size of
# issue 13 and each language, plain and tuned runs interleaved (plain, tuned, plain, ...),
# whole-process wall time, best of REPEAT, and the ratio tuned/plain of the same language
# in the same run. Both outputs are checked to be identical. The machine is shared:
# note the load printed first, and compare ratios, not absolute times.
#
#   scripts/tuned-ratios.sh                      # 1 core (taskset -c 0), best of 3
#   CPUS=0,1 EXEC="threads --workers 2" scripts/tuned-ratios.sh
#   KERNELS="mandelbrot:4000" LANGS="c rust" REPEAT=5 scripts/tuned-ratios.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KPOOL=${KPOOL:-${CARGO_TARGET_DIR:-target}/release/kpool}
REPEAT=${REPEAT:-3}
CPUS=${CPUS:-0}
EXEC=${EXEC:-serial}
KERNELS=${KERNELS:-"nbody:5000000 spectralnorm:2000 mandelbrot:4000 fannkuch:11 triad:20000000 pi:100000000"}
LANGS=${LANGS:-"c cpp fortran rust"}
[ -x "$KPOOL" ] || { echo "build first: cargo build --release -p kernelpool-cli" >&2; exit 1; }

# shellcheck disable=SC2086 # EXEC is a list of words on purpose
run() { taskset -c "$CPUS" "$KPOOL" run "$1" --lang "$2" --variant "$3" --n "$4" --exec $EXEC; }

echo "# $(date -u +%FT%TZ) $(uptime)"
echo "# cpus $CPUS, exec $EXEC, best of $REPEAT, whole-process wall time"
echo "| kernel | N | lang | plain (s) | tuned (s) | tuned/plain |"
echo "|---|---:|---|---:|---:|---:|"
for kn in $KERNELS; do
    k=${kn%%:*}
    n=${kn##*:}
    for l in $LANGS; do
        if ! "$KPOOL" run "$k" --lang "$l" --variant tuned --n 1 >/dev/null 2>&1; then
            echo "| $k | $n | $l | | (no tuned variant) | |"
            continue
        fi
        best_plain="" best_tuned="" sum_plain="" sum_tuned=""
        for _ in $(seq "$REPEAT"); do
            for v in plain tuned; do
                start=$(date +%s.%N)
                sum=$(run "$k" "$l" "$v" "$n" 2>/dev/null | md5sum)
                t=$(echo "$(date +%s.%N) - $start" | bc -l)
                if [ "$v" = plain ]; then
                    sum_plain=$sum
                    if [ -z "$best_plain" ] || [ "$(echo "$t < $best_plain" | bc -l)" = 1 ]; then best_plain=$t; fi
                else
                    sum_tuned=$sum
                    if [ -z "$best_tuned" ] || [ "$(echo "$t < $best_tuned" | bc -l)" = 1 ]; then best_tuned=$t; fi
                fi
            done
        done
        same=""
        [ "$sum_plain" = "$sum_tuned" ] || same=" OUTPUT DIFFERS"
        printf "| %s | %s | %s | %.3f | %.3f | %.2f%s |\n" "$k" "$n" "$l" "$best_plain" "$best_tuned" \
            "$(echo "$best_tuned / $best_plain" | bc -l)" "$same"
    done
done
echo "# $(uptime)"
