#!/usr/bin/python3
"""libtransgan's PyTorch oracle: docs/SPECIFICATION.md written as a program.

It reads the library's JSON descriptors and safetensors checkpoints and computes
what the library must compute, in float32 or (tighter) float64:

- the descriptor: defaults, validation (load_descriptor);
- the parameters: names, shapes and initialisation of both networks
  (parameter_table, init_params);
- the generator (with locality masks, relative position bias and the MT-CT
  super-resolution path) and the discriminator (Model);
- DiffAugment with given random draws (draw_aug, apply_aug);
- the training step: the four losses, the gradient penalty as a second-order
  term, clipping, SGD / Adam, n_critic, the EMA (train_step);
- FLOPs and parameter counts (flops), as bench/bench.c reports them.

The conformance fixtures (tests/fixtures/make_*fixtures.py), the Python tests
that check them and bench/peer_bench.py use it.  Command line:

  oracle.py flops        DESC.json
  oracle.py init         DESC.json OUT.safetensors [--seed N]
  oracle.py generate     DESC.json CKPT.safetensors --z z.npy --out img.npy [--ema] [--g-step N]
  oracle.py discriminate DESC.json CKPT.safetensors --images x.npy --out scores.npy
  oracle.py train-step   DESC.json CKPT.safetensors --real r.npy --zd zd.npy
                         [--zg zg.npy] [--alpha a.npy] [--steps K] --out OUT.safetensors

Class-conditional descriptors (num_classes > 0) take the classes as integer
.npy files: --labels (generate: of z; discriminate: of the images, which adds
the projection term; train-step: of the real batch) and, for train-step,
--fake-d and --fake-g (the fakes' classes; required there).

(.npy arrays are float32, images NCHW in [-1, 1]; --double computes in float64.)
Needs torch (1.13) and numpy only: run it with /usr/bin/python3.
"""
import argparse
import copy
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ================================================================ descriptor
# docs/SPECIFICATION.md "Descriptor" (the table is docs/DESCRIPTOR.md)

EMA_HALF_LIFE = {"half_life_kimg": 500, "warmup": 0.1}
ADA_DEFAULTS = {"target": 0.6, "interval": 4, "kimg": 100.0}

DEFAULTS = {
    "format": "transgan",
    "format_version": 1,
    "name": "",
    "image": {"size": 32, "channels": 3},
    "latent_dim": 256,
    "num_classes": 0,
    "class_names": None,
    "generator": {"bottom_width": 8, "embed_dim": 384, "depths": [5, 2, 2], "heads": 4,
                  "mlp_ratio": 4, "norm": "layernorm", "relative_position_bias": False,
                  "output": "linear"},
    "discriminator": {"patch_size": 4, "embed_dim": 384, "depth": 7, "heads": 4,
                      "mlp_ratio": 4},
    "training": {"loss": "wgan-gp-eps", "gp_weight": 10.0, "drift_weight": 0.001,
                 "r1_gamma": 0.0, "r1_interval": 16, "optimizer": "adam", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0,
                 "beta2": 0.99, "adam_eps": 1e-8, "n_critic": 4, "g_batch": 128,
                 "d_batch": 64, "grad_clip": 5.0, "ema": dict(EMA_HALF_LIFE),
                 "diffaug": ["translation", "cutout", "color"], "diffaug_p": 1.0, "ada": None,
                 "sr_aux_weight": 0.0, "class_loss_weight": 0.0,
                 "locality": None, "lr_schedule": None, "seed": 12345, "precision": "f32"},
}

# discriminator.kind "conv" (docs/SPECIFICATION.md "Convolutional discriminator"):
# its section replaces the transformer's keys; "kind" is in the full descriptor
# only for this kind (a transformer model's descriptor is what it always was)
CONV_DEFAULTS = {"kind": "conv", "widths": [128, 128, 128], "blocks": [1, 1, 2],
                 "down": "avgpool", "residual": True, "pool": "sum"}
LEAKY_SLOPE = 0.2

LOSSES = ("wgan-gp-eps", "wgan-gp", "hinge", "lsgan")
AUG_OPS = ("translation", "cutout", "color")


class DescriptorError(ValueError):
    """An invalid descriptor; the message starts with the key's path."""


def _fail(path, what, got=None):
    raise DescriptorError(f"{path}: {what}" + ("" if got is None else f" (got {got!r})"))


def _int(v, path, lo):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < lo:
        _fail(path, "must be a positive integer" if lo == 1 else
              "must be a non-negative integer", v)
    return int(v)


def _num(v, path, lo, hi=math.inf, lo_open=False, hi_open=False):
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        _fail(path, f"must be a finite number in {'(' if lo_open else '['}{lo}, {hi}"
              f"{')' if hi_open else ']'}", v)
    return v


def _choice(v, path, options):
    if v not in options:
        _fail(path, "must be one of " + ", ".join(f'"{o}"' for o in options), v)
    return v


def _check_values(d):
    """Types and ranges of every key; then the constraints between sections."""
    im, g, dd, t = d["image"], d["generator"], d["discriminator"], d["training"]
    if not isinstance(d["name"], str):
        _fail("name", "must be a string", d["name"])
    _int(im["size"], "image.size", 1)
    if im["channels"] not in (1, 3, 4) or isinstance(im["channels"], bool):
        _fail("image.channels", "must be 1, 3 or 4", im["channels"])
    _int(d["latent_dim"], "latent_dim", 1)
    K = _int(d["num_classes"], "num_classes", 0)
    if K > 65536:
        _fail("num_classes", "must be a non-negative integer <= 65536", K)
    names = d["class_names"]
    if names is not None:
        if not isinstance(names, list):
            _fail("class_names", "must be null or an array of strings", names)
        if len(names) != K:
            _fail("class_names", f"must have num_classes = {K} names (got {len(names)})")
        for i, v in enumerate(names):
            if not isinstance(v, str) or not v or len(v.encode()) > 255:
                _fail(f"class_names[{i}]", "must be a non-empty string of at most 255 bytes", v)
            if v in names[:i]:
                _fail(f"class_names[{i}]", "must differ from every other class name", v)
    for k in ("bottom_width", "embed_dim", "heads", "mlp_ratio"):
        _int(g[k], "generator." + k, 1)
    if not isinstance(g["depths"], list) or not g["depths"]:
        _fail("generator.depths", "must be a non-empty array of positive integers", g["depths"])
    for i, v in enumerate(g["depths"]):
        _int(v, f"generator.depths[{i}]", 1)
    _choice(g["norm"], "generator.norm", ("layernorm", "pixelnorm"))
    if not isinstance(g["relative_position_bias"], bool):
        _fail("generator.relative_position_bias", "must be true or false",
              g["relative_position_bias"])
    _choice(g["output"], "generator.output", ("linear", "tanh"))
    conv = is_conv(d)
    if conv:
        for key, hi in (("widths", 4096), ("blocks", 64)):
            v = dd[key]
            if not isinstance(v, list):
                _fail("discriminator." + key, "must be an array of positive integers", v)
            if not 1 <= len(v) <= 8:
                _fail("discriminator." + key, "must have 1 to 8 entries", len(v))
            for i, x in enumerate(v):
                if _int(x, f"discriminator.{key}[{i}]", 1) > hi:
                    _fail(f"discriminator.{key}[{i}]", f"must be a positive integer <= {hi}", x)
        if len(dd["blocks"]) != len(dd["widths"]):
            _fail("discriminator.blocks", "must have one entry per level, as many as "
                  "discriminator.widths", len(dd["blocks"]))
        _choice(dd["down"], "discriminator.down", ("avgpool", "stride"))
        if not isinstance(dd["residual"], bool):
            _fail("discriminator.residual", "must be true or false", dd["residual"])
        _choice(dd["pool"], "discriminator.pool", ("sum", "mean"))
    else:
        for k in DEFAULTS["discriminator"]:
            _int(dd[k], "discriminator." + k, 1)
    _choice(t["loss"], "training.loss", LOSSES)
    _choice(t["optimizer"], "training.optimizer", ("adam", "sgd"))
    # bf16 training (training.precision) changes only the rounding of the
    # library's matmuls: the oracle computes in its own precision either way
    _choice(t["precision"], "training.precision", ("f32", "bf16"))
    for k in ("gp_weight", "drift_weight", "g_lr", "d_lr", "grad_clip", "sr_aux_weight",
              "class_loss_weight", "r1_gamma"):
        _num(t[k], "training." + k, 0)
    _int(t["r1_interval"], "training.r1_interval", 1)
    if t["r1_gamma"] > 0 and t["loss"] in ("wgan-gp", "wgan-gp-eps"):
        _fail("training.r1_gamma", "R1 takes the place of the wgan-gp losses' gradient "
              "penalty; > 0 needs training.loss hinge or lsgan", t["loss"])
    for k in ("beta1", "beta2"):
        _num(t[k], "training." + k, 0, 1, hi_open=True)
    _num(t["adam_eps"], "training.adam_eps", 0, lo_open=True)
    for k in ("n_critic", "g_batch", "d_batch"):
        _int(t[k], "training." + k, 1)
    _int(t["seed"], "training.seed", 0)
    ema = t["ema"]
    if ema is not None:
        if not isinstance(ema, dict) or not ema or set(ema) - {"beta", "half_life_kimg", "warmup"}:
            _fail("training.ema", 'must be null, {"beta": b} or '
                  '{"half_life_kimg": h, "warmup": w}', ema)
        if "beta" in ema:
            if len(ema) > 1:
                _fail("training.ema", 'give either "beta" or "half_life_kimg"/"warmup"')
            _num(ema["beta"], "training.ema.beta", 0, 1, hi_open=True)
        else:                       # a missing half-life key takes its default
            t["ema"] = ema = dict(EMA_HALF_LIFE, **ema)
            _num(ema["half_life_kimg"], "training.ema.half_life_kimg", 0)
            _num(ema["warmup"], "training.ema.warmup", 0)
    if not isinstance(t["diffaug"], list) or len(set(t["diffaug"])) != len(t["diffaug"]):
        _fail("training.diffaug", "must be an array of distinct ops", t["diffaug"])
    for i, op in enumerate(t["diffaug"]):
        _choice(op, f"training.diffaug[{i}]", AUG_OPS)
    _num(t["diffaug_p"], "training.diffaug_p", 0, 1)
    if t["ada"] is not None:                # missing keys take their defaults
        if not isinstance(t["ada"], dict) or set(t["ada"]) - set(ADA_DEFAULTS):
            _fail("training.ada", 'must be null or {"target": r, "interval": n, "kimg": k}',
                  t["ada"])
        t["ada"] = ada = dict(ADA_DEFAULTS, **t["ada"])
        _num(ada["target"], "training.ada.target", 0, 1)
        _int(ada["interval"], "training.ada.interval", 1)
        _num(ada["kimg"], "training.ada.kimg", 0, lo_open=True)
        if not t["diffaug"]:
            _fail("training.ada", "adapts the DiffAugment probability, so it needs at least "
                  "one training.diffaug op", [])
    n = len(g["depths"])
    loc = t["locality"]
    if loc is not None:
        if not isinstance(loc, dict) or set(loc) != {"stages", "schedule"}:
            _fail("training.locality", 'must be null or {"stages": [...], "schedule": '
                  '[[until_g_step, radius], ...]}', loc)
        if not isinstance(loc["stages"], list) or len(set(map(str, loc["stages"]))) != len(
                loc["stages"]):
            _fail("training.locality.stages", "must be an array of distinct stage indices")
        for i, s in enumerate(loc["stages"]):
            if _int(s, f"training.locality.stages[{i}]", 0) >= n:
                _fail(f"training.locality.stages[{i}]", f"must be a stage index in [0, {n - 1}]", s)
        if not isinstance(loc["schedule"], list):
            _fail("training.locality.schedule", "must be an array of [until_g_step, radius]")
        for i, row in enumerate(loc["schedule"]):
            if not isinstance(row, list) or len(row) != 2:
                _fail(f"training.locality.schedule[{i}]", "must be an [until_g_step, radius] pair")
            _int(row[0], f"training.locality.schedule[{i}][0]", 0)
            _int(row[1], f"training.locality.schedule[{i}][1]", 0)
    sched = t["lr_schedule"]
    if sched is not None:
        if not isinstance(sched, list) or not sched:
            _fail("training.lr_schedule", "must be null or a non-empty array of [d_step, factor] "
                  "points", sched)
        if len(sched) > 32:
            _fail("training.lr_schedule", f"at most 32 points (got {len(sched)})")
        prev = None
        for i, row in enumerate(sched):
            if not isinstance(row, list) or len(row) != 2:
                _fail(f"training.lr_schedule[{i}]", "must be a [d_step, factor] point", row)
            step = _int(row[0], f"training.lr_schedule[{i}][0]", 0)
            if step > 2 ** 53:
                _fail(f"training.lr_schedule[{i}][0]", "must be a non-negative integer <= "
                      "9007199254740992", step)
            if prev is not None and step <= prev:
                _fail(f"training.lr_schedule[{i}][0]", f"steps must increase ({step} after {prev})")
            prev = step
            _num(row[1], f"training.lr_schedule[{i}][1]", 0)
    # between sections
    if im["size"] != g["bottom_width"] * 2 ** (n - 1):
        _fail("image.size", f"must equal generator.bottom_width * 2^(stages-1) = "
              f"{g['bottom_width'] * 2 ** (n - 1)}", im["size"])
    if g["embed_dim"] % 4 ** (n - 1):
        _fail("generator.embed_dim", f"must be divisible by 4^(stages-1) = {4 ** (n - 1)}",
              g["embed_dim"])
    for s, c in enumerate(stage_dims(d)):
        if c % g["heads"]:
            _fail("generator.heads", f"must divide every stage's dim; stage {s} has dim {c}",
                  g["heads"])
    if conv:
        div = 2 ** (len(dd["widths"]) - 1)
        if im["size"] % div:
            _fail("discriminator.widths", f"{len(dd['widths'])} levels halve the image "
                  f"{len(dd['widths']) - 1} times, so image.size must be divisible by {div}",
                  im["size"])
    elif im["size"] % dd["patch_size"]:
        _fail("discriminator.patch_size", f"must divide image.size {im['size']}",
              dd["patch_size"])
    elif dd["embed_dim"] % dd["heads"]:
        _fail("discriminator.heads", f"must divide discriminator.embed_dim {dd['embed_dim']}",
              dd["heads"])
    if t["sr_aux_weight"] > 0 and n < 2:
        _fail("training.sr_aux_weight", "> 0 needs at least 2 generator stages")
    if t["class_loss_weight"] > 0 and not d["num_classes"]:
        _fail("training.class_loss_weight", "> 0 needs a class-conditional model")


def load_descriptor(src):
    """The full descriptor (every default filled in, keys in DEFAULTS order) of a
    dict, a JSON file path or JSON text.  Raises DescriptorError when invalid."""
    if isinstance(src, dict):
        given = copy.deepcopy(src)
    else:
        text = src
        if not src.lstrip().startswith("{"):
            with open(src) as f:
                text = f.read()
        given = json.loads(text)
    if not isinstance(given, dict):
        _fail("descriptor", "must be a JSON object")
    if given.get("format") != "transgan":
        _fail("format", 'required, must be "transgan"', given.get("format"))
    if given.get("format_version") != 1 or isinstance(given.get("format_version"), bool):
        _fail("format_version", "required, must be 1", given.get("format_version"))
    full = copy.deepcopy(DEFAULTS)
    for key, value in given.items():
        if key not in DEFAULTS:
            _fail(key, "unknown key")
        if isinstance(DEFAULTS[key], dict):          # a section: merged key by key
            if not isinstance(value, dict):
                _fail(key, "must be an object", value)
            if key == "discriminator":
                full[key] = _disc_section(value)
                continue
            for k, v in value.items():
                if k not in DEFAULTS[key]:
                    _fail(f"{key}.{k}", "unknown key")
                full[key][k] = v
        else:
            full[key] = value
    _check_values(full)
    return full


def _disc_section(value):
    """The full discriminator section of a given one: the transformer's keys, or
    with "kind": "conv" the conv D's (a key of the other kind is an error)."""
    kind = value.get("kind", "transformer")
    _choice(kind, "discriminator.kind", ("transformer", "conv"))
    dflt = CONV_DEFAULTS if kind == "conv" else DEFAULTS["discriminator"]
    other = DEFAULTS["discriminator"] if kind == "conv" else CONV_DEFAULTS
    out = copy.deepcopy(dflt)
    for k, v in value.items():
        if k == "kind":
            continue
        if k in other:
            _fail(f"discriminator.{k}", f'only with discriminator.kind '
                  f'"{"transformer" if kind == "conv" else "conv"}"')
        if k not in dflt:
            _fail(f"discriminator.{k}", "unknown key")
        out[k] = v
    return out


def is_conv(d):
    return d["discriminator"].get("kind") == "conv"


def section_defaults(d, key):
    """The defaults of section key for descriptor d (the conv D's for kind "conv")."""
    return CONV_DEFAULTS if key == "discriminator" and is_conv(d) else DEFAULTS[key]
def descriptor_json(d):
    """A full descriptor as the JSON a checkpoint stores.  The class keys are
    left out of unconditional models' files (which are then what they were
    before class conditioning existed); loading fills them in again."""
    if not d["num_classes"] and d["class_names"] is None:
        d = {k: v for k, v in d.items() if k not in ("num_classes", "class_names")}
    if not d["training"].get("class_loss_weight"):   # likewise the class loss when off
        d = dict(d, training={k: v for k, v in d["training"].items() if k != "class_loss_weight"})
    if d["training"].get("lr_schedule") is None:      # and a constant learning rate
        d = dict(d, training={k: v for k, v in d["training"].items() if k != "lr_schedule"})
    if not d["training"].get("r1_gamma") and d["training"].get("r1_interval", 16) == 16:
        d = dict(d, training={k: v for k, v in d["training"].items()   # and R1's defaults
                              if k not in ("r1_gamma", "r1_interval")})
    return json.dumps(d)


def stage_dims(d):
    g = d["generator"]
    return [g["embed_dim"] >> (2 * s) for s in range(len(g["depths"]))]


def stage_widths(d):
    g = d["generator"]
    return [g["bottom_width"] << s for s in range(len(g["depths"]))]


def has_sr(d):
    return d["training"]["sr_aux_weight"] > 0 and len(d["generator"]["depths"]) > 1

# ================================================================ parameters
# docs/SPECIFICATION.md "Checkpoint" (names) and "Initialisation"

# init kinds: ("uniform", bound) | ("trunc",) (normal, std 0.02, cut at +-2) | ("zero",) | ("one",)


def _linear(out, name, n_in, n_out, bias=True, init="generator"):
    if init == "generator":                  # PyTorch's nn.Linear default
        b = 1.0 / math.sqrt(n_in)
        out.append((name + ".weight", (n_out, n_in), ("uniform", b)))
        if bias:
            out.append((name + ".bias", (n_out,), ("uniform", b)))
    else:                                    # the discriminator's
        out.append((name + ".weight", (n_out, n_in), init))
        if bias:
            out.append((name + ".bias", (n_out,), ("zero",)))


def _block(out, pre, dim, heads, mlp_ratio, layernorm, rel_width, gen, classes=0):
    init = "generator" if gen else ("trunc",)
    for norm in ("norm1", "norm2"):
        if layernorm:
            out.append((f"{pre}.{norm}.weight", (dim,), ("one",)))
            out.append((f"{pre}.{norm}.bias", (dim,), ("zero",)))
        if norm == "norm1":
            _linear(out, pre + ".attn.qkv", dim, 3 * dim, bias=False, init=init)
            _linear(out, pre + ".attn.proj", dim, dim, init=init)
            if rel_width:
                out.append((pre + ".attn.rel_bias", ((2 * rel_width - 1) ** 2, heads), ("trunc",)))
    _linear(out, pre + ".mlp.fc1", dim, dim * mlp_ratio, init=init)
    _linear(out, pre + ".mlp.fc2", dim * mlp_ratio, dim, init=init)
    for norm in ("norm1", "norm2") if classes else ():   # "Class conditioning"
        out.append((f"{pre}.{norm}.class_weight", (classes, dim), ("zero",)))
        out.append((f"{pre}.{norm}.class_bias", (classes, dim), ("zero",)))


def parameter_table(d):
    """[(checkpoint name, shape, init)] of every parameter, generator first."""
    g, dd, ch = d["generator"], d["discriminator"], d["image"]["channels"]
    dims, widths = stage_dims(d), stage_widths(d)
    out = []
    K = d["num_classes"]
    _linear(out, "generator.input", d["latent_dim"], widths[0] ** 2 * dims[0])
    if K:
        out.append(("generator.class_embed", (K, d["latent_dim"]), ("normal",)))
    for s, depth in enumerate(g["depths"]):
        out.append((f"generator.stages.{s}.pos_embed", (1, widths[s] ** 2, dims[s]), ("trunc",)))
        for b in range(depth):
            _block(out, f"generator.stages.{s}.blocks.{b}", dims[s], g["heads"], g["mlp_ratio"],
                   g["norm"] == "layernorm", widths[s] if g["relative_position_bias"] else 0, True,
                   K)
    _linear(out, "generator.to_rgb", dims[-1], ch)
    if has_sr(d):
        _linear(out, "generator.sr_embed", ch, dims[1])
    if is_conv(d):
        _conv_disc_params(out, d)
        return out
    p, C = dd["patch_size"], dd["embed_dim"]
    n = (d["image"]["size"] // p) ** 2
    # a Conv2d(kernel = stride = p) in the paper: xavier uniform with fan_out = C p p
    xavier = math.sqrt(6.0 / (ch * p * p + C * p * p))
    _linear(out, "discriminator.patch_embed", ch * p * p, C, init=("uniform", xavier))
    out.append(("discriminator.cls_token", (1, 1, C), ("trunc",)))
    out.append(("discriminator.pos_embed", (1, n + 1, C), ("trunc",)))
    for b in range(dd["depth"]):
        _block(out, f"discriminator.blocks.{b}", C, dd["heads"], dd["mlp_ratio"], True, 0, False)
    out.append(("discriminator.norm.weight", (C,), ("one",)))
    out.append(("discriminator.norm.bias", (C,), ("zero",)))
    _linear(out, "discriminator.head", C, 1, init=("trunc",))
    if K:
        out.append(("discriminator.class_embed", (K, C), ("trunc",)))
    return out


def conv_units(d):
    """[(name, cin, cout, S, first, down)] of the conv D's units; down is None,
    "avgpool" or "stride"."""
    dd = d["discriminator"]
    cin, S, out = d["image"]["channels"], d["image"]["size"], []
    L = len(dd["widths"])
    for lvl, (w, nb) in enumerate(zip(dd["widths"], dd["blocks"])):
        for j in range(nb):
            down = dd["down"] if (j == nb - 1 and lvl < L - 1) else None
            out.append((f"discriminator.levels.{lvl}.blocks.{j}", cin, w, S, not out, down))
            cin, S = w, S // 2 if down else S
    return out


def _conv(out, name, cout, cin, k, gain):
    bound = gain * math.sqrt(6.0 / ((cin + cout) * k * k))     # xavier uniform
    out.append((name + ".weight", (cout, cin, k, k), ("uniform", bound)))
    out.append((name + ".bias", (cout,), ("zero",)))


def _conv_disc_params(out, d):
    res = d["discriminator"]["residual"]
    g2 = math.sqrt(2.0)
    for pre, cin, cout, S, first, down in conv_units(d):
        klast = 4 if down == "stride" else 3
        if not res:
            _conv(out, pre + ".conv", cout, cin, klast, g2)
            continue
        _conv(out, pre + ".conv1", cout, cin, 3, g2)
        _conv(out, pre + ".conv2", cout, cout, klast, g2)
        if cin != cout or down:
            _conv(out, pre + ".shortcut", cout, cin, 1, 1.0)
    C = d["discriminator"]["widths"][-1]
    out.append(("discriminator.head.weight", (1, C), ("uniform", math.sqrt(6.0 / (C + 1)))))
    out.append(("discriminator.head.bias", (1,), ("zero",)))
    if d["num_classes"]:                 # the projection's class embedding, as the transformer D's
        out.append(("discriminator.class_embed", (d["num_classes"], C), ("trunc",)))


def _trunc_normal(shape, gen, std=0.02, lo=-2.0, hi=2.0):
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * std
    bad = (x < lo) | (x > hi)
    while bad.any():                         # redraw the (vanishingly rare) outliers
        x[bad] = torch.randn(int(bad.sum()), generator=gen, dtype=torch.float64) * std
        bad = (x < lo) | (x > hi)
    return x


def init_params(d, seed, dtype=torch.float32):
    """Freshly initialised parameters {name: tensor}, from a torch.Generator seeded
    with seed (the distributions are the library's; the draws are not)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape, init in parameter_table(d):
        if init[0] == "uniform":
            x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * init[1]
        elif init[0] == "trunc":
            x = _trunc_normal(shape, gen)
        elif init[0] == "normal":              # a class embedding: nn.Embedding's N(0, 1)
            x = torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            x = torch.full(shape, 1.0 if init[0] == "one" else 0.0, dtype=torch.float64)
        out[name] = x.to(dtype)
    return out

# ================================================================ the networks
# docs/SPECIFICATION.md "Generator", "Discriminator", "Attention"


def layer_norm(x, w, b):
    return F.layer_norm(x, x.shape[-1:], w, b, eps=1e-5)


def pixel_norm(x):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-8)


def rel_bias_index(w):
    """[N, N] index into the (2w-1)^2-row table for tokens i, j of a w x w grid."""
    r = torch.arange(w * w) // w
    c = torch.arange(w * w) % w
    dr = r[:, None] - r[None, :] + (w - 1)
    dc = c[:, None] - c[None, :] + (w - 1)
    return dr * (2 * w - 1) + dc


def locality_mask(w, radius):
    """[N, N] bool: token i may attend to token j (Chebyshev distance <= radius)."""
    r = torch.arange(w * w) // w
    c = torch.arange(w * w) % w
    return torch.maximum((r[:, None] - r[None, :]).abs(),
                         (c[:, None] - c[None, :]).abs()) <= radius


def locality_masks(d, g_steps):
    """{stage: mask} in force after g_steps generator updates, or None."""
    loc = d["training"]["locality"]
    if not loc:
        return None
    widths = stage_widths(d)
    for until, radius in loc["schedule"]:
        if g_steps < until:
            return {s: locality_mask(widths[s], radius) for s in loc["stages"]}
    return None


def pixel_shuffle_tokens(x, w):
    """[B, w*w, C] -> [B, 4*w*w, C/4]: out(2h+i, 2v+j)[c] = in(h, v)[4c + 2i + j]."""
    B, _, C = x.shape
    x = x.reshape(B, w, w, C // 4, 2, 2)                 # (h, v, c, i, j)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(B, 4 * w * w, C // 4)   # (h, i, v, j, c)


class Model:
    """Both networks as functions of a parameter dict {checkpoint name: tensor}."""

    def __init__(self, d, params):
        self.d = d
        self.P = params
        self.widths = stage_widths(d)
        self._rel_idx = {w: rel_bias_index(w) for w in self.widths}

    # ---- shared pieces
    def linear(self, name, x):
        return F.linear(x, self.P[name + ".weight"], self.P.get(name + ".bias"))

    def attention(self, pre, x, heads, rel_w=0, mask=None):
        B, N, C = x.shape
        dh = C // heads
        qkv = self.linear(pre + ".qkv", x).reshape(B, N, 3, heads, dh)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))     # [B, H, N, dh]
        logits = torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5
        if rel_w:
            table = self.P[pre + ".rel_bias"]                            # [(2w-1)^2, H]
            logits = logits + table[self._rel_idx[rel_w]].permute(2, 0, 1)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        y = torch.matmul(torch.softmax(logits, -1), v)                   # [B, H, N, dh]
        return self.linear(pre + ".proj", y.transpose(1, 2).reshape(B, N, C))

    def block(self, pre, x, heads, layernorm, rel_w=0, mask=None, labels=None):
        def norm(which, t):
            if labels is not None:           # conditional: per-class gain and bias offsets
                cw = self.P[f"{pre}.{which}.class_weight"][labels][:, None, :]
                cb = self.P[f"{pre}.{which}.class_bias"][labels][:, None, :]
                if layernorm:
                    n = F.layer_norm(t, t.shape[-1:], eps=1e-5)
                    return n * (self.P[f"{pre}.{which}.weight"] + cw) + (
                        self.P[f"{pre}.{which}.bias"] + cb)
                return pixel_norm(t) * (1 + cw) + cb
            if layernorm:
                return layer_norm(t, self.P[f"{pre}.{which}.weight"], self.P[f"{pre}.{which}.bias"])
            return pixel_norm(t)
        x = x + self.attention(pre + ".attn", norm("norm1", x), heads, rel_w, mask)
        h = F.gelu(self.linear(pre + ".mlp.fc1", norm("norm2", x)))      # exact erf GELU
        return x + self.linear(pre + ".mlp.fc2", h)

    # ---- generator
    def _labels(self, labels, B):
        """The batch's classes as a LongTensor (None for an unconditional model)."""
        if not self.d["num_classes"]:
            if labels is not None:
                raise ValueError("labels given to an unconditional model")
            return None
        if labels is None:
            raise ValueError("a conditional model needs labels")
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(B)
        if (labels < 0).any() or (labels >= self.d["num_classes"]).any():
            raise ValueError("a label is out of range")
        return labels

    def _stages(self, x, first, masks, labels=None):
        g = self.d["generator"]
        for s in range(first, len(g["depths"])):
            if s > first:
                x = pixel_shuffle_tokens(x, self.widths[s - 1])
            x = x + self.P[f"generator.stages.{s}.pos_embed"]
            mask = masks.get(s) if masks else None
            rel_w = self.widths[s] if g["relative_position_bias"] else 0
            for b in range(g["depths"][s]):
                x = self.block(f"generator.stages.{s}.blocks.{b}", x, g["heads"],
                               g["norm"] == "layernorm", rel_w, mask, labels)
        S, ch = self.widths[-1], self.d["image"]["channels"]
        img = self.linear("generator.to_rgb", x).transpose(1, 2).reshape(x.shape[0], ch, S, S)
        return torch.tanh(img) if g["output"] == "tanh" else img

    def generate(self, z, masks=None, labels=None):
        """z [B, latent_dim] (and, conditional, labels [B]) -> images [B, C, S, S]."""
        C0 = stage_dims(self.d)[0]
        labels = self._labels(labels, z.shape[0])
        if labels is not None:               # the class embedding added to z
            z = z + self.P["generator.class_embed"][labels]
        return self._stages(self.linear("generator.input", z).reshape(z.shape[0], -1, C0), 0,
                            masks, labels)

    def generate_sr(self, lowres, masks=None, labels=None):
        """MT-CT: images [B, C, w1, w1] -> [B, C, S, S] through stage 1 onward."""
        B, ch, w, _ = lowres.shape
        tokens = lowres.reshape(B, ch, w * w).transpose(1, 2)
        return self._stages(self.linear("generator.sr_embed", tokens), 1, masks,
                            self._labels(labels, B))

    def sr_lowres(self, images):
        """The MT-CT input: images average-pooled to the stage-1 grid."""
        return F.avg_pool2d(images, images.shape[-1] // self.widths[1])

    # ---- discriminator
    def discriminate(self, img, labels=None, features=False):
        """images [B, C, S, S] -> raw scores [B]; a conditional model's labels [B]
        add the projection term <class_embed[y], h> (None: left out).
        features: return (scores, h), h [B, C] the features the head sees."""
        if is_conv(self.d):
            return self.discriminate_conv(img, labels, features)
        dd = self.d["discriminator"]
        B, ch, S, _ = img.shape
        p = dd["patch_size"]
        g = S // p
        patches = img.reshape(B, ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, -1)
        x = self.linear("discriminator.patch_embed", patches)
        cls = self.P["discriminator.cls_token"].expand(B, 1, -1)
        x = torch.cat([cls, x], 1) + self.P["discriminator.pos_embed"]
        for b in range(dd["depth"]):
            x = self.block(f"discriminator.blocks.{b}", x, dd["heads"], True)
        x = layer_norm(x[:, 0], self.P["discriminator.norm.weight"], self.P["discriminator.norm.bias"])
        score = self.linear("discriminator.head", x).reshape(B)
        if labels is not None and self.d["num_classes"]:   # the projection discriminator
            y = self._labels(labels, B)
            score = score + (self.P["discriminator.class_embed"][y] * x).sum(-1)
        return (score, x) if features else score

    def class_loss(self, h, labels):
        """The dual projection's class loss (Han et al. 2021, P2GAN): the class
        embedding as a classifier of the head's features h [B, C], mean cross
        entropy of logits h E^T against labels [B]."""
        logits = h @ self.P["discriminator.class_embed"].t()
        return F.cross_entropy(logits, self._labels(labels, h.shape[0]))

    def discriminate_conv(self, img, labels=None, features=False):
        """The convolutional discriminator (docs/SPECIFICATION.md): units, [act],
        global sum / mean pool, Linear head; a conditional model's labels add the
        projection term <class_embed[y], g> on the pooled features g."""
        dd = self.d["discriminator"]
        P = self.P

        def conv(name, x, stride=1, pad=1):
            return F.conv2d(x, P[name + ".weight"], P[name + ".bias"], stride=stride, padding=pad)

        def act(x):
            return F.leaky_relu(x, LEAKY_SLOPE)

        x = img
        for pre, cin, cout, S, first, down in conv_units(self.d):
            last = dict(stride=2, pad=1) if down == "stride" else {}
            if not dd["residual"]:
                x = act(conv(pre + ".conv", x, **last))
                x = F.avg_pool2d(x, 2) if down == "avgpool" else x
                continue
            h = conv(pre + ".conv2", act(conv(pre + ".conv1", x if first else act(x))), **last)
            h = F.avg_pool2d(h, 2) if down == "avgpool" else h
            if pre + ".shortcut.weight" in P:
                sc = conv(pre + ".shortcut", x, pad=0)
                sc = F.avg_pool2d(sc, 2) if down else sc
            else:
                sc = x
            x = h + sc
        if dd["residual"]:
            x = act(x)
        g = x.sum((2, 3)) if dd["pool"] == "sum" else x.mean((2, 3))
        score = self.linear("discriminator.head", g).reshape(img.shape[0])
        if labels is not None and self.d["num_classes"]:   # the projection discriminator
            y = self._labels(labels, img.shape[0])
            score = score + (P["discriminator.class_embed"][y] * g).sum(-1)
        return (score, g) if features else score

# ================================================================ safetensors
# docs/CHECKPOINT.md; read and written with struct + numpy

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "U8": np.uint8}


def st_read(path):
    """({name: numpy array}, metadata dict) of a safetensors file; BF16 becomes float32."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        raw = data[lo:hi]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).astype(arr.dtype.newbyteorder("="), copy=True)
    return out, meta


def st_write(path, tensors, meta=None):
    """Write {name: numpy array} (names sorted, header padded to 8 bytes)."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header, chunks, off = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))

# ================================================================ training state


class State:
    """One checkpoint: descriptor, parameters, EMA generator, Adam moments, counters."""

    def __init__(self, d, dtype=torch.float32, params=None):
        self.d, self.dtype = d, dtype
        if params is None:
            params = {n: torch.zeros(s, dtype=dtype) for n, s, _ in parameter_table(d)}
        self.params = {n: p.detach().to(dtype).clone().requires_grad_(True)
                       for n, p in params.items()}
        self.model = Model(d, self.params)
        self.ema = None            # {generator parameter name: tensor}
        self.adam = {}             # {parameter name: (m, v)}
        self.d_steps = self.g_steps = 0

    def names(self, net):
        return [n for n in self.params if n.startswith(net + ".")]

    @classmethod
    def load(cls, path, d=None, dtype=torch.float32):
        """A checkpoint written by the library or by save(); d defaults to its metadata's."""
        t, meta = st_read(path)
        if d is None:
            d = load_descriptor(meta["descriptor"])
        st = cls(d, dtype)
        with torch.no_grad():
            for n, p in st.params.items():
                if n not in t:
                    raise KeyError(f"{path}: no tensor {n}")
                if tuple(t[n].shape) != tuple(p.shape):
                    raise ValueError(f"{path}: {n} has shape {list(t[n].shape)}, "
                                     f"the model needs {list(p.shape)}")
                p.copy_(torch.from_numpy(t[n]))
        gnames = st.names("generator")
        have = [("ema." + n) in t for n in gnames]
        if any(have) and not all(have):
            raise KeyError(f"{path}: a partial EMA generator")
        if all(have):
            st.ema = {n: torch.from_numpy(t["ema." + n]).to(dtype) for n in gnames}
        for n in st.params:
            if "adam.m." + n in t:
                st.adam[n] = (torch.from_numpy(t["adam.m." + n]).to(dtype),
                              torch.from_numpy(t["adam.v." + n]).to(dtype))
        st.d_steps = int(meta.get("d_steps", 0))
        st.g_steps = int(meta.get("g_steps", 0))
        return st

    def save(self, path, with_state=True):
        f32 = {n: p.detach().to(torch.float32).numpy() for n, p in self.params.items()}
        if with_state:
            for n, v in (self.ema or {}).items():
                f32["ema." + n] = v.to(torch.float32).numpy()
            for n, (m, v) in self.adam.items():
                f32["adam.m." + n] = m.to(torch.float32).numpy()
                f32["adam.v." + n] = v.to(torch.float32).numpy()
        st_write(path, f32, {"format": "transgan-checkpoint", "descriptor": descriptor_json(self.d),
                             "d_steps": self.d_steps, "g_steps": self.g_steps})

    def ema_model(self):
        """The generator with the EMA weights (the raw ones where there is no EMA)."""
        P = dict(self.params)
        P.update(self.ema or {})
        return Model(self.d, P)

# ================================================================ DiffAugment
# docs/SPECIFICATION.md "DiffAugment"


def draw_aug(policy, B, S, gen, p=1.0):
    """The random parameters of one DiffAugment call of B images of size S.

    p (training.diffaug_p, or ADA's current value): below 1, the draw ends with
    one uniform per image and op present (in the order translation, cutout,
    color) and draw["on"][b][op] says whether op applies to image b."""
    draw = {}
    if "translation" in policy:
        s = int(S * 0.2 + 0.5)
        draw["ty"] = torch.randint(-s, s + 1, (B,), generator=gen)
        draw["tx"] = torch.randint(-s, s + 1, (B,), generator=gen)
    if "cutout" in policy:
        draw["cut"] = bool(torch.rand((), generator=gen, dtype=torch.float64) < 0.3)
        draw["cy"] = torch.randint(0, S + 1, (B,), generator=gen)
        draw["cx"] = torch.randint(0, S + 1, (B,), generator=gen)
    if "color" in policy:
        draw["bright"] = torch.rand(B, generator=gen) - 0.5
        draw["sat"] = torch.rand(B, generator=gen) * 2
        draw["contr"] = torch.rand(B, generator=gen) + 0.5
    if p < 1:
        ops = [op for op in AUG_OPS if op in policy]
        u = torch.rand(B, len(ops), generator=gen, dtype=torch.float64)
        draw["on"] = [{op: bool(u[b, i] < p) for i, op in enumerate(ops)} for b in range(B)]
    return draw


def ada_adjust(p, signs, d):
    """ADA's step after an interval: signs are sign(D(aug(real))) of the
    interval's real images; p moves by sign(mean - target) * len / (kimg 1000)."""
    a = d["training"]["ada"]
    r = sum(signs) / len(signs)
    step = (r > a["target"]) - (r < a["target"])
    return min(max(p + step * len(signs) / (a["kimg"] * 1000.0), 0.0), 1.0)


def _shift(img, ty, tx):
    """out[y, x] = img[y - ty, x - tx], zero where that falls outside."""
    S = img.shape[-1]
    out = torch.roll(img, (ty, tx), (-2, -1))
    keep = torch.ones(S, S, dtype=img.dtype)
    if ty > 0:
        keep[:ty] = 0
    elif ty < 0:
        keep[ty:] = 0
    if tx > 0:
        keep[:, :tx] = 0
    elif tx < 0:
        keep[:, tx:] = 0
    return out * keep


def apply_aug(x, policy, draw):
    """DiffAugment of x [B, C, S, S] with the given draw, ops in policy order."""
    B, _, S, _ = x.shape
    if "on" in draw:                        # training.diffaug_p < 1: per image and op
        out = x.clone()
        for b in range(B):
            ops = [op for op in policy if draw["on"][b][op]]
            sub = {k: (v[b:b + 1] if torch.is_tensor(v) else v) for k, v in draw.items()
                   if k != "on"}
            out[b:b + 1] = apply_aug(x[b:b + 1], ops, sub)
        return out
    for op in policy:
        if op == "translation":
            x = torch.stack([_shift(x[b], int(draw["ty"][b]), int(draw["tx"][b]))
                             for b in range(B)])
        elif op == "cutout" and draw["cut"]:
            h = int(S * 0.5 + 0.5)
            keep = torch.ones(B, 1, S, S, dtype=x.dtype)
            for b in range(B):
                y0, x0 = int(draw["cy"][b]) - h // 2, int(draw["cx"][b]) - h // 2
                keep[b, :, max(y0, 0):min(y0 + h, S), max(x0, 0):min(x0 + h, S)] = 0
            x = x * keep
        elif op == "color":                  # colour channels only: RGBA's alpha passes
            col = lambda k: draw[k].to(x.dtype).reshape(B, 1, 1, 1)    # noqa: E731
            rgb, alpha = (x[:, :3], x[:, 3:]) if x.shape[1] == 4 else (x, x[:, :0])
            rgb = rgb + col("bright")
            mc = rgb.mean(1, keepdim=True)
            rgb = mc + (rgb - mc) * col("sat")
            m = rgb.mean((1, 2, 3), keepdim=True)
            rgb = m + (rgb - m) * col("contr")
            x = torch.cat([rgb, alpha], 1)
    return x

# ================================================================ training step
# docs/SPECIFICATION.md "Training step"


def d_loss(kind, real, fake, drift_weight):
    """The discriminator's loss without the gradient penalty, from its scores."""
    if kind == "hinge":
        return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
    if kind == "lsgan":
        return ((real - 1) ** 2).mean() + (fake ** 2).mean()
    loss = fake.mean() - real.mean()
    if kind == "wgan-gp-eps":
        loss = loss + drift_weight * real.mean() ** 2       # the square of the mean
    return loss


def g_loss(kind, fake):
    return ((fake - 1) ** 2).mean() if kind == "lsgan" else -fake.mean()


def gradient_penalty(score_fn, xh):
    """mean_i (|d score_fn(xh)_i / d xh_i|_2 - 1)^2, differentiable in the weights
    (create_graph: its weight gradient is the second-order term)."""
    xh = xh.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(score_fn(xh).sum(), xh, create_graph=True)
    return ((g.reshape(g.shape[0], -1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(score_fn, x):
    """R1: mean_i |d score_fn(x)_i / d x_i|_2^2 at the images D sees, differentiable
    in the weights like gradient_penalty."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(score_fn(x).sum(), x, create_graph=True)
    return (g.reshape(g.shape[0], -1) ** 2).sum(dim=1).mean()


def clip_grads(grads, max_norm):
    """Scale the list of gradients to global L2 norm <= max_norm (0 = off) by
    max_norm / (norm + 1e-6); returns the norm before clipping."""
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    if max_norm > 0 and max_norm / (norm + 1e-6) < 1:
        coef = max_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(coef)
    return norm


def optimizer_step(st, names, grads, lr, step):
    """One SGD (p -= lr g) or PyTorch-Adam step; step counts this network's updates."""
    t = st.d["training"]
    with torch.no_grad():
        for n, g in zip(names, grads):
            p = st.params[n]
            if t["optimizer"] == "sgd":
                p.sub_(lr * g)
                continue
            b1, b2 = t["beta1"], t["beta2"]
            m, v = st.adam.get(n, (torch.zeros_like(p), torch.zeros_like(p)))
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            st.adam[n] = (m, v)
            m_hat = m / (1 - b1 ** step)
            v_hat = v / (1 - b2 ** step)
            p.sub_(lr * m_hat / (v_hat.sqrt() + t["adam_eps"]))


def lr_factor(d, s):
    """training.lr_schedule's factor on g_lr and d_lr at D step s (1-based, this
    call's D update; its G update uses the same s): piecewise-linear between the
    points, constant outside them."""
    pts = d["training"]["lr_schedule"]
    if not pts:
        return 1.0
    if s <= pts[0][0]:
        return float(pts[0][1])
    for (x0, f0), (x1, f1) in zip(pts, pts[1:]):
        if s < x1:
            return f0 + (f1 - f0) * (s - x0) / (x1 - x0)
    return float(pts[-1][1])


def ema_beta(d, d_steps):
    """The EMA decay after d_steps discriminator updates (None: no EMA)."""
    e, bs = d["training"]["ema"], d["training"]["d_batch"]
    if not e:
        return None
    if "beta" in e:
        return float(e["beta"])
    seen = min(e["half_life_kimg"] * 1000.0, bs * d_steps * e["warmup"])
    return 0.5 ** (bs / max(seen, 1e-8))


def train_step(st, real, zd, zg=None, alpha=None, aug=None, labels=None, fake_d=None,
               fake_g=None):
    """One library train step (a D update; a G update on calls 1, n_critic + 1, ...).

    aug: None (no augmentation) or a function (B, S) -> draw (see draw_aug) called
    for the real, fake and interpolated batches of the D update and the generated
    batch of the G update, in that order; ignored when training.diffaug is [].
    Returns the statistics: d_loss (with the penalty), gp, d_real, d_fake,
    d_grad_norm (before clipping) and, after a G update, g_loss, sr_loss, g_grad_norm.
    A conditional model needs labels (the real batch's), fake_d (the D update's
    fakes') and, for a G update, fake_g; the penalty's interpolates take labels."""
    d, t = st.d, st.d["training"]
    m = st.model
    policy = t["diffaug"] if aug is not None else []
    masks = locality_masks(d, st.g_steps)

    def A(x):
        return apply_aug(x, policy, aug(x.shape[0], x.shape[-1])) if policy else x

    if t["ema"] and st.ema is None:          # the EMA starts as the current generator
        st.ema = {n: st.params[n].detach().clone() for n in st.names("generator")}
    stats = {}
    # ---- discriminator
    with torch.no_grad():
        fake = m.generate(zd, masks, fake_d)
    wc = t["class_loss_weight"]
    ar = A(real)
    sr, hr = m.discriminate(ar, labels, features=True)
    sf = m.discriminate(A(fake), fake_d)
    loss = d_loss(t["loss"], sr, sf, t["drift_weight"])
    if wc > 0:                               # the class loss on the real batch
        loss = loss + wc * m.class_loss(hr, labels)
    stats["gp"] = 0.0
    if t["r1_gamma"] > 0 and st.d_steps % t["r1_interval"] == 0:
        # R1 on D steps 1, r1_interval + 1, ... at the augmented reals D just
        # scored (the same draw), weighted gamma / 2 times the interval
        r1 = r1_penalty(lambda x: m.discriminate(x, labels), ar)
        stats["gp"] = float(r1)
        loss = loss + 0.5 * t["r1_gamma"] * t["r1_interval"] * r1
    if t["loss"] in ("wgan-gp", "wgan-gp-eps"):
        a = alpha.reshape(-1, 1, 1, 1).to(real.dtype)
        gp = gradient_penalty(lambda x: m.discriminate(A(x), labels), a * real + (1 - a) * fake)
        stats["gp"] = float(gp)
        loss = loss + t["gp_weight"] * gp
    dn = st.names("discriminator")
    grads = list(torch.autograd.grad(loss, [st.params[n] for n in dn]))
    stats.update(d_loss=float(loss), d_real=float(sr.mean()), d_fake=float(sf.mean()))
    st.d_steps += 1
    stats["d_grad_norm"] = clip_grads(grads, t["grad_clip"])
    optimizer_step(st, dn, grads, t["d_lr"] * lr_factor(d, st.d_steps), st.d_steps)
    # ---- generator
    if (st.d_steps - 1) % t["n_critic"]:
        return stats
    if zg is None:
        raise ValueError("a G update is due: zg is needed")
    out, hg = m.discriminate(A(m.generate(zg, masks, fake_g)), fake_g, features=True)
    loss = g_loss(t["loss"], out)
    if wc > 0:                               # and on the generated one
        loss = loss + wc * m.class_loss(hg, fake_g)
    stats["sr_loss"] = 0.0
    if t["sr_aux_weight"] > 0:
        mse = ((m.generate_sr(m.sr_lowres(real), masks, labels) - real) ** 2).mean()
        stats["sr_loss"] = float(mse)
        loss = loss + t["sr_aux_weight"] * mse
    gn = st.names("generator")
    grads = list(torch.autograd.grad(loss, [st.params[n] for n in gn]))
    stats["g_loss"] = float(loss)
    st.g_steps += 1
    stats["g_grad_norm"] = clip_grads(grads, t["grad_clip"])
    optimizer_step(st, gn, grads, t["g_lr"] * lr_factor(d, st.d_steps), st.g_steps)
    beta = ema_beta(d, st.d_steps)
    if beta is not None:
        with torch.no_grad():
            for n in gn:
                st.ema[n] = beta * st.ema[n] + (1 - beta) * st.params[n].detach()
    return stats

# ================================================================ FLOPs
# docs/SPECIFICATION.md "FLOPs": 2 x the multiply-adds of one image's forward matmuls


def block_flops(n, c, mlp_ratio):
    """qkv, scores, weighted sum, projection, MLP of one block over n tokens of width c."""
    return 2 * (3 * n * c * c + 2 * n * n * c + n * c * c + 2 * n * c * c * mlp_ratio)


def flops(d):
    g, dd, im = d["generator"], d["discriminator"], d["image"]
    dims, widths = stage_dims(d), stage_widths(d)
    gf = 2 * d["latent_dim"] * widths[0] ** 2 * dims[0]
    gf += sum(depth * block_flops(widths[s] ** 2, dims[s], g["mlp_ratio"])
              for s, depth in enumerate(g["depths"]))
    gf += 2 * widths[-1] ** 2 * dims[-1] * im["channels"]
    if is_conv(d):                      # 2 x multiply-adds of every conv and the head
        df, res = 2 * dd["widths"][-1], dd["residual"]
        for pre, cin, cout, S, first, down in conv_units(d):
            So = S // 2 if down else S
            klast, Sl = (4, So) if down == "stride" else (3, S)
            if not res:
                df += 2 * cin * cout * klast ** 2 * Sl ** 2
                continue
            df += 2 * cin * cout * 9 * S * S + 2 * cout * cout * klast ** 2 * Sl ** 2
            if cin != cout or down:
                df += 2 * cin * cout * S * S
    else:
        n = (im["size"] // dd["patch_size"]) ** 2
        df = 2 * n * im["channels"] * dd["patch_size"] ** 2 * dd["embed_dim"]
        df += dd["depth"] * block_flops(n + 1, dd["embed_dim"], dd["mlp_ratio"]) + 2 * dd["embed_dim"]
    count = {"generator": 0, "discriminator": 0}
    for name, shape, _ in parameter_table(d):
        count[name.split(".")[0]] += math.prod(shape)
    return {"generator_flops": gf, "discriminator_flops": df,
            "generator_params": count["generator"], "discriminator_params": count["discriminator"]}

# ================================================================ command line


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["flops", "init", "generate", "discriminate", "train-step"])
    ap.add_argument("descriptor")
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--z")
    ap.add_argument("--ema", action="store_true", help="generate with the EMA generator")
    ap.add_argument("--g-step", type=int, default=0, help="generator steps (locality masks)")
    ap.add_argument("--images")
    ap.add_argument("--real")
    ap.add_argument("--zd")
    ap.add_argument("--zg")
    ap.add_argument("--alpha")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--double", action="store_true")
    ap.add_argument("--labels", help="conditional models: classes (integer .npy)")
    ap.add_argument("--fake-d", help="train-step, conditional: the D update's fake classes")
    ap.add_argument("--fake-g", help="train-step, conditional: the G update's fake classes")
    a = ap.parse_args(argv)
    d = load_descriptor(a.descriptor)
    if a.cmd == "flops":
        print(json.dumps(flops(d)))
        return 0
    dt = torch.float64 if a.double else torch.float32
    if a.cmd == "init":
        st = State(d, dt, init_params(d, d["training"]["seed"] if a.seed is None else a.seed))
        st.save(a.out or a.checkpoint, with_state=False)
        return 0
    if not a.checkpoint or not a.out:
        ap.error(f"{a.cmd} needs a checkpoint and --out")
    st = State.load(a.checkpoint, d, dt)

    def arr(path):
        return torch.from_numpy(np.load(path)).to(dt)

    def ints(path):
        return None if path is None else torch.from_numpy(np.load(path).astype(np.int64))

    with torch.no_grad():
        if a.cmd == "generate":
            model = st.ema_model() if a.ema else st.model
            np.save(a.out, model.generate(arr(a.z), locality_masks(d, a.g_step),
                                          ints(a.labels)).float().numpy())
        elif a.cmd == "discriminate":
            np.save(a.out, st.model.discriminate(arr(a.images), ints(a.labels)).float().numpy())
    if a.cmd == "train-step":
        real, zd = arr(a.real), arr(a.zd)
        zg = arr(a.zg) if a.zg else None
        alpha = arr(a.alpha) if a.alpha else None
        for _ in range(a.steps):
            print(json.dumps(train_step(st, real, zd, zg, alpha, labels=ints(a.labels),
                                        fake_d=ints(a.fake_d), fake_g=ints(a.fake_g))))
        st.save(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
