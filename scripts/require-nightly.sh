# Sourced by scripts/fuzz.sh and scripts/sanitize.sh: fail loudly, saying how to install
# it, when the nightly toolchain (nightly-x86_64-unknown-linux-gnu) is missing.
require_nightly() {
    local what="$1"
    if ! command -v rustup >/dev/null 2>&1; then
        echo "kernelpool $what: needs rustup and the nightly toolchain; install rustup (https://rustup.rs)," >&2
        echo "then: rustup toolchain install nightly --profile minimal" >&2
        exit 1
    fi
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly-' ||
        ! cargo +nightly --version >/dev/null 2>&1; then
        echo "kernelpool $what: the nightly toolchain is not installed (rustup toolchain list:" >&2
        rustup toolchain list 2>&1 | sed 's/^/    /' >&2
        echo ").  Install it with:" >&2
        echo "    rustup toolchain install nightly --profile minimal" >&2
        exit 1
    fi
    echo "kernelpool $what: $(cargo +nightly --version) / $(rustc +nightly --version)" >&2
}
