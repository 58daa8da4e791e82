#!/usr/bin/python3
"""How close generated RGBA sprites are to real ones, and how clean their
transparency is (the emoji model, models/pretrained/README.md).

  sprite_stats.py SAMPLES.npy REAL_DIR [--json]

SAMPLES.npy: float32 [N, 4, S, S] in [-1, 1], as `build/examples/generate CKPT
--n N --npy SAMPLES.npy` writes it; REAL_DIR: the training sprites (PNG, RGBA,
S x S), e.g. scripts/emoji_sprites.py's output folder.

Numbers reported, for the samples and, for scale, for reference sets made from
the real sprites (one half of them against the other half; the same half with
Gaussian noise sigma 0.2 on every channel; blurred by a 3x3 box):
  fd     Frechet distance between Gaussians of the 128 penultimate features
         of bench/fid's Fashion-MNIST classifier, computed on each sprite's
         grey composite over black (luma x alpha) cropped to its 28x28 centre,
         against the features of all real sprites (the "half" set: against the
         other half). A sprite-to-sprite distance in a small CNN's feature
         space: comparable between runs of this script, not with Fashion-MNIST
         FIDs or Inception FIDs. No Inception weights are available offline.
  semi   fraction of pixels whose alpha is strictly between 0.1 and 0.9: an
         icon's edge is a thin ring of them, haze and speckle are many.
  edge   mean alpha of each sprite's outermost ring of pixels: 0 for a clean
         transparent background.
  empty  fraction of sprites with less than 2 % of their area opaque (alpha
         > 0.5).
Needs python3-numpy, python3-pil and python3-torch (for fd).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fid"))
import fmnist_fid  # noqa: E402


class SpriteError(Exception):
    pass


def load_real(folder):
    """PNG sprites -> float32 [N, 4, S, S] in [-1, 1]."""
    from PIL import Image
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
    if len(names) < 4:
        raise SpriteError("%s: %d PNG files; need at least 4" % (folder, len(names)))
    out = []
    for n in names:
        with Image.open(os.path.join(folder, n)) as im:
            a = np.asarray(im.convert("RGBA"), np.float32)
        out.append(a.transpose(2, 0, 1) / np.float32(127.5) - 1)
    sizes = {x.shape for x in out}
    if len(sizes) != 1:
        raise SpriteError("%s: sprites of different sizes %s" % (folder, sorted(sizes)))
    return np.stack(out)


def check_samples(x, what):
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 4 or x.shape[2] != x.shape[3]:
        raise SpriteError("%s: shape %s; expected RGBA [N, 4, S, S]" % (what, x.shape))
    if len(x) < 2:
        raise SpriteError("%s: %d sprites; need at least 2" % (what, len(x)))
    if not np.all(np.isfinite(x)):
        raise SpriteError("%s: NaN or infinite values" % what)
    return np.clip(x.astype(np.float32), -1, 1)


def composite_grey(x):
    """RGBA [N, 4, S, S] in [-1, 1] -> grey over black [N, 32, 32] in [-1, 1]
    (luma x alpha; other sizes resampled to 32 by nearest neighbour)."""
    u = (x + 1) / 2
    g = (0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]) * u[:, 3]
    s = g.shape[-1]
    if s != 32:
        idx = (np.arange(32) * s) // 32
        g = g[:, idx][:, :, idx]
    return (g * 2 - 1).astype(np.float32)


def alpha_stats(x):
    a = (x[:, 3] + 1) / 2
    ring = np.concatenate([a[:, 0, :], a[:, -1, :], a[:, 1:-1, 0], a[:, 1:-1, -1]], axis=1)
    return {"semi": float(((a > 0.1) & (a < 0.9)).mean()),
            "edge": float(ring.mean()),
            "empty": float(((a > 0.5).mean(axis=(1, 2)) < 0.02).mean())}


def box_blur(x):
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    s = x.shape[-1]
    return sum(p[:, :, i:i + s, j:j + s] for i in range(3) for j in range(3)) / 9


def evaluate(samples, real, seed=0):
    samples, real = check_samples(samples, "samples"), check_samples(real, "real sprites")
    if samples.shape[2:] != real.shape[2:]:
        raise SpriteError("samples are %dx%d, real sprites %dx%d"
                          % (samples.shape[2], samples.shape[3], real.shape[2], real.shape[3]))
    net = fmnist_fid.load_net()

    def gauss(x):
        f, _ = fmnist_fid.features_and_probs(net, composite_grey(x))
        return fmnist_fid.gaussian(f)

    ref = gauss(real)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real))
    a, b = real[perm[: len(real) // 2]], real[perm[len(real) // 2:]]
    ref_b = gauss(b)
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape).astype(np.float32), -1, 1)
    sets = [("samples", samples, ref), ("real, half vs half", a, ref_b),
            ("real half, noisy (0.2)", noisy, ref_b), ("real half, blurred (3x3)", box_blur(a), ref_b)]
    rows = []
    for name, x, r in sets:
        row = {"set": name, "n": len(x), "fd": fmnist_fid.frechet_distance(*gauss(x), *r)}
        row.update(alpha_stats(x))
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", help=".npy of RGBA samples [N, 4, S, S] in [-1, 1]")
    ap.add_argument("real", help="folder of the real sprites (PNG)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        try:
            samples = np.load(a.samples)
        except (OSError, ValueError) as e:
            raise SpriteError("%s: %s" % (a.samples, e))
        if not os.path.isdir(a.real):
            raise SpriteError("%s is not a folder of sprites" % a.real)
        rows = evaluate(samples, load_real(a.real))
    except (SpriteError, fmnist_fid.EvalError) as e:
        sys.exit("sprite_stats: %s" % e)
    if a.json:
        print(json.dumps(rows))
        return
    print("| set | N | fd | semi | edge | empty |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %d | %.2f | %.4f | %.4f | %.4f |"
              % (r["set"], r["n"], r["fd"], r["semi"], r["edge"], r["empty"]))


if __name__ == "__main__":
    main()
