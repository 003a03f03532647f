#!/bin/bash
# End-to-end suite of shipote on a real systemd (run by tests/vm/run.sh with the
# freshly built .deb installed). Runs as root inside the VM; see lib.sh.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

figure() { echo "figure: $*"; }
user_show() { as_tester systemctl --user show -p "$2" --value "$1"; }
# Users' own data (~/.local/state/shipote) is theirs: packages never touch /home.
leftovers() {
    find / -xdev \( -path /proc -o -path /sys -o -path /home -o -path "$SHIPOTE_VM_IN" \) -prune -o \
        -name '*shipote*' ! -name 'shipote-vm*' -print
}
# Checks below run `bash -c` snippets that use these.
export -f as_user as_tester as_intruder wait_for user_show leftovers

# -- the package --------------------------------------------------------------
check "binaries installed" test -x /usr/bin/shipoted -a -x /usr/bin/shipote
check "user units installed" test -f /usr/lib/systemd/user/shipote.service \
    -a -f /usr/lib/systemd/user/shipote.socket -a -f /usr/lib/systemd/user/shipote.slice
check "man pages installed, one per subcommand" test -f /usr/share/man/man1/shipote.1.gz -a -f /usr/share/man/man8/shipoted.8.gz -a -f /usr/share/man/man1/shipote-ws-create.1.gz -a -f /usr/share/man/man1/shipote-top.1.gz
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
check "the daemon raised its descriptor limit to the unit's hard limit" \
    bash -c 'grep -E "^Max open files +65536 +65536 " /proc/$(user_show shipote.service MainPID)/limits'
check "a second shipoted on the same state refuses, naming the service's pid" \
    bash -c 'pid=$(user_show shipote.service MainPID); out=$(as_tester shipoted --socket /tmp/second.sock 2>&1); st=$?; echo "$out";
             [ "$st" = 1 ] && echo "$out" | grep -q "another shipoted (pid $pid) holds the state directory"'
check "socket is 0600 in a 0700 runtime dir" \
    bash -c '[ "$(stat -c %a /run/user/1000/shipote.sock)" = 600 ] && [ "$(stat -c %a /run/user/1000)" = 700 ]'

# -- audit -------------------------------------------------------------------------
check_fails "bad request is refused (exit 1)" as_tester shipote ws create "bad/label"
check "mutation audited with SHIPOTE_ACTION and the caller's uid" \
    bash -c 'wait_for bash -c "as_tester journalctl --user SHIPOTE_ACTION=workspace.create -o verbose | grep -q SHIPOTE_UID=1000" 20 &&
             as_tester journalctl --user SHIPOTE_ACTION=workspace.create -o verbose | grep -q "SHIPOTE_DETAIL=label=\"bad/label\""'

# -- workspaces as transient scopes ------------------------------------------------------
ws_json() { as_tester shipote --json ws "$@"; }
ws_unit() { ws_json ls | tr '{' '\n' | grep "\"label\":\"$1\"" | sed 's/.*"unit":"\([^"]*\)".*/\1/'; }
ws_cg() { echo "/sys/fs/cgroup$(as_tester systemctl --user show -p ControlGroup --value "$(ws_unit "$1")")"; }
# Runs a shell snippet as a command of workspace $1.
in_ws() { as_tester shipote run "$1" -- sh -c "$2"; }
cmd_id() { as_tester shipote --json run "$@" | sed 's/.*"command_id":"\([^"]*\)".*/\1/'; }
export -f ws_json ws_unit ws_cg in_ws cmd_id

check "caps reports the systemd backend and version" \
    bash -c 'as_tester shipote caps | grep -E "^backend +systemd" && as_tester shipote caps | grep -E "^systemd +25[0-9]"'
check "ws create with limits, no warnings" \
    bash -c 'out=$(as_tester shipote ws create lim --mem 64M --tasks 20 --cpu 20% 2>&1); echo "$out"; ! echo "$out" | grep -q warning'
complete_ps() {
    as_tester bash -c 'source /usr/share/bash-completion/completions/shipote
        COMP_WORDS=(shipote ps ""); COMP_CWORD=2
        _clap_complete_shipote shipote "" ps; echo "${COMPREPLY[*]}"'
}
export -f complete_ps
check "the packaged bash completion completes workspace labels from the daemon" \
    bash -c 'complete_ps | tee /dev/stderr | grep -qw lim'
check "io weight is warned about (io is not delegated)" \
    bash -c 'as_tester shipote ws create iow --io-weight 200 2>&1 | grep -q "io controller is not delegated to the user manager; --io-weight (io_weight) is not enforced"'
check "scope in shipote.slice with Delegate and the limits" \
    bash -c 'u=$(ws_unit lim); s=$(as_tester systemctl --user show "$u" -p Slice,Delegate,MemoryMax,TasksMax,CPUQuotaPerSecUSec,OOMPolicy,CollectMode); echo "$s";
             echo "$s" | grep -qx Slice=shipote.slice && echo "$s" | grep -qx Delegate=yes && echo "$s" | grep -qx MemoryMax=67108864 &&
             echo "$s" | grep -qx TasksMax=20 && echo "$s" | grep -qx CPUQuotaPerSecUSec=200ms && echo "$s" | grep -qx OOMPolicy=continue &&
             echo "$s" | grep -qx CollectMode=inactive-or-failed'
check "cgroup files hold the limits" \
    bash -c 'cg=$(ws_cg lim); cat $cg/memory.max $cg/pids.max $cg/cpu.max; [ "$(cat $cg/memory.max)" = 67108864 ] && [ "$(cat $cg/pids.max)" = 20 ] && [ "$(cat $cg/cpu.max)" = "20000 100000" ]'
check "keeper sits in a leaf; controllers enabled below the scope" \
    bash -c 'cg=$(ws_cg lim); [ -n "$(cat $cg/keeper/cgroup.procs)" ] && [ -z "$(cat $cg/cgroup.procs)" ] && grep -q memory $cg/cgroup.subtree_control && grep -q pids $cg/cgroup.subtree_control'
check "ws stats agree with the cgroup and systemctl" \
    bash -c 'cg=$(ws_cg lim); v=$(ws_json show lim); echo "$v" | grep -q "\"source\":\"cgroup\"" &&
             t=$(echo "$v" | sed "s/.*\"tasks\":\([0-9]*\).*/\1/"); [ "$t" = "$(cat $cg/pids.current)" ] &&
             [ "$t" = "$(as_tester systemctl --user show -p TasksCurrent --value "$(ws_unit lim)")" ]'

# Commands land in the scope, in a leaf of their own, before their first
# instruction; a child forked at once is inside too.
placed() {
    local id unit cg
    id=$(cmd_id lim -- sh -c 'cat /proc/self/cgroup & wait; exec cat /proc/self/cgroup') || return 1
    unit=$(ws_unit lim)
    cg=$(as_tester systemctl --user show -p ControlGroup --value "$unit")
    wait_for bash -c "[ \"\$(as_tester shipote logs lim $id | grep -c '^0::$cg/cmd-$id\$')\" = 2 ]" 20
}
check "command and its first child are in the scope's command leaf" placed
check "command exit status recorded" bash -c 'id=$(cmd_id lim -- sh -c "exit 7"); wait_for bash -c "as_tester shipote ps lim | grep $id | grep -q \"exited 7\"" 20'

# OOM: a memory hog is killed, its sibling survives, the breach shows.
check "sibling process started" in_ws lim "exec sleep 300"
check "memory hog started" in_ws lim "head -c 400M /dev/zero | tail"
check "memory hog OOM-killed" wait_for bash -c 'grep -q "oom_kill [1-9]" $(ws_cg lim)/memory.events' 120
check "sibling survives the OOM kill" bash -c 'cg=$(ws_cg lim); for p in $(cat $cg/cmd-*/cgroup.procs); do tr "\0" " " < /proc/$p/cmdline; echo; done | grep -q "^sleep 300"'
check "scope still active after the OOM kill (OOMPolicy=continue)" \
    bash -c '[ "$(as_tester systemctl --user show -p ActiveState --value "$(ws_unit lim)")" = active ]'
check "quota shows the OOM breach" bash -c 'as_tester shipote ws quota lim | tee /dev/stderr | grep -E "^memory.oom_kill +[1-9]"'

# A tapped pipeline inside the limited workspace: exact output through taps,
# its flow sockets listed while it runs.
pipe_file=/tmp/e2e-pipe.toml
cat >"$pipe_file" <<'TOML'
workspace = "lim"
label = "e2e"

[[command]]
label = "gen"
exec = "sh"
argv = ["-c", "seq 1 ${N}; sleep 2"]

[[command]]
label = "map"
exec = "tr"
argv = ["0-9", "a-j"]

[[command]]
label = "sum"
exec = "sha256sum"

[[edge]]
from = "gen"
to = "map"

[[edge]]
from = "map"
to = "sum"
TOML
chmod 644 "$pipe_file"
check "tapped pipeline starts in the limited workspace" \
    bash -c "as_tester shipote pipeline run $pipe_file --tap --var N=200000 | tee /dev/stderr | grep -q '^pipeline '"
check "its flow sockets are listed while it runs" bash -c 'as_tester shipote flow ls | tee /dev/stderr | grep -q "\.sock"'
check "tapped pipeline output is exact" \
    wait_for bash -c 'want=$(seq 1 200000 | tr 0-9 a-j | sha256sum); [ "$(as_tester shipote logs lim sum)" = "$want" ]' 30
rm -f "$pipe_file"

# Fork bomb held at TasksMax.
check "ws create bomb --tasks 20" as_tester shipote ws create bomb --tasks 20
check "many forks started" in_ws bomb "for i in \$(seq 60); do sleep 120 & done; wait"
check "tasks held at 20, refused forks counted" wait_for bash -c 'cg=$(ws_cg bomb); cat $cg/pids.events $cg/*/pids.events | awk "/^max/ {s += \$2} END {exit !(s > 0)}" && [ "$(cat $cg/pids.current)" -le 20 ]' 60
check "quota shows pids.max breaches" bash -c 'as_tester shipote ws quota bomb | grep -E "^pids.max +[1-9]"'

# CPU quota: a busy loop at 20% uses about 0.2 s of CPU per second.
check "ws create spin --cpu 20%" as_tester shipote ws create spin --cpu 20%
spin_cpu() {
    local cg u0 u1
    cg=$(ws_cg spin)
    in_ws spin 'exec timeout 4 sh -c "while :; do :; done"' || return 1
    sleep 0.5
    u0=$(sed -n "s/^usage_usec //p" "$cg/cpu.stat")
    sleep 3
    u1=$(sed -n "s/^usage_usec //p" "$cg/cpu.stat")
    echo "cpu used over 3 s: $(((u1 - u0) / 1000)) ms"
    [ $((u1 - u0)) -ge 300000 ] && [ $((u1 - u0)) -le 900000 ]
}
check "busy loop held near 20% of a CPU" spin_cpu

# Stop leaves nothing behind.
check "daemonized grandchild started" in_ws spin "(setsid sleep 310 &); exec sleep 311"
check "grandchild running" wait_for pgrep -u tester -f "sleep 310" 20
stop_all() {
    for l in lim iow bomb spin; do as_tester shipote ws stop "$l" --grace 500ms || return 1; done
}
check "ws stop every workspace" stop_all
check "no shipote unit left" bash -c '[ -z "$(as_tester systemctl --user list-units --all --no-legend "shipote-*")" ]'
check "no workspace process left (daemonized grandchild included)" bash -c '! pgrep -u tester -f "sleep (300|120|310|311)"'
check "stops audited" bash -c 'as_tester journalctl --user SHIPOTE_ACTION=workspace.stop -o cat | grep -c "workspace.stop" | grep -q 4'

# -- permissions (issue 8): namespaces entered by each command, unprivileged ------
check "caps: unprivileged user namespaces allowed" bash -c 'as_tester shipote caps | tee /dev/stderr | grep -E "^user namespaces +allowed"'
# A loopback server outside every workspace, ready once it says it listens.
coproc HOSTSRV { exec systemd-socket-activate -l 127.0.0.1:4343 --accept --inetd /bin/echo host-ok 2>&1; }
read -r -t 20 srv_line <&"${HOSTSRV[0]}"
check "loopback server outside the workspaces listens" bash -c "echo '$srv_line' | grep -q Listening"
# Runs bash snippet $2 in workspace $1; prints its output once it ended.
ws_out() {
    local id
    id=$(cmd_id "$1" -- bash -c "$2") || return 1
    wait_for bash -c "as_tester shipote ps $1 | grep $id | grep -q exited" 20 || return 1
    as_tester shipote logs "$1" "$id"
}
export -f ws_out
as_tester bash -c 'mkdir -p ~/ro ~/rw ~/secret && echo before > ~/ro/f && echo S3CRET > ~/secret/key && rm -f ~/rw/*'
check "ws create with no permissions asked" as_tester shipote ws create p-open
check "ws create --network none" as_tester shipote ws create p-none --network none
check "ws create --network loopback" as_tester shipote ws create p-lo --network loopback
check "ws create --read-only --writable --hide --private-tmp" \
    as_tester shipote ws create p-fs --read-only --writable /home/tester/rw --hide /home/tester/secret --private-tmp --private-dev
check_fails "ws create refuses a hidden path that does not exist" as_tester shipote ws create p-bad --hide /home/tester/nope
check "a workspace that asks for nothing reaches the host's loopback" \
    bash -c 'out=$(ws_out p-open "exec 3<>/dev/tcp/127.0.0.1/4343 && cat <&3; grep NoNewPrivs /proc/self/status"); echo "$out"; echo "$out" | grep -qx host-ok && echo "$out" | grep -qE "^NoNewPrivs:\s+1$"'
check "network none cannot connect to the loopback server" \
    bash -c 'out=$(ws_out p-none "exec 3<>/dev/tcp/127.0.0.1/4343 && cat <&3"); echo "$out"; echo "$out" | grep -q "Network is unreachable" && ! echo "$out" | grep -q host-ok'
# Inside: its own server on its own lo, ready when it says so; then the host's port.
lo_script='coproc S { exec systemd-socket-activate -l 127.0.0.1:4242 --accept --inetd /bin/echo own-ok 2>&1; }
read -r l <&"${S[0]}"; echo "server: $l"; exec 3<>/dev/tcp/127.0.0.1/4242 && cat <&3
exec 4<>/dev/tcp/127.0.0.1/4343 && cat <&4; kill $S_PID'
export lo_script
check "loopback-only reaches its own lo, not the host's" \
    bash -c 'out=$(ws_out p-lo "$lo_script"); echo "$out"; echo "$out" | grep -qx own-ok && echo "$out" | grep -q "Connection refused" && ! echo "$out" | grep -q host-ok'
check "a sandboxed command reaches neither the daemon nor the user manager" \
    bash -c 'out=$(ws_out p-none "shipote ping; systemctl --user is-system-running"); echo "$out";
             ! echo "$out" | grep -q "^pong" && echo "$out" | grep -qi "failed to connect"'
check "a write outside the writable paths fails with EROFS, the file unchanged" \
    bash -c 'out=$(ws_out p-fs "echo after > ~/ro/f; echo w=\$?; echo ok > ~/rw/f; echo rw=\$?"); echo "$out";
             echo "$out" | grep -q "Read-only file system" && echo "$out" | grep -qx "w=1" && echo "$out" | grep -qx "rw=0" &&
             [ "$(cat /home/tester/ro/f)" = before ] && [ "$(stat -c %U:%G /home/tester/rw/f)" = tester:tester ]'
check "a hidden path is not readable" \
    bash -c 'out=$(ws_out p-fs "cat ~/secret/key; ls ~/secret"); echo "$out"; echo "$out" | grep -q "Permission denied" && ! echo "$out" | grep -q S3CRET'
check "permissions hold for a daemonized grandchild" \
    bash -c 'ws_out p-fs "(setsid bash -c \"echo x > ~/ro/g; cat ~/secret/key; echo done\" > ~/rw/g.out 2>&1 &)" &&
             wait_for grep -q done /home/tester/rw/g.out 20 && cat /home/tester/rw/g.out &&
             grep -q "Read-only file system" /home/tester/rw/g.out && grep -q "Permission denied" /home/tester/rw/g.out &&
             ! grep -q S3CRET /home/tester/rw/g.out && [ ! -e /home/tester/ro/g ]'
check "private /tmp and /dev; no capabilities" \
    bash -c 'as_tester touch /tmp/host-marker; out=$(ws_out p-fs "ls -A /tmp | wc -l; ls /dev | tr \"\n\" \" \"; echo; grep CapBnd /proc/self/status"); echo "$out";
             echo "$out" | head -1 | grep -qx 0 && echo "$out" | grep -qx "fd full null random shm stderr stdin stdout tty urandom zero " &&
             echo "$out" | grep -qE "^CapBnd:\s+0+$"'
check "ws show prints the permissions" \
    bash -c 'as_tester shipote ws show p-fs | tee /dev/stderr | grep -E "^permissions +read-only but /home/tester/rw, hidden /home/tester/secret, private /tmp, private /dev$"'
check "a workspace's commands share its private /tmp" \
    bash -c 'ws_out p-fs "echo shared-note > /tmp/note" && out=$(ws_out p-fs "cat /tmp/note"); echo "$out"; [ "$out" = shared-note ] && [ ! -e /tmp/note ]'
# Seen from outside, in its scope's leaf; from inside, at the root of its own
# cgroup namespace.
check "commands of a sandboxed workspace still land in its scope, each in a cgroup namespace of its own" \
    bash -c 'id=$(cmd_id p-fs -- bash -c "cat /proc/self/cgroup; exec sleep 60"); cg=$(ws_cg p-fs);
             wait_for bash -c "[ -n \"\$(cat $cg/cmd-$id/cgroup.procs 2>/dev/null)\" ]" 20 &&
             wait_for bash -c "as_tester shipote logs p-fs $id | grep -qx 0::/" 20'
# issue 17: a PID namespace per sandboxed workspace, its init in the scope.
mainpid() { as_tester systemctl --user show -p MainPID --value shipote; }
export -f mainpid
check "a sandboxed command can signal neither shipoted nor another workspace (PID namespace)" \
    bash -c 'victim=$(cmd_id p-open -- sleep 300); vpid=$(as_tester shipote --json ps p-open | tr "{" "\n" | grep "\"id\":\"$victim\"" | sed "s/.*\"pid\":\([0-9]*\).*/\1/");
             m=$(mainpid); out=$(ws_out p-none "kill -0 $m 2>/dev/null && echo daemon-reached; kill -TERM $vpid 2>/dev/null && echo victim-reached; kill -KILL -1 2>/dev/null; echo done"); echo "$out";
             [ "$out" = done ] && [ "$(mainpid)" = "$m" ] && kill -0 "$vpid"'
check "a sandboxed command sees only its workspace in /proc, the init as pid 1" \
    bash -c 'out=$(ws_out p-none "cat /proc/1/comm; ls -d /proc/[0-9]* | wc -l"); echo "$out";
             [ "$(echo "$out" | head -1)" = shipote-init ] && [ "$(echo "$out" | tail -1)" -le 6 ]'
check "the workspace's init lives beside its keeper, in its scope" \
    bash -c 'cg=$(ws_cg p-none); for p in $(cat $cg/keeper/cgroup.procs); do cat /proc/$p/comm; done | grep -qx shipote-init'
check "ws show names the layers, Landlock included or said missing" \
    bash -c 'as_tester shipote ws show p-none | tee /dev/stderr | grep -E "^enforced by .*PID and cgroup namespaces.*(Landlock \(ABI [0-9]+\)|no Landlock on this kernel)"'
# A sandboxed command cannot raise its scope's limits, leave its cgroup or
# touch another workspace's (the user owns the whole tree under user@.service).
no_cgroup_escape() {
    local cg other out
    cg=$(ws_cg p-none); other=$(ws_cg p-open)
    out=$(ws_out p-none "(echo max > $cg/memory.max) 2>/dev/null && echo raised;
                         (echo \$\$ > $other/cgroup.procs) 2>/dev/null && echo moved;
                         (echo 1 > $other/cgroup.freeze) 2>/dev/null && echo froze; echo done")
    echo "$out"; [ "$out" = done ]
}
check "a sandboxed command cannot raise its limits, move itself or freeze another workspace" no_cgroup_escape
check "a sandboxed command cannot nest a user namespace (seccomp)" \
    bash -c 'out=$(ws_out p-none "unshare -U true 2>&1; echo rc=\$?"); echo "$out"; echo "$out" | grep -q "Operation not permitted" && echo "$out" | grep -q "rc=1"'
check "a sandboxed workspace does not see the daemon's state or logs" \
    bash -c 'out=$(ws_out p-none "ls ~/.local/state/shipote 2>&1 | head -3; ls /dev/pts | tr \"\n\" \" \""); echo "$out"; ! echo "$out" | grep -q workspaces.json && echo "$out" | grep -q "^ptmx $"'
kill "$HOSTSRV_PID" 2>/dev/null
stop_perm() { for l in p-open p-none p-lo p-fs; do as_tester shipote ws stop "$l" --grace 0 || return 1; done; }
check "ws stop the permission workspaces" stop_perm
# A kept sandboxed workspace keeps its PID namespace through a restart: the
# command lives on, and a new one joins it.
check "ws create p-keep --network none --keep-on-exit" as_tester shipote ws create p-keep --network none --keep-on-exit
keep_id=$(cmd_id p-keep -- sleep 300)
check "systemctl --user restart shipote (sandboxed kept workspace)" as_tester systemctl --user restart shipote
check "the kept sandboxed command lives on, in the same PID namespace as a new one" \
    bash -c 'out=$(ws_out p-keep "cat /proc/[0-9]*/cmdline | tr \"\\0\" \" \""); echo "$out"; echo "$out" | grep -q "sleep 300" &&
             as_tester shipote ps p-keep | grep '"$keep_id"' | grep -q running'
check "ws stop p-keep" as_tester shipote ws stop p-keep --grace 0
check "no workspace init is left once they are stopped" bash -c '! pgrep -u tester -x shipote-init'
as_tester bash -c 'rm -rf ~/ro ~/rw ~/secret' ; rm -f /tmp/host-marker


# TTL via RuntimeMaxSec and the daemon's timer.
check "ws create brief --ttl 3s" as_tester shipote ws create brief --ttl 3s
check "RuntimeMaxUSec set" bash -c '[ "$(as_tester systemctl --user show -p RuntimeMaxUSec --value "$(ws_unit brief)")" = 3s ]'
check "TTL expires the workspace" wait_for bash -c '[ -z "$(as_tester systemctl --user list-units --all --no-legend "shipote-brief-*")" ] && ! as_tester shipote ws ls | grep -q brief' 60
check "expiry audited" wait_for bash -c 'as_tester journalctl --user SHIPOTE_ACTION=workspace.expire -o cat | grep -q brief' 20

# Restart: kept workspaces are re-adopted, reaped ones stopped.
check "ws create kept --keep-on-exit" as_tester shipote ws create kept --keep-on-exit
check "ws create reaped" as_tester shipote ws create reaped
check "process in the kept workspace" in_ws kept "exec sleep 300"
check "systemctl --user restart shipote" as_tester systemctl --user restart shipote
check "kept workspace re-adopted" bash -c 'as_tester shipote ws ls | grep -q kept && ! as_tester shipote ws ls | grep -q reaped'
check "kept scope still running, reaped scope gone" \
    bash -c 'as_tester systemctl --user list-units --no-legend "shipote-kept-*" | grep -q active && [ -z "$(as_tester systemctl --user list-units --all --no-legend "shipote-reaped-*")" ]'
check "reap at shutdown audited" bash -c 'as_tester journalctl --user SHIPOTE_ACTION=workspace.reap -o cat | grep -q reaped'

# A restart, a crash (kill -9, systemd restarts it) and a stop with a command
# ending meanwhile lose nothing of a kept workspace: same pid, never
# signalled, every line once and in order, the real exit status.
S=/home/tester/surv
as_tester bash -c "rm -rf $S; mkdir $S"
surv_pid() { as_tester shipote --json ps surv | tr '{' '\n' | grep "\"id\":\"$1\"" | sed 's/.*"pid":\([0-9]*\).*/\1/'; }
progress() { cat "$S/p" 2>/dev/null || echo 0; }
counts_on() { local t=$(($(progress) + $1)) i; for i in $(seq 1 300); do [ "$(progress)" -ge "$t" ] && return 0; sleep 0.1; done; echo "stuck at $(progress), wanted $t"; return 1; }
exited_7() { as_tester shipote ps surv | grep "$1" | grep -q "exited 7"; }
export S
export -f surv_pid exited_7
check "ws create surv --keep-on-exit" as_tester shipote ws create surv --keep-on-exit
counter="i=0; while [ ! -e $S/stop ]; do i=\$((i+1)); echo \$i; echo \$i > $S/p.tmp; mv $S/p.tmp $S/p; sleep 0.01; done; echo end; exit 7"
surv_id=$(cmd_id surv -- sh -c "$counter")
check "counter runs in the kept workspace" counts_on 20
pid0=$(surv_pid "$surv_id")
same_pid_and_counting() { [ -n "$pid0" ] && [ "$(surv_pid "$surv_id")" = "$pid0" ] && counts_on 20; }
check "systemctl --user restart shipote (counter running)" as_tester systemctl --user restart shipote
check "same command, same pid after the restart" same_pid_and_counting
crash() {
    local old new i
    old=$(user_show shipote.service MainPID)
    kill -9 "$old" || return 1
    for i in $(seq 1 300); do
        new=$(user_show shipote.service MainPID)
        if [ "$new" != 0 ] && [ "$new" != "$old" ] && [ "$(user_show shipote.service ActiveState)" = active ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
check "kill -9 of the daemon; systemd restarts it" crash
check "same command, same pid after the crash" same_pid_and_counting
check "counter stopped, exit 7 reported" bash -c "touch $S/stop; wait_for exited_7 $surv_id 30"
lines_in_order() {
    local log n
    log=$(as_tester shipote logs surv "$surv_id" --bytes 10M) || return 1
    n=$(($(printf '%s\n' "$log" | wc -l) - 1))
    [ "$n" -gt 60 ] && [ "$(printf '%s\n' "$log" | tail -n 1)" = end ] &&
        [ "$(printf '%s\n' "$log" | head -n "$n")" = "$(seq 1 "$n")" ]
}
check "every line once and in order across both" lines_in_order
down_id=$(cmd_id surv -- sh -c "echo before; while [ ! -e $S/go ]; do sleep 0.05; done; echo after; exit 7")
exits_while_down() {
    wait_for bash -c "as_tester shipote logs surv $down_id | grep -q before" 20 || return 1
    local p
    p=$(surv_pid "$down_id")
    [ -n "$p" ] || return 1
    as_tester systemctl --user stop shipote.service shipote.socket || return 1
    touch "$S/go"
    wait_for test ! -e "/proc/$p" 20 || return 1
    as_tester systemctl --user start shipote.socket shipote.service || return 1
    wait_for exited_7 "$down_id" 20 || return 1
    [ "$(as_tester shipote logs surv "$down_id")" = "$(printf 'before\nafter')" ]
}
check "a command that exits 7 while no daemon runs is shown exited 7" exits_while_down
# Restart to READY with 10 kept workspaces and 100 running commands.
mk_many() {
    local w c
    for w in $(seq 1 10); do
        as_tester shipote ws create "many$w" --keep-on-exit >/dev/null || return 1
        for c in $(seq 1 10); do as_tester shipote run "many$w" -- sleep 600 >/dev/null || return 1; done
    done
}
check "10 kept workspaces with 10 commands each" mk_many
restart_ms=$(as_tester bash -c 's=$(date +%s%N); systemctl --user restart shipote || exit 1; e=$(date +%s%N); echo $(((e - s) / 1000000))')
check "restart with 100 running commands" test -n "$restart_ms"
figure "systemctl --user restart shipote until READY with 10 kept workspaces and 100 running commands: ${restart_ms} ms"
all_known() {
    local n=0 w
    for w in $(seq 1 10); do n=$((n + $(as_tester shipote --json ps "many$w" | grep -o '"alive":true' | wc -l))); done
    echo "$n alive"; [ "$n" = 100 ]
}
check "all 100 commands known after it" all_known
stop_many() {
    local w
    for w in $(seq 1 10); do as_tester shipote ws stop "many$w" --grace 0 >/dev/null || return 1; done
    as_tester shipote ws stop surv >/dev/null
}
check "stop them" stop_many

check "ws create lost --keep-on-exit" as_tester shipote ws create lost --keep-on-exit
check "daemon stopped, state file lost, daemon started" \
    bash -c 'as_tester systemctl --user stop shipote && as_tester bash -c "rm ~/.local/state/shipote/workspaces.json" && as_tester systemctl --user start shipote'
check "running scopes found on the bus are adopted" bash -c 'l=$(as_tester shipote ws ls); echo "$l"; echo "$l" | grep -q lost && echo "$l" | grep -q kept'
check "rebuilt from its keeper's record, audited" bash -c 'as_tester journalctl --user SHIPOTE_ACTION=workspace.rebuild -o cat | grep -q "rebuilt from its keeper"'
check "ws stop lost" as_tester shipote ws stop lost
check "ws stop kept ends its process" bash -c 'as_tester shipote --json ws stop kept | grep -q "\"reaped\":1"'

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
