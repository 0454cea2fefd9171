#!/bin/sh
# Many connections through a relay (tcp -> relay -> vsock) in one lab guest, `hvsock relay`
# against vsock-proxy 0.1.2 (built by this script): CONNS clients at once, each sending MSGS
# request/response pairs of 1 KiB and checking the echo, three rounds on the same relay; then
# 2,000 short connections, 50 at a time (`hvsock bench --test conn` through the relay); and both
# with no relay at all, the ceiling. Reports
# requests/s per round, connections/s, and each relay's peak own (anonymous) memory and most
# descriptors held. The guest keeps its default `ulimit -n` (1024).
#   bench/relay-many.sh [CONNS] [MSGS]
set -eu
cd "$(dirname "$0")/.."
conns=${1:-1000}
msgs=${2:-10}
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    cargo build -q --release -p hvsock-cli
    [ -x target/bench-tools/bin/vsock-proxy ] ||
        cargo install -q --locked vsock-proxy --version 0.1.2 --root target/bench-tools
    exec target/release/hvsock lab run --timeout 1200 -- sh "$0" "$conns" "$msgs"
fi
proxy="$PWD/target/bench-tools/bin/vsock-proxy"
h="$PWD/target/release/hvsock"
t=$(mktemp -d)
cat > "$t/echo.py" <<'PY'
import asyncio, socket
async def echo(r, w):
    while data := await r.read(65536):
        w.write(data); await w.drain()
    w.close()
async def main():
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); s.bind((socket.VMADDR_CID_ANY, 9501)); s.listen(4096)
    srv = await asyncio.start_server(echo, sock=s, backlog=4096)
    print("listening on 9501", flush=True)
    await srv.serve_forever()
asyncio.run(main())
PY
cat > "$t/clients.py" <<'PY'
import asyncio, socket, sys, time
conns, msgs = int(sys.argv[1]), int(sys.argv[2])
direct = len(sys.argv) > 3  # straight to the vsock echo server: no relay
async def dial():
    if not direct:
        return await asyncio.open_connection("127.0.0.1", 9500)
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, (1, 9501))
    return await asyncio.open_connection(sock=s)
async def one(i):
    for attempt in range(20):
        try:
            r, w = await dial(); break
        except OSError:
            await asyncio.sleep(0.1)
    else:
        return "connect"
    msg = bytes([i % 251]) * 1024
    try:
        for _ in range(msgs):
            w.write(msg); await w.drain()
            if await r.readexactly(1024) != msg:
                return "mismatch"
        w.close()
        return None
    except (OSError, asyncio.IncompleteReadError) as e:
        return type(e).__name__
async def main():
    start = time.monotonic()
    res = await asyncio.gather(*(one(i) for i in range(conns)))
    took = time.monotonic() - start
    errors = [r for r in res if r]
    print(f"{conns * msgs / took:.0f} req/s, {took:.2f} s, {len(errors)} errors {sorted(set(errors))}", flush=True)
asyncio.run(main())
PY
/usr/bin/python3 "$t/echo.py" > "$t/echo.log" 2>&1 &
until grep -q listening "$t/echo.log"; do sleep 0.05; done
"$h" bench --serve vsock:any:9502 2>/dev/null &

# run LABEL COMMAND-WITH-FROM-AND-TO: three rounds, then the short connections.
run() {
    label=$1
    cmd=$(echo "$2" | sed "s/FROM/9500/; s/TO/9501/")
    sh -c "exec $cmd" >"$t/relay.log" 2>&1 &
    relay=$!
    until /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 9500)).close()' 2>/dev/null; do sleep 0.05; done
    ( peak=0; fds=0
      while kill -0 $relay 2>/dev/null; do
          a=$(awk '/^RssAnon/ { print $2 }' /proc/$relay/status 2>/dev/null || true)
          f=$(ls /proc/$relay/fd 2>/dev/null | wc -l)
          [ -z "$a" ] || [ "$a" -le "$peak" ] || peak=$a
          [ "$f" -le "$fds" ] || fds=$f
          echo "$peak $fds" > "$t/peak"
          sleep 0.1
      done ) &
    watcher=$!
    for round in 1 2 3; do
        printf '%-14s round %s: ' "$label" "$round"
        /usr/bin/python3 "$t/clients.py" "$conns" "$msgs"
    done
    read -r peak fds < "$t/peak"
    # (vsock-proxy 0.1.2's figures here are those of the process started, whatever its
    # connections run in.)
    echo "$label: peak own memory $((peak / 1024)) MB, most descriptors held at once $fds"
    kill $relay; wait $relay 2>/dev/null || true; wait $watcher 2>/dev/null || true
    cmd=$(echo "$2" | sed "s/FROM/9600/; s/TO/9502/")
    sh -c "exec $cmd" >/dev/null 2>&1 &
    relay=$!
    until /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 9600)).close()' 2>/dev/null; do sleep 0.05; done
    printf '%-14s 2000 short connections, 50 at a time: ' "$label"
    "$h" bench tcp:127.0.0.1:9600 --test conn --conns 2000 --concurrency 50 --json |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.0f conn/s, p99 %.1f ms" % (r["per_s"], r["latency_us"]["p99"] / 1000))'
    kill $relay; wait $relay 2>/dev/null || true
}
echo "$conns connections x $msgs request/response of 1 KiB, tcp -> relay -> vsock echo (ulimit -n $(ulimit -n))"
# The ceiling: the same clients and servers with no relay between them.
for round in 1 2 3; do
    printf '%-14s round %s: ' "no relay" "$round"
    /usr/bin/python3 "$t/clients.py" "$conns" "$msgs" direct
done
printf '%-14s 2000 short connections, 50 at a time: ' "no relay"
"$h" bench vsock:1:9502 --test conn --conns 2000 --concurrency 50 --json |
    /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.0f conn/s, p99 %.1f ms" % (r["per_s"], r["latency_us"]["p99"] / 1000))'
run "hvsock relay" "$h relay tcp:127.0.0.1:FROM vsock:1:TO"
run "vsock-proxy" "$proxy --tcp-source 127.0.0.1:FROM --vsock-dest 1:TO"
