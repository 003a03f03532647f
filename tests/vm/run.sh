#!/bin/bash
# Run one test suite in a throw-away Debian 12 VM with systemd as PID 1.
#
#   tests/vm/run.sh [--deb FILE]... [--timeout SECS] [--out DIR] SUITE_SCRIPT [EXTRA_FILE...]
#
# Needs root on a Debian 12 host (installs qemu-system-x86 + mmdebstrap via
# host-deps.sh, builds/reuses the cached image via image.sh). One boot per call:
# put the whole suite in one script.
#
# Suite convention:
#   * The suite runs INSIDE the VM as ROOT with bash, cwd $SHIPOTE_VM_IN, which
#     holds the suite, lib.sh, the EXTRA_FILEs (by basename, readable by all)
#     and debs/. It sources lib.sh: `. "$(dirname "$0")/lib.sh"`.
#   * Before it starts: user@1000.service (tester, lingering) is active with
#     /run/user/1000/bus, the --deb files are installed with `dpkg -i`, and
#     tester's user manager has been daemon-reloaded (new user units visible).
#   * Run things as the users with `as_tester CMD...` / `as_intruder CMD...`
#     (runuser -l: real PAM login session with XDG_RUNTIME_DIR and
#     DBUS_SESSION_BUS_ADDRESS); as root (dpkg --purge, apt-get remove,
#     inspecting files) just run them. Record results with `check NAME CMD...`
#     and end with `finish` ("N passed, N failed"). See lib.sh.
#   * The VM has no network. Files written to $SHIPOTE_VM_ARTIFACTS come back
#     into --out DIR (with output.log, setup.log, journal.txt, status).
#
# Output: the suite's stdout+stderr on stdout; harness messages and timings on
# stderr. Exit status: the suite's; 125 if the in-guest setup (dpkg -i,
# daemon-reload) failed; 124 if no result came back within --timeout
# (default 900 s, the whole run including boot); 2 for usage errors.
#
# Environment: SHIPOTE_VM_CACHE (image/deb cache, default /var/cache/shipote-vm),
# SHIPOTE_VM_ACCEL (kvm|tcg, default: kvm only if kvm_intel/kvm_amd is loaded),
# SHIPOTE_VM_SMP (2), SHIPOTE_VM_MEM (2048 MiB), SHIPOTE_VM_TMP (run dir base,
# default /dev/shm, else /tmp), VERBOSE=1 (passed to the suite: lib.sh then
# prints the output of passing checks too).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
log() { echo "vm: $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

debs=()
timeout_s=900
outdir=
while [ $# -gt 0 ]; do
    case $1 in
    --deb) [ $# -ge 2 ] || usage; debs+=("$2"); shift 2 ;;
    --deb=*) debs+=("${1#--deb=}"); shift ;;
    --timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
    --timeout=*) timeout_s=${1#--timeout=}; shift ;;
    --out) [ $# -ge 2 ] || usage; outdir=$2; shift 2 ;;
    --out=*) outdir=${1#--out=}; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage
suite=$1
shift
case $timeout_s in '' | *[!0-9]*) echo "run.sh: --timeout wants seconds" >&2; exit 2 ;; esac
for f in "$suite" "${debs[@]}" "$@"; do
    [ -e "$f" ] || { echo "run.sh: no such file: $f" >&2; exit 2; }
done

[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (installs packages, builds the image)" >&2; exit 2; }

t_start=$(now)
"$HERE/host-deps.sh"

t_img=$(now)
img_cached=built
key=$(sha256sum "$HERE/image.sh" | cut -d' ' -f1)
if [ "${SHIPOTE_VM_REBUILD:-0}" != 1 ] && [ -f "${SHIPOTE_VM_CACHE:-/var/cache/shipote-vm}/$key/root.img" ]; then
    img_cached=cached
fi
imgdir=$("$HERE/image.sh")
log "image: $img_cached in $(secs "$t_img" "$(now)") s ($imgdir)"

tmpbase=${SHIPOTE_VM_TMP:-}
if [ -z "$tmpbase" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmpbase=/dev/shm; else tmpbase=${TMPDIR:-/tmp}; fi
fi
run=$(mktemp -d "$tmpbase/shipote-vm-run.XXXXXX")
qpid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- input disk ----------------------------------------------------------------
in=$run/in
mkdir -p "$in/debs"
cp "$HERE/guest-runner.sh" "$HERE/lib.sh" "$in/"
suite_name=$(basename "$suite")
for f in "$suite" "$@"; do
    b=$(basename "$f")
    if [ -e "$in/$b" ]; then echo "run.sh: duplicate file name in the VM input: $b" >&2; exit 2; fi
    cp -a "$f" "$in/$b"
done
for d in "${debs[@]}"; do cp "$d" "$in/debs/"; done
# Leave the guest a minute for boot and for returning the results.
suite_timeout=$((timeout_s > 120 ? timeout_s - 60 : timeout_s / 2))
printf 'SUITE=%q\nSUITE_TIMEOUT=%s\nVERBOSE=%q\n' "$suite_name" "$suite_timeout" "${VERBOSE:-}" >"$in/vm.conf"
chmod -R a+rX "$in"
tar -cf "$run/in.img" -C "$in" --owner=0 --group=0 .
# Raw disks: round up to whole MiB.
sz=$(stat -c %s "$run/in.img")
truncate -s $(((sz / 1048576 + 1) * 1048576)) "$run/in.img"
truncate -s 1G "$run/out.img"

# --- boot ------------------------------------------------------------------------
accel=${SHIPOTE_VM_ACCEL:-}
if [ -z "$accel" ]; then
    if { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ]; then
        accel=kvm
    else
        accel=tcg
    fi
fi
if [ "$accel" = kvm ]; then
    accel_args=(-accel kvm -cpu host)
else
    # shellcheck disable=SC2054 # commas are part of qemu options
    accel_args=(-accel tcg,thread=multi -cpu max)
fi

# shellcheck disable=SC2054 # commas are part of qemu options
qemu=(qemu-system-x86_64 "${accel_args[@]}" -M pc
    -smp "${SHIPOTE_VM_SMP:-2}" -m "${SHIPOTE_VM_MEM:-2048}"
    -display none -monitor none -serial "file:$run/console.log" -no-reboot -nic none
    -kernel "$imgdir/vmlinuz"
    -append "console=ttyS0 root=/dev/nvme0n1 rootfstype=ext4 rootwait rw quiet panic=-1 systemd.show_status=0"
    -drive "file=$imgdir/root.img,format=raw,if=none,id=root,snapshot=on"
    -device nvme,drive=root,serial=vmroot
    -drive "file=$run/in.img,format=raw,if=none,id=in,readonly=on"
    -device virtio-blk-pci,drive=in,serial=shipote-in
    -drive "file=$run/out.img,format=raw,if=none,id=out"
    -device virtio-blk-pci,drive=out,serial=shipote-out)

log "booting ($accel, suite $suite_name, ${#debs[@]} deb(s), timeout ${timeout_s}s)"
t_boot=$(now)
: >"$run/console.log"
TMPDIR=$run timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
t_suite=
while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$t_suite" ] && grep -q 'shipote-vm: suite-start' "$run/console.log"; then
        t_suite=$(now)
        log "boot-to-suite-start: $(secs "$t_boot" "$t_suite") s"
    fi
    sleep 0.2
done
qrc=0
wait "$qpid" || qrc=$?
qpid=
t_end=$(now)

mkdir -p "$run/out"
tar -xf "$run/out.img" -C "$run/out" 2>/dev/null || true
if [ ! -f "$run/out/status" ]; then
    if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
        log "FAILED: no result within --timeout ${timeout_s}s (qemu killed)"
        rc=124
    else
        log "FAILED: the VM stopped without a result (qemu exit $qrc)"
        rc=125
    fi
    log "qemu output:"
    sed 's/^/  | /' "$run/qemu.log" >&2
    log "last console lines:"
    tail -n 60 "$run/console.log" | tr -d '\r' | sed 's/^/  | /' >&2
    log "total: $(secs "$t_start" "$t_end") s"
    exit "$rc"
fi

rc=$(cat "$run/out/status")
cat "$run/out/output.log"
if [ "$rc" != 0 ]; then
    log "in-guest setup log:"
    sed 's/^/  | /' "$run/out/setup.log" >&2
fi
if [ -n "$outdir" ]; then
    mkdir -p "$outdir"
    cp -a "$run/out/." "$outdir/"
    log "results copied to $outdir"
fi
suite_start=$(sed -n 's/^suite_start=//p' "$run/out/timings")
suite_end=$(sed -n 's/^suite_end=//p' "$run/out/timings")
log "suite: $(secs "$suite_start" "$suite_end") s in guest (started at guest uptime ${suite_start} s)"
if [ "$rc" = 125 ]; then log "FAILED: in-guest setup failed (see setup log above)"; fi
log "qemu: $(secs "$t_boot" "$t_end") s; total: $(secs "$t_start" "$t_end") s; exit $rc"
exit "$rc"
