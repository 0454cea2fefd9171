#!/bin/sh
# stdin/stdout through the command line: `dd bs=1M | hvsock connect` -> `hvsock listen > /dev/null`
# against the same pipeline with socat -b 1048576 at both ends, in one lab guest; SIZE MiB
# each, runs of the rows interleaved, best of RUNS, with both ends' CPU seconds. UML system
# calls are slow: compare the rows, not with other machines. HVSOCK_BASELINE=path/to/hvsock
# adds rows for another build, to compare two versions.
#   bench/stdio.sh [SIZE_MIB] [RUNS]
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
h="$PWD/target/release/hvsock"
port=9600
sink_stats=/tmp/stdio-sink.$$; src_stats=/tmp/stdio-src.$$
# One run: prints MiB/s and both ends' CPU seconds.
one() { # sink command, source command (PORT replaced)
    port=$((port + 1))
    sink=$(echo "$1" | sed "s/PORT/$port/g")
    src=$(echo "$2" | sed "s/PORT/$port/g")
    timed $sink_stats sh -c "$sink" 2>/dev/null &
    pid=$!
    "$h" lab wait --timeout 10 "$port" >/dev/null
    start=$(date +%s.%N)
    dd if=/dev/zero bs=1M count="$size_mib" 2>/dev/null | timed $src_stats sh -c "$src" 2>/dev/null
    wait $pid
    end=$(date +%s.%N)
    echo "$start $end $(cpu_of $sink_stats) $(cpu_of $src_stats)" |
        awk -v m="$size_mib" '{ printf "%.1f@%.2f", m / ($2 - $1), $3 + $4 }'
}
rows=/tmp/stdio-rows.$$; results=/tmp/stdio-results.$$
: >$rows; : >$results
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>$rows; }

echo "$size_mib MiB: dd bs=1M | CONNECT -> LISTEN > /dev/null over vsock loopback, in the lab guest"
row "hvsock connect -> hvsock listen" "$h listen vsock:any:PORT > /dev/null" "$h connect vsock:1:PORT"
[ -z "${HVSOCK_BASELINE:-}" ] || row "baseline connect -> baseline listen" \
    "$HVSOCK_BASELINE listen vsock:any:PORT > /dev/null" "$HVSOCK_BASELINE connect vsock:1:PORT"
row "socat -b 1048576 both ends" "socat -u -b 1048576 VSOCK-LISTEN:PORT OPEN:/dev/null" "socat -u -b 1048576 - VSOCK-CONNECT:1:PORT"
row "socat source -> hvsock listen > /dev/null" "$h listen vsock:any:PORT > /dev/null" "socat -u -b 1048576 - VSOCK-CONNECT:1:PORT"
row "dd | hvsock connect -> socat sink" "socat -u -b 1048576 VSOCK-LISTEN:PORT OPEN:/dev/null" "$h connect vsock:1:PORT"
tab=$(printf '\t')
for _ in $(seq "$runs"); do
    while IFS=$tab read -r label sink src; do
        printf '%s\t%s\n' "$label" "$(one "$sink" "$src" </dev/null)" >>$results
    done <$rows
done
# CPU seconds are both ends'.
rows_summary $results "$size_mib" 44
rm -f $rows $results $sink_stats $src_stats
