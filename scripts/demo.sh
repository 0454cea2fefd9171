#!/bin/sh
# The echo exchange of the Hyper-V socket wildcards article's C# sample, end to end: `hvsock server any` answers `hvsock client lo`.
# Runs on this machine when it has vsock loopback (CID 1) of its own, else in the lab guest.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p hvsock-cli
hvsock="$PWD/target/debug/hvsock"
exchange='
    log=$(mktemp)
    "$0" server any --count 1 2>"$log" &
    until grep -q "listening on" "$log"; do sleep 0.02; done
    "$0" client lo
    wait
    rm -f "$log"'
# Without vsock_loopback, CID 1 would be sent to whatever hypervisor this machine has: only
# connect here when the loopback transport keeps it local.
if [ -d /sys/module/vsock_loopback ]; then
    echo "demo: vsock loopback is loaded here; running on this machine" >&2
    sh -c "$exchange" "$hvsock"
else
    echo "demo: no vsock loopback here; running in a lab guest (User-Mode Linux)" >&2
    "$hvsock" lab run --timeout 60 -- sh -c "$exchange" "$hvsock"
fi
