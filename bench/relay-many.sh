#!/bin/sh
# Many connections through `hvsock relay` (tcp -> relay -> vsock) in one lab guest: CONNS
# clients at once, each sending ROUNDS_OF_MSGS request/response pairs of 1 KiB and checking the
# echo; the same relay serves three rounds. Reports each round's requests/s, and the relay's
# peak own (anonymous) memory and most descriptors held during the rounds. The guest keeps its
# default `ulimit -n` (1024): the relay raises its own soft limit.
#   bench/relay-many.sh [CONNS] [MSGS]
set -eu
cd "$(dirname "$0")/.."
conns=${1:-1000}
msgs=${2:-10}
if [ -z "${HVSOCK_LAB_GUEST:-}" ]; then
    cargo build -q --release -p hvsock-cli
    exec target/release/hvsock lab run --timeout 1200 -- sh "$0" "$conns" "$msgs"
fi
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
import asyncio, sys, time
conns, msgs = int(sys.argv[1]), int(sys.argv[2])
async def one(i):
    for attempt in range(20):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", 9500); break
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
"$h" relay tcp:127.0.0.1:9500 vsock:1:9501 2>"$t/relay.log" &
relay=$!
until grep -q listening "$t/relay.log"; do sleep 0.05; done
( peak=0; fds=0
  while kill -0 $relay 2>/dev/null; do
      a=$(awk '/^RssAnon/ { print $2 }' /proc/$relay/status 2>/dev/null || true)
      f=$(ls /proc/$relay/fd 2>/dev/null | wc -l)
      [ -z "$a" ] || [ "$a" -le "$peak" ] || peak=$a
      [ "$f" -le "$fds" ] || fds=$f
      echo "$peak $fds" > "$t/peak"
      sleep 0.1
  done ) &
echo "$conns connections x $msgs request/response of 1 KiB, tcp -> hvsock relay -> vsock echo (ulimit -n $(ulimit -n))"
for round in 1 2 3; do
    printf 'round %s: ' "$round"
    /usr/bin/python3 "$t/clients.py" "$conns" "$msgs"
done
sleep 0.3
read -r peak fds < "$t/peak"
echo "relay: peak own memory $((peak / 1024)) MB, most descriptors held at once $fds (for up to $conns connections)"
kill $relay
