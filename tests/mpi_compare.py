#!/usr/bin/python3
"""Compare two libtransgan checkpoints of the same model trained two ways
(tests/mpi.sh: N MPI ranks against one process).

Usage: tests/mpi_compare.py A.safetensors B.safetensors [--tol T] [--tol-moments M]

The step counters and the RNG state must be equal. Each state array of each
network (weights, EMA, Adam m, Adam v: all tensors with that prefix, taken
together) must agree within T (default 1e-5) of its largest magnitude,
max |a - b| / max |b|; the Adam moments within M (default 2e-4: they hold the
last step's gradient, in which summation order shows most). Prints the
largest relative difference of each array; exit status 1 on a failure.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    data = b[8 + n:]
    tensors = {}
    for name, t in h.items():
        if t["dtype"] != "F32":
            sys.exit("%s: %s is %s, not F32" % (path, name, t["dtype"]))
        lo, hi = t["data_offsets"]
        tensors[name] = np.frombuffer(data[lo:hi], dtype="<f4")
    return meta, tensors


def group(name):
    for p in ("ema.", "adam.m.", "adam.v."):
        if name.startswith(p):
            rest = name[len(p):]
            return p + rest.split(".")[0]
    return name.split(".")[0] + " weights"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--tol-moments", type=float, default=2e-4)
    args = ap.parse_args()
    ma, ta = read(args.a)
    mb, tb = read(args.b)
    bad = 0
    for key in ("d_steps", "g_steps", "rng_state"):
        if ma.get(key) != mb.get(key):
            print("FAIL: %s differs: %r vs %r" % (key, ma.get(key), mb.get(key)))
            bad += 1
    if set(ta) != set(tb):
        print("FAIL: the tensors differ: %s" % sorted(set(ta) ^ set(tb)))
        return 1
    groups = {}
    for name in ta:
        groups.setdefault(group(name), []).append(name)
    for g, names in sorted(groups.items()):
        a = np.concatenate([ta[n] for n in names]).astype(np.float64)
        b = np.concatenate([tb[n] for n in names]).astype(np.float64)
        scale = np.abs(b).max()
        err = np.abs(a - b).max() / (scale if scale > 0 else 1.0)
        tol = args.tol_moments if g.startswith("adam.") else args.tol
        ok = err <= tol
        bad += not ok
        print("%s %-24s max |a-b| / max |b| = %.3g (tolerance %g)" % ("ok  " if ok else "FAIL", g, err, tol))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
