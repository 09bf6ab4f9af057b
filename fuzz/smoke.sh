#!/usr/bin/env bash
# Builds and runs every fuzz target for a short while (default 20 s each; override with
# FUZZ_SECONDS). Exits non-zero if a target finds a crash. Installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz needs nightly flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
for target in sse stream stream_fast responses driver ratelimit metrics; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 2>&1 | tail -n 25
    # tail hides the exit status; pipefail brings it back.
done
echo "fuzz smoke: all targets ran clean"
