#!/usr/bin/env python3
"""counter.py: a program for godwit's migration tests.

It holds --mem MiB of pseudo-random bytes and a CRC-32 of every 4 KiB page
of them, and then, every tick:

  - checks every page against its CRC,
  - appends one line "PID COUNTER STATUS" to --report PATH (opened with
    O_APPEND; one write(2) per line), where PID is os.getpid() as the
    process sees it, COUNTER counts ticks from 0 and STATUS is
    "checksum-ok" or "checksum-bad:page=N",
  - rewrites --dirty random pages with new random bytes (and their CRCs),
    so that a pre-copy round always finds pages written since the last one,
  - sleeps --interval seconds.

The test reads the lines: they must go on after a migration with the same
pid, the counter one more each line, and the memory intact.

Usage: counter.py --report PATH [--mem MiB] [--dirty PAGES] [--interval S]
Run it with stdin/stdout/stderr on files or /dev/null, never pipes or a tty.
"""

import argparse
import os
import random
import time
import zlib

PAGE = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True)
    ap.add_argument("--mem", type=int, default=64)
    ap.add_argument("--dirty", type=int, default=64)
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()

    n = (args.mem << 20) // PAGE
    rng = random.Random(20250611)
    buf = bytearray(rng.randbytes(n * PAGE))
    mv = memoryview(buf)
    sums = [zlib.crc32(mv[i * PAGE:(i + 1) * PAGE]) for i in range(n)]
    fd = os.open(args.report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    counter = 0
    while True:
        status = "checksum-ok"
        for i in range(n):
            if zlib.crc32(mv[i * PAGE:(i + 1) * PAGE]) != sums[i]:
                status = "checksum-bad:page=%d" % i
                break
        os.write(fd, b"%d %d %s\n" % (os.getpid(), counter, status.encode()))
        counter += 1
        for _ in range(args.dirty):
            i = rng.randrange(n)
            mv[i * PAGE:(i + 1) * PAGE] = rng.randbytes(PAGE)
            sums[i] = zlib.crc32(mv[i * PAGE:(i + 1) * PAGE])
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
