#!/bin/sh
# Installs what hvsock's build, demo and tests need on Debian/Ubuntu; quiet when all is there.
set -eu

need=""
command -v linux.uml >/dev/null 2>&1 || need="$need user-mode-linux"
command -v socat >/dev/null 2>&1 || need="$need socat"
command -v modprobe >/dev/null 2>&1 || [ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] || need="$need kmod"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
if ! command -v cargo >/dev/null 2>&1; then
    # Debian 12's security updates carry a current Rust as rustc-web/cargo-web.
    if apt-cache show cargo-web >/dev/null 2>&1; then need="$need rustc-web cargo-web"; else need="$need cargo"; fi
fi

if [ -n "$need" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing$need" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
