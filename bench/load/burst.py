#!/usr/bin/env python3
"""The write burst: 200 build requests and 200 audited writes (API tokens) sent at once, then
counted back through the API. Prints one JSON line; exits 1 when anything was lost.

    burst.py NOVA_URL [N] [THREADS]
"""
import json
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar


def main():
    base, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 32

    def sign_in(user):
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        body = urllib.parse.urlencode({"user": user, "next": "/"}).encode()
        opener.open(urllib.request.Request(f"{base}/sign-in", data=body, headers={"Origin": base}))
        req = urllib.request.Request(f"{base}/api/v1/tokens", data=json.dumps({"name": "bench"}).encode(), headers={"Content-Type": "application/json"})
        return json.load(opener.open(req))["token"]

    member, admin = sign_in("user:default/maria.garcia"), sign_in("user:default/pat.chen")

    def call(method, path, token, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{base}{path}", data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, None

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        builds = list(pool.map(lambda i: call("POST", "/api/v1/components/bench/builds", member, {"gitRef": "main", "dockerfile": "Dockerfile", "tag": f"load-{i}"}), range(n)))
        tokens = list(pool.map(lambda i: call("POST", "/api/v1/tokens", member, {"name": f"burst-{i}"}), range(n)))
    took = time.monotonic() - started
    build_ids = {b["id"] for s, b in builds if s == 201}
    token_ids = {t["info"]["id"] if "info" in t else t.get("id") for s, t in tokens if s == 201}
    stored_builds = {b["id"] for b in call("GET", "/api/v1/components/bench/builds?limit=500", member)[1]}
    audited = []
    cursor = None
    while True:
        q = "/api/v1/audit?action=auth.token.create&limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = call("GET", q, admin)[1]
        audited += [e["target"] for e in page["events"]]
        cursor = page.get("next")
        if not cursor:
            break
    audited_ids = {t.removeprefix("token:") for t in audited}
    result = {
        "requests": 2 * n,
        "seconds": round(took, 2),
        "builds_accepted": len(build_ids),
        "builds_stored": len(build_ids & stored_builds),
        "tokens_accepted": len(token_ids),
        "tokens_audited": len(token_ids & audited_ids),
        "other_statuses": sorted({s for s, _ in builds + tokens if s != 201}),
    }
    print(json.dumps(result))
    lost = result["builds_stored"] < n or result["tokens_audited"] < n or result["builds_accepted"] < n or result["tokens_accepted"] < n
    sys.exit(1 if lost else 0)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_303(self, req, fp, code, msg, headers):
        return fp


if __name__ == "__main__":
    main()
