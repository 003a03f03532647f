#!/usr/bin/env bash
# Every test, in order of cost: formatting, lints, unit + wire + daemon + host
# tests (cargo test), the fuzz targets (1M runs each), the Debian package and
# lintian, then the real-systemd VM tier with that package. `tests/all.sh --no-vm` stops before the VM.
# Needs root (a host test switches uid; what a fresh machine lacks is
# installed first).
set -euo pipefail
cd "$(dirname "$0")/.."
vm=1
[ "${1:-}" = --no-vm ] && vm=0
step() { printf '\n== %s\n' "$*"; }

# What a fresh Debian 12 machine lacks (a no-op when it is all there): the
# packaging tools, tmux (shipote top is tested in it), python3 (the Python
# client's tests), ssh and sshd (--host is tested through a private sshd on
# loopback; the package's own sshd is kept from starting), and for the VM tier
# qemu and mmdebstrap (tests/vm/host-deps.sh).
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v dh >/dev/null || ! command -v lintian >/dev/null \
    || ! command -v tmux >/dev/null || ! command -v python3 >/dev/null \
    || ! command -v ssh >/dev/null || [ ! -x /usr/sbin/sshd ]; then
    step "installing debhelper, lintian, dpkg-dev, tmux, python3, openssh"
    no_start=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        no_start=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        debhelper lintian dpkg-dev tmux python3 openssh-client openssh-server >/dev/null
    if [ "$no_start" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if [ "$vm" = 1 ]; then
    tests/vm/host-deps.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked
step "fuzzing: 1,000,000 runs per target (fuzz/README.md)"
fuzz/run.sh 1000000
step "debian package"
deb=$(packaging/build-deb.sh)
ls -l "$deb"
step "lintian"
lintian --allow-root --fail-on error,warning "$deb"
if [ "$vm" = 1 ]; then
    step "VM tier (real systemd, the .deb)"
    tests/vm/run.sh --deb "$deb" tests/vm/suite-e2e.sh
fi
