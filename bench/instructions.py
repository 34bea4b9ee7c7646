#!/usr/bin/env python3
"""Instructions per item of benchmarks, counted by valgrind (callgrind).

Instruction counts do not depend on how busy the machine is, so they compare
contenders (and a hot path before and after a change) where wall-clock
figures cannot. Each benchmark runs twice under callgrind, at two workload
scales; the difference in instructions over the difference in N cancels the
fixed costs (process start, warm-up, set-up), leaving the marginal cost of one
item, on all threads together.

    bench/instructions.py --binary bazel-bin/bench/w9_coroutine_await \\
        BM_CoroutineAwait_Eddy BM_LoopCallback_Eddy
    bench/instructions.py --binary ... --scales 0.01,0.02 --keep /tmp/cg BM_X

With --keep, the callgrind profiles stay for callgrind_annotate (build with
--copt=-g --strip=never for line-level detail). Cross-thread benchmarks run
serialised under valgrind: their counts include the wake-up paths but not
the contention.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def run(binary, bench, scale, out_file, extra):
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file, binary,
           "--benchmark_filter=^%s(/|$)" % re.escape(bench), "--benchmark_format=json",
           "--eddy_scale=%g" % scale, "--eddy_timer_span_ms=10"] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or not refs:
        sys.exit("instructions.py: %s failed:\n%s" % (" ".join(cmd), proc.stderr[-2000:]))
    data = json.loads(proc.stdout)
    runs = [b for b in data["benchmarks"] if b.get("run_type") == "iteration"]
    if len(runs) != 1:
        sys.exit("instructions.py: %s matched %d benchmarks; name one" % (bench, len(runs)))
    return int(refs.group(1).replace(",", "")), runs[0].get("N", 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--scales", default="0.02,0.04", help="two workload scales (default 0.02,0.04)")
    p.add_argument("--keep", help="directory for the callgrind profiles")
    p.add_argument("--arg", action="append", default=[], help="extra benchmark argument")
    p.add_argument("benchmarks", nargs="+")
    args = p.parse_args()
    s1, s2 = (float(x) for x in args.scales.split(","))
    out_dir = args.keep or tempfile.mkdtemp(prefix="eddy-cg-")
    os.makedirs(out_dir, exist_ok=True)
    print("| benchmark | instructions/item | N1 | N2 |")
    print("|---|---|---|---|")
    for bench in args.benchmarks:
        safe = re.sub(r"[^\w.-]", "_", bench)
        i1, n1 = run(args.binary, bench, s1, os.path.join(out_dir, "%s.%g.out" % (safe, s1)), args.arg)
        i2, n2 = run(args.binary, bench, s2, os.path.join(out_dir, "%s.%g.out" % (safe, s2)), args.arg)
        per = (i2 - i1) / (n2 - n1) if n2 != n1 else float("nan")
        print("| %s | %.0f | %d | %d |" % (bench, per, n1, n2), flush=True)
    if args.keep:
        print("\nprofiles in %s (callgrind_annotate FILE)" % out_dir)


if __name__ == "__main__":
    main()
