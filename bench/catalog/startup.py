#!/usr/bin/env python3
"""Starts `nova serve` on a fresh SQLite database and a generated catalog, and measures the time
from process start until a given entity is queryable, and the peak RSS (VmHWM) at that point.

usage: startup.py NOVA_BINARY CATALOG_DIR LAST_ENTITY_PATH PORT
prints: JSON {"queryable_s": ..., "peak_rss_mb": ..., "pid": ...}; the server keeps running
(its pid is printed) so that load can be applied; the caller stops it.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

binary, catalog, path, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
data = tempfile.mkdtemp(prefix="nova-bench-")
start = time.monotonic()
proc = subprocess.Popen(
    [binary, "serve", "--listen", f"127.0.0.1:{port}", "--catalog", catalog,
     "--database-url", f"sqlite://{data}/nova.db"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    env={**os.environ, "NOVA_LOG__LEVEL": "warn"},
)
url = f"http://127.0.0.1:{port}{path}"
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    if proc.poll() is not None:
        sys.exit("nova exited before becoming queryable")
    if time.monotonic() - start > 300:
        sys.exit("not queryable after 300 s")
    time.sleep(0.005)
elapsed = time.monotonic() - start
with open(f"/proc/{proc.pid}/status") as f:
    hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
print(json.dumps({"queryable_s": round(elapsed, 3), "peak_rss_mb": round(hwm / 1024, 1), "pid": proc.pid}))
