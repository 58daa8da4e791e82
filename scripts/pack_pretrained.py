#!/usr/bin/python3
"""Pack a training checkpoint into a small file for sharing (a few MB).

  scripts/pack_pretrained.py CKPT.safetensors OUT.safetensors [--dtype F16|BF16|F32] [--raw]

The output holds the EMA generator's weights as the generator (what sampling
uses; a file without EMA tensors starts its EMA as a copy of the generator),
or with --raw the trained generator's own weights (for a run whose recipe
changed recently, where the EMA still averages in the generator of before
the change: measure both, ship the better, say which),
the discriminator (so the file loads with tg_model_load and can be
fine-tuned), and the metadata format, descriptor, d_steps and g_steps. No Adam
moments, no RNG state. Tensors are stored as float16 by default: half the size
of float32; libtransgan reads F16, BF16, F32 and F64 (docs/CHECKPOINT.md).
Needs only numpy (Debian's /usr/bin/python3 with python3-numpy).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        sys.exit("%s: not a safetensors file (too short)" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        sys.exit("%s: header length %d runs past the end" % (path, n))
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit("%s: %s is %s; this script packs float32 checkpoints" % (path, name, t["dtype"]))
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return tensors, meta


def to_bf16(x):
    """float32 -> bfloat16 bits, round to nearest even."""
    u = x.astype("<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2")


def write(path, tensors, meta, dtype):
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        x = tensors[name]
        if dtype == "BF16":
            raw = to_bf16(x).tobytes()
        else:
            y = x.astype({"F16": "<f2", "F32": "<f4"}[dtype])
            if not np.all(np.isfinite(y)):
                sys.exit("%s does not fit %s" % (name, dtype))
            raw = y.tobytes()
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # align the data to 8 bytes
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="F16", choices=["F16", "BF16", "F32"])
    ap.add_argument("--raw", action="store_true",
                    help="pack the raw generator, not the EMA one")
    a = ap.parse_args()
    tensors, meta = read(a.checkpoint)
    if meta.get("format") != "transgan-checkpoint":
        sys.exit("%s: not a libtransgan checkpoint (metadata format %r)" % (a.checkpoint, meta.get("format")))
    out = {}
    for name, x in tensors.items():
        if name.startswith("discriminator."):
            out[name] = x
        elif name.startswith("ema.generator.") and not a.raw:
            out[name[len("ema."):]] = x
    for name, x in tensors.items():  # a checkpoint without EMA: the generator itself
        if name.startswith("generator.") and name not in out:
            out[name] = x
    keep = {k: meta[k] for k in ("format", "descriptor", "d_steps", "g_steps") if k in meta}
    write(a.out, out, keep, a.dtype)
    print("%s: %d tensors, %s, %.2f MB" % (a.out, len(out), a.dtype, os.path.getsize(a.out) / 1e6))


if __name__ == "__main__":
    main()
