#!/usr/bin/python3
"""What the main thread did while the OpenMP worker waited (docs/PERFORMANCE.md,
"Batch 1 on two threads").

    perf record -F 10000 -g -o waits.data build/bench/lib_bench CKPT --net generator \\
        --batch 1 --seconds 1.5 --threads 2 --load sampling-only --precision bf16
    perf script -i waits.data -F tid,time,ip,sym,dso > waits.txt
    /usr/bin/python3 bench/perf_waits.py waits.txt

The process's two busiest threads are the main thread (the earlier one) and
the worker. Every worker sample whose innermost frame is in libgomp (spinning
at a barrier or waiting for work) is matched to the main thread's sample
nearest in time, and counted under what that sample was running: its
innermost function and the first library functions on its stack. Prints the
shares of the worker's samples, largest first, and a one-line summary by
kind (oneDNN JIT code, our attention, element-wise passes, ...).
"""
import bisect
import collections
import sys


def read_samples(path):
    samples, cur = [], None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line:
            if cur:
                samples.append(cur)
            cur = None
        elif not line.startswith("\t"):
            p = line.split()
            cur = (int(p[0]), float(p[1].rstrip(":")), [])
        elif cur:
            p = line.strip().split(None, 1)
            if len(p) == 2:
                sym, _, dso = p[1].rpartition(" (")
                cur[2].append((sym, dso.rstrip(")")))
    if cur:
        samples.append(cur)
    return samples


def label(frames):
    sym, dso = frames[0]
    ours = [s for s, d in frames if "libtransgan" in d and not s.startswith("[")]
    top = sym if "libtransgan" in dso else dso.split("/")[-1]
    return top + " | " + " < ".join(ours[:3])


def kind(lab):
    for key, name in (("perf-", "oneDNN JIT"), ("[JIT]", "oneDNN JIT"), ("bf16_", "attention"),
                      ("fwd_blk", "attention"), ("pack_kv", "attention"), ("libgomp", "libgomp"),
                      ("libdnnl", "libdnnl"), ("ln_", "LayerNorm"), ("cvt", "element-wise"),
                      ("broadcast", "element-wise"), ("shuffle", "element-wise"),
                      ("rows_", "input GEMV")):
        if key in lab:
            return name
    return "other"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    samples = read_samples(sys.argv[1])
    tids = collections.Counter(s[0] for s in samples)
    if len(tids) < 2:
        sys.exit("perf_waits: fewer than two threads in the samples")
    a, b = [t for t, _ in tids.most_common(2)]
    first = {t: min(s[1] for s in samples if s[0] == t) for t in (a, b)}
    main_t, worker = (a, b) if first[a] <= first[b] else (b, a)
    ms = [s for s in samples if s[0] == main_t]
    mt = [s[1] for s in ms]
    ws = [s for s in samples if s[0] == worker]
    waits = collections.Counter()
    for s in ws:
        if not s[2] or "libgomp" not in s[2][0][1]:
            continue
        i = bisect.bisect_left(mt, s[1])
        j = min((k for k in (i - 1, i) if 0 <= k < len(ms)), key=lambda k: abs(mt[k] - s[1]))
        waits[label(ms[j][2])] += 1
    n = len(ws)
    print(f"worker samples {n}, main thread samples {len(ms)}")
    for lab, v in waits.most_common(20):
        print(f"{100 * v / n:5.1f}%  {lab}")
    kinds = collections.Counter()
    for lab, v in waits.items():
        kinds[kind(lab)] += v
    print(f"worker waiting {100 * sum(waits.values()) / n:.1f}% of its samples; main thread in: "
          + ", ".join(f"{k} {100 * v / n:.1f}%" for k, v in kinds.most_common()))


if __name__ == "__main__":
    main()
