#!/bin/sh
# SOCK_SEQPACKET against SOCK_STREAM for the same bytes: `hvsock bench` sends SIZE MiB in
# 1 KiB writes (each write one message on SEQPACKET, checked to arrive whole) guest 4 ->
# guest 3 through the lab's switch, and over loopback inside one guest; messages/s and MiB/s,
# best of RUNS, interleaved. UML system calls are slow: compare the rows, not other machines.
#   bench/seqpacket.sh [SIZE_MIB] [RUNS] [WRITE]
set -eu
cd "$(dirname "$0")/.."
size_mib=${1:-16}
runs=${2:-3}
write=${3:-1024}
cargo build -q --release -p hvsock-cli
h="$PWD/target/release/hvsock"
# Runs inside a guest: sh SCRIPT CID -> lines "kind MiB/s messages-per-s".
script=$(mktemp)
cat > "$script" <<SH
set -eu
one() {
    $h bench "\$1" --bytes ${size_mib}M --size $write --retries 50 --json |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.1f %.0f" % (r["mib_per_s"], r["bytes"] / r["write_size"] / r["seconds"]))'
}
for i in \$(seq $runs); do
    echo "seqpacket \$(one vsock-seqpacket:\$1:5000)"
    echo "stream \$(one vsock:\$1:5001)"
done
SH
best() { # label, lines "kind MiB/s msgs/s" on stdin
    awk -v label="$1" '{ if ($2 > mib[$1]) { mib[$1] = $2; rate[$1] = $3 } }
        END { printf "%-34s SEQPACKET %8.0f messages/s (%6.1f MiB/s)   STREAM %8.0f writes/s (%6.1f MiB/s)   %.2fx\n",
              label, rate["seqpacket"], mib["seqpacket"], rate["stream"], mib["stream"], rate["seqpacket"] / rate["stream"] }'
}
echo "$size_mib MiB in $write-byte writes, hvsock bench, best of $runs"
serve="$h bench --serve vsock-seqpacket:any:5000 2>/dev/null & $h bench --serve vsock:any:5001 2>/dev/null &"
"$h" lab run --timeout 900 --guest-service "$serve wait" \
    --guest "$h lab wait 3:5000 && $h lab wait 3:5001 && sh $script 3" 2>/dev/null |
    sed -n 's/^\[guest 4\] //p' | best "guest 4 -> guest 3 (the switch)"
"$h" lab run --timeout 900 -- sh -c "$serve $h lab wait 5000 && $h lab wait 5001 && sh $script 1" 2>/dev/null |
    best "loopback in one guest"
rm -f "$script"
