#!/usr/bin/env bash
# Checks for, and on Debian/Ubuntu installs, what kernelpool needs on a machine that has
# rustup and gcc:
#   - the C, C++ and Fortran compilers the build uses: ${CC:-gcc}, ${CXX:-g++}, ${FC:-gfortran}
#     (crates/kernels-sys/build.rs reads CC, CXX and FC; a compiler named by one of them is
#     never replaced by a package: when it is missing, setup says so and stops);
#   - when python3 is there: its venv module (Debian/Ubuntu: python3-venv), which
#     scripts/python-env.sh needs for the seed section's numba environment (found as that
#     script finds it: `python3 -c 'import ensurepip, venv'`); without python3 nothing is
#     needed (the Python rows of `kpool bench` say "not available"), except with --tests,
#     which needs python3 and its venv module (the tests run the seed section for real);
#   - with --tests: a libclang that bindgen can load (for the bindings drift check), found
#     exactly the way clang-sys finds it (see find_libclang), valgrind (.ci/run runs the C
#     program of tests/c_abi.rs under memcheck), cmake and pkg-config (tests/c_abi.rs
#     builds examples/cmake against the installed C ABI), the rustfmt and clippy
#     components;
#   - with --mpi (implied by --tests: scripts/test.sh builds the `mpi` feature): Open MPI,
#     that is an MPI compiler wrapper that answers `${MPICC:-mpicc} -show` (what the mpi
#     crate's build probes; package libopenmpi-dev, with the headers and libmpi) and the
#     launcher `mpirun` (package openmpi-bin), plus the libclang above (the mpi crate runs
#     bindgen over mpi.h at build time).
# Missing packages are installed with apt-get as root or through `sudo -n`. Without root or
# sudo it prints the exact `apt-get install` line and exits 1; without apt-get (not
# Debian/Ubuntu) it prints what is needed, generically, and exits 1.
#
# Usage: scripts/setup.sh [--tests] [--mpi] [--check]
#   --tests   also what scripts/test.sh and .ci/run need (libclang, valgrind, cmake,
#             pkg-config, python3 with venv, rustfmt, clippy, and Open MPI, as --mpi)
#   --mpi     also what the `mpi` feature needs (Open MPI, libclang)
#   --check   only report what is found and what would be installed; never installs.
#             Exit status 0 when nothing is missing, 1 otherwise.
# Environment: CC, CXX, FC (as the build); MPICC (as the mpi crate's build); LIBCLANG_PATH, LLVM_CONFIG_PATH,
# LD_LIBRARY_PATH, LIBRARY_PATH (as clang-sys); KERNELPOOL_LIBCLANG_DIRS (a colon-separated
# list of directories that replaces clang-sys's search outside LIBCLANG_PATH; for tests).
set -euo pipefail

for_tests=0
for_mpi=0
check_only=0
for arg in "$@"; do
    case "$arg" in
    --tests) for_tests=1 for_mpi=1 ;;
    --mpi) for_mpi=1 ;;
    --check | --dry-run) check_only=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "kernelpool setup: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { echo "kernelpool setup: $*" >&2; }

# ---------------------------------------------------------------------------------------
# libclang, as clang-sys 1.9 (bindgen 0.73, feature `runtime`) finds it: build/common.rs
# `search_libclang_directories` and build/dynamic.rs `find(true)`.
# ---------------------------------------------------------------------------------------

# The file-name patterns clang-sys looks for on Linux when loading at runtime.
LIBCLANG_PATTERNS=("libclang.so" "libclang-*.so" "libclang.so.*" "libclang-*.so.*")
# clang-sys's DIRECTORIES_LINUX, globbed case-insensitively, directories only.
LIBCLANG_SYSTEM_DIRS=(
    "/usr/local/llvm*/lib*"
    "/usr/local/lib*/*/*"
    "/usr/local/lib*/*"
    "/usr/local/lib*"
    "/usr/lib*/*/*"
    "/usr/lib*/*"
    "/usr/lib*"
)

# Appends to `candidates` the files in directory $1 that match the patterns, in pattern
# order, skipping names that contain `-cpp.` (libclang-cpp.so.N is not libclang).
search_libclang_dir() {
    local dir="${1:-.}" pat f name
    for pat in "${LIBCLANG_PATTERNS[@]}"; do
        for f in "$dir"/$pat; do
            [ -e "$f" ] || [ -L "$f" ] || continue
            name="${f##*/}"
            [[ "$name" == *-cpp.* ]] && continue
            candidates+=("$f")
        done
    done
}

# search_libclang_dir on each directory of the colon-separated list $1 (no globbing).
search_libclang_path_list() {
    local dirs=() dir
    [ -n "$1" ] || return 0
    IFS=: read -r -a dirs <<<"$1"
    for dir in "${dirs[@]}"; do search_libclang_dir "$dir"; done
}

# True when $1 is an ELF shared object of this machine's word size (clang-sys's
# validate_library: the magic number, then the class: 1 = 32-bit, 2 = 64-bit).
is_loadable_elf() {
    local want header
    want=02
    [ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = 32 ] && want=01
    header="$(head -c 5 -- "$1" 2>/dev/null | od -An -tx1 2>/dev/null)" || return 1
    header="${header//[[:space:]]/}"
    [ "$header" = "7f454c46$want" ]
}

# clang-sys's parse_version, as a key that sorts (bytewise) as its Vec<u32> does.
version_key() {
    local name="$1" version part key="" parts
    if [[ "$name" == libclang.so.* ]]; then
        version="${name#libclang.so.}"
    elif [[ "$name" == libclang-* ]]; then
        version="${name:9:${#name}-12}"
    else
        echo ""
        return
    fi
    # Rust's split('.'): "14" -> [14], "" -> [0], "14." -> [14, 0]
    IFS=. read -r -a parts <<<"$version."
    [ ${#parts[@]} -gt 0 ] || parts=("")
    for part in "${parts[@]}"; do
        part="${part#+}"
        if [[ "$part" =~ ^[0-9]+$ ]]; then
            while [[ "$part" == 0?* ]]; do part="${part#0}"; done
            if [ "${#part}" -gt 10 ] || { [ "${#part}" = 10 ] && [[ "$part" > 4294967295 ]]; }; then
                part=0
            fi
        else
            part=0
        fi
        key+="${key:+.}$(printf '%010d' "$part")"
    done
    echo "$key"
}

# Prints the libclang that bindgen would load (the highest version; on a tie the first
# found) and returns 0, or returns 1 when there is none. Looks only at LIBCLANG_PATH (a
# file or a directory) when that is set, as clang-sys does; otherwise at
# `llvm-config --prefix`/{bin,lib,lib64}, LD_LIBRARY_PATH, LIBRARY_PATH and the system
# directories (or, instead of all of these, KERNELPOOL_LIBCLANG_DIRS).
find_libclang() {
    local candidates=() dir f prefix best="" best_key="" key restore
    restore="$(shopt -p nullglob nocaseglob dotglob)"
    shopt -s nullglob dotglob
    shopt -u nocaseglob
    local LC_ALL=C
    if [ -n "${LIBCLANG_PATH+set}" ]; then
        # A file: used when its directory holds it under a matching name; otherwise the
        # path is searched as a directory (as common.rs does with Path::parent/file_name).
        local p="$LIBCLANG_PATH" trimmed parent match=""
        trimmed="$p"
        while [ "${#trimmed}" -gt 1 ] && [ "${trimmed%/}" != "$trimmed" ]; do trimmed="${trimmed%/}"; done
        if [ -n "$trimmed" ] && [ "$trimmed" != / ]; then
            if [[ "$trimmed" == */* ]]; then parent="${trimmed%/*}"; else parent=.; fi
            search_libclang_dir "${parent:-/}"
            for f in "${candidates[@]}"; do
                [ "${f##*/}" = "${trimmed##*/}" ] && match="$f" && break
            done
            candidates=()
        fi
        if [ -n "$match" ]; then
            candidates=("$match")
        else
            search_libclang_dir "$p"
        fi
    elif [ -n "${KERNELPOOL_LIBCLANG_DIRS+set}" ]; then
        search_libclang_path_list "$KERNELPOOL_LIBCLANG_DIRS"
    else
        if prefix="$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null)" && [ -n "$prefix" ]; then
            prefix="${prefix%%$'\n'*}"
            search_libclang_dir "$prefix/bin"
            search_libclang_dir "$prefix/lib"
            search_libclang_dir "$prefix/lib64"
        fi
        search_libclang_path_list "${LD_LIBRARY_PATH-}"
        search_libclang_path_list "${LIBRARY_PATH-}"
        local pattern
        for pattern in "${LIBCLANG_SYSTEM_DIRS[@]}"; do
            shopt -s nocaseglob
            local dirs=($pattern)
            shopt -u nocaseglob
            for dir in "${dirs[@]}"; do
                [ -d "$dir" ] && search_libclang_dir "$dir"
            done
        done
    fi
    for f in "${candidates[@]}"; do
        is_loadable_elf "$f" || continue
        key="$(version_key "${f##*/}")"
        if [ -z "$best" ] || [[ "$key" > "$best_key" ]]; then
            best="$f"
            best_key="$key"
        fi
    done
    eval "$restore"
    [ -n "$best" ] || return 1
    echo "$best"
}

# ---------------------------------------------------------------------------------------
# What is missing
# ---------------------------------------------------------------------------------------

packages=()  # Debian/Ubuntu packages to install
tools=()     # the same, said generically
problems=()  # what no package install fixes

# A compiler works when `exe --version` succeeds (what build.rs's require_compiler asks).
runs() { "$1" --version >/dev/null 2>&1; }

check_compiler() {
    local var="$1" default="$2" package="$3" what="$4"
    if [ -n "${!var+set}" ]; then
        local exe="${!var}"
        if [ -z "$exe" ]; then
            problems+=("$var is set but empty, and the build runs \$$var as the $what: unset $var to use $default, or set it to a $what")
        elif runs "$exe"; then
            say "$what: $var=$exe"
        else
            problems+=("$var=$exe: \`$exe --version\` does not run; the build uses \$$var, so install $exe (or point $var at a $what), or unset $var to use $default")
        fi
    elif runs "$default"; then
        say "$what: $default"
    else
        packages+=("$package")
        tools+=("$default (a $what; $var is unset, so the build runs \`$default\`)")
    fi
}

check_all() {
    packages=()
    tools=()
    problems=()
    check_compiler CC gcc gcc "C compiler"
    check_compiler CXX g++ g++ "C++ compiler"
    check_compiler FC gfortran gfortran "Fortran compiler"
    # python3's venv module (what scripts/python-env.sh asks: `import ensurepip, venv`). For
    # the bench it is optional: without python3 the Python rows say "not available". The
    # tests run the seed section with Python for real, so --tests needs python3 as well.
    if runs python3; then
        if python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            say "python3 with venv: $(command -v python3)"
        else
            packages+=(python3-venv)
            tools+=("the venv module of python3 (python3 -m venv, with ensurepip; scripts/python-env.sh makes the seed section's numba environment with it)")
        fi
    elif [ "$for_tests" = 1 ]; then
        packages+=(python3 python3-venv)
        tools+=("python3 with its venv module (the tests run kpool bench's seed section with the course's Python and numba, in a venv made by scripts/python-env.sh)")
    fi
    if [ "$for_tests" = 1 ] || [ "$for_mpi" = 1 ]; then
        local lib
        if lib="$(find_libclang)"; then
            say "libclang (what bindgen loads): $lib"
        elif [ -n "${LIBCLANG_PATH+set}" ]; then
            problems+=("LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang that bindgen can load (a 64-bit ELF named ${LIBCLANG_PATTERNS[*]}, not libclang-cpp); while it is set bindgen looks nowhere else: point it at the directory of libclang.so or libclang-N.so.1, or unset it")
        else
            packages+=(libclang-dev)
            local where="llvm-config --prefix, LD_LIBRARY_PATH, LIBRARY_PATH, /usr/lib*, /usr/local/lib*"
            [ -n "${KERNELPOOL_LIBCLANG_DIRS+set}" ] && where="KERNELPOOL_LIBCLANG_DIRS=$KERNELPOOL_LIBCLANG_DIRS"
            tools+=("libclang, the shared library bindgen loads (libclang.so, libclang-N.so.1 or libclang.so.N; none in $where; libclang-cpp does not count), e.g. from your LLVM/Clang package, or set LIBCLANG_PATH to its directory")
        fi
    fi
    if [ "$for_mpi" = 1 ]; then
        check_mpi
    fi
    if [ "$for_tests" = 1 ]; then
        # valgrind: found on PATH when `valgrind --version` runs (as tests/c_abi.rs runs it).
        if runs valgrind; then
            say "valgrind: $(command -v valgrind)"
        else
            packages+=(valgrind)
            tools+=("valgrind (memcheck: .ci/run runs the C program of tests/c_abi.rs under it)")
        fi
        # cmake and pkg-config: found on PATH when `TOOL --version` runs (as tests/c_abi.rs
        # runs them: the CMake example finds kernelpool through pkg-config).
        local tool
        for tool in cmake pkg-config; do
            if runs "$tool"; then
                say "$tool: $(command -v "$tool")"
            else
                packages+=("$tool")
                tools+=("$tool (tests/c_abi.rs builds examples/cmake, which finds kernelpool through pkg-config)")
            fi
        done
    fi
}

# Open MPI: the compiler wrapper the mpi crate's build (build-probe-mpi) runs as
# `${MPICC:-mpicc} -show`, and the launcher `mpirun` that runs the jobs and the MPI tests.
check_mpi() {
    if [ -n "${MPICC+set}" ]; then
        if [ -n "$MPICC" ] && "$MPICC" -show >/dev/null 2>&1; then
            say "MPI compiler wrapper: MPICC=$MPICC"
        else
            problems+=("MPICC=$MPICC: \`$MPICC -show\` does not run; the mpi crate's build runs \$MPICC -show, so point MPICC at an MPI compiler wrapper (Open MPI's or MPICH's mpicc), or unset it to use mpicc")
        fi
    elif mpicc -show >/dev/null 2>&1; then
        say "MPI compiler wrapper: $(command -v mpicc)"
    else
        packages+=(libopenmpi-dev)
        tools+=("mpicc, an MPI compiler wrapper with the MPI headers and library (Open MPI or MPICH; the mpi crate's build runs \`mpicc -show\`)")
    fi
    if mpirun --version >/dev/null 2>&1; then
        say "mpirun: $(command -v mpirun) ($(mpirun --version 2>/dev/null | head -n 1))"
    else
        packages+=(openmpi-bin)
        tools+=("mpirun, the MPI launcher (Open MPI's; the MPI tests run \`mpirun -n 2\`)")
    fi
}

# rustfmt and clippy (for .ci/run); installed through rustup where there is one.
components=()
check_components() {
    components=()
    [ "$for_tests" = 1 ] || return 0
    if command -v rustup >/dev/null 2>&1; then
        local installed comp
        installed="$(rustup component list --installed 2>/dev/null || true)"
        for comp in rustfmt clippy; do
            grep -q "^$comp" <<<"$installed" || components+=("$comp")
        done
    else
        cargo fmt --version >/dev/null 2>&1 || say "warning: no rustup and no \`cargo fmt\`: .ci/run needs rustfmt"
        cargo clippy --version >/dev/null 2>&1 || say "warning: no rustup and no \`cargo clippy\`: .ci/run needs clippy"
    fi
}

check_all
check_components

print_how_to_install() {
    local t
    if command -v apt-get >/dev/null 2>&1; then
        say "install them with:"
        echo "    sudo apt-get install ${packages[*]}" >&2
    else
        say "apt-get was not found (not Debian/Ubuntu?); install these with your system's package manager:"
        for t in "${tools[@]}"; do echo "    - $t" >&2; done
        say "(on Debian/Ubuntu the packages are: ${packages[*]})"
    fi
}

status=0
if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do say "error: $p"; done
    status=1
fi
if [ ${#packages[@]} -gt 0 ]; then
    say "missing: ${packages[*]}"
    if [ "$check_only" = 1 ] || [ "$status" != 0 ]; then
        print_how_to_install
        [ "$check_only" = 1 ] && command -v apt-get >/dev/null 2>&1 &&
            say "(without --check, setup installs them with apt-get as root or through sudo -n)"
        status=1
    elif ! command -v apt-get >/dev/null 2>&1; then
        print_how_to_install
        exit 1
    elif [ "$(id -u)" = 0 ]; then
        say "installing ${packages[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "installing ${packages[*]} (sudo apt-get)"
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        say "not root, and sudo needs a password (or is absent)"
        print_how_to_install
        exit 1
    fi
fi
if [ ${#components[@]} -gt 0 ]; then
    if [ "$check_only" = 1 ]; then
        say "missing rustup components: ${components[*]} (rustup component add ${components[*]})"
        status=1
    elif [ "$status" = 0 ]; then
        rustup component add "${components[@]}"
    fi
fi
[ "$status" = 0 ] || exit "$status"

if [ "$check_only" = 0 ] && [ ${#packages[@]} -gt 0 ]; then
    # What was installed must now be found as the build finds it.
    say "checking again after apt-get"
    check_all
    if [ ${#packages[@]} -gt 0 ] || [ ${#problems[@]} -gt 0 ]; then
        for t in "${tools[@]}" "${problems[@]}"; do say "error: still missing after apt-get: $t"; done
        exit 1
    fi
fi
[ "$check_only" = 1 ] && say "nothing missing"
exit 0
