#!/usr/bin/env bash
# Builds and installs kernelpool's C ABI for C, C++ and other languages:
#   $PREFIX/include/kernelpool.h, kernelpool.hpp, kernelpool/kernels.h   the headers
#   $PREFIX/lib/libkernelpool.so.X.Y.Z (+ .so.X, the SONAME, and .so)     the shared library
#   $PREFIX/lib/libkernelpool.a                                          the static library
#   $PREFIX/lib/pkgconfig/kernelpool.pc                                  for pkg-config / CMake
#   $PREFIX/libexec/kernelpool/kpool-worker       the generic worker (for hosts such as Python)
#
# Usage: PREFIX=/some/prefix scripts/install.sh [--no-build]
#   PREFIX      where to install (default /usr/local)
#   DESTDIR     staged install: files go to $DESTDIR$PREFIX, kernelpool.pc names $PREFIX
#   LIBDIR      the library directory (default $PREFIX/lib)
#   --no-build  install what the last `cargo build --release -p kernelpool-capi -p
#               kernelpool-pool` left in the target directory (CARGO_TARGET_DIR or
#               cargo's own) instead of building it first
#   KERNELPOOL_PROFILE  the cargo profile to install from (default release)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
    case "$arg" in
    --no-build) build=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "kernelpool install: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { echo "kernelpool install: $*" >&2; }

PREFIX="${PREFIX:-/usr/local}"
case "$PREFIX" in
/*) ;;
*) PREFIX="$PWD/$PREFIX" ;;
esac
LIBDIR="${LIBDIR:-$PREFIX/lib}"
DESTDIR="${DESTDIR:-}"

# The workspace version ([workspace.package] of Cargo.toml), X.Y.Z.
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
major="${version%%.*}"
[ -n "$version" ] || { say "error: no version in Cargo.toml's [workspace.package]"; exit 1; }

if [ "$build" = 1 ]; then
    say "building (cargo build --release -p kernelpool-capi -p kernelpool-pool)"
    cargo build --release -p kernelpool-capi -p kernelpool-pool
fi
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target="$CARGO_TARGET_DIR"
else
    target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
fi
out="$target/${KERNELPOOL_PROFILE:-release}"
for f in libkernelpool.so libkernelpool.a kpool-worker; do
    [ -f "$out/$f" ] || {
        say "error: $out/$f is missing: run without --no-build (or cargo build --release -p kernelpool-capi -p kernelpool-pool)"
        exit 1
    }
done

# What the static library needs besides itself (rustc --print native-static-libs for
# kernelpool-capi as a staticlib: the Fortran and C++ runtimes of the native kernels, and
# what Rust's std needs).
static_libs="-lstdc++ -lgfortran -lm -lgcc_s -lutil -lrt -lpthread -ldl -lc"

inc="$DESTDIR$PREFIX/include"
lib="$DESTDIR$LIBDIR"
libexec="$DESTDIR$PREFIX/libexec/kernelpool"
install -d "$inc/kernelpool" "$lib/pkgconfig" "$libexec"
install -m 644 include/kernelpool.h include/kernelpool.hpp "$inc/"
install -m 644 native/include/kernels.h "$inc/kernelpool/kernels.h"
install -m 755 "$out/libkernelpool.so" "$lib/libkernelpool.so.$version"
ln -sf "libkernelpool.so.$version" "$lib/libkernelpool.so.$major"
ln -sf "libkernelpool.so.$major" "$lib/libkernelpool.so"
install -m 644 "$out/libkernelpool.a" "$lib/libkernelpool.a"
install -m 755 "$out/kpool-worker" "$libexec/kpool-worker"
cat >"$lib/pkgconfig/kernelpool.pc" <<EOF
prefix=$PREFIX
libdir=$LIBDIR
includedir=\${prefix}/include
worker=\${prefix}/libexec/kernelpool/kpool-worker

Name: kernelpool
Description: Native, parallel numerical kernels (C, C++, Fortran, Rust) on threads and worker processes
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lkernelpool
Libs.private: $static_libs
EOF
say "installed kernelpool $version into $DESTDIR$PREFIX (headers, libkernelpool.so.$version, libkernelpool.a, pkgconfig/kernelpool.pc, libexec/kernelpool/kpool-worker)"
