#!/usr/bin/env python3
"""Generates a synthetic catalog of about N entities: groups in a hierarchy, users, systems and
components (70% of N), written 1000 documents per file.

usage: generate.py N OUTDIR
"""
import os
import sys

n = int(sys.argv[1])
out = sys.argv[2]
os.makedirs(out, exist_ok=True)

groups = max(10, n // 100)
users = max(20, n // 10)
systems = max(5, n // 50)
components = n - groups - users - systems

docs = []
for g in range(groups):
    parent = f"\n  parent: team-{(g - 1) // 4}" if g > 0 else ""
    docs.append(f"""apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-{g}
  description: Team number {g}
spec:
  type: team{parent}
  children: []
""")
for u in range(users):
    docs.append(f"""apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: user-{u}
spec:
  profile:
    displayName: User {u}
    email: user-{u}@example.com
  memberOf: [team-{u % groups}]
""")
for s in range(systems):
    docs.append(f"""apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: system-{s}
spec:
  owner: team-{s % groups}
""")
for c in range(components):
    docs.append(f"""apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: component-{c}
  title: Component {c}
  description: A generated service for the catalog benchmark, number {c}.
  tags: [generated, lang-{c % 7}]
  annotations:
    amazon.com/ecr-repository-name: component-{c}
    backstage.io/source-location: url:https://git.example.com/org/component-{c}
    backstage.io/kubernetes-namespace: ns-{c % 40}
spec:
  type: service
  lifecycle: production
  owner: team-{c % groups}
  system: system-{c % systems}
  dependsOn: [component:component-{(c + 1) % components}]
""")

for i in range(0, len(docs), 1000):
    with open(os.path.join(out, f"part-{i // 1000:04d}.yaml"), "w") as f:
        f.write("---\n".join(docs[i:i + 1000]))
print(f"{len(docs)} entities: {groups} groups, {users} users, {systems} systems, {components} components")
