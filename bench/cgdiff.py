#!/usr/bin/env python3
"""Where two callgrind counts differ, per request: function by function, or crate by crate.

    python3 bench/cgdiff.py A B --workload W1 [--row wxgate-1w] [--by crate] [--top 40]
    python3 bench/cgdiff.py DIR DIR --workload W4 --row-a floor --row-b wxgate-1w

A and B are directories that `BENCH_KEEP=1 BENCH_CALLGRIND=1 python3 bench/run.py` kept (it
prints "raw results … : DIR" at the end): each holds `results.json` (the request counts) and
`callgrind-{row}-{workload}.out.1` (the measured run's profile). The same directory twice
compares two rows of one run. Counts are self instructions (each function's own, not its
callees'), divided by each run's requests; the largest changes come first. A run's total moves
by a few hundred with how many requests each wake-up finds, so judge a change by the functions
it touches, not by the total alone. Needs `callgrind_annotate` (valgrind).
"""

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter

# A function line of `callgrind_annotate --auto=no`: "12,424,274 ( 7.87%)  file:function [object]".
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+?)(?:\s+\[[^\]]*\])?\s*$")
CRATE = re.compile(r"/([A-Za-z0-9_\-]+?)-\d+\.\d+\.\d+[^/]*/src/")


def self_counts(text):
    """{(file, function): instructions} from `callgrind_annotate --auto=no` output."""
    counts = Counter()
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(2) == "PROGRAM TOTALS":
            continue
        file, _, function = m.group(2).partition(":")
        counts[(file, function)] += int(m.group(1).replace(",", ""))
    return counts


def crate_of(file):
    """The crate a source file belongs to, as far as its path tells."""
    if m := CRATE.search(file):
        return m.group(1)
    if "/library/" in file:
        return "std:" + file.split("/library/", 1)[1].split("/", 1)[0]
    if m := re.search(r"(?:^|/)crates/([^/]+)/src/", file):
        return "wxgate-" + m.group(1)
    if "bench/floor/" in file:
        return "wxgate-bench-floor"
    if "jemalloc" in file:
        return "jemalloc"
    if "aws-lc" in file:
        return "aws-lc"
    if file.startswith("./") or "glibc" in file:
        return "libc"
    return file or "?"


def grouped(counts, by):
    out = Counter()
    for (file, function), n in counts.items():
        out[crate_of(file) if by == "crate" else function] += n
    return out


def diff(a, na, b, nb):
    """[(B − A, A, B, key)] per request, the largest change first."""
    keys = set(a) | set(b)
    rows = [(b[k] / nb - a[k] / na, a[k] / na, b[k] / nb, k) for k in keys]
    return sorted(rows, key=lambda r: (-abs(r[0]), r[3]))


def requests(directory, workload, row):
    with open(os.path.join(directory, "results.json")) as f:
        records = json.load(f)["results"]
    for r in records:
        if r.get("workload") == workload and r.get("row") == row:
            return r["requests"]
    raise SystemExit(f"{directory}/results.json: no {workload} {row} record")


def profile(directory, workload, row):
    path = os.path.join(directory, f"callgrind-{row}-{workload}.out.1")
    if not os.path.exists(path):
        raise SystemExit(f"{path}: missing (run bench/run.py with BENCH_KEEP=1 BENCH_CALLGRIND=1)")
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    return self_counts(text), requests(directory, workload, row)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--workload", required=True)
    p.add_argument("--row", default="wxgate-1w")
    p.add_argument("--row-a")
    p.add_argument("--row-b")
    p.add_argument("--by", choices=["function", "crate"], default="function")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    a, na = profile(args.a, args.workload, args.row_a or args.row)
    b, nb = profile(args.b, args.workload, args.row_b or args.row)
    print(f"per request: A {sum(a.values()) / na:,.0f} ({na:,} requests), "
          f"B {sum(b.values()) / nb:,.0f} ({nb:,} requests)")
    print(f"{'B − A':>9} {'A':>9} {'B':>9}  {args.by}")
    for change, in_a, in_b, key in diff(grouped(a, args.by), na, grouped(b, args.by), nb)[:args.top]:
        print(f"{change:+9.1f} {in_a:9.1f} {in_b:9.1f}  {key[:140]}")


if __name__ == "__main__":
    main(sys.argv[1:])
