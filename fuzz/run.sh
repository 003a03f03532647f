#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000 each: about a
# minute in all after a 2-minute build), starting from the committed corpus,
# then replays every committed crash reproducer. Exits non-zero on a crash.
#
#   fuzz/run.sh [RUNS]
#
# cargo-fuzz (libFuzzer, coverage-guided) on stable Rust with
# `--sanitizer none`; installed from crates.io when missing. New inputs that
# reach new code are written to fuzz/target/corpus-new/<target>/ (to keep them:
# copy them into fuzz/corpus/<target>/, then `cargo fuzz cmin --sanitizer none
# <target>`); a crash is written to fuzz/artifacts/<target>/ (commit it as a
# reproducer once fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
python3 fuzz/seed-corpus.py
targets=(wire pipeline pipeline_toml discern)
cargo fuzz build --sanitizer none 2>&1 | tail -1
for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t" "fuzz/target/corpus-new/$t"
    start=$(date +%s)
    # New inputs go to fuzz/target/corpus-new/ (ignored): the committed corpus
    # only changes when someone merges and minimizes on purpose.
    cargo fuzz run --sanitizer none "$t" "fuzz/target/corpus-new/$t" "fuzz/corpus/$t" -- \
        -runs="$runs" -max_total_time=1200 -artifact_prefix="fuzz/artifacts/$t/" \
        -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' |
        sed "s/^/$t: /"
    echo "$t: ${runs} runs in $(($(date +%s) - start)) s, no crash"
    # Committed reproducers of past crashes must stay fixed.
    for f in "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/oom-* "fuzz/artifacts/$t"/timeout-*; do
        [ -e "$f" ] || continue
        cargo fuzz run --sanitizer none "$t" "$f" >/dev/null 2>&1 || {
            echo "$t: reproducer $f fails again" >&2
            exit 1
        }
    done
done
