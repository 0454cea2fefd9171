#!/bin/sh
# Builds the Debian package of the command line, target/debian/hvsock_VERSION_ARCH.deb: the
# binary as `cargo install` builds it, its shell completions and its man pages, all generated
# by the binary itself. Installs what it needs first.
#   scripts/deb.sh            # the release package
#   scripts/deb.sh --debug    # the workspace's debug build, target/debug/hvsock (package-check.sh:
#                             # it tries the packaging, not the optimiser; the test build made it)
set -eu
cd "$(dirname "$0")/.."
build="--locked"
case "${1:-}" in
    --debug) build="" ;;
    "") ;;
    *) echo "deb: unknown argument '$1' (only --debug)" >&2; exit 2 ;;
esac
command -v dpkg-deb >/dev/null 2>&1 || { echo "deb: dpkg-deb is Debian's; this is not a Debian system" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=target/debian
root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" "$root/usr/share/doc/hvsock"
if [ -n "$build" ]; then
    cargo install --quiet $build --path hvsock-cli --root "$root/usr" --no-track
else
    [ -x target/debug/hvsock ] || { echo "deb: --debug packages target/debug/hvsock: build it first" >&2; exit 1; }
    mkdir -p "$root/usr/bin"
    cp target/debug/hvsock "$root/usr/bin/hvsock"
fi
strip "$root/usr/bin/hvsock" 2>/dev/null || true
h="$root/usr/bin/hvsock"
"$h" completions bash > "$root/usr/share/bash-completion/completions/hvsock"
"$h" completions zsh > "$root/usr/share/zsh/vendor-completions/_hvsock"
"$h" completions fish > "$root/usr/share/fish/vendor_completions.d/hvsock.fish"
"$h" man "$root/usr/share/man/man1" 2>/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1
cp README.md "$root/usr/share/doc/hvsock/README.md"
size=$(du -sk "$root/usr" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: hvsock
Version: $version
Architecture: $arch
Maintainer: hvsock developers
Installed-Size: $size
Depends: libc6
Recommends: user-mode-linux
Suggests: socat
Section: net
Priority: optional
Description: one command line for host<->VM sockets
 hvsock speaks Linux vsock (AF_VSOCK), Windows Hyper-V sockets (AF_HYPERV) and the
 hybrid-vsock Unix sockets of Firecracker-style VMMs with one set of names: a netcat and
 socat for VM sockets (connect, listen, relay), a benchmark, VM discovery, and a lab that
 runs vsock code in a throwaway User-Mode Linux guest.
CONTROL
deb="$out/hvsock_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"
