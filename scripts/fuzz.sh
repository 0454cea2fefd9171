#!/bin/sh
# Runs the fuzzers under fuzz/ (cargo-fuzz, libFuzzer) on every parser of outside input.
#
#   scripts/fuzz.sh --seconds 6            # each target 6 s on a copy of its corpus (CI)
#   scripts/fuzz.sh --runs 10000000 [T..]  # each target 10 million inputs; new finds are
#                                          # added to fuzz/corpus/T and the corpus minimised
#   scripts/fuzz.sh --build-only           # only build the fuzzers (scripts/test.sh does so
#                                          # while the lab tests run)
#
# rustup cannot fetch a nightly here; cargo-fuzz needs nightly-only flags, which the stable
# compiler accepts under RUSTC_BOOTSTRAP=1. AddressSanitizer is used when the toolchain ships
# its runtime, otherwise the fuzzers run without a sanitizer (the code under test is Rust:
# a panic, a hang or a runaway allocation is still caught). A crash leaves its input under
# fuzz/artifacts/T and a non-zero exit.
set -eu
cd "$(dirname "$0")/.."
mode=seconds
amount=6
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) mode=seconds; amount=$2; shift 2 ;;
        --runs) mode=runs; amount=$2; shift 2 ;;
        --build-only) mode=build; shift ;;
        -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
targets=${*:-endpoint names hybrid_ok diag_reply allowlist connect_line vhost_user virtio_tx switch_packets}

command -v c++ >/dev/null 2>&1 || { echo "fuzz: libFuzzer needs a C++ compiler (scripts/setup.sh installs g++)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz --version 0.13.2
export RUSTC_BOOTSTRAP=1
# The distribution's libFuzzer (scripts/setup.sh installs it), linked rather than compiled from
# libfuzzer-sys's copy: the fuzzers' build takes 133 CPU-s instead of 211 here.
libfuzzer=$(ls /usr/lib/llvm-*/lib/libFuzzer.a 2>/dev/null | sort -V | tail -1)
[ -z "$libfuzzer" ] || export CUSTOM_LIBFUZZER_PATH="$libfuzzer"
sanitizer=address
ls "$(rustc --print sysroot)"/lib/rustlib/*/lib/librustc-*_rt.asan.a >/dev/null 2>&1 || sanitizer=none
(cd fuzz && cargo fuzz build -O -s "$sanitizer")
[ "$mode" != build ] || exit 0

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
    corpus=$PWD/fuzz/corpus/$t
    mkdir -p "$corpus"
    if [ "$mode" = seconds ]; then
        # A scratch copy: a CI run adds nothing to the repository.
        mkdir -p "$scratch/$t" && cp -r "$corpus/." "$scratch/$t/"
        dirs="$scratch/$t"
        limit="-max_total_time=$amount"
    else
        dirs=$corpus
        limit="-runs=$amount"
    fi
    log=$scratch/$t.log
    start=$(date +%s)
    if ! (cd fuzz && cargo fuzz run -O -s "$sanitizer" "$t" "$dirs" -- \
        -max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 "$limit") >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED (input kept under fuzz/artifacts/$t)" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(echo "$done_line" | sed -E 's/^#([0-9]+).*/\1/')
    rate=$(echo "$done_line" | sed -E 's/.*exec\/s: ([0-9]+).*/\1/')
    echo "fuzz: $t: $execs inputs in $(( $(date +%s) - start )) s ($rate/s), no crash"
    if [ "$mode" = runs ]; then
        (cd fuzz && cargo fuzz cmin -O -s "$sanitizer" "$t" "$corpus" -- -max_len=4096) >"$log" 2>&1 ||
            { tail -20 "$log" >&2; exit 1; }
    fi
done
