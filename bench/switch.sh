#!/bin/sh
# Throughput through the lab's vsock switch, hvsock's connect/listen against socat -b 262144
# on the same paths: host -> guest (hybrid CONNECT), guest -> host (vsock:2 -> UDS_P), guest
# -> guest. One stream of SIZE MiB each, timed from the sender's start to the receiver's end,
# best of RUNS. UML system calls are slow: compare the rows, not with other machines.
#   bench/switch.sh [SIZE_MIB] [RUNS]
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${2:-2}
cargo build -q --release -p hvsock-cli
h="$PWD/target/release/hvsock"
# The lab (and so the switch) may be another build: LAB=path/to/hvsock bench/switch.sh
lab=${LAB:-$h}
bytes=$((size_mib * 1048576))

# measure LABEL RECEIVER-ROLE RECEIVER SENDER-ROLE SENDER: roles are guest (CID 3 receives,
# CID 4 sends, as --guest order gives) or host. The receiver touches $d/ready once listening.
measure() {
    d=$(mktemp -d /tmp/hvsock-switch-bench.XXXXXX)
    recv="D=$d; $3; date +%s.%N > $d/end"
    # dd writes 1 MiB at a time: `head -c` writes 8 KiB, and a guest's pipe then costs more
    # than the path measured.
    send="until [ -e $d/ready ]; do sleep 0.05; done; sleep 0.2; date +%s.%N > $d/start; dd if=/dev/zero bs=1M count=$size_mib 2>/dev/null | $5"
    set -- "$1" "$2" "$recv" "$4" "$send"
    if [ "$2" = guest ] && [ "$4" = guest ]; then
        "$lab" lab run --timeout 600 --guest "$3" --guest "$5" >/dev/null 2>&1
    elif [ "$2" = guest ]; then
        "$lab" lab run --timeout 600 --guest "$3" --host "$5" >/dev/null 2>&1
    else
        "$lab" lab run --timeout 600 --host "$3" --guest "$5" >/dev/null 2>&1
    fi
    awk -v b="$bytes" 'NR == FNR { s = $1; next } { printf "%.1f", b / 1048576 / ($1 - s) }' "$d/start" "$d/end"
    rm -rf "$d"
}
best() {
    b=0; all=""
    for _ in $(seq "$runs"); do
        r=$(measure "$@"); all="$all $r"
        b=$(echo "$r $b" | awk '{ print ($1 > $2) ? $1 : $2 }')
    done
    printf '%-52s best %8s MiB/s   (runs:%s)\n' "$1" "$b" "$all"
}
echo "$size_mib MiB through the lab's switch, one stream each"
best "host -> guest  hvsock connect hybrid: -> listen" guest \
    "$h listen vsock:any:5000 > /dev/null & $h lab wait 5000 && touch \$D/ready; wait" host \
    "$h connect hybrid:\$HVSOCK_LAB_VM3:5000 --retries 100"
best "host -> guest  socat (CONNECT line) -> socat" guest \
    "socat -u -b 262144 VSOCK-LISTEN:5000 OPEN:/dev/null & $h lab wait 5000 && touch \$D/ready; wait" host \
    "{ printf 'CONNECT 5000\n'; cat; } | socat -u -b 262144 - UNIX-CONNECT:\$HVSOCK_LAB_VM3"
best "guest -> host  hvsock connect vsock:2 -> listen hybrid:" host \
    "$h listen hybrid:\$HVSOCK_LAB_VM3:6000 > /dev/null & sleep 0.5; touch \$D/ready; wait" guest \
    "$h connect vsock:2:6000 --retries 100"
best "guest -> host  socat -> socat UNIX-LISTEN:UDS_P" host \
    "socat -u -b 262144 UNIX-LISTEN:\${HVSOCK_LAB_VM3}_6000 OPEN:/dev/null & sleep 0.5; touch \$D/ready; wait" guest \
    "socat -u -b 262144 - VSOCK-CONNECT:2:6000"
best "guest -> guest hvsock connect -> listen" guest \
    "$h listen vsock:any:7000 > /dev/null & $h lab wait 7000 && touch \$D/ready; wait" guest \
    "$h connect vsock:3:7000 --retries 100"
best "guest -> guest socat -> socat" guest \
    "socat -u -b 262144 VSOCK-LISTEN:7000 OPEN:/dev/null & $h lab wait 7000 && touch \$D/ready; wait" guest \
    "socat -u -b 262144 - VSOCK-CONNECT:3:7000"
