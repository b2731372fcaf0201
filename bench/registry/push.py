#!/usr/bin/env python3
"""Pushes N distinct images (each its own config blob and tag, sharing one layer) to a
registry through the Distribution API, as a benchmark fixture.

    push.py REGISTRY_URL REPOSITORY N [THREADS]
"""
import hashlib
import json
import sys
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def main():
    base, repo, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 16

    def request(method, url, body=None, headers=None):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers)

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, h = request("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
        loc = urllib.parse.urljoin(base, h["Location"])
        sep = "&" if "?" in loc else "?"
        request("PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
        return digest

    layer = bytes(range(256)) * 64
    layer_digest = blob(layer)

    def push(i):
        config = json.dumps({
            "created": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.revision": hashlib.sha1(str(i).encode()).hexdigest(),
                                  "org.opencontainers.image.source": "https://git.example.com/bench/app"}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }).encode()
        config_digest = blob(config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(layer)}],
        }).encode()
        request("PUT", f"{base}/v2/{repo}/manifests/build-{i:05d}", manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(push, range(n)))
    print(f"pushed {n} images to {repo}")


if __name__ == "__main__":
    main()
