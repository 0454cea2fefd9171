#!/bin/sh
# Throughput through the lab's vsock switch: host -> guest (hybrid socket), guest -> host,
# guest -> guest, and, for scale, one guest's own loopback transport. One stream of SIZE MiB
# each, timed from the first byte to the receiver's end. UML system calls are slow: compare
# these rows with each other, not with numbers taken outside the lab.
#   bench/switch.sh [SIZE_MIB]
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-256}
cargo build -q --release -p hvsock-cli
h="$PWD/target/release/hvsock"
bytes=$((size_mib * 1048576))
rate="awk -v b=$bytes '{ print sprintf(\"%.1f\", b / 1048576 / (\$2 - \$1)) \" MiB/s\" }'"
timed() { # label, command feeding the stream
    echo "start=\$(date +%s.%N); $2; end=\$(date +%s.%N); echo \"\$start \$end\" | $rate | sed 's/^/$1: /'"
}
"$h" lab run --timeout 600 \
    --guest "$h listen vsock:any:5000 >/dev/null 2>&1 &
             $h listen vsock:any:5001 </dev/null >/dev/null 2>&1   # ready for host
             wait
             $h listen vsock:any:5002 >/dev/null 2>&1 &
             $h listen vsock:any:5003 </dev/null >/dev/null 2>&1   # ready for guest 4
             wait
             $h listen vsock:any:5004 >/dev/null 2>&1 &
             sleep 0.3
             $(timed 'guest -> guest, own loopback (CID 1)' "head -c $bytes /dev/zero | $h connect vsock:1:5004")
             $h connect vsock:2:6001 --retries 200 </dev/null
             $(timed 'guest -> host (vsock:2 -> hybrid UDS_P)' "head -c $bytes /dev/zero | $h connect vsock:2:6000 --retries 200")" \
    --guest "$h connect vsock:3:5003 --retries 200 </dev/null
             $(timed 'guest 4 -> guest 3 (switch)' "head -c $bytes /dev/zero | $h connect vsock:3:5002 --retries 200")" \
    --host "$h connect hybrid:\$HVSOCK_LAB_VM3:5001 --retries 200 </dev/null
            $(timed 'host -> guest (hybrid CONNECT)' "head -c $bytes /dev/zero | $h connect hybrid:\$HVSOCK_LAB_VM3:5000 --retries 200")" \
    --host "$h listen hybrid:\$HVSOCK_LAB_VM3:6000 >/dev/null 2>&1 & $h listen hybrid:\$HVSOCK_LAB_VM3:6001 </dev/null >/dev/null 2>&1; wait" \
    2>&1 | grep 'MiB/s'
