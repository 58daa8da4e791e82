#!/usr/bin/env python3
"""sample_grid.py - a PNG grid of samples from a checkpoint, with the Python bindings.

    python3 sample_grid.py CKPT.safetensors [--n 64] [--seed 1] [--cols C]
                           [--out samples.png] [--raw] [--scale S] [--label NAME|K]

The images are those of `examples/generate CKPT --n N --seed S`: the EMA
generator (--raw: the current weights) on N latents drawn from the seed. The
grid has a 1-pixel grey gap between tiles and the model's channels (grey, RGB
or RGBA). A descriptor (.json) works too: its freshly initialised weights.
--label (class-conditional models): every image of that class, by name or
number (`labels=` of Model.generate_uint8).
Needs numpy and PIL (Debian: python3-numpy python3-pil).
"""
import argparse
import math
import os
import sys

import numpy as np
from PIL import Image

try:
    import transgan
except ImportError:  # not installed: the source tree this script is in
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import transgan

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def grid_image(pixels, cols=0, scale=1):
    """uint8 pixels [n, S, S] (grey, as generate_uint8 gives them) or [n, S, S,
    bpp] (bpp 1, 3, 4) -> a PIL image: a grid of `cols` columns (0:
    ceil(sqrt(n))) with a 1-pixel grey gap, each pixel repeated scale x scale
    times (nearest neighbour)."""
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    n, s, _, bpp = pixels.shape
    if scale > 1:
        pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
        s *= scale
    cols = min(cols if cols > 0 else math.ceil(math.sqrt(n)), n)
    rows = -(-n // cols)
    canvas = np.empty((rows * (s + 1) - 1, cols * (s + 1) - 1, bpp), dtype=np.uint8)
    canvas[...] = np.array([128, 128, 128, 255][:bpp], dtype=np.uint8)
    for i in range(n):
        y, x = i // cols * (s + 1), i % cols * (s + 1)
        canvas[y:y + s, x:x + s] = pixels[i]
    return Image.fromarray(canvas[..., 0] if bpp == 1 else canvas, _MODES[bpp])


def save_png(image, path):
    """Write a PIL image as PNG via a temporary file renamed over path."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def open_model(path):
    """A descriptor (.json: fresh weights) or a checkpoint."""
    if str(path).endswith(".json"):
        return transgan.Model(path)
    return transgan.Model.load(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a PNG grid of samples of a checkpoint.")
    ap.add_argument("checkpoint", help="CKPT.safetensors (or a descriptor .json)")
    ap.add_argument("--n", type=int, default=64, help="images (default 64)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the latents (default 1)")
    ap.add_argument("--cols", type=int, default=0, help="grid columns (default ceil(sqrt(n)))")
    ap.add_argument("--out", default="samples.png", help="output PNG (default samples.png)")
    ap.add_argument("--raw", action="store_true", help="the raw generator instead of its EMA")
    ap.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscale (default 1)")
    ap.add_argument("--label", help="class-conditional models: the class (name or number)")
    args = ap.parse_args(argv)
    if not 1 <= args.n <= 100000:
        ap.error("--n must be between 1 and 100000")
    if args.seed < 0 or args.cols < 0 or not 1 <= args.scale <= 64:
        ap.error("--seed and --cols must be >= 0, --scale between 1 and 64")
    try:
        with open_model(args.checkpoint) as m:
            label = args.label
            if label is not None and label.isdigit():
                label = int(label)
            px = m.generate_uint8(n=args.n, seed=args.seed, ema=not args.raw, labels=label)
            save_png(grid_image(px, args.cols, args.scale), args.out)
            kind = "raw" if args.raw else "EMA" if m.has_ema else "no EMA: raw"
            print("sample_grid: %d images %dx%dx%d (%s, d_steps %d, seed %d) -> %s"
                  % (args.n, m.image_size, m.image_size, m.channels, kind, m.d_steps,
                     args.seed, args.out))
    except (transgan.TransGANError, OSError, ValueError) as e:
        sys.exit("sample_grid: %s" % e)


if __name__ == "__main__":
    main()
