#!/bin/bash
# End-to-end suite of shipote on a real systemd (run by tests/vm/run.sh with the
# freshly built .deb installed). Runs as root inside the VM; see lib.sh.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

figure() { echo "figure: $*"; }
user_show() { as_tester systemctl --user show -p "$2" --value "$1"; }
leftovers() {
    find / -xdev \( -path /proc -o -path /sys -o -path "$SHIPOTE_VM_IN" \) -prune -o \
        -name '*shipote*' ! -name 'shipote-vm*' -print
}
# Checks below run `bash -c` snippets that use these.
export -f as_user as_tester as_intruder wait_for user_show leftovers

# -- the package --------------------------------------------------------------
check "binaries installed" test -x /usr/bin/shipoted -a -x /usr/bin/shipote
check "user units installed" test -f /usr/lib/systemd/user/shipote.service \
    -a -f /usr/lib/systemd/user/shipote.socket -a -f /usr/lib/systemd/user/shipote.slice
check "man pages installed" test -f /usr/share/man/man1/shipote.1.gz -a -f /usr/share/man/man8/shipoted.8.gz
check "socket enabled for users the Debian way" \
    bash -c '[ "$(as_tester systemctl --user is-enabled shipote.socket)" = enabled ]'

# -- start, READY, status, health -------------------------------------------------
# Timed inside the login session, so runuser's own cost is not counted.
start_ms=$(as_tester bash -c 's=$(date +%s%N); systemctl --user start shipote || exit 1; e=$(date +%s%N); echo $(((e - s) / 1000000))')
check "systemctl --user start shipote" test -n "$start_ms"
figure "systemctl --user start shipote until READY (start returns after READY=1): ${start_ms} ms"
check "unit is Type=notify" bash -c '[ "$(user_show shipote.service Type)" = notify ]'
check "unit active right after start returns" bash -c '[ "$(user_show shipote.service ActiveState)" = active ]'
# StatusText only exists once the daemon sent READY=1 with STATUS=: start
# returning with it set proves the unit became active after READY.
check "StatusText shows live counts" \
    bash -c 'user_show shipote.service StatusText | grep -E "^serving: [0-9]+ workspaces, [0-9]+ commands, [0-9]+ pipelines, [0-9]+ flows, [0-9]+ clients$"'
check "watchdog armed" bash -c '[ "$(user_show shipote.service WatchdogUSec)" = 30s ]'
check "daemon took the socket systemd passed" \
    bash -c 'as_tester journalctl --user -u shipote SHIPOTE_INHERITED=true -o cat | grep -q "shipoted ready"'
check "shipote health answers" bash -c 'as_tester shipote health | grep -E "^version +[0-9]"'
check "shipote --json health" bash -c 'as_tester shipote --json health | grep -q "\"alive_workspaces\":0"'
check "shipote caps sees unified cgroup v2" bash -c 'as_tester shipote caps | grep -E "^cgroup v2 +unified"'
check "socket is 0600 in a 0700 runtime dir" \
    bash -c '[ "$(stat -c %a /run/user/1000/shipote.sock)" = 600 ] && [ "$(stat -c %a /run/user/1000)" = 700 ]'

# -- audit -------------------------------------------------------------------------
check_fails "not-yet-landed request is refused (exit 1)" as_tester shipote ws create audit-probe
check "mutation audited with SHIPOTE_ACTION and the caller's uid" \
    bash -c 'wait_for bash -c "as_tester journalctl --user SHIPOTE_ACTION=workspace.create -o verbose | grep -q SHIPOTE_UID=1000" 20 &&
             as_tester journalctl --user SHIPOTE_ACTION=workspace.create -o verbose | grep -q "SHIPOTE_DETAIL=label=audit-probe"'

# -- other users ---------------------------------------------------------------------
check_fails "intruder cannot reach tester's socket" as_intruder shipote --socket /run/user/1000/shipote.sock ping
check "intruder gets a clear error" \
    bash -c 'as_intruder shipote --socket /run/user/1000/shipote.sock ping 2>&1 | grep -q "Permission denied"'
# root can pass the file permissions; the daemon itself must refuse by SO_PEERCRED.
check "another uid past the file mode is refused by the daemon" \
    bash -c 'out=$(shipote --socket /run/user/1000/shipote.sock ping 2>&1); rc=$?; echo "$out"; [ $rc = 1 ] && echo "$out" | grep -q "serves uid 1000 only and you are uid 0"'
check "refusal audited" \
    bash -c 'wait_for bash -c "as_tester journalctl --user SHIPOTE_ACTION=connection.refused -o verbose | grep -q SHIPOTE_UID=0" 20'
check "daemon still serves its user after the refusal" as_tester shipote ping

# -- stop, socket activation -----------------------------------------------------------
check "systemctl --user stop shipote" as_tester systemctl --user stop shipote
check "stopped cleanly (exit 0)" \
    bash -c '[ "$(user_show shipote.service ExecMainStatus)" = 0 ] && [ "$(user_show shipote.service Result)" = success ]'
check "stop was logged by the daemon" \
    bash -c 'as_tester journalctl --user -u shipote -o cat | grep -q "shutting down"'
check "socket still listening" bash -c '[ "$(user_show shipote.socket ActiveState)" = active ]'
check "service inactive" bash -c '[ "$(user_show shipote.service ActiveState)" = inactive ]'
# Timed inside one login session, so runuser's cost is not counted.
ping_us() { as_tester bash -c 's=$(date +%s%N); shipote ping >/dev/null || exit 1; e=$(date +%s%N); echo $(((e - s) / 1000))'; }
first=$(ping_us)
check "first ping started the service (socket activation)" test -n "$first"
check "service active after the first ping" bash -c '[ "$(user_show shipote.service ActiveState)" = active ]'
second=$(ping_us)
figure "shipote ping as a whole process: ${first} µs through socket activation (first call), ${second} µs against the running daemon"
as_tester shipote ping | sed 's/^/figure: running daemon, round trip measured by the CLI: /'

# -- remove and purge -------------------------------------------------------------------
check "stop units before removal" as_tester systemctl --user stop shipote.service shipote.socket
check "dpkg -r shipote" dpkg -r shipote
check "binaries gone after remove" bash -c '! ls /usr/bin/shipote* 2>/dev/null'
check "dpkg --purge shipote" dpkg --purge shipote
check "purge leaves no files behind" bash -c 'left=$(leftovers); echo "$left"; [ -z "$left" ]'
check "dpkg forgot the package" bash -c '! dpkg -s shipote >/dev/null 2>&1'

finish
