#!/bin/sh
# Round trips over vsock loopback in one lab guest: hvsock's blocking Stream, hvsock's tokio
# AsyncStream and tokio-vsock 0.7's VsockStream, each COUNT messages of 1 byte and of 1 KiB
# against the same `hvsock bench --serve`, interleaved, best of RUNS. The client is
# bench/rr/ (built here; tokio-vsock comes from crates.io). UML system calls are slow: compare
# the rows, never with numbers taken elsewhere.
#   bench/rr.sh [COUNT] [RUNS]
set -eu
cd "$(dirname "$0")/.."
count=${1:-5000}
runs=${2:-3}
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    cargo build -q --release -p hvsock-cli
    (cd bench/rr && cargo build -q --release --target-dir ../../target/bench-tools/rr)
    exec target/release/hvsock lab run --timeout 1200 -- sh "$0" "$count" "$runs"
fi
h="$PWD/target/release/hvsock"
rr="$PWD/target/bench-tools/rr/release/hvsock-rr-bench"
"$h" bench --serve vsock:any:9700 2>/dev/null &
"$h" lab wait 9700
echo "$count round trips per run over vsock:1 (loopback), best of $runs, in the lab guest"
for size in 1 1024; do
    best_b=0 best_a=0 best_t=0
    for _ in $(seq "$runs"); do
        for mode in blocking async tokio-vsock; do
            r=$("$rr" "$mode" 1 9700 "$count" "$size" | awk '{ print $2 }')
            case $mode in
                blocking) best_b=$(echo "$r $best_b" | awk '{ print ($1 > $2) ? $1 : $2 }') ;;
                async) best_a=$(echo "$r $best_a" | awk '{ print ($1 > $2) ? $1 : $2 }') ;;
                tokio-vsock) best_t=$(echo "$r $best_t" | awk '{ print ($1 > $2) ? $1 : $2 }') ;;
            esac
        done
    done
    printf '%5s B  hvsock Stream (blocking) %7s/s   hvsock AsyncStream %7s/s (%s of blocking)   tokio-vsock %7s/s (%s of blocking)\n' \
        "$size" "$best_b" "$best_a" "$(echo "$best_a $best_b" | awk '{ printf "%.2f", $1 / $2 }')" \
        "$best_t" "$(echo "$best_t $best_b" | awk '{ printf "%.2f", $1 / $2 }')"
done
