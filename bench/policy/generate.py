#!/usr/bin/env python3
"""Write a corpus of Kubernetes workload manifests for benchmarking `nova policy check`.

usage: generate.py OUT_DIR [--docs N] [--files K] [--seed S]

Writes N workload documents (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods)
spread over K multi-document YAML files. About one document in ten breaks a rule (latest
tag, missing probe, missing limits), so the report path is exercised as well.
"""
import argparse
import os
import random

KINDS = [
    ("apps/v1", "Deployment", 50),
    ("apps/v1", "StatefulSet", 15),
    ("apps/v1", "DaemonSet", 10),
    ("batch/v1", "Job", 10),
    ("batch/v1", "CronJob", 10),
    ("v1", "Pod", 5),
]


def labels(name, indent):
    pad = " " * indent
    return (
        f"{pad}app.kubernetes.io/name: {name}\n"
        f"{pad}app.kubernetes.io/component: backend\n"
        f"{pad}app.kubernetes.io/part-of: platform-services\n"
        f'{pad}app.kubernetes.io/version: "1.0.0"\n'
    )


def container(name, index, indent, broken, rng):
    pad = " " * indent
    tag = "latest" if broken == "latest" else f"1.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
    out = (
        f"{pad}- name: {name}-{index}\n"
        f"{pad}  image: registry.example.com:5000/team/{name}:{tag}\n"
        f"{pad}  ports:\n"
        f"{pad}    - containerPort: 8080\n"
        f"{pad}      name: http\n"
        f"{pad}  env:\n"
        f"{pad}    - name: LOG_LEVEL\n"
        f"{pad}      value: info\n"
        f"{pad}    - name: DATABASE_URL\n"
        f"{pad}      valueFrom:\n"
        f"{pad}        secretKeyRef: {{name: {name}-db, key: url}}\n"
    )
    if broken != "probe":
        out += (
            f"{pad}  livenessProbe:\n"
            f"{pad}    httpGet: {{path: /health, port: http}}\n"
            f"{pad}    periodSeconds: 10\n"
        )
    out += (
        f"{pad}  readinessProbe:\n"
        f"{pad}    httpGet:\n"
        f"{pad}      path: /ready\n"
        f"{pad}      port: 8080\n"
        f"{pad}    initialDelaySeconds: 5\n"
        f"{pad}  resources:\n"
        f"{pad}    requests:\n"
        f"{pad}      cpu: 100m\n"
        f'{pad}      memory: "128Mi"\n'
    )
    if broken != "limits":
        out += f"{pad}    limits:\n{pad}      memory: 256Mi\n"
    return out


def pod_spec(name, indent, rng):
    pad = " " * indent
    broken = rng.choice(["latest", "probe", "limits"]) if rng.random() < 0.1 else None
    out = f"{pad}serviceAccountName: {name}\n{pad}containers:\n"
    for i in range(rng.choice([1, 1, 1, 2])):
        out += container(name, i, indent + 2, broken, rng)
    return out


def template(name, indent, rng):
    pad = " " * indent
    return (
        f"{pad}template:\n"
        f"{pad}  metadata:\n"
        f"{pad}    labels:\n" + labels(name, indent + 6) +
        f"{pad}  spec:\n" + pod_spec(name, indent + 4, rng)
    )


def document(n, rng):
    api, kind, _ = rng.choices(KINDS, weights=[k[2] for k in KINDS])[0]
    name = f"svc-{n:06d}"
    head = (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n"
        f"  namespace: team-{n % 37}\n  labels:\n" + labels(name, 4)
    )
    if kind == "Pod":
        return head + "spec:\n" + pod_spec(name, 2, rng)
    if kind == "CronJob":
        return head + (
            'spec:\n  schedule: "*/5 * * * *"\n  jobTemplate:\n    spec:\n'
            + template(name, 6, rng)
        )
    selector = f"  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n"
    replicas = "  replicas: 3\n" if kind in ("Deployment", "StatefulSet") else ""
    return head + "spec:\n" + replicas + selector + template(name, 2, rng)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    per_file = -(-args.docs // args.files)
    n = 0
    for f in range(args.files):
        with open(os.path.join(args.out_dir, f"manifests-{f:04d}.yaml"), "w") as out:
            for _ in range(per_file):
                if n == args.docs:
                    break
                out.write("---\n" + document(n, rng))
                n += 1
    print(f"wrote {n} documents in {args.files} files under {args.out_dir}")


if __name__ == "__main__":
    main()
