#!/bin/sh
# Builds the real VMM backend hvsock-cli/tests/lab_vmm.rs tests against, rust-vmm's
# vhost-device-vsock 0.3.0 from crates.io, once per machine (a pinned third-party tool, like
# cargo-fuzz: our own code is never cached), and prints the path of its binary. cargo
# install's lock keeps two builds at once apart.
#   scripts/vmm-backend.sh
set -eu
[ $# -eq 0 ] || { echo "usage: scripts/vmm-backend.sh" >&2; exit 2; }
root="${XDG_CACHE_HOME:-$HOME/.cache}/hvsock/vhost-device-vsock-0.3.0"
[ -x "$root/bin/vhost-device-vsock" ] ||
    env -u RUSTFLAGS "${CARGO:-cargo}" install --quiet --locked vhost-device-vsock --version =0.3.0 --root "$root"
echo "$root/bin/vhost-device-vsock"
