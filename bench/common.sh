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

# Per row of RESULTS (lines "label<TAB>MiB/s@CPU-s[@peak RSS KiB]", a row's runs in any
# order): its best rate, its lowest CPU seconds per GiB, its peak RSS if measured, and every
# run's rate; rows in the order they first appear.
rows_summary() { # RESULTS SIZE_MIB LABEL_WIDTH
    awk -F'\t' -v mib="$2" -v w="$3" '
        { split($2, r, "@"); l = $1; if (!(l in best)) { order[++n] = l; cpu[l] = 1e9 }
          if (r[1] > best[l]) best[l] = r[1]; c = r[2] * 1024 / mib; if (c < cpu[l]) cpu[l] = c
          if (3 in r) { if (r[3] > mem[l]) mem[l] = r[3]; rss[l] = 1 }
          all[l] = all[l] " " r[1] }
        END { for (i = 1; i <= n; i++) { l = order[i]
          printf "%-" w "s best %8.1f MiB/s  %6.3f CPU-s/GiB", l, best[l], cpu[l]
          if (l in rss) printf "  peak RSS %6d KiB", mem[l]
          printf "  (runs:%s)\n", all[l] } }' "$1"
}

# Waits until a TCP port on this machine listens (no connection made).
tcp_listening() { # PORT
    until grep -q ":$(printf %04X "$1") 00000000:0000 0A" /proc/net/tcp; do sleep 0.05; done
}
