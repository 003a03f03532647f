#!/bin/bash
# Runs INSIDE the VM, as root, started by shipote-vm-runner.service (see
# image.sh) after it unpacked the input disk into /run/shipote-vm/in.
# run.sh ships this file in the input tar, so it can change without an image
# rebuild. Steps: wait for tester's user manager and bus, dpkg -i the debs,
# daemon-reload tester's manager, run the suite (as root, lib.sh helpers do
# the as_tester/as_intruder part), then write output.log, status, setup.log,
# timings and journal.txt as a tar onto the output disk. The unit's
# SuccessAction/FailureAction power the VM off afterwards.
set -uo pipefail

IN=/run/shipote-vm/in
OUT=/run/shipote-vm/out
OUTDEV=/dev/disk/by-id/virtio-shipote-out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8
mkdir -p "$OUT/artifacts"

# shellcheck source=/dev/null
. "$IN/vm.conf" # SUITE, SUITE_TIMEOUT, VERBOSE
uptime_s() { cut -d' ' -f1 /proc/uptime; }
console() { echo "shipote-vm: $*" >/dev/console 2>/dev/null || true; }

T_RUNNER=$(uptime_s)
setup_status=0
{
    echo "runner started at uptime ${T_RUNNER}s"
    ok=0
    for _ in $(seq 1200); do
        if [ "$(systemctl is-active user@1000.service 2>/dev/null)" = active ] &&
            [ -S /run/user/1000/bus ]; then
            ok=1
            break
        fi
        sleep 0.1
    done
    if [ "$ok" != 1 ]; then
        echo "user@1000.service not active with /run/user/1000/bus after 120 s"
        systemctl status --no-pager user@1000.service 2>&1 || true
        setup_status=1
    fi

    debs=()
    if [ -d "$IN/debs" ]; then
        for d in "$IN"/debs/*.deb; do [ -e "$d" ] && debs+=("$d"); done
    fi
    if [ "$setup_status" = 0 ] && [ ${#debs[@]} -gt 0 ]; then
        echo "+ dpkg -i ${debs[*]##*/}"
        if ! DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" </dev/null 2>&1; then
            echo "dpkg -i failed"
            setup_status=1
        fi
    fi
    if [ "$setup_status" = 0 ]; then
        # The running user manager does not see new user units on its own.
        echo "+ systemctl --user --machine=tester@ daemon-reload"
        systemctl --user --machine=tester@ daemon-reload 2>&1 || setup_status=1
    fi
} >"$OUT/setup.log" 2>&1

T_SUITE=$(uptime_s)
if [ "$setup_status" = 0 ]; then
    console "suite-start"
    cd "$IN" || exit 1
    # The suite runs as root; stdout+stderr go to output.log (a file, not a
    # pipe: background processes the suite leaves behind cannot block us) and,
    # live, to the serial console (run.sh shows its tail if the run times out).
    SHIPOTE_VM_IN=$IN SHIPOTE_VM_ARTIFACTS=$OUT/artifacts VERBOSE=${VERBOSE:-} \
        timeout -k 10 "$SUITE_TIMEOUT" bash "$IN/$SUITE" </dev/null >"$OUT/output.log" 2>&1 &
    spid=$!
    tail -n +1 -f --pid="$spid" "$OUT/output.log" >/dev/console 2>/dev/null &
    tpid=$!
    wait "$spid"
    status=$?
    wait "$tpid" 2>/dev/null || true
    if [ "$status" = 124 ]; then
        echo "shipote-vm: suite timed out after ${SUITE_TIMEOUT}s (in guest)" | tee -a "$OUT/output.log" >/dev/console
    fi
else
    console "setup failed"
    : >"$OUT/output.log"
    status=125
fi
T_END=$(uptime_s)

echo "$status" >"$OUT/status"
printf 'runner_start=%s\nsuite_start=%s\nsuite_end=%s\n' "$T_RUNNER" "$T_SUITE" "$T_END" >"$OUT/timings"
journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1 || true
console "done status=$status"

tar -cf "$OUTDEV" -C "$OUT" . && sync
exit 0
