#!/usr/bin/python3
"""Export a descriptor's networks to ONNX for the ONNX Runtime peer of the benchmark.

  bench/ort/export.py DESC.json --out DIR [--checkpoint CKPT] [--lib build/libtransgan.so.0]
                      [--variants plain,mha,attention] [--check-batch 3] [--tol 1e-4]
                      [--ort-dir build/ort] [--no-ort-check]

1. Weights: CKPT if given, else the descriptor's training.seed through
   tests/reference/oracle.py's init_params, saved (weights only) as
   DIR/weights.safetensors: the library loads that file, so both engines run
   the same weights.
2. Builds the generator and the discriminator with the oracle's Model and
   exports each to ONNX opset 17 with a dynamic batch axis
   (generator: z [B, latent_dim] -> images [B, C, S, S];
   discriminator: images [B, C, S, S] -> scores [B]), as DIR/{generator,
   discriminator}-VARIANT.onnx, in up to three variants:
     plain      the oracle's graph as torch.onnx traces it (MatMul, Softmax, ...);
     mha        each attention rewritten as ORT's fused contrib op
                com.microsoft.MultiHeadAttention (Q, K, V split from one MatMul);
     attention  each attention as com.microsoft.Attention, which also takes the
                QKV projection (weights [C, 3C], the checkpoint's qkv.weight
                transposed; a zero bias, since the models have none).
   The rewrite is done at export time: the attention is a torch.autograd.Function
   whose forward is the oracle's arithmetic and whose ONNX symbolic emits the
   contrib op, so the graph needs no post-processing.
3. Checks, on the same random inputs (batch --check-batch): the library
   (tg_generate with the raw weights, tg_discriminate; through the Python
   bindings, 2 threads) against the oracle, and ONNX Runtime on every exported
   file (bench/ort/ort_bench.js --check, onnxruntime-node from --ort-dir)
   against the library: the largest absolute difference must be <= --tol.
   Any failure exits 1 with the numbers. --no-ort-check leaves out the ORT half.
   With python3-onnx, each graph's ops are counted and checked: the plain graph
   has its Softmax, a fused one the contrib op and no Softmax.
4. Writes DIR/manifest.json: the files, input/output names and the differences.
Needs torch 1.13 and numpy (/usr/bin/python3); ORT checks need node.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import oracle  # noqa: E402

ORT_JS = os.path.join(ROOT, "bench", "ort", "ort_bench.js")
VARIANTS = ("plain", "mha", "attention")
OPSET = 17


def log(msg):
    print(f"export: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the fused attention

def _attention_math(x, w_qkv, heads):
    """The oracle's attention core (no rel bias, no mask): x [B, N, C] -> [B, N, C]
    before the output projection."""
    B, N, C = x.shape
    dh = C // heads
    qkv = torch.matmul(x, w_qkv.t()).reshape(B, N, 3, heads, dh)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    logits = torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5
    y = torch.matmul(torch.softmax(logits, -1), v)
    return y.transpose(1, 2).reshape(B, N, C)


class _FusedAttention(torch.autograd.Function):
    """Computes like the oracle; exports as one ORT contrib op (op = "mha" or
    "attention"), taking the QKV projection weight [3C, C] (no bias)."""

    @staticmethod
    def forward(ctx, x, w_qkv, heads, op):
        return _attention_math(x, w_qkv, heads)

    @staticmethod
    def symbolic(g, x, w_qkv, heads, op):
        C = w_qkv.type().sizes()[1]
        w_t = g.op("Transpose", w_qkv, perm_i=[1, 0])           # [C, 3C], folded at export
        if op == "attention":
            bias = g.op("Constant", value_t=torch.zeros(3 * C))
            out = g.op("com.microsoft::Attention", x, w_t, bias, num_heads_i=heads)
        else:
            qkv = g.op("MatMul", x, w_t)
            sizes = g.op("Constant", value_t=torch.tensor([C, C, C], dtype=torch.int64))
            q, k, v = g.op("Split", qkv, sizes, axis_i=2, outputs=3)
            out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)
        out.setType(x.type())
        return out


def _layer_norm_static(x, w, b):
    """oracle.layer_norm with the normalised size taken from the weight as a Python
    int: torch.onnx's LayerNormalization needs it constant, and x.shape[-1:] is a
    traced (dynamic) value under export. The arithmetic is the same."""
    return torch.nn.functional.layer_norm(x, (int(w.shape[0]),), w, b, eps=1e-5)


class ExportModel(oracle.Model):
    """The oracle's Model with the attention core swapped for the fused op."""

    def __init__(self, d, params, variant):
        super().__init__(d, params)
        self.variant = variant

    def attention(self, pre, x, heads, rel_w=0, mask=None):
        if self.variant == "plain":
            return super().attention(pre, x, heads, rel_w, mask)
        if rel_w or mask is not None:
            raise NotImplementedError(
                f"the {self.variant} variant does not export relative position bias or "
                "locality masks; use --variants plain for this descriptor")
        y = _FusedAttention.apply(x, self.P[pre + ".qkv.weight"], heads, self.variant)
        return self.linear(pre + ".proj", y)


class Net(torch.nn.Module):
    """One network as a module: the parameters are registered so that the
    export stores them as initializers."""

    def __init__(self, d, params, net, variant):
        super().__init__()
        names = [n for n in params if n.startswith(net + ".")]
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(params[n].detach().clone(), requires_grad=False) for n in names])
        self.model = ExportModel(d, dict(zip(names, self.weights)), variant)
        self.net = net

    def forward(self, x):
        if self.net == "generator":
            return self.model.generate(x)
        return self.model.discriminate(x)


def export(d, params, net, variant, path):
    m = Net(d, params, net, variant).eval()
    S, ch = d["image"]["size"], d["image"]["channels"]
    if net == "generator":
        example, names = torch.zeros(2, d["latent_dim"]), (["z"], ["images"])
    else:
        example, names = torch.zeros(2, ch, S, S), (["images"], ["scores"])
    dyn = {names[0][0]: {0: "batch"}, names[1][0]: {0: "batch"}}
    oracle.layer_norm = _layer_norm_static     # the Model's blocks look it up at call time
    kw = {"custom_opsets": {"com.microsoft": 1}} if variant != "plain" else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")      # tracer warnings about Python ints: shapes are fixed
        torch.onnx.export(m, (example,), path, input_names=names[0], output_names=names[1],
                          dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True, **kw)
    return {"file": os.path.basename(path), "input": names[0][0], "output": names[1][0],
            "input_shape": ["batch"] + list(example.shape[1:])}


def graph_ops(path):
    """{op_type: count} of an exported file (needs python3-onnx; {} without it)."""
    try:
        import onnx
    except ImportError:
        return {}
    ops = {}
    for n in onnx.load(path).graph.node:
        key = (n.domain + "." if n.domain else "") + n.op_type
        ops[key] = ops.get(key, 0) + 1
    return ops


# ---------------------------------------------------------------- checks

def graph_problem(variant, ops, required):
    """What is wrong with an export's ops, or None: the plain graph has its
    Softmax; a fused one has the contrib op in place of every Softmax."""
    if not ops:
        return "python3-onnx is missing: the graph was not inspected" if required else None
    fused = {"mha": "com.microsoft.MultiHeadAttention", "attention": "com.microsoft.Attention"}
    if variant == "plain":
        return None if ops.get("Softmax") else "no Softmax in the plain graph"
    if ops.get("Softmax") or not ops.get(fused[variant]):
        return f"expected {fused[variant]} and no Softmax, got {ops}"
    return None


def max_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def library_outputs(lib_path, ckpt, z, images):
    """tg_generate (raw weights) and tg_discriminate through the Python bindings."""
    os.environ["TRANSGAN_LIBRARY"] = os.path.abspath(lib_path)
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import transgan
    with transgan.Model.load(ckpt) as m:
        m.threads = 2
        return m.generate(z=z, ema=False), m.discriminate(images)


def ort_outputs(ort_dir, model, x):
    """Run one exported file in ONNX Runtime (ort_bench.js --check) on x."""
    with tempfile.TemporaryDirectory() as t:
        inp, out = os.path.join(t, "in.f32"), os.path.join(t, "out.f32")
        np.ascontiguousarray(x, "<f4").tofile(inp)
        env = dict(os.environ, NODE_PATH=os.path.join(os.path.abspath(ort_dir), "node_modules"))
        cmd = ["node", ORT_JS, "--model", model, "--check", inp, "--shape",
               ",".join(map(str, x.shape)), "--out", out]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
        return np.fromfile(out, "<f4")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("descriptor")
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libtransgan.so.0"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--nets", default="generator,discriminator")
    ap.add_argument("--check-batch", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--ort-dir", default=os.path.join(ROOT, "build", "ort"))
    ap.add_argument("--no-ort-check", action="store_true")
    ap.add_argument("--require-onnx", action="store_true",
                    help="fail when python3-onnx is missing (the graphs' ops are checked)")
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if v]
    nets = [n for n in a.nets.split(",") if n]
    bad = [v for v in variants if v not in VARIANTS] + \
        [n for n in nets if n not in ("generator", "discriminator")]
    if bad or not variants or not nets:
        ap.error(f"unknown or no variants/nets: {bad}")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d = oracle.load_descriptor(a.descriptor)
    os.makedirs(a.out, exist_ok=True)
    if a.checkpoint:
        ckpt = os.path.abspath(a.checkpoint)
        params = {n: p.detach() for n, p in oracle.State.load(ckpt, d).params.items()}
    else:
        ckpt = os.path.join(os.path.abspath(a.out), "weights.safetensors")
        params = oracle.init_params(d, d["training"]["seed"])
        oracle.State(d, params=params).save(ckpt, with_state=False)
        log(f"weights from training.seed {d['training']['seed']}: {ckpt}")

    # the same inputs for every engine
    rng = np.random.default_rng(1)
    n, S, ch = a.check_batch, d["image"]["size"], d["image"]["channels"]
    z = rng.standard_normal((n, d["latent_dim"])).astype(np.float32)
    images = rng.uniform(-1, 1, (n, ch, S, S)).astype(np.float32)
    inputs = {"generator": z, "discriminator": images}
    ref_model = oracle.Model(d, params)
    with torch.no_grad():
        ref = {"generator": ref_model.generate(torch.from_numpy(z)).numpy(),
               "discriminator": ref_model.discriminate(torch.from_numpy(images)).numpy()}
    lib_g, lib_d = library_outputs(a.lib, ckpt, z, images)
    lib = {"generator": lib_g, "discriminator": lib_d}

    failures = []
    manifest = {"descriptor": os.path.relpath(os.path.abspath(a.descriptor), ROOT),
                "name": d["name"], "checkpoint": os.path.basename(ckpt), "opset": OPSET,
                "torch": torch.__version__, "check_batch": n, "tolerance": a.tol,
                "models": {}}
    for net in nets:
        diff = max_diff(lib[net], ref[net])
        manifest[f"{net}_library_vs_oracle"] = diff
        log(f"{net}: library vs oracle max |diff| {diff:.3g}")
        if not diff <= a.tol:
            failures.append(f"{net}: library vs oracle {diff:.3g} > {a.tol}")
        for v in variants:
            path = os.path.join(a.out, f"{net}-{v}.onnx")
            info = export(d, params, net, v, path)
            info["ops"] = graph_ops(path)
            bad = graph_problem(v, info["ops"], a.require_onnx)
            if bad:
                failures.append(f"{net}-{v}: {bad}")
            if not a.no_ort_check:
                got = ort_outputs(a.ort_dir, path, inputs[net]).reshape(lib[net].shape)
                info["ort_vs_library"] = max_diff(got, lib[net])
                log(f"{net}-{v}: ORT vs library max |diff| {info['ort_vs_library']:.3g}")
                if not info["ort_vs_library"] <= a.tol:
                    failures.append(f"{net}-{v}: ORT vs library {info['ort_vs_library']:.3g} "
                                    f"> {a.tol}")
            manifest["models"][f"{net}-{v}"] = info
            log(f"wrote {path}")
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
