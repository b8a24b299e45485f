"""Bounded load on a test host's own loopback: GET each URL in turn until the
stop file appears, the request budget is spent or the time limit passes; then
print a JSON summary. Run on the host: python3 - STOPFILE MAXREQ MAXSEC URL..."""

import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit

stop_file, max_requests, max_seconds, urls = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
ok = failed = 0
errors: dict[str, int] = {}
releases: dict[str, int] = {}
deadline = time.monotonic() + max_seconds
started = time.monotonic()
i = 0
while ok + failed < max_requests and time.monotonic() < deadline:
    if i % 50 == 0 and os.path.exists(stop_file):
        break
    u = urlsplit(urls[i % len(urls)])
    i += 1
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", u.path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status == 200:
            ok += 1
            rel = json.loads(body).get("release", "?")
            releases[rel] = releases.get(rel, 0) + 1
        else:
            failed += 1
            errors[f"HTTP {resp.status}"] = errors.get(f"HTTP {resp.status}", 0) + 1
    except Exception as e:  # a refused or reset connection is a failed request
        failed += 1
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
print(json.dumps({"ok": ok, "failed": failed, "errors": errors, "releases": releases, "seconds": round(time.monotonic() - started, 2)}))
