#!/usr/bin/env bash
# Builds the .deb with dpkg-buildpackage and collects it in target/deb/.
# Needs debhelper and the rustup toolchain on PATH. Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
dpkg-buildpackage -b -us -uc >&2
mkdir -p target/deb
for f in ../shipote_"${version}"_"${arch}".{deb,buildinfo,changes}; do
    mv -f "$f" target/deb/
done
echo "target/deb/shipote_${version}_${arch}.deb"
