#!/bin/sh
# `hvsock forward` against two `hvsock relay`s and against ssh -L, each carrying the same load
# over vsock in one lab guest: tcp -> [tool's client end] -> vsock -> [tool's serving end] -> tcp.
# Rows: one bulk stream of SIZE MiB; 1,000 connections at once x 10 request/responses of 1 KiB,
# three times on the same processes (rounds steady?); and 1,000 idle connections held open, for
# the memory each costs. Time, the CPU seconds of both ends (children included: ssh's sshd and
# ProxyCommand) and their peak RSS. The load (bench/load.c) is not counted. UML system calls are
# slow: compare rows with each other, never with numbers from outside this guest.
#   bench/forward.sh [SIZE_MIB] [RUNS] [TOOLS] [WORK]   (TOOLS: "relay forward ssh"; WORK: "bulk rr idle")
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-512}
runs=${2:-3}
only_tools=${3:-relay forward ssh}
works=${4:-bulk rr idle}
. bench/common.sh
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    need /usr/bin/time:time /usr/sbin/sshd:openssh-server ssh:openssh-client python3:python3
    cargo build -q --release -p hvsock-cli
    work=$(mktemp -d)
    cc -O2 -o "$work/load" bench/load.c
    HVSOCK_BENCH_WORK=$work exec target/release/hvsock lab run --timeout 3600 -- sh "$0" "$size_mib" "$runs" "$only_tools" "$works"
fi

hvsock="$PWD/target/release/hvsock"
work=$HVSOCK_BENCH_WORK
load="$work/load"
echo_port=9301 sink_port=9302 port=9310
"$load" echo $echo_port > "$work/echo.out" &
"$load" sink $sink_port > "$work/sink.out" &
tcp_listening $echo_port; tcp_listening $sink_port

# ssh over vsock: sshd started per connection by `hvsock listen --exec` (inetd style), a key
# of its own; the guest runs as root, with this machine's files.
ssh_ok=""
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null; then
    mkdir -p /run/sshd "$work/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user"
    cat > "$work/ssh/sshd_config" <<EOF
HostKey $work/ssh/host
AuthorizedKeysFile $work/ssh/user.pub
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
EOF
    ssh_ok=1
fi

# Starts TOOL's two ends towards TARGET port; its client end listens on $port.
start_tool() { # TOOL TARGET
    port=$((port + 2)); v=$((port + 1))
    case $1 in
        relay)
            a="$hvsock relay vsock:any:$v tcp:127.0.0.1:$2"
            b="$hvsock relay tcp:127.0.0.1:$port vsock:1:$v" ;;
        forward)
            a="$hvsock forward --serve vsock:any:$v --allow 127.0.0.1:$2"
            b="$hvsock forward vsock:1:$v -L $port:127.0.0.1:$2" ;;
        ssh)
            a="$hvsock listen vsock:any:$v -k --exec '/usr/sbin/sshd -i -f $work/ssh/sshd_config'"
            b="ssh -N -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i $work/ssh/user -o ProxyCommand='$hvsock connect vsock:1:$v' -L $port:127.0.0.1:$2 root@guest" ;;
    esac
    (exec /usr/bin/time -f '%U %S %M' -o "$work/a.stats" sh -c "exec $a" 2>"$work/a.log") &
    ta=$!
    "$hvsock" lab wait --timeout 20 $v >/dev/null
    (exec /usr/bin/time -f '%U %S %M' -o "$work/b.stats" sh -c "exec $b" 2>"$work/b.log") &
    tb=$!
    tcp_listening $port
    # forward's -L listens before its connection is up: wait for that too.
    [ "$1" != forward ] || until grep -q 'connected to' "$work/b.log"; do sleep 0.02; done
}

# Stops both ends; sets $spent to "CPU-seconds peak-RSS-KiB" (both ends: CPU summed, RSS the
# two peaks summed).
stop_tool() {
    pkill -TERM -P "$tb" 2>/dev/null || true; wait "$tb" 2>/dev/null || true
    pkill -TERM -P "$ta" 2>/dev/null || true; wait "$ta" 2>/dev/null || true
    spent=$(cat "$work/a.stats" "$work/b.stats" | awk '/^[0-9.]+ [0-9.]+ [0-9]+$/ { c += $1 + $2; m += $3 } END { printf "%.2f %d", c, m }')
}

# Every process of both ends (the two timers' children and theirs).
tree() {
    for t in $ta $tb; do for p in $(pgrep -P "$t"); do echo $p; pgrep -P "$p" || true; done; done
}

# The CPU seconds both ends have spent so far (their children reaped and running included).
cpu_now() {
    for q in $(tree); do cat /proc/$q/stat 2>/dev/null; done |
        awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15 } END { printf "%.2f", s / hz }'
}

# The resident memory of both ends now, in KiB.
rss_now() {
    for q in $(tree); do awk '/VmRSS/ { print $2 }' /proc/$q/status 2>/dev/null; done | awk '{ s += $1 } END { print s }'
}

results=$work/results
: > "$results"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"; } # work tool value cpu rss

tools=""
for t in $only_tools; do [ "$t" != ssh ] || [ -n "$ssh_ok" ] && tools="$tools $t"; done
has() { case " $works " in *" $1 "*) return 0 ;; esac; return 1; }
has bulk || runs=0
for run in $(seq "$runs"); do
    for tool in $tools; do
        start_tool $tool $sink_port
        mibs=$("$load" send $port "$size_mib" 1 | cut -d' ' -f2)
        stop_tool
        row "bulk ${size_mib} MiB" $tool "$mibs MiB/s" "$spent"
    done
    echo "forward bench: bulk run $run of $runs done" >&2
done
for tool in $tools; do
    has rr || continue
    start_tool $tool $echo_port
    for round in 1 2 3; do
        c0=$(cpu_now)
        out=$("$load" crowd $port 1000 10 1024 || true)
        c1=$(cpu_now)
        row "1000 x 10 rr, round $round" $tool "$(echo "$out" | awk '{ printf "%s s, %s errors", $1, $2 }')" "$(echo "$c0 $c1" | awk '{ printf "%.2f", $2 - $1 }') -"
    done
    stop_tool
done
for tool in $tools; do
    has idle || continue
    # 1,000 idle connections held, on fresh processes: what each costs both ends.
    start_tool $tool $echo_port
    idle0=$(rss_now)
    python3 - "$port" "$sink_port" <<'EOF' &
import socket, sys, time
port, sink = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
open("/tmp/idle-held", "w").write("held")
time.sleep(3600)
EOF
    holder=$!
    until [ -f /tmp/idle-held ]; do sleep 0.05; done
    # Every one joined end to end (the tool has connected its target): 1,000 at the echo.
    until [ "$(awk -v p=":$(printf %04X $echo_port)" '$2 ~ p"$" && $4 == "01"' /proc/net/tcp | wc -l)" -ge 1000 ]; do sleep 0.05; done
    idle1=$(rss_now)
    kill $holder; rm -f /tmp/idle-held
    stop_tool
    row "1000 idle: KiB per connection" $tool "$(( (idle1 - idle0) / 1000 )) ($idle0 KiB before)" "$spent"
done

echo "forward bench: $runs bulk runs, interleaved; $(nproc) CPU in the guest; CPU-s and peak RSS are both ends'"
awk -F'\t' '{ split($4, c, " "); printf "%-32s %-8s %-26s CPU-s %-6s peak RSS %s KiB\n", $1, $2, $3, c[1], c[2] }' "$results"
