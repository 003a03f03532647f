#!/usr/bin/env bash
# Runs the workspace benchmarks in the VM tier: builds the .deb and the
# ws-latency client, boots the VM once, prints the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(packaging/build-deb.sh)
cargo build --release --locked --example ws-latency
cp target/release/examples/ws-latency target/ws-latency
tests/vm/run.sh --deb "$deb" bench/vm-suite.sh target/ws-latency 2>&1 | grep -E "figure|passed|FAIL|^vm:"
