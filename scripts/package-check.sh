#!/bin/sh
# The crates package (cargo package: metadata, files, each builds from its own tarball), and the
# Debian package installs and works: dpkg -i, then the binary, a man page and a completion from
# where the package put them; removed again afterwards.
set -eu
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
# cargo builds each crate from its tarball against the others, unpacked from a local registry
# into $CARGO_HOME/registry/src/-HASH/, and reuses an unpacked copy of the same version left by
# an earlier run at the same path: that stale copy (not this source) would be built. Local
# registries' folders start with '-'; crates.io's are left alone. A registry crate once built is
# never rebuilt for a changed source either: the verification builds in a target folder of its
# own, made anew each run. It starts as a hard-linked copy (no bytes copied) of the workspace's
# debug build, when there is one: the dependencies are the same crates built with the same flags,
# and compiling them all again was most of this step's time (287 CPU-s of 339 on 2 cores). Our
# own crates come from the local registry there, so they are never taken for the path ones.
# Files are only ever replaced there, never written in place, so the workspace's stay as they are.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/hvsock-* target/package target/package-check
if [ -d target/debug ]; then
    mkdir -p target/package-check
    # Only a head start: a file another cargo removes meanwhile (a temporary .rmeta, seen in a
    # clean-clone CI run) leaves it partial, and cargo rebuilds what is missing.
    cp -al target/debug target/package-check/debug 2>/dev/null ||
        echo "package-check: the debug build changed while it was copied; what is missing is rebuilt" >&2
fi
cargo package --workspace --quiet --target-dir target/package-check
deb=$(scripts/deb.sh --debug)
$sudo dpkg -i "$deb" >/dev/null
trap '$sudo dpkg -r hvsock >/dev/null' EXIT
/usr/bin/hvsock --version
MANPAGER=cat man hvsock | grep -q "hvsock-connect" || { echo "package-check: man hvsock does not list the commands" >&2; exit 1; }
MANPAGER=cat man hvsock-relay | grep -q "^NAME" || { echo "package-check: man hvsock-relay is not there" >&2; exit 1; }
got=$(bash -c 'source /usr/share/bash-completion/completions/hvsock; COMP_WORDS=(hvsock vm); COMP_CWORD=1; COMP_LINE="hvsock vm"; COMP_POINT=9; _hvsock hvsock vm hvsock; echo "${COMPREPLY[*]}"')
[ "$got" = vms ] || { echo "package-check: the installed bash completion gave '$got' for 'hvsock vm'" >&2; exit 1; }
echo "package-check: $deb installs; hvsock, its man pages and completions work"
