#!/usr/bin/env python3
"""Tiny closed-loop HTTP/1.1 keep-alive load generator (wrk-like).
usage: load.py URL METHOD PATH CLIENTS SECONDS TOKEN [BODY_TEMPLATE]
BODY_TEMPLATE may contain {n} (a unique counter). Prints one JSON line."""
import asyncio, json, sys, time, urllib.parse, itertools

async def client(host, port, method, path, token, body_t, deadline, lat, codes, counter):
    r, w = await asyncio.open_connection(host, port)
    while time.perf_counter() < deadline:
        body = body_t.replace("{n}", str(next(counter))).encode() if body_t else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        t0 = time.perf_counter()
        w.write(head.encode() + b"\r\n" + body)
        status = await r.readline()
        code = int(status.split()[1])
        clen = 0
        while True:
            line = await r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                clen = int(v)
        if clen:
            await r.readexactly(clen)
        lat.append(time.perf_counter() - t0)
        codes[code] = codes.get(code, 0) + 1
    w.close()

async def main():
    url, method, path, clients, secs, token = sys.argv[1:7]
    body_t = sys.argv[7] if len(sys.argv) > 7 else ""
    u = urllib.parse.urlparse(url)
    tokens = open(token[1:]).read().split() if token.startswith("@") else [token]
    clients, secs = int(clients), float(secs)
    lat, codes, counter = [], {}, itertools.count()
    start = time.perf_counter()
    await asyncio.gather(*[client(u.hostname, u.port, method, path, tokens[i % len(tokens)], body_t, start + secs, lat, codes, counter) for i in range(clients)])
    el = time.perf_counter() - start
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None
    print(json.dumps({"path": path, "method": method, "clients": clients, "seconds": round(el, 1), "requests": len(lat),
                      "rps": round(len(lat) / el, 1), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": q(1.0), "codes": codes}))

asyncio.run(main())
