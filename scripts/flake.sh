#!/bin/sh
# Runs tests again and again to find the ones that fail by chance, beside CPU hogs if asked,
# and keeps the whole output of every failing run.
#
#   scripts/flake.sh [-n RUNS] [--hogs K] [--threads N] [TEST-BINARY...] [-- NEXTEST-FILTER...]
#
#   scripts/flake.sh -n 5 --hogs 2 lab_relay lab_switch   # two binaries, 5 runs, 2 `yes` hogs
#   scripts/flake.sh -n 20 lab_tools -- -E 'test(half)'   # one test of one binary, 20 runs
#   scripts/flake.sh -n 3                                 # the whole suite, 3 runs
#
# Each run is one `cargo nextest run` (tests side by side, as scripts/test.sh runs them); a
# failing run's output goes to target/flake/run-I.log and its failing tests are listed at the
# end. Exit 1 when any run failed.
set -eu
cd "$(dirname "$0")/.."
runs=10
hogs=0
threads=""
binaries=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs=$2; shift 2 ;;
        --hogs) hogs=$2; shift 2 ;;
        --threads) threads="--test-threads=$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "flake: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) binaries="$binaries --test $1"; shift ;;
    esac
done
case "$runs$hogs" in *[!0-9]*) echo "flake: -n and --hogs take a number" >&2; exit 2 ;; esac
command -v cargo-nextest >/dev/null 2>&1 || cargo install --quiet --locked cargo-nextest
out=target/flake
rm -rf "$out"
mkdir -p "$out"

# Build once, before any hog starts: the runs then only run.
# shellcheck disable=SC2086 # lists of arguments
cargo nextest run --workspace $binaries --no-run "$@"

hog_pids=""
trap 'for p in $hog_pids; do kill "$p" 2>/dev/null || true; done' EXIT
i=0
while [ "$i" -lt "$hogs" ]; do
    yes >/dev/null &
    hog_pids="$hog_pids $!"
    i=$((i + 1))
done

failed=0
i=1
while [ "$i" -le "$runs" ]; do
    log=$out/run-$i.log
    start=$(date +%s)
    # shellcheck disable=SC2086
    if cargo nextest run --workspace $binaries $threads --no-fail-fast --color never "$@" >"$log" 2>&1; then
        echo "flake: run $i of $runs passed ($(( $(date +%s) - start )) s)"
        rm -f "$log"
    else
        failed=$((failed + 1))
        echo "flake: run $i of $runs FAILED ($(( $(date +%s) - start )) s), output kept in $log:"
        grep -E '^ +(FAIL|TIMEOUT|SIGSEGV|SIGABRT|LEAK)' "$log" | sed 's/^/    /' | sort -u || true
    fi
    i=$((i + 1))
done
echo "flake: $failed of $runs runs failed (hogs: $hogs)"
[ "$failed" -eq 0 ]
