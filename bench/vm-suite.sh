#!/bin/bash
# Workspace benchmarks inside the VM (run by bench/vm.sh): shipote beside
# systemd-run, whole processes and requests, and the daemon's RSS and CPU.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

check "start shipote" as_tester systemctl --user start shipote
# Whole processes, 50 each, timed inside one login session.
loop_ms() { # CMD... : prints p50 and p99 of 50 runs in ms
    as_tester bash -c '
        for i in $(seq 50); do
            s=$(date +%s%N); '"$*"' >/dev/null 2>&1 || exit 1; e=$(date +%s%N)
            echo $(((e - s) / 1000))
        done' | sort -n | awk '{v[NR] = $1} END {printf "p50 %.1f ms  p99 %.1f ms", v[int(NR*0.5)+1]/1000, v[NR]/1000}'
}
sr=$(loop_ms systemd-run --user --scope --quiet true)
check "systemd-run timed" test -n "$sr"
echo "figure: systemd-run --user --scope true (whole process): $sr"
cr=$(loop_ms 'shipote ws create "b$i"')
check "shipote ws create timed" test -n "$cr"
echo "figure: shipote ws create (whole process): $cr"
st=$(loop_ms 'shipote ws stop "b$i" --grace 0')
check "shipote ws stop timed" test -n "$st"
echo "figure: shipote ws stop (whole process): $st"
check "workspace for runs" as_tester shipote ws create runs
rn=$(loop_ms 'shipote run runs -- true')
check "shipote run timed" test -n "$rn"
echo "figure: shipote run WS -- true (whole process, returns once true has exec'd in its cgroup): $rn"
check "workspace with permissions for runs" \
    as_tester shipote ws create boxed --network none --read-only --private-tmp --private-dev --hide /etc/os-release
bx=$(loop_ms 'shipote run boxed -- true')
check "shipote run with permissions timed" test -n "$bx"
echo "figure: shipote run WS -- true in a workspace with permissions (network none, read-only, private /tmp and /dev, a hidden path): $bx"
bc=$(loop_ms 'shipote ws create "p$i" --network none --read-only --private-tmp --private-dev --hide /etc/os-release')
check "shipote ws create with permissions timed" test -n "$bc"
echo "figure: shipote ws create with those permissions (whole process): $bc"
pid=$(as_tester systemctl --user show -p MainPID --value shipote)
lat=$(as_tester "$SHIPOTE_VM_IN/ws-latency" --runs 50 --many 100 --daemon-pid "$pid" 2>&1)
echo "$lat"
check "request-level latency, RSS and CPU measured" grep -q "daemon CPU" <<<"$lat"
finish
