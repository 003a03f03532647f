#!/bin/bash
# Build (or reuse) the cached Debian 12 VM image for the VM test tier.
#
# Prints the image directory (holding root.img and vmlinuz) on stdout; all
# progress goes to stderr. The image lives in
#   ${SHIPOTE_VM_CACHE:-/var/cache/shipote-vm}/<sha256 of this file>/
# so editing this recipe (everything the image contains is embedded below)
# makes the next run rebuild it. SHIPOTE_VM_REBUILD=1 forces a rebuild (e.g.
# to pick up Debian security updates). Needs root and the tools from
# host-deps.sh. No loop mounts: mmdebstrap builds a directory tree on tmpfs,
# mke2fs -d turns it into an ext4 image, and the finished directory is renamed
# into place (atomic). Downloaded .debs are kept in $SHIPOTE_VM_CACHE/debs.
#
# The package mirror is never named here: the host's own deb822 sources file
# is handed to mmdebstrap at run time.
set -euo pipefail

CACHE=${SHIPOTE_VM_CACHE:-/var/cache/shipote-vm}
HOST_SOURCES=${SHIPOTE_VM_HOST_SOURCES:-/etc/apt/sources.list.d/debian.sources}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
KEY=$(sha256sum "$SELF" | cut -d' ' -f1)
DEST=$CACHE/$KEY

log() { echo "image.sh: $*" >&2; }

if [ -f "$DEST/root.img" ] && [ -f "$DEST/vmlinuz" ] && [ "${SHIPOTE_VM_REBUILD:-0}" != 1 ]; then
    echo "$DEST"
    exit 0
fi

[ "$(id -u)" = 0 ] || { log "must run as root (mmdebstrap --mode=root)"; exit 1; }
[ -r "$HOST_SOURCES" ] || { log "$HOST_SOURCES not readable"; exit 1; }
mkdir -p "$CACHE/debs"

# One builder at a time; a concurrent run waits and then reuses the result.
exec 9>"$CACHE/.build.lock"
flock 9
if [ -f "$DEST/root.img" ] && [ -f "$DEST/vmlinuz" ] && [ "${SHIPOTE_VM_REBUILD:-0}" != 1 ]; then
    echo "$DEST"
    exit 0
fi

# Build tree on tmpfs when there is room (deleting ~350 MiB of small files
# from a disk is slow); the image itself is written into the cache dir.
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 2000000 ]; then
    BUILD_BASE=/dev/shm
else
    BUILD_BASE=$CACHE
fi
WORK=$(mktemp -d "$BUILD_BASE/shipote-vm-build.XXXXXX")
TMPDEST=$(mktemp -d "$CACHE/.tmp-$KEY.XXXXXX")
cleanup() { rm -rf "$WORK" "$TMPDEST"; }
trap cleanup EXIT

ROOTFS=$WORK/rootfs
HOOKS=$WORK/hooks
mkdir -p "$HOOKS" "$WORK/debs.new"

# --- files embedded into the image -----------------------------------------

# Boot-time entry point: waits for the input disk, unpacks it and hands over
# to the runner script that run.sh ships inside it (so harness changes do not
# need an image rebuild). On any failure the unit's FailureAction powers off.
cat >"$HOOKS/shipote-vm-boot" <<'GUEST'
#!/bin/bash
set -euo pipefail
dev=/dev/disk/by-id/virtio-shipote-in
for _ in $(seq 600); do [ -e "$dev" ] && break; sleep 0.1; done
if [ ! -e "$dev" ]; then
    echo "shipote-vm-boot: input disk $dev not found" >/dev/console
    exit 1
fi
mkdir -p /run/shipote-vm/in /run/shipote-vm/out
chmod 755 /run/shipote-vm /run/shipote-vm/in
tar -xf "$dev" -C /run/shipote-vm/in
exec /bin/bash /run/shipote-vm/in/guest-runner.sh
GUEST

cat >"$HOOKS/shipote-vm-runner.service" <<'GUEST'
[Unit]
Description=shipote VM test runner
After=systemd-logind.service systemd-user-sessions.service user@1000.service dbus.service
Wants=systemd-logind.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=exec
ExecStart=/usr/local/sbin/shipote-vm-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
GUEST

cat >"$HOOKS/customize.sh" <<'GUEST'
#!/bin/bash
# mmdebstrap customize hook: $1 is the root of the new system.
set -euo pipefail
R=$1
H=$(dirname "$(readlink -f "$0")")

echo shipote-vm >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 shipote-vm\n::1 localhost\n' >"$R/etc/hosts"
# A fixed machine-id: no first-boot preset/setup work on every boot.
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$R/etc/machine-id"
echo >>"$R/etc/machine-id"

chroot "$R" useradd -m -u 1000 -s /bin/bash tester
chroot "$R" useradd -m -u 1001 -s /bin/bash intruder
chroot "$R" passwd -d root >/dev/null
# Lingering: logind starts user@1000.service at boot.
mkdir -p "$R/var/lib/systemd/linger"
touch "$R/var/lib/systemd/linger/tester"

# Persistent journal, so a user can read its own entries (journalctl --user).
mkdir -p "$R/var/log/journal"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\nRateLimitBurst=0\n' \
    >"$R/etc/systemd/journald.conf.d/shipote-vm.conf"

# Nothing needs a login prompt, timers or crash dumps in a throw-away VM.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
    systemd-tmpfiles-clean.timer systemd-pstore.service getty.target \
    serial-getty@ttyS0.service getty@tty1.service; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done

install -m 0755 "$H/shipote-vm-boot" "$R/usr/local/sbin/shipote-vm-boot"
install -m 0644 "$H/shipote-vm-runner.service" "$R/etc/systemd/system/shipote-vm-runner.service"
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf ../shipote-vm-runner.service \
    "$R/etc/systemd/system/multi-user.target.wants/shipote-vm-runner.service"

# Boot without an initrd: the cloud kernel has NVMe and ext4 built in.
rm -f "$R"/boot/initrd.img* "$R"/initrd.img* "$R"/initrd.img.old
GUEST
chmod +x "$HOOKS/customize.sh"

# --- build -------------------------------------------------------------------

PACKAGES=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,udev,kmod,procps,util-linux,linux-image-cloud-amd64

start=$(date +%s)
log "building image $KEY (tree in $WORK)"
# The .deb cache: copied in before download, copied out after install;
# debs.new replaces the old cache so it holds exactly the current set.
# shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hook shell
mmdebstrap --variant=minbase --mode=root --format=directory \
    --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --skip=essential/unlink --skip=download/empty \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $WORK/debs.new" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    --customize-hook="$HOOKS/customize.sh \"\$1\"" \
    bookworm "$ROOTFS" "$HOST_SOURCES" >&2

vmlinuz=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
[ -n "$vmlinuz" ] || { log "no kernel in the image"; exit 1; }
cp "$vmlinuz" "$TMPDEST/vmlinuz"
# Sparse 4 GiB ext4 image; free space is for whatever the tests install.
truncate -s 4G "$TMPDEST/root.img"
mke2fs -q -t ext4 -L shipote-root -d "$ROOTFS" "$TMPDEST/root.img"
sha256sum "$SELF" >"$TMPDEST/recipe.sha256"

rm -rf "$DEST"
mv -T "$TMPDEST" "$DEST"
# Keep exactly the current .deb set; drop images of older recipes.
rm -rf "$CACHE/debs"
mkdir -p "$CACHE/debs"
find "$WORK/debs.new" -maxdepth 1 -name '*.deb' -exec mv -t "$CACHE/debs" {} +
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{64}' ! -name "$KEY" -exec rm -rf {} +

log "image built in $(($(date +%s) - start)) s: $DEST"
echo "$DEST"
