#!/usr/bin/env bash
# Installs what kernelpool needs on a Debian/Ubuntu machine that has rustup and gcc, when it
# is missing: g++ and gfortran (always), libclang (for the bindgen drift check, with
# --tests) and the rustfmt/clippy components (with --tests). Without root or sudo it prints
# exactly what to install and stops.
set -euo pipefail

for_tests=0
[ "${1:-}" = "--tests" ] && for_tests=1

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v gfortran >/dev/null 2>&1 || need+=(gfortran)
if [ "$for_tests" = 1 ]; then
    if ! compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null && ! compgen -G "/usr/lib/*/libclang*.so*" >/dev/null; then
        need+=(libclang-dev)
    fi
fi

if [ ${#need[@]} -gt 0 ]; then
    echo "kernelpool setup: installing ${need[*]}" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "kernelpool setup: missing ${need[*]}; install them with:" >&2
        echo "    sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

if [ "$for_tests" = 1 ] && command -v rustup >/dev/null 2>&1; then
    for comp in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
    done
fi
