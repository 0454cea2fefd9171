#!/bin/sh
# Every test: unit tests, CLI tests, and the lab tests that run real vsock inside a
# User-Mode Linux guest. Installs what it needs first.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace
