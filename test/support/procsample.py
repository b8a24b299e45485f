"""Samples every process's command line on this machine until told to stop.

Run it with nothing secret on its command line or in its environment: it only
collects, and the caller searches. It prints "ready" once the first round is
done, then samples /proc every ~20 ms until its stdin is closed (or it gets
SIGTERM), and prints one JSON line:

  {"rounds": N, "processes": {"host": N, "machine": N},
   "cmdlines": {"host": [...], "machine": [...]}, "dropped": N}

Processes are counted as distinct (pid, command line) pairs. A process is
"host" when its NSpid line has more than one number (it lives in a child PID
namespace: a test host booted with systemd-nspawn), else "machine". Kernel
threads (empty cmdline) are skipped. Processes that start and end between two
rounds are not seen.
"""

import json
import os
import signal
import sys
import threading
import time

INTERVAL = 0.02
MAX_CMDLINES = 50_000  # per machine; beyond that they are counted in "dropped"

stop = threading.Event()


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process ended, or is a zombie
        return None


def machine_of(pid):
    status = read(f"/proc/{pid}/status")
    if status is None:
        return None
    for line in status.split(b"\n"):
        if line.startswith(b"NSpid:"):
            return "host" if len(line.split()) > 2 else "machine"
    return "machine"


def wait_for_eof():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        stop.set()


def main():
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=wait_for_eof, daemon=True).start()
    me = str(os.getpid())
    seen = {}  # (pid, cmdline) -> machine
    cmdlines = {"host": set(), "machine": set()}
    dropped = 0
    rounds = 0
    while True:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            raw = read(f"/proc/{pid}/cmdline")
            if not raw:
                continue
            cmd = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace")
            key = (pid, cmd)
            if key in seen:
                continue
            where = machine_of(pid)
            if where is None:
                continue
            seen[key] = where
            if cmd not in cmdlines[where]:
                if len(cmdlines[where]) < MAX_CMDLINES:
                    cmdlines[where].add(cmd)
                else:
                    dropped += 1
        rounds += 1
        if rounds == 1:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
        if stop.wait(INTERVAL):
            break
    processes = {"host": 0, "machine": 0}
    for where in seen.values():
        processes[where] += 1
    summary = {
        "rounds": rounds,
        "processes": processes,
        "cmdlines": {k: sorted(v) for k, v in cmdlines.items()},
        "dropped": dropped,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
