#!/bin/sh
# One 1 GiB stream, tcp -> relay -> vsock, through `hvsock relay` and through socat
# (`socat TCP-LISTEN:... VSOCK-CONNECT:...`, as shipped and with a 256 KiB buffer), in the same
# lab guest, same source and sink, best of N runs each. UML system calls are slow: compare the
# rows with each other, never with numbers taken outside this guest.
# Then 20 streams at once through one relay, for the relay's memory under bulk load.
#   bench/relay.sh [SIZE_MIB] [RUNS]
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
. bench/common.sh
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    need socat:socat /usr/bin/time:time
    cargo build -q --release -p hvsock-cli
    exec target/release/hvsock lab run --timeout 1800 -- sh "$0" "$size_mib" "$runs"
fi

hvsock="$PWD/target/release/hvsock"
bytes=$((size_mib * 1048576))
port=9100
stats=/tmp/relay-stats.$$

# Time from the first byte sent until the relay has finished (the sink got everything and
# closed); prints MiB/s, the relay's CPU seconds and its peak RSS in KiB.
measure() { # relay command...
    port=$((port + 2))
    socat -u -b 262144 VSOCK-LISTEN:$((port + 1)) OPEN:/dev/null 2>/dev/null &
    sink=$!
    sed_cmd=$(echo "$*" | sed "s/FROM/$port/g; s/TO/$((port + 1))/g")
    "$hvsock" lab wait --timeout 10 $((port + 1)) >/dev/null
    timed $stats sh -c "exec $sed_cmd" 2>/dev/null &
    relay=$!
    tcp_listening $port
    start=$(date +%s.%N)
    socat -u -b 262144 OPEN:/dev/zero,readbytes=$bytes TCP:127.0.0.1:$port
    wait $relay || true
    end=$(date +%s.%N)
    wait $sink 2>/dev/null || true
    echo "$start $end $(cpu_of $stats) $(rss_of $stats)" |
        awk -v b="$bytes" '{ printf "%.1f@%s@%d", b / 1048576 / ($2 - $1), $3, $4 }'
}

# Each run of each row, interleaved with the other rows' runs (a shared machine's slow minute
# hits them all alike); then per row: the best rate, the lowest CPU seconds per GiB, the peak
# RSS, every run's rate.
rows=/tmp/relay-rows.$$; results=/tmp/relay-results.$$
: >$rows; : >$results
row() { printf '%s\t%s\n' "$1" "$2" >>$rows; }
run_rows() {
    tab=$(printf '\t')
    for _ in $(seq "$runs"); do
        while IFS=$tab read -r label cmd; do
            printf '%s\t%s\n' "$label" "$(measure $cmd </dev/null)" >>$results
        done <$rows
    done
    rows_summary $results "$size_mib" 50
    rm -f $rows $results
}

echo "1 stream of $size_mib MiB, tcp:127.0.0.1 -> relay -> vsock:1, in the lab guest ($(nproc) CPU)"
row "hvsock relay tcp:..FROM vsock:1:TO" "$hvsock relay tcp:127.0.0.1:FROM vsock:1:TO --count 1"
# Another build beside this one (HVSOCK_BASELINE=path/to/hvsock), to compare two versions.
[ -z "${HVSOCK_BASELINE:-}" ] ||
    row "baseline: $HVSOCK_BASELINE" "$HVSOCK_BASELINE relay tcp:127.0.0.1:FROM vsock:1:TO --count 1"
# socat with its default 8 KiB buffer is far behind (14 MiB/s here): left out for time.
row "socat -b 262144 TCP-LISTEN:FROM VSOCK-CONNECT:1:TO" "socat -b 262144 TCP-LISTEN:FROM,reuseaddr VSOCK-CONNECT:1:TO"
row "socat -b 1048576 TCP-LISTEN:FROM VSOCK-CONNECT:1:TO" "socat -b 1048576 TCP-LISTEN:FROM,reuseaddr VSOCK-CONNECT:1:TO"
run_rows

# The reference: the same sender straight to the vsock sink, no relay.
direct() {
    port=$((port + 2))
    socat -u -b 262144 VSOCK-LISTEN:$port OPEN:/dev/null 2>/dev/null &
    sink=$!
    "$hvsock" lab wait --timeout 10 $port >/dev/null
    start=$(date +%s.%N)
    socat -u -b 262144 OPEN:/dev/zero,readbytes=$bytes VSOCK-CONNECT:1:$port
    wait $sink 2>/dev/null || true
    end=$(date +%s.%N)
    echo "$start $end" | awk -v b="$bytes" '{ printf "%.1f", b / 1048576 / ($2 - $1) }'
}
b=0
for _ in $(seq "$runs"); do b=$(echo "$(direct) $b" | awk '{ print ($1 > $2) ? $1 : $2 }'); done
printf '%-48s best %8s MiB/s\n' "no relay: sender -> vsock sink directly" "$b"

# Many bulk streams at once through one relay: what they cost it in memory. Each bulk
# direction is spliced in the kernel (no buffer of ours), so this stays near an idle relay's.
streams=20
many() { # label, hvsock binary
    port=$((port + 2))
    socat -u -b 262144 VSOCK-LISTEN:$((port + 1)),fork OPEN:/dev/null 2>/dev/null &
    sink=$!
    "$hvsock" lab wait --timeout 10 $((port + 1)) >/dev/null
    timed $stats "$2" relay tcp:127.0.0.1:$port vsock:1:$((port + 1)) --count $streams 2>/dev/null &
    relay=$!
    tcp_listening $port
    # The relay's own anonymous memory (GNU time's peak RSS counts its mapped binary too).
    pid=$(pgrep -n -P $relay || echo $relay)
    ( peak=0; while kill -0 $pid 2>/dev/null; do
          a=$(awk '/^RssAnon/ { print $2 }' /proc/$pid/status 2>/dev/null || true)
          [ -z "$a" ] || [ "$a" -le "$peak" ] || peak=$a
          echo "$peak" >/tmp/relay-anon.$$; sleep 0.1
      done ) &
    watcher=$!
    start=$(date +%s.%N)
    for _ in $(seq $streams); do
        socat -u -b 262144 OPEN:/dev/zero,readbytes=$((bytes / streams)) TCP:127.0.0.1:$port &
    done
    wait $relay
    end=$(date +%s.%N)
    wait $watcher
    kill $sink 2>/dev/null || true
    echo "$start $end" | awk -v b="$bytes" -v n=$streams -v m="$(cat /tmp/relay-anon.$$)" -v c="$(cpu_of $stats)" -v l="$1" \
        '{ printf "%-50s      %8.1f MiB/s  %6.3f CPU-s/GiB  peak anon %6s KiB\n", l ", " n " streams at once", b / 1048576 / ($2 - $1), c * 1073741824 / b, m }'
}
many "hvsock relay" "$hvsock"
[ -z "${HVSOCK_BASELINE:-}" ] || many "baseline" "$HVSOCK_BASELINE"
rm -f /tmp/relay-anon.$$ $stats
