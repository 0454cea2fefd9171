#!/bin/sh
# Installs what hvsock's build, demo and tests need on Debian/Ubuntu; quiet when all is there.
set -eu

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
updated=""
install() {
    echo "setup: installing $*" >&2
    [ -n "$updated" ] || $sudo apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=""
command -v linux.uml >/dev/null 2>&1 || need="$need user-mode-linux"
command -v socat >/dev/null 2>&1 || need="$need socat"
# ss reads back listen queues and drops (tests/capacity.rs)
command -v ss >/dev/null 2>&1 || need="$need iproute2"
# modprobe inside lab guests
[ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] || need="$need kmod"
# The distribution's own Python: the tests run its vsock tests (and its test package's).
[ -x /usr/bin/python3 ] || need="$need python3"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
# libFuzzer (scripts/fuzz.sh) is C++
command -v c++ >/dev/null 2>&1 || need="$need g++"
# socket activation is tested with systemd's own systemd-socket-activate
command -v systemd-socket-activate >/dev/null 2>&1 || need="$need systemd"
# forward -D is tested with curl's SOCKS5 client
command -v curl >/dev/null 2>&1 || need="$need curl"
# The man pages are rendered by the tests (man -l)
command -v man >/dev/null 2>&1 || need="$need man-db"
if ! command -v cargo >/dev/null 2>&1; then
    # Debian 12's security updates carry a current Rust as rustc-web/cargo-web.
    if apt-cache show cargo-web >/dev/null 2>&1; then need="$need rustc-web cargo-web"; else need="$need cargo"; fi
fi
# shellcheck disable=SC2086 # a list of package names
[ -z "$need" ] || install $need
# libFuzzer as the distribution builds it (scripts/fuzz.sh links it instead of compiling its
# C++ each time), the newest it has; without one the fuzzers build their own.
if ! ls /usr/lib/llvm-*/lib/libFuzzer.a >/dev/null 2>&1; then
    libfuzzer=$(apt-cache search --names-only '^libfuzzer-[0-9]+-dev$' 2>/dev/null | cut -d' ' -f1 | sort -V | tail -1)
    [ -z "$libfuzzer" ] || install "$libfuzzer"
fi

# CPython's own test suite (test.test_socket), for the Python the distribution ships.
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
/usr/bin/python3 -c 'import test.test_socket' >/dev/null 2>&1 || install "libpython$pyver-testsuite"

# The guide's GitHub Actions example is checked against GitHub's workflow schema
# (hvsock-cli/tests/docs.rs), by check-jsonschema in a virtualenv of its own.
tools="${XDG_CACHE_HOME:-$HOME/.cache}/hvsock-tools"
if [ ! -x "$tools/venv/bin/check-jsonschema" ]; then
    /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || install "python$pyver-venv"
    echo "setup: installing check-jsonschema into $tools/venv" >&2
    rm -rf "$tools/venv"
    /usr/bin/python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q --disable-pip-version-check check-jsonschema==0.39.0
fi
