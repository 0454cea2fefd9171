#!/usr/bin/env python3
"""Chaos soak peers for bench/soak.sh: servers and clients that check every byte.

A client connection sends a header line `<n> <seed> <m> <half> <kill>` then n bytes of a
stream derived from seed (and, if half, its half-close); the server hashes what it reads, and
once it has n bytes answers `<sha256 of what it read>` and m bytes derived from seed+1, then
closes (for odd seeds it half-closes first and closes at the client's end of file: half-closes
go both ways). The client checks both. The client plans every kill: its own (it aborts mid-send) and
the server's (`kill` >= 0: the server aborts after reading that many bytes). So any other
end — a reset or end of file the client did not plan — is a fault (`unplanned`), as are a
mismatch and a connection that neither finishes nor fails within the deadline (`stuck`).

  soak.py serve  (--vsock PORT | --unix PATH | --tcp PORT) [--kill-rate R]
  soak.py client (--vsock CID:PORT | --hybrid PATH:PORT | --tcp HOST:PORT | --unix PATH)
                 --conns N --concurrency C --max-size BYTES [--kill-rate R]
                 [--half-close-rate R] [--seed S] [--deadline SECS] [--name NAME]
The client prints one JSON line of totals; the server prints one when stopped (SIGTERM).
"""

import argparse
import asyncio
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import time

CHUNK = 65536


def stream(seed, n):
    """n bytes derived from seed, made in 64 KiB blocks (cheap, and different per seed)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    out = n
    i = 0
    while out > 0:
        take = min(out, CHUNK)
        # Rotate per block so a misplaced block does not hash the same.
        r = i % 32
        yield (block[r:] + block[:r])[:take]
        out -= take
        i += 1


def digest(seed, n):
    h = hashlib.sha256()
    for b in stream(seed, n):
        h.update(b)
    return h.hexdigest()


def abort(writer):
    """Closes at once, with a reset where the socket type has one (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    raw = getattr(sock, "_sock", sock)  # asyncio's wrapper takes int options only
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, TypeError):
        pass  # Python takes only integer options on AF_VSOCK: a plain close there
    writer.transport.abort()


# ---- server ----

class Totals:
    def __init__(self):
        self.conns = 0
        self.ok = 0
        self.kills = 0
        self.errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.open = 0
        self.short = 0


async def serve_one(reader, writer, totals):
    totals.conns += 1
    totals.open += 1
    done = False
    try:
        line = await reader.readline()
        n, seed, m, _half, kill = (int(x) for x in line.split())
        h = hashlib.sha256()
        got = 0
        kill_at = kill if kill >= 0 else None
        while got < n:
            b = await reader.read(min(CHUNK, n - got))
            if not b:
                break
            h.update(b)
            got += len(b)
            totals.bytes_in += len(b)
            if kill_at is not None and got >= kill_at:
                abort(writer)
                totals.kills += 1
                return
        if got < n:
            totals.short += 1  # the client went away (its kill): nothing to answer
            return
        writer.write((h.hexdigest() + "\n").encode())
        for b in stream(seed + 1, m):
            writer.write(b)
            totals.bytes_out += len(b)
            await writer.drain()
        await writer.drain()
        if seed % 2:
            # Half the time the server half-closes and waits for the client to finish.
            writer.write_eof()
            while await reader.read(CHUNK):
                pass
        writer.close()
        done = True
        totals.ok += 1
    except (ConnectionError, OSError, ValueError):
        totals.errors += 1
    finally:
        if not done:
            writer.transport.abort()  # asyncio would keep a socket with unsent data open
        totals.open -= 1


async def serve(args):
    totals = Totals()
    handler = lambda r, w: serve_one(r, w, totals)  # noqa: E731
    if args.vsock is not None:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, args.vsock))
        s.listen(1024)
        server = await asyncio.start_server(handler, sock=s, backlog=1024)
    elif args.unix is not None:
        server = await asyncio.start_unix_server(handler, path=args.unix, backlog=1024)
    else:
        server = await asyncio.start_server(handler, "127.0.0.1", args.tcp, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("serving", flush=True)
    await stop.wait()
    server.close()
    print(json.dumps({"server": args.name, "conns": totals.conns, "ok": totals.ok, "kills": totals.kills,
                      "short": totals.short, "errors": totals.errors, "open": totals.open,
                      "bytes": totals.bytes_in + totals.bytes_out}), flush=True)


# ---- client ----

async def open_conn(args):
    if args.vsock:
        cid, port = (int(x) for x in args.vsock.split(":"))
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, (cid, port))
        return await asyncio.open_connection(sock=s)
    if args.hybrid:
        path, port = args.hybrid.rsplit(":", 1)
        r, w = await asyncio.open_unix_connection(path)
        w.write(f"CONNECT {port}\n".encode())
        ok = await r.readline()
        if not ok.startswith(b"OK "):
            w.close()
            raise ConnectionRefusedError(f"hybrid answer {ok!r}")
        return r, w
    if args.unix:
        return await asyncio.open_unix_connection(args.unix)
    host, port = args.tcp.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def client_one(i, args, rng, t):
    n = rng.randrange(args.max_size + 1)
    m = rng.randrange(args.max_size + 1)
    seed = rng.randrange(1 << 30)
    half = rng.random() < args.half_close_rate
    kill_at = rng.randrange(n) if n and rng.random() < args.kill_rate else None
    server_kill = rng.randrange(n) if n and kill_at is None and rng.random() < args.kill_rate else -1
    for attempt in range(50):
        try:
            reader, writer = await open_conn(args)
            break
        except (ConnectionError, OSError):
            if attempt == 49:
                t["connect_failed"] += 1
                return
            await asyncio.sleep(0.2)
    t["conns"] += 1
    sent = 0
    try:
        writer.write(f"{n} {seed} {m} {int(half)} {server_kill}\n".encode())
        h = hashlib.sha256()
        for b in stream(seed, n):
            if kill_at is not None and sent + len(b) > kill_at:
                b = b[: kill_at - sent]
                writer.write(b)
                await writer.drain()
                abort(writer)
                t["kills"] += 1
                return
            h.update(b)
            writer.write(b)
            sent += len(b)
            await writer.drain()
        t["bytes"] += sent
        if half:
            writer.write_eof()
        line = await reader.readline()
        if not line:
            t["server_kills" if server_kill >= 0 else "unplanned"] += 1
            if server_kill < 0:
                print(f"unplanned end of file on conn {i} after sending {n}", file=sys.stderr, flush=True)
            return
        if line.decode().strip() != h.hexdigest():
            t["mismatch"] += 1
            return
        want = digest(seed + 1, m)
        g = hashlib.sha256()
        got = 0
        while True:
            b = await reader.read(CHUNK)
            if not b:
                break
            g.update(b)
            got += len(b)
        t["bytes"] += got
        if got != m or g.hexdigest() != want:
            t["mismatch"] += 1
            print(f"mismatch on conn {i}: {got} of {m} bytes back", file=sys.stderr, flush=True)
            return
        t["ok"] += 1
    except (ConnectionError, OSError) as e:
        t["server_kills" if server_kill >= 0 else "unplanned"] += 1
        if server_kill < 0:
            print(f"unplanned {e!r} on conn {i} ({sent} of {n} sent)", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def clients(args):
    rng = random.Random(args.seed)
    t = dict(conns=0, ok=0, kills=0, server_kills=0, unplanned=0, mismatch=0, stuck=0, connect_failed=0, bytes=0)
    sem = asyncio.Semaphore(args.concurrency)
    start = time.monotonic()

    async def one(i, r):
        async with sem:
            try:
                await asyncio.wait_for(client_one(i, args, r, t), args.deadline)
            except asyncio.TimeoutError:
                t["stuck"] += 1
                print(f"stuck: conn {i}", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(i, random.Random(rng.randrange(1 << 62))) for i in range(args.conns)))
    t["client"] = args.name
    t["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(t), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "client"])
    p.add_argument("--vsock")
    p.add_argument("--unix")
    p.add_argument("--tcp")
    p.add_argument("--hybrid")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--max-size", type=int, default=4 << 20)
    p.add_argument("--kill-rate", type=float, default=0.0, help="client kills; as many server kills")
    p.add_argument("--half-close-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--deadline", type=float, default=120)
    p.add_argument("--name", default="")
    args = p.parse_args()
    if args.mode == "serve":
        if args.vsock is not None:
            args.vsock = int(args.vsock)
        if args.tcp is not None:
            args.tcp = int(args.tcp)
        asyncio.run(serve(args))
    else:
        asyncio.run(clients(args))


if __name__ == "__main__":
    main()
