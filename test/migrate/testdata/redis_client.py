#!/usr/bin/env python3
"""redis_client.py: a Redis client for godwit's migration tests.

write: sets key:S, key:S+1, ... (S is --start, default 0) one at a time
over one TCP connection (raw RESP), each SET waiting for its +OK, until the
file --stop exists. It rewrites --status (a JSON object: acked, errors,
reconnects, last_error, done) at least every 50 ms and on exit. acked is
how many keys the server confirmed: keys S .. S+acked-1. Any error (reset,
timeout, unexpected reply) is counted and logged on stderr; without
--reconnect it ends the program (exit 1), with --reconnect the client
connects again and sets the same key again (SET is idempotent), until
--give-up seconds passed without success.

verify: checks with MGET that key:0 .. key:COUNT-1 hold their values and
prints a JSON object: checked, missing, wrong (counts), first_bad (keys).

Usage:
  redis_client.py write --host H --port P --status PATH --stop PATH [--start S] [--reconnect]
  redis_client.py verify --host H --port P --count N
"""

import argparse
import json
import os
import socket
import sys
import time

REPLY_TIMEOUT = 300.0  # a migration may freeze the server for a while


def value(i):
    return b"value-%d-%s" % (i, (b"%08x" % ((i * 2654435761) & 0xFFFFFFFF)) * 4)


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.settimeout(REPLY_TIMEOUT)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the server (%r)" % line)
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RuntimeError("error reply: " + body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed in a bulk reply")
            return data[:-2]
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("unknown reply %r" % line)

    def do(self, *args):
        self.sock.sendall(command(*args))
        return self.reply()


def write(args):
    state = {"acked": 0, "errors": 0, "reconnects": 0, "last_error": "", "done": False}
    last = [0.0]

    def status(force=False):
        now = time.monotonic()
        if not force and now - last[0] < 0.05:
            return
        last[0] = now
        tmp = args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.rename(tmp, args.status)

    conn = Conn(args.host, args.port)
    i = args.start
    failing_since = None
    while True:
        if (i - args.start) % 50 == 0 and os.path.exists(args.stop):
            break
        try:
            if conn is None:
                conn = Conn(args.host, args.port)
                state["reconnects"] += 1
            got = conn.do("SET", "key:%d" % i, value(i))
            if got != "OK":
                raise RuntimeError("SET key:%d gave %r" % (i, got))
        except (OSError, ConnectionError, RuntimeError, ValueError) as e:
            state["errors"] += 1
            state["last_error"] = "key:%d: %s: %s" % (i, type(e).__name__, e)
            print("error: " + state["last_error"], file=sys.stderr, flush=True)
            status(True)
            if conn is not None:
                conn.close()
                conn = None
            if not args.reconnect:
                return 1
            if failing_since is None:
                failing_since = time.monotonic()
            if time.monotonic() - failing_since > args.give_up:
                return 1
            time.sleep(0.05)
            continue
        failing_since = None
        i += 1
        state["acked"] = i - args.start
        status()
    state["done"] = True
    status(True)
    return 0


def verify(args):
    conn = Conn(args.host, args.port)
    missing = wrong = 0
    first_bad = []
    for lo in range(0, args.count, 1000):
        keys = ["key:%d" % i for i in range(lo, min(lo + 1000, args.count))]
        vals = conn.do("MGET", *keys)
        for k, v in zip(keys, vals):
            i = int(k.split(":")[1])
            if v is None:
                missing += 1
            elif v != value(i):
                wrong += 1
            else:
                continue
            if len(first_bad) < 10:
                first_bad.append(k)
    print(json.dumps({"checked": args.count, "missing": missing, "wrong": wrong, "first_bad": first_bad}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "verify"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--status")
    ap.add_argument("--stop")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--give-up", type=float, default=120.0)
    ap.add_argument("--count", type=int, default=0)
    args = ap.parse_args()
    if args.mode == "write":
        if not args.status or not args.stop:
            ap.error("write needs --status and --stop")
        return write(args)
    return verify(args)


if __name__ == "__main__":
    sys.exit(main())
