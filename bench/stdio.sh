#!/bin/sh
# stdin/stdout through the command line: `dd bs=1M | hvsock connect` -> `hvsock listen > /dev/null`
# against the same pipeline with socat -b 1048576 at both ends, in one lab guest; SIZE MiB
# each, best of RUNS. UML system calls are slow: compare the rows, not with other machines.
#   bench/stdio.sh [SIZE_MIB] [RUNS]
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    cargo build -q --release -p hvsock-cli
    exec target/release/hvsock lab run --timeout 1800 -- sh "$0" "$size_mib" "$runs"
fi
h="$PWD/target/release/hvsock"
port=9600
rate() { awk -v m="$size_mib" '{ printf "%.1f", m / ($2 - $1) }'; }
one() { # sink command, source command (PORT replaced)
    port=$((port + 1))
    sink=$(echo "$1" | sed "s/PORT/$port/g")
    src=$(echo "$2" | sed "s/PORT/$port/g")
    sh -c "$sink" 2>/dev/null &
    pid=$!
    "$h" lab wait --timeout 10 "$port" >/dev/null
    start=$(date +%s.%N)
    dd if=/dev/zero bs=1M count="$size_mib" 2>/dev/null | sh -c "$src" 2>/dev/null
    wait $pid
    end=$(date +%s.%N)
    echo "$start $end" | rate
}
best() { # label, sink, source
    b=0; all=""
    for _ in $(seq "$runs"); do
        r=$(one "$2" "$3"); all="$all $r"
        b=$(echo "$r $b" | awk '{ print ($1 > $2) ? $1 : $2 }')
    done
    printf '%-44s best %8s MiB/s   (runs:%s)\n' "$1" "$b" "$all"
}
echo "$size_mib MiB: dd bs=1M | CONNECT -> LISTEN > /dev/null over vsock loopback, in the lab guest"
best "hvsock connect -> hvsock listen" "$h listen vsock:any:PORT > /dev/null" "$h connect vsock:1:PORT"
best "socat -b 1048576 both ends" "socat -u -b 1048576 VSOCK-LISTEN:PORT OPEN:/dev/null" "socat -u -b 1048576 - VSOCK-CONNECT:1:PORT"
best "socat source -> hvsock listen > /dev/null" "$h listen vsock:any:PORT > /dev/null" "socat -u -b 1048576 - VSOCK-CONNECT:1:PORT"
best "dd | hvsock connect -> socat sink" "socat -u -b 1048576 VSOCK-LISTEN:PORT OPEN:/dev/null" "$h connect vsock:1:PORT"
