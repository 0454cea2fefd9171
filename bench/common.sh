# Sourced by the lab bench scripts: what they need installed, readiness waits, and each
# process's CPU seconds (user + system, its children included) and peak RSS from GNU time.

need() { # command:package ...
    missing=""
    for cp; do command -v "${cp%%:*}" >/dev/null 2>&1 || missing="$missing ${cp#*:}"; done
    [ -n "$missing" ] || return 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

# Runs CMD... with its CPU and peak RSS written to FILE ("user system maxrss_kib").
timed() { # FILE CMD...
    f=$1; shift
    /usr/bin/time -f '%U %S %M' -o "$f" "$@"
}
cpu_of() { awk 'END { printf "%.2f", $1 + $2 }' "$1"; }
rss_of() { awk 'END { print $3 }' "$1"; }

# Waits until a TCP port on this machine listens (no connection made).
tcp_listening() { # PORT
    until grep -q ":$(printf %04X "$1") 00000000:0000 0A" /proc/net/tcp; do sleep 0.05; done
}
