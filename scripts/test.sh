#!/bin/sh
# Every test: unit, CLI, and the lab tests that run real vsock inside a User-Mode Linux guest;
# the library's docs; the crates and the Debian package built, installed and tried; a short run
# of every fuzzer; then the Windows build checked and tested under wine. Installs what it needs
# first.
set -eu
cd "$(dirname "$0")/.."
t0=$(date +%s)
scripts/setup.sh
cargo build --workspace --all-targets
# Lints as errors, among them an unsafe block without its SAFETY line.
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The library's and the lab's docs: every public item documented, no broken link.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p hvsock -p hvsock-lab --features hvsock/tokio
# The crates package, and the Debian package installs and works.
scripts/package-check.sh
t1=$(date +%s)
scripts/fuzz.sh --seconds 6
t2=$(date +%s)
scripts/windows-check.sh
t3=$(date +%s)
echo "test: linux part $((t1 - t0)) s, fuzzing $((t2 - t1)) s, windows part $((t3 - t2)) s"
