#!/usr/bin/env python3
"""Write a large configuration template for benchmarking `nova hydrate`.

usage: generate-template.py OUT [--megabytes N]

Each line holds one reference of each form ($VAR, ${VAR}, ${VAR:-default}) to the
variables BENCH_HOST, BENCH_PORT and BENCH_MISSING (the last one is never set, so its
default is used), plus a `$$` escape and plain text.
"""
import argparse

LINE = 'service-{n}: {{url: "https://${{BENCH_HOST}}:$BENCH_PORT/v1", timeout: ${{BENCH_MISSING:-30}}s, cost: "$$5"}}\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    limit = args.megabytes * 1024 * 1024
    written = 0
    n = 0
    with open(args.out, "w") as out:
        while written < limit:
            line = LINE.format(n=n)
            out.write(line)
            written += len(line)
            n += 1
    print(f"wrote {n} lines ({written} bytes) to {args.out}")


if __name__ == "__main__":
    main()
