#!/usr/bin/env bash
# MPI speedup over serial, measured interleaved: for each kernel, REPEAT rounds of
# (serial run, `mpirun -n RANKS` run), each timed by kpool itself (the kernel steps and,
# under MPI, their transfers; process start-up and MPI_Init excluded); prints the best
# of each and the ratio. Builds kpool with the mpi feature first (Open MPI needed:
# scripts/setup.sh --mpi).
# Usage: scripts/mpi-speedup.sh [RANKS] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks="${1:-2}"
repeat="${2:-3}"
cargo build --quiet --release -p kernelpool-cli --features mpi
kpool="${CARGO_TARGET_DIR:-target}/release/kpool"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
over=()
[ "$ranks" -gt "$(nproc)" ] && over=(--oversubscribe)
# seconds from kpool's timing line ("kpool: K/L N=.. on E: 1.234 s" or "12.3 ms")
secs() { awk '/^kpool: .* on .*: / { v=$(NF-1); u=$NF; if (u=="ms") v/=1e3; else if (u=="µs") v/=1e6; print v; exit }'; }
printf '| kernel | N | serial best (s) | mpi(%s ranks) best (s) | speedup |\n|---|---|---:|---:|---:|\n' "$ranks"
while read -r kernel args; do
    s_best=1e9 m_best=1e9
    for _ in $(seq "$repeat"); do
        # shellcheck disable=SC2086
        s=$("$kpool" run $kernel $args 2>&1 >/dev/null | secs)
        # shellcheck disable=SC2086
        # </dev/null: mpirun forwards its stdin to rank 0, which would eat this list
        m=$(mpirun -n "$ranks" "${over[@]}" "$kpool" run $kernel $args --exec mpi 2>&1 >/dev/null </dev/null | secs)
        if [ -z "$s" ] || [ -z "$m" ]; then
            echo "mpi-speedup: $kernel $args: a run failed (no timing line)" >&2
            exit 1
        fi
        s_best=$(awk -v a="$s" -v b="$s_best" 'BEGIN { print (a < b) ? a : b }')
        m_best=$(awk -v a="$m" -v b="$m_best" 'BEGIN { print (a < b) ? a : b }')
    done
    awk -v k="$kernel" -v n="$args" -v s="$s_best" -v m="$m_best" \
        'BEGIN { printf "| %s | %s | %.3f | %.3f | %.2f |\n", k, n, s, m, s / m }'
done <<'LIST'
mandelbrot --n 4000
fannkuch --n 11
pi --n 300000000
nbody --n 200000 --systems 32
laplace --n 1024
LIST
