#!/bin/bash
# Smoke suite for the VM harness itself: tester's user manager, its PAM
# session environment, cgroup v2 delegation, the user journal, and a second
# user. Runs inside the VM as root (see run.sh); `tests/vm/run.sh tests/vm/suite-smoke.sh`.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

user_cg=/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service

check "tester user manager running" \
    as_tester systemctl --user is-system-running --wait

check "PAM session env (XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS)" \
    as_tester bash -c '
        echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"
        [ "$(id -u)" = 1000 ] &&
        [ "$XDG_RUNTIME_DIR" = /run/user/1000 ] &&
        [ "$DBUS_SESSION_BUS_ADDRESS" = unix:path=/run/user/1000/bus ]'

check "tester is in its own login session cgroup" \
    as_tester bash -c 'cat /proc/self/cgroup; grep -q "^0::/user.slice/user-1000.slice/session-" /proc/self/cgroup'

check "/sys/fs/cgroup is cgroup2" \
    bash -c '[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]'

controllers_delegated() {
    local c
    cat "$user_cg/cgroup.controllers"
    for c in memory pids cpu; do
        grep -qw "$c" "$user_cg/cgroup.controllers" || return 1
    done
}
check "memory, pids, cpu delegated to user@1000.service" controllers_delegated

check "user@1000.service cgroup owned by tester" \
    bash -c "[ \"\$(stat -c %U $user_cg)\" = tester ]"

limits_in_transient_unit() {
    as_tester systemd-run --user --wait --pipe --quiet -p MemoryMax=52428800 -p TasksMax=20 \
        bash -c 'cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $cg/memory.max $cg/pids.max' |
        tr '\n' ' ' | tee /dev/stderr | grep -qx '52428800 20 '
}
check "transient user unit gets memory.max and pids.max" limits_in_transient_unit

token=smoke-$$-$RANDOM
check "tester logs with a custom journal field" \
    as_tester bash -c "printf 'MESSAGE=hello from smoke\nSHIPOTE_SMOKE=$token\n' | logger --journald"
check "journalctl --user finds it by field" \
    wait_for as_tester journalctl --user --no-pager -q "SHIPOTE_SMOKE=$token" --grep 'hello from smoke' 30
check "tester logs with systemd-cat" \
    as_tester systemd-cat -t "smoke-$token" echo via-systemd-cat
check "journalctl --user -t finds systemd-cat message" \
    wait_for as_tester journalctl --user --no-pager -q -t "smoke-$token" --grep via-systemd-cat 30

check "intruder can run a command in its own session" \
    as_intruder bash -c '[ "$(id -u)" = 1001 ] && [ "$XDG_RUNTIME_DIR" = /run/user/1001 ]'
check_fails "intruder cannot reach tester's user bus" \
    as_intruder env DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus \
    busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.DBus.Peer Ping

finish
