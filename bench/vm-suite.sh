#!/bin/bash
# Workspace benchmarks inside the VM (run by bench/vm.sh): shipote beside
# systemd-run, whole processes and requests, and the daemon's RSS and CPU.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

check "start shipote" as_tester systemctl --user start shipote
# Whole processes, 50 each, timed inside one login session.
timed() { # NAME LABEL CMD : times CMD 50 times, checks all ran, prints the figure
    local name=$1 label=$2 raw
    shift 2
    raw=$(as_tester bash -c '
        for i in $(seq 50); do
            s=$(date +%s%N); '"$*"' >/dev/null 2>&1 || exit 1; e=$(date +%s%N)
            echo $(((e - s) / 1000))
        done')
    check "$name timed (50 runs)" test "$(grep -c . <<<"$raw")" -eq 50
    echo "figure: $label: $(sort -n <<<"$raw" | awk '{v[NR] = $1} END {printf "p50 %.1f ms  p99 %.1f ms", v[int(NR*0.5)+1]/1000, v[NR]/1000}')"
}
timed "systemd-run" "systemd-run --user --scope true (whole process)" systemd-run --user --scope --quiet true
timed "shipote ws create" "shipote ws create (whole process)" 'shipote ws create "b$i"'
timed "shipote ws stop" "shipote ws stop (whole process)" 'shipote ws stop "b$i" --grace 0'
check "workspace for runs" as_tester shipote ws create runs
timed "shipote run" "shipote run WS -- true (whole process, returns once true has exec'd in its cgroup)" 'shipote run runs -- true'
perms="--network none --read-only --private-tmp --private-dev --hide /etc/os-release"
check "workspace with permissions for runs" as_tester shipote ws create boxed $perms
timed "shipote run with permissions" "shipote run WS -- true in a workspace with permissions (network none, read-only, private /tmp and /dev, a hidden path)" 'shipote run boxed -- true'
timed "shipote ws create with permissions" "shipote ws create with those permissions (whole process)" "shipote ws create \"p\$i\" $perms"
pid=$(as_tester systemctl --user show -p MainPID --value shipote)
lat=$(as_tester "$SHIPOTE_VM_IN/ws-latency" --runs 50 --many 100 --daemon-pid "$pid" 2>&1)
echo "$lat"
check "request-level latency, RSS and CPU measured" grep -q "daemon CPU" <<<"$lat"
finish
