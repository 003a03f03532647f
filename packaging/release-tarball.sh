#!/usr/bin/env bash
# Release artifacts in target/release-artifacts/:
#   shipote-VERSION.tar.gz              the source at HEAD (git archive)
#   shipote-VERSION-ARCH-linux.tar.gz   binaries, units, man pages, completions,
#                                       laid out for extraction into /usr
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "shipote"))')
arch=$(uname -m)
out=target/release-artifacts
mkdir -p "$out"
git archive --format=tar.gz --prefix="shipote-$version/" -o "$out/shipote-$version.tar.gz" HEAD

cargo build --release --locked --workspace --bins
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/shipote-$version-$arch-linux"
target/release/shipote-gen "$stage/gen"
install -D -m 0755 -t "$root/bin" target/release/shipoted target/release/shipote
install -D -m 0644 -t "$root/lib/systemd/user" units/shipote.service units/shipote.socket units/shipote.slice
install -D -m 0644 -t "$root/share/man/man1" "$stage"/gen/man/*.1
install -D -m 0644 -t "$root/share/man/man8" "$stage"/gen/man/*.8
install -D -m 0644 "$stage/gen/completions/shipote.bash" "$root/share/bash-completion/completions/shipote"
install -D -m 0644 "$stage/gen/completions/_shipote" "$root/share/zsh/vendor-completions/_shipote"
install -D -m 0644 "$stage/gen/completions/shipote.fish" "$root/share/fish/vendor_completions.d/shipote.fish"
install -D -m 0644 -t "$root/share/doc/shipote" README.md LICENSE
tar -C "$stage" -czf "$out/shipote-$version-$arch-linux.tar.gz" "shipote-$version-$arch-linux"
(cd "$out" && sha256sum ./*.tar.gz > SHA256SUMS)
ls -l "$out"
