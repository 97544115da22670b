#!/usr/bin/env bash
# The Python side of `kpool bench`'s seed section: a project-local virtual environment,
# target/kpool-venv (gitignored), with pinned numpy and numba from the package index.
# Prints the interpreter's path on stdout and exits 0 when the environment is ready; prints
# the path and exits 2 when numpy/numba could not be installed; prints why on stderr and
# exits 1 when there is no usable python3 (no python3, no venv module, no index): `kpool bench` then
# says "not available" on those rows and nothing else fails.
# Environment: KPOOL_VENV (default target/kpool-venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
NUMPY=2.2.6
NUMBA=0.61.2
venv="${KPOOL_VENV:-target/kpool-venv}"
py="${PYTHON:-python3}"
say() { echo "kernelpool python-env: $*" >&2; }
if ! "$py" --version >/dev/null 2>&1; then
    say "no $py: the Python rows will say \"not available\""
    exit 1
fi
# What `python3 -m venv` needs (Debian splits it into python3-venv): setup.sh checks the same.
if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "$py has no venv/ensurepip module (Debian/Ubuntu: apt-get install python3-venv; scripts/setup.sh installs it)"
    exit 1
fi
stamp="$venv/.kpool-pins"
want="numpy==$NUMPY numba==$NUMBA"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating $venv with $want"
    "$py" -m venv "$venv" >&2
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "numpy==$NUMPY" "numba==$NUMBA" >&2; then
        say "pip could not install $want: the numba rows will say \"not available\""
        echo "$(cd "$venv" && pwd)/bin/python"
        exit 2
    fi
    echo "$want" >"$stamp"
fi
echo "$(cd "$venv" && pwd)/bin/python"
