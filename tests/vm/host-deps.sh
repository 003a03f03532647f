#!/bin/bash
# Install what the VM test tier needs on the host (Debian 12, run as root):
# qemu-system-x86 and mmdebstrap from bookworm-backports (the machine's
# qemu-utils comes from backports and Breaks bookworm's qemu-system-common),
# plus e2fsprogs, tar, coreutils from the host's own suites if missing.
#
# /etc/apt is never modified: a private deb822 source dir (the host's own
# sources plus a bookworm-backports stanza built from the host's URIs and
# Signed-By) and private lists/cache dirs live under $SHIPOTE_VM_CACHE/apt.
# Idempotent; a fast no-op when everything is already installed.
set -euo pipefail

CACHE=${SHIPOTE_VM_CACHE:-/var/cache/shipote-vm}
HOST_SOURCES=${SHIPOTE_VM_HOST_SOURCES:-/etc/apt/sources.list.d/debian.sources}

have_all() {
    command -v qemu-system-x86_64 >/dev/null &&
        command -v mmdebstrap >/dev/null &&
        command -v mke2fs >/dev/null &&
        command -v tar >/dev/null &&
        command -v timeout >/dev/null
}

if have_all; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "host-deps.sh: must run as root to install qemu-system-x86/mmdebstrap" >&2
    exit 1
fi
[ -r "$HOST_SOURCES" ] || { echo "host-deps.sh: $HOST_SOURCES not readable" >&2; exit 1; }

# First stanza of the host's deb822 sources whose Suites include "bookworm":
# its URIs and Signed-By (the mirror is never written into the repo).
read_stanza() {
    awk '
        BEGIN { RS=""; FS="\n" }
        {
            uris=""; suites=""; sb=""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/)      { uris=$i;   sub(/^URIs:[ \t]*/, "", uris) }
                if ($i ~ /^Suites:/)    { suites=$i; sub(/^Suites:[ \t]*/, "", suites) }
                if ($i ~ /^Signed-By:/) { sb=$i;     sub(/^Signed-By:[ \t]*/, "", sb) }
            }
            n = split(suites, s, /[ \t]+/)
            for (j = 1; j <= n; j++) if (s[j] == "bookworm") { print uris "\t" sb; exit }
        }' "$HOST_SOURCES"
}
line=$(read_stanza)
[ -n "$line" ] || { echo "host-deps.sh: no 'bookworm' stanza in $HOST_SOURCES" >&2; exit 1; }
uris=${line%%$'\t'*}
signed_by=${line#*$'\t'}

apt_dir=$CACHE/apt
mkdir -p "$apt_dir/sources.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
cp "$HOST_SOURCES" "$apt_dir/sources.d/host.sources"
{
    echo "Types: deb"
    echo "URIs: $uris"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -n "$signed_by" ] && echo "Signed-By: $signed_by"
} >"$apt_dir/sources.d/backports.sources"

apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$apt_dir/sources.d"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::Cache::archives=$apt_dir/cache/archives"
)
export DEBIAN_FRONTEND=noninteractive
apt-get "${apt_opts[@]}" -q update >&2
# Only qemu and mmdebstrap come from backports (-t would otherwise also pull
# backports versions of base tools); the rest from the host's own suites.
base=()
command -v mke2fs >/dev/null || base+=(e2fsprogs)
command -v tar >/dev/null || base+=(tar)
command -v timeout >/dev/null || base+=(coreutils)
if [ ${#base[@]} -gt 0 ]; then
    apt-get "${apt_opts[@]}" -q install -y --no-install-recommends "${base[@]}" >&2
fi
apt-get "${apt_opts[@]}" -q install -y --no-install-recommends -t bookworm-backports \
    qemu-system-x86 mmdebstrap >&2

have_all || { echo "host-deps.sh: tools still missing after install" >&2; exit 1; }
