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
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    cargo build -q --release -p hvsock-cli
    exec target/release/hvsock lab run --timeout 1800 -- sh "$0" "$size_mib" "$runs"
fi

hvsock="$PWD/target/release/hvsock"
bytes=$((size_mib * 1048576))
port=9100

# Time from the first byte sent until the relay has finished (the sink got everything and
# closed); prints MiB/s.
measure() { # relay command...
    port=$((port + 2))
    socat -u -b 262144 VSOCK-LISTEN:$((port + 1)) OPEN:/dev/null 2>/dev/null &
    sink=$!
    sed_cmd=$(echo "$*" | sed "s/FROM/$port/g; s/TO/$((port + 1))/g")
    sh -c "exec $sed_cmd" 2>/dev/null &
    relay=$!
    sleep 0.5
    # the relay's peak resident memory, sampled while it runs
    ( hwm=0; while [ -e /proc/$relay/status ]; do
          # (the relay may be gone between the test and the read: no failure then)
          h=$(awk '/^VmHWM/ { print $2 }' /proc/$relay/status 2>/dev/null || true); [ -z "$h" ] || hwm=$h
          sleep 0.2; done; echo "$hwm" >/tmp/relay-hwm.$$ ) &
    watcher=$!
    start=$(date +%s.%N)
    socat -u -b 262144 OPEN:/dev/zero,readbytes=$bytes TCP:127.0.0.1:$port
    wait $relay
    end=$(date +%s.%N)
    wait $sink 2>/dev/null || true
    wait $watcher
    echo "$start $end $(cat /tmp/relay-hwm.$$)" | awk -v b="$bytes" '{ printf "%.1f@%d", b / 1048576 / ($2 - $1), $3 }'
}

best() { # label, relay command
    label=$1; shift
    b=0; mem=0; all=""
    for _ in $(seq "$runs"); do
        r=$(measure "$@")
        rate=${r%@*}; m=${r#*@}
        all="$all $rate"
        b=$(echo "$rate $b" | awk '{ print ($1 > $2) ? $1 : $2 }')
        mem=$(echo "$m $mem" | awk '{ print ($1 > $2) ? $1 : $2 }')
    done
    printf '%-48s best %8s MiB/s  peak RSS %6s KiB   (runs:%s)\n' "$label" "$b" "$mem" "$all"
}

echo "1 stream of $size_mib MiB, tcp:127.0.0.1 -> relay -> vsock:1, in the lab guest ($(nproc) CPU)"
best "hvsock relay tcp:..FROM vsock:1:TO" "$hvsock relay tcp:127.0.0.1:FROM vsock:1:TO --count 1"
# socat with its default 8 KiB buffer is far behind (14 MiB/s here): left out for time.
best "socat -b 262144 TCP-LISTEN:FROM VSOCK-CONNECT:1:TO" "socat -b 262144 TCP-LISTEN:FROM,reuseaddr VSOCK-CONNECT:1:TO"
best "socat -b 1048576 TCP-LISTEN:FROM VSOCK-CONNECT:1:TO" "socat -b 1048576 TCP-LISTEN:FROM,reuseaddr VSOCK-CONNECT:1:TO"

# The reference: the same sender straight to the vsock sink, no relay.
direct() {
    port=$((port + 2))
    socat -u -b 262144 VSOCK-LISTEN:$port OPEN:/dev/null 2>/dev/null &
    sink=$!
    sleep 0.5
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
port=$((port + 2))
socat -u -b 262144 VSOCK-LISTEN:$((port + 1)),fork OPEN:/dev/null 2>/dev/null &
sink=$!
"$hvsock" relay tcp:127.0.0.1:$port vsock:1:$((port + 1)) --count $streams 2>/dev/null &
relay=$!
until grep -q ":$(printf %04X $port) 00000000:0000 0A" /proc/net/tcp; do sleep 0.05; done
( peak=0; while kill -0 $relay 2>/dev/null; do
      a=$(awk '/^RssAnon/ { print $2 }' /proc/$relay/status 2>/dev/null || true)
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
echo "$start $end" | awk -v b="$bytes" -v n=$streams -v m="$(cat /tmp/relay-anon.$$)" \
    '{ printf "%-48s       %8.1f MiB/s  peak anon %6s KiB\n", "hvsock relay, " n " streams at once", b / 1048576 / ($2 - $1), m }'
rm -f /tmp/relay-anon.$$ /tmp/relay-hwm.$$
