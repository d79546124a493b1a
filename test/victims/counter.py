#!/usr/bin/env python3
"""counter.py: a Python victim for godwit's end-to-end tests.

It counts in a loop and, on every SIGUSR1, writes a JSON report to
--report PATH (PATH.tmp, then rename). A first report (seq 1) is written once
setup is complete. The report carries the pid, the counter and a checksum of
a large bytearray built at start, checked against the value computed then.

Usage: counter.py --report PATH [--mem MiB]
Run it with stdin/stdout/stderr on files or /dev/null, never pipes or a tty.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import time


def build(mib):
    """Returns a bytearray of mib MiB of seeded pseudo-random bytes."""
    rng = random.Random(20240501)
    return bytearray(rng.randbytes(mib << 20))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True)
    ap.add_argument("--mem", type=int, default=16)
    args = ap.parse_args()

    state = {"seq": 0, "sigusr1": 0, "flag": False}

    def on_usr1(signum, frame):
        state["sigusr1"] += 1
        state["flag"] = True

    signal.signal(signal.SIGUSR1, on_usr1)
    data = build(args.mem)
    checksum0 = hashlib.sha256(data).hexdigest()
    counter = 0

    def report():
        state["seq"] += 1
        checksum = hashlib.sha256(data).hexdigest()
        doc = {
            "seq": state["seq"],
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "counter": counter,
            "sigusr1": state["sigusr1"],
            "mem_checksum": checksum,
            "mem_ok": checksum == checksum0,
        }
        tmp = args.report + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, args.report)

    report()
    while True:
        if state["flag"]:
            state["flag"] = False
            report()
        counter += 1
        time.sleep(0.001)


if __name__ == "__main__":
    main()
