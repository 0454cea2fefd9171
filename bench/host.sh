#!/bin/sh
# The engine where the kernel is real: this machine, TCP and Unix sockets only (never vsock
# outside the lab). hvsock relay against socat (-b 1048576, fork) and HAProxy (mode tcp,
# option splice-auto, 1 and 2 threads), interleaved rounds in one run, each relay process's
# CPU seconds (user + system, its children included: socat's forks) and peak RSS.
#
#   bench/host.sh [ROUNDS] [BULK_MIB]      (default 3 rounds, 4096 MiB bulk streams)
#
# Rows: one bulk stream tcp -> relay -> tcp and unix -> relay -> tcp (1 MiB writes); 20 bulk
# streams at once (BULK_MIB/20 each); 1,000
# concurrent connections x 10 request/responses of 1 KiB; 10,000 short connections (1 KiB
# echo), 50 at a time. The load, the sink and the echo (bench/load.c, one epoll thread each)
# are not counted; the "direct" rows are the load with no relay between. HAProxy's maxconn is
# 4000: its descriptor need (2 x maxconn) must fit the hard limit (20000 on this machine).
# `perf stat -e instructions` is shown where the machine has the counter (VMs often do not).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
bulk_mib=${2:-4096}
. bench/common.sh
need haproxy:haproxy socat:socat /usr/bin/time:time cc:gcc
cargo build -q --release -p hvsock-cli
hvsock=$PWD/target/release/hvsock
work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -o "$work/load" bench/load.c
perf_ok=""
if command -v perf >/dev/null 2>&1 && perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9]'; then perf_ok=1; fi

# What is relayed to: an echo (not measured) and a checking sink.
echo_port=9400 sink_port=9401 relay_port=9402
"$work/load" echo $echo_port > "$work/echo.out" &
pids="$pids $!"
"$work/load" sink $sink_port > "$work/sink.out" &
pids="$pids $!"
tcp_listening $echo_port
tcp_listening $sink_port

haproxy_cfg() { # THREADS FROM_BIND TO_PORT
    cat > "$work/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn 4000
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen relay
    bind $2
    server s 127.0.0.1:$3 maxconn 4000
EOF
}

# Starts TOOL from FROM (tcp or unix) to TO_PORT under GNU time; waits until it listens.
start_relay() { # TOOL FROM TO_PORT
    from=$2
    rm -f "$work/r.sock"
    case $2 in
        tcp) h_from=tcp:127.0.0.1:$relay_port s_from=TCP-LISTEN:$relay_port,fork,reuseaddr,backlog=4096 x_from=127.0.0.1:$relay_port ;;
        unix) h_from=unix:$work/r.sock s_from=UNIX-LISTEN:$work/r.sock,fork,backlog=4096 x_from=$work/r.sock ;;
    esac
    case $1 in
        hvsock) set -- "$hvsock" relay "$h_from" tcp:127.0.0.1:$3 ;;
        socat) set -- socat -b 1048576 -t 10 "$s_from" TCP:127.0.0.1:$3 ;;
        haproxy1|haproxy2) haproxy_cfg "${1#haproxy}" "$x_from" "$3"; set -- haproxy -db -f "$work/haproxy.cfg" ;;
    esac
    if [ -n "$perf_ok" ]; then set -- perf stat -x, -e instructions -o "$work/perf" -- "$@"; fi
    # GNU time itself in the background (not a subshell around it), so the relay is its child.
    (exec /usr/bin/time -f '%U %S %M' -o "$work/stats" "$@" 2>"$work/relay.log") &
    timer=$!
    i=0
    until case $from in tcp) grep -q ":$(printf %04X $relay_port) 00000000:0000 0A" /proc/net/tcp ;; unix) [ -S "$work/r.sock" ] ;; esac; do
        i=$((i + 1))
        [ $i -lt 500 ] || { echo "host: $1 never listened:" >&2; cat "$work/relay.log" >&2; exit 1; }
        sleep 0.02
    done
}

# Stops the relay; sets $spent to "CPU-seconds peak-RSS-KiB [instructions]". Not called in a
# command substitution: the relay's timer is this shell's child, to be waited for here.
stop_relay() {
    pkill -TERM -P "$timer" 2>/dev/null || true
    wait "$timer" 2>/dev/null || true
    ins=""
    [ -z "$perf_ok" ] || ins=$(awk -F, '/instructions/ { print $1 }' "$work/perf")
    spent="$(cpu_of "$work/stats") $(rss_of "$work/stats") $ins"
}

to_load() { [ "$from" = unix ] && echo "$work/r.sock" || echo "$relay_port"; }

results=$work/results
: > "$results"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"; } # work tool value cpu...

for round in $(seq "$rounds"); do
    row "bulk tcp" direct "$("$work/load" send $sink_port "$bulk_mib" 1 | cut -d' ' -f2)" "0 0"
    row "1000 x 10 rr" direct "$("$work/load" crowd $echo_port 1000 10 1024 | cut -d' ' -f1)" "0 0"
    row "10000 short" direct "$("$work/load" short $echo_port 10000 50 | cut -d' ' -f1)" "0 0"
    for tool in hvsock socat haproxy1 haproxy2; do
        for from in tcp unix; do
            start_relay $tool $from $sink_port
            mibs=$("$work/load" send "$(to_load)" "$bulk_mib" 1 | cut -d' ' -f2)
            stop_relay
            row "bulk $from" $tool "$mibs" "$spent"
        done
        from=tcp
        start_relay $tool tcp $sink_port
        mibs=$("$work/load" send "$(to_load)" "$((bulk_mib / 20))" 20 | cut -d' ' -f2)
        stop_relay
        row "20 bulk" $tool "$mibs" "$spent"
        start_relay $tool tcp $echo_port
        secs=$("$work/load" crowd "$(to_load)" 1000 10 1024 | cut -d' ' -f1)
        stop_relay
        row "1000 x 10 rr" $tool "$secs" "$spent"
        start_relay $tool tcp $echo_port
        secs=$("$work/load" short "$(to_load)" 10000 50 | cut -d' ' -f1)
        stop_relay
        row "10000 short" $tool "$secs" "$spent"
    done
    echo "host: round $round of $rounds done" >&2
done

# Per work and tool: every round's figure and CPU, the median, and the CPU per unit.
echo "host suite: $rounds rounds, interleaved; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
[ -n "$perf_ok" ] || echo "(perf stat -e instructions: this machine has no such counter)"
awk -F'\t' -v mib="$bulk_mib" '
    { k = $1 SUBSEP $2; if (!(k in n)) { order[++m] = k }
      split($4, c, " "); n[k]++; v[k, n[k]] = $3; cpu[k, n[k]] = c[1]; if (c[2] > rss[k]) rss[k] = c[2]
      if (3 in c) ins[k] = ins[k] " " c[3] }
    function median(a, k, cnt,   i, j, t, s) {
        for (i = 1; i <= cnt; i++) s[i] = a[k, i]
        for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
        return s[int((cnt + 1) / 2)] }
    END {
        printf "%-14s %-9s %14s %12s %16s %10s  %s\n", "work", "tool", "median", "CPU-s (med)", "CPU per unit", "peak RSS", "runs (value/CPU-s)"
        for (i = 1; i <= m; i++) { k = order[i]; split(k, p, SUBSEP); cnt = n[k]
            med = median(v, k, cnt); mc = median(cpu, k, cnt)
            if (p[1] ~ /bulk/) { unit = sprintf("%.3f s/GiB", mc * 1024 / mib); shown = sprintf("%.0f MiB/s", med) }
            else if (p[1] ~ /short/) { unit = sprintf("%.1f us/conn", mc * 1e6 / 10000); shown = sprintf("%.0f conn/s", 10000 / med) }
            else { unit = sprintf("%.1f us/req", mc * 1e6 / 10000); shown = sprintf("%.3f s", med) }
            runs = ""; for (j = 1; j <= cnt; j++) runs = runs sprintf(" %s/%s", v[k, j], cpu[k, j])
            printf "%-14s %-9s %14s %12.2f %16s %7d KiB %s\n", p[1], p[2], shown, mc, unit, rss[k], runs }
    }' "$results"
