#!/bin/sh
# Builds the real VMM backend hvsock-cli/tests/lab_vmm.rs tests against, rust-vmm's
# vhost-device-vsock 0.3.0 from crates.io, into ROOT/bin (once; cargo install's lock keeps two
# builds at once apart).
#   scripts/vmm-backend.sh ROOT
set -eu
[ $# -eq 1 ] || { echo "usage: scripts/vmm-backend.sh ROOT" >&2; exit 2; }
[ -x "$1/bin/vhost-device-vsock" ] && exit 0
env -u RUSTFLAGS "${CARGO:-cargo}" install --quiet --locked vhost-device-vsock --version =0.3.0 --root "$1"
