#!/bin/sh
# Chaos soak in the lab: many concurrent connections with random sizes through `hvsock relay`
# and through the lab's vsock switch (guest <-> guest, host <-> guest, guest <-> host), with
# random half-closes, client and server kills (RST mid-transfer) and a guest powered off
# mid-run. Every byte a surviving connection carried is hash-checked both ways (bench/soak.py).
# Afterwards: vsock sockets left in the server guest past the kernel's close timeout, and the
# relay's and the switch's descriptors and memory at start, peak and end.
#   bench/soak.sh [CONNS] [MAX_SIZE_BYTES]      (default 1000 connections, 4 MiB)
set -eu
cd "$(dirname "$0")/.."
conns=${1:-1000}
max=${2:-4194304}
cargo build -q --release -p hvsock-cli
h="$PWD/target/release/hvsock"
soak="/usr/bin/python3 $PWD/bench/soak.py"
d=$(mktemp -d /tmp/hvsock-soak.XXXXXX)
# Kept when something failed, for its logs (lab.log: every participant's output).
trap 'if [ "${ok:-}" = 1 ]; then rm -rf "$d"; else echo "soak: files kept in $d" >&2; fi' EXIT
# Connections per client group: five groups, the powered-off guest's included.
per=$((conns / 5))
chaos="--kill-rate 0.05 --max-size $max --deadline 900"
# Waits for a file another participant creates (the guests share this machine's /tmp).
await="await() { while [ ! -e \"\$1\" ]; do sleep 0.2; done; }"
# `fds PID`: descriptor count. `mem PID`: peak and current resident memory, and the anonymous
# part of it, in KiB (the switch maps the guests' memory: the pages it touches count as its
# resident memory but are the guests'; its own is the anonymous part). `sample PID FILE`
# records the anonymous part every 0.2 s until the clients are done.
probe="fds() { ls /proc/\$1/fd | wc -l; }
mem() { awk '/^VmRSS|^VmHWM|^RssAnon/ { printf \"%s \", \$2 }' /proc/\$1/status; }
sample() { while [ ! -e $d/clients-done ]; do awk '/^RssAnon/ { print \$2 }' /proc/\$1/status >> \$2; sleep 0.2; done; }"

"$h" lab run --timeout 1800 \
    --guest "$await; $probe
        $soak serve --vsock 7000 --name 'guest 3 server' > $d/server3.json &
        spid=\$!
        $h lab wait 7000 && touch $d/ready3
        await $d/clients-done
        sleep 12   # the kernel's vsock close timeout is 8 s
        $h list --json > $d/list3.json
        kill -TERM \$spid; wait \$spid" \
    --guest "$await; $probe
        $h relay tcp:127.0.0.1:7100 vsock:3:7000 2>$d/relay.log &
        rpid=\$!
        await $d/ready3; await $d/ready-host
        sleep 0.5
        echo \"\$(fds \$rpid) \$(mem \$rpid)\" > $d/relay-start
        sample \$rpid $d/relay-anon &
        $soak client --tcp 127.0.0.1:7100 --conns $per --concurrency $per --half-close-rate 0.3 $chaos --seed 11 \
            --name 'tcp -> relay -> vsock (guest 4 -> guest 3)' > $d/c1.json &
        c1=\$!
        $soak client --vsock 3:7000 --conns $per --concurrency $per --half-close-rate 0.3 $chaos --seed 12 \
            --name 'guest 4 -> guest 3' > $d/c2.json &
        c2=\$!
        $soak client --vsock 2:7200 --conns $per --concurrency $per --half-close-rate 0.3 $chaos --seed 13 \
            --name 'guest 4 -> host (hybrid UDS_7200)' > $d/c3.json &
        c3=\$!
        wait \$c1 \$c2 \$c3
        touch $d/g4-done
        await $d/clients-done
        sleep 12
        echo \"\$(fds \$rpid) \$(mem \$rpid)\" > $d/relay-end
        kill -TERM \$rpid; wait \$rpid || true" \
    --guest "$await
        await $d/ready3
        $soak client --vsock 3:7000 --conns $per --concurrency $per --half-close-rate 0.3 $chaos --seed 14 \
            --name 'guest 5 -> guest 3 (powered off)' > $d/c5.json &
        sleep 6
        touch $d/g5-off
        # The command ends here: the guest powers off with its connections in flight." \
    --host "$await
        $soak serve --unix \${HVSOCK_LAB_VM4}_7200 --name 'host server' > $d/server-host.json &
        spid=\$!
        await $d/clients-done
        sleep 12
        kill -TERM \$spid; wait \$spid" \
    --host "$await; $probe
        while [ ! -S \${HVSOCK_LAB_VM4}_7200 ]; do sleep 0.2; done; touch $d/ready-host
        await $d/ready3
        echo \"\$(fds \$PPID) \$(mem \$PPID)\" > $d/switch-start
        sample \$PPID $d/switch-anon &
        $soak client --hybrid \$HVSOCK_LAB_VM3:7000 --conns $per --concurrency $per $chaos --seed 15 \
            --name 'host -> guest 3 (hybrid CONNECT)' > $d/c4.json
        await $d/g4-done; await $d/g5-off
        touch $d/clients-done
        sleep 14
        echo \"\$(fds \$PPID) \$(mem \$PPID)\" > $d/switch-end" \
    >"$d/lab.log" 2>&1 || { tail -30 "$d/lab.log"; exit 1; }
grep -E 'unplanned|mismatch|stuck' "$d/lab.log" | head -20 || true

/usr/bin/python3 - "$d" "$conns" "$max" <<'PY'
import json, sys, os
d, conns, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
def nums(name):
    try:
        return [int(x) for x in open(os.path.join(d, name)).read().split()]
    except OSError:
        return None
print(f"chaos soak: {conns} connections (5 groups at once), sizes 0..{size} bytes each way, "
      "5% client kills, 5% server kills, half-closes: 30% of clients (not host -> guest: VMMs end both directions), half of the servers")
print("killed = client kills + server kills (both planned by the client); unplanned, mismatch, stuck must be 0")
print(f"{'path':46} {'conns':>6} {'ok':>6} {'killed':>7} {'unplanned':>10} {'mismatch':>9} {'stuck':>6} {'MiB':>8}")
bad = 0
for f in ["c1.json", "c2.json", "c3.json", "c4.json"]:
    t = load(f)
    if t is None:
        print(f"{f}: no result"); bad += 1; continue
    killed = f"{t['kills']}+{t['server_kills']}"
    print(f"{t['client']:46} {t['conns']:>6} {t['ok']:>6} {killed:>7} {t['unplanned']:>10} "
          f"{t['mismatch']:>9} {t['stuck']:>6} {t['bytes'] / 1048576:>8.1f}")
    bad += t["unplanned"] + t["mismatch"] + t["stuck"] + t["connect_failed"]
print(f"{'guest 5 -> guest 3 (powered off after 6 s)':46} {'(its clients died with it)':>40}")
for f in ["server3.json", "server-host.json"]:
    s = load(f)
    if s is None:
        print(f"{f}: no result"); bad += 1; continue
    print(f"{s['server']:46} conns {s['conns']}, answered {s['ok']}, killed {s['kills']}, "
          f"client gone {s['short']}, errors {s['errors']}, open at end {s['open']}")
    bad += s["open"]
left = load("list3.json") or []
left = [e for e in left if e["state"] != "LISTEN"]
print(f"vsock sockets left in guest 3 after the close timeout: {len(left)}"
      + "".join(f"\n  {e['state']} {e['local']} -> {e['peer']}" for e in left[:10]))
bad += len(left)
for who, name in [("relay (guest 4)", "relay"), ("switch (lab process)", "switch")]:
    a, b = nums(f"{name}-start"), nums(f"{name}-end")
    if not a or not b:
        print(f"{who}: no figures"); bad += 1; continue
    # mem prints VmHWM (peak), VmRSS, RssAnon, in KiB.
    anon = nums(f"{name}-anon") or [0]
    print(f"{who:22} fds {a[0]} -> {b[0]};  own memory (anonymous) start {a[3] / 1024:.1f} MB, "
          f"peak {max(anon) / 1024:.1f} MB, end {b[3] / 1024:.1f} MB;  all resident: peak {b[1] / 1024:.1f} MB, "
          f"end {b[2] / 1024:.1f} MB")
    bad += b[0] > a[0]  # a descriptor left behind
print("result:", "PASS" if bad == 0 else f"FAIL ({bad} problems)")
sys.exit(1 if bad else 0)
PY
ok=1
