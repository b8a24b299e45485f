"""Bounded load on a test host's own loopback: CLIENTS threads per URL, each
sending one GET after the other on a new connection (so a refused or reset
connection shows), until the stop file appears, the request budget is spent
or the time limit passes. Prints one JSON summary per URL.

Run on the host: python3 - STOPFILE MAXREQ MAXSEC TIMEOUT CLIENTS URL...
(https URLs go through the host's Caddy by name; /etc/hosts maps the name.)

A request counts as ok only when it answers 200 within TIMEOUT seconds; the
release it was served by is read from the body (JSON "release", or an HTML
<title>project vN</title>).
"""

import http.client
import json
import os
import re
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

stop_file = sys.argv[1]
max_requests, max_seconds, timeout = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
clients, urls = int(sys.argv[5]), sys.argv[6:]
UNVERIFIED = ssl._create_unverified_context()
TITLE = re.compile(rb"<title>\S+ (v[^<\s]+)</title>")

lock = threading.Lock()
stop = threading.Event()
sent = 0
started = time.monotonic()
deadline = started + max_seconds


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.releases: dict[str, int] = {}
        self.latencies: list[float] = []
        # When each failure happened (seconds since start), to line them up with a release's steps.
        self.failed_at: list[float] = []


def release_of(body: bytes) -> str:
    if body.startswith(b"{"):
        return str(json.loads(body).get("release", "?"))
    m = TITLE.search(body)
    return m.group(1).decode() if m else "?"


def client(url: str, tally: Tally) -> None:
    global sent
    u = urlsplit(url)
    while not stop.is_set():
        with lock:
            if sent >= max_requests or time.monotonic() >= deadline:
                stop.set()
                return
            sent += 1
        t0 = time.monotonic()
        error = None
        rel = None
        try:
            if u.scheme == "https":
                # Through Caddy with its internal CA: the name is what is tested, not the certificate.
                conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout, context=UNVERIFIED)
            else:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            conn.request("GET", u.path or "/")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200:
                rel = release_of(body)
            else:
                error = f"HTTP {resp.status}"
        except Exception as e:  # refused, reset or timed out: a failed request
            error = type(e).__name__
        took = time.monotonic() - t0
        with lock:
            tally.latencies.append(took)
            if error is None and took <= timeout:
                tally.ok += 1
                tally.releases[rel or "?"] = tally.releases.get(rel or "?", 0) + 1
            else:
                tally.failed += 1
                tally.failed_at.append(round(t0 - started, 2))
                key = error or "slow"
                tally.errors[key] = tally.errors.get(key, 0) + 1


def watch_stop_file() -> None:
    while not stop.is_set():
        if os.path.exists(stop_file) or time.monotonic() >= deadline:
            stop.set()
        time.sleep(0.1)


tallies = {url: Tally() for url in urls}
threads = [threading.Thread(target=client, args=(url, tallies[url])) for url in urls for _ in range(clients)]
threading.Thread(target=watch_stop_file, daemon=True).start()
for t in threads:
    t.start()
for t in threads:
    t.join()


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p * len(s)))], 3)


print(
    json.dumps(
        {
            "seconds": round(time.monotonic() - started, 2),
            "clients": clients,
            "timeout": timeout,
            "urls": {
                url: {
                    "ok": t.ok,
                    "failed": t.failed,
                    "errors": t.errors,
                    "releases": t.releases,
                    "p50": pct(t.latencies, 0.5),
                    "p99": pct(t.latencies, 0.99),
                    "max": round(max(t.latencies, default=0.0), 3),
                    "failedAt": t.failed_at[:20],
                }
                for url, t in tallies.items()
            },
        }
    )
)
