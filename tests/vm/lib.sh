# shellcheck shell=bash
# Helpers for VM test suites. A suite runs INSIDE the VM as root, from
# $SHIPOTE_VM_IN (which also holds lib.sh, the extra files and debs/), and
# starts with:
#
#   #!/bin/bash
#   set -uo pipefail
#   . "$(dirname "$0")/lib.sh"
#   check "user manager up" as_tester systemctl --user is-system-running --wait
#   ...
#   finish
#
#   check NAME CMD...        run CMD (a command or a shell function); prints
#                            "ok NAME" or "FAIL NAME" plus CMD's output and status
#   check_fails NAME CMD...  the same, but passes when CMD exits non-zero
#   skip NAME REASON         record a skipped check
#   finish                   print "N passed, N failed" (", N skipped") and exit
#                            non-zero if anything failed or nothing passed
#   as_tester CMD...         run CMD as tester (uid 1000, lingering) in a real PAM
#                            login session (runuser -l): HOME, XDG_RUNTIME_DIR,
#                            DBUS_SESSION_BUS_ADDRESS set; cwd is ~tester.
#                            Arguments are passed through verbatim; for pipes or
#                            redirections use: as_tester bash -c '...'
#   as_intruder CMD...       the same as intruder (uid 1001, not lingering: its
#                            first login starts user@1001)
#   as_user USER CMD...      the same for any user
#                            (the as_* functions are exported: usable inside
#                            a root `bash -c '...'`, e.g. in a pipe)
#   wait_for CMD... TIMEOUT  poll CMD every 0.5 s until it succeeds; fails after
#                            TIMEOUT seconds (last argument)
#
# as_* calls are bounded by $VM_CMD_TIMEOUT seconds (default 300). Files a
# suite writes to $SHIPOTE_VM_ARTIFACTS come back to the host with
# run.sh --out DIR.

_VM_PASS=0
_VM_FAIL=0
_VM_SKIP=0

as_user() {
    local user=$1
    shift
    local cmd
    cmd=$(printf '%q ' "$@")
    timeout -k 5 "${VM_CMD_TIMEOUT:-300}" runuser -l "$user" -s /bin/bash -c "$cmd"
}
as_tester() { as_user tester "$@"; }
as_intruder() { as_user intruder "$@"; }
# Exported, so they also work inside `bash -c '... | as_tester ...'` run as root.
export -f as_user as_tester as_intruder

_vm_report() { # NAME PASSED(0/1) RC OUTPUT
    if [ "$2" = 1 ]; then
        _VM_PASS=$((_VM_PASS + 1))
        echo "ok $1"
        if [ -n "${VERBOSE:-}" ] && [ -n "$4" ]; then
            printf '%s\n' "$4" | sed 's/^/    /'
        fi
    else
        _VM_FAIL=$((_VM_FAIL + 1))
        echo "FAIL $1 (exit $3)"
        if [ -n "$4" ]; then
            printf '%s\n' "$4" | sed 's/^/    /'
        fi
    fi
}

check() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1) && rc=0 || rc=$?
    if [ "$rc" = 0 ]; then _vm_report "$name" 1 "$rc" "$out"; else _vm_report "$name" 0 "$rc" "$out"; fi
    return 0
}

check_fails() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1) && rc=0 || rc=$?
    if [ "$rc" != 0 ]; then _vm_report "$name" 1 "$rc" "$out"; else _vm_report "$name" 0 "$rc" "$out"; fi
    return 0
}

skip() {
    _VM_SKIP=$((_VM_SKIP + 1))
    echo "skip $1${2:+: $2}"
}

wait_for() {
    if [ $# -lt 2 ]; then
        echo "wait_for: usage: wait_for CMD... TIMEOUT" >&2
        return 2
    fi
    local timeout=${!#}
    set -- "${@:1:$#-1}"
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "wait_for: timed out after ${timeout}s: $*" >&2
            "$@" 2>&1 | tail -n 20 >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

finish() {
    local line="$_VM_PASS passed, $_VM_FAIL failed"
    [ "$_VM_SKIP" -gt 0 ] && line="$line, $_VM_SKIP skipped"
    echo "$line"
    if [ "$_VM_FAIL" -gt 0 ] || [ "$_VM_PASS" -eq 0 ]; then
        exit 1
    fi
    exit 0
}
