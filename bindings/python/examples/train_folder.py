#!/usr/bin/env python3
"""train_folder.py - train a TransGAN on a folder of PNG images or on Fashion-MNIST,
with the Python bindings (the same loop as examples/train.c, in Python).

    python3 train_folder.py --model DESC.json|CKPT.safetensors
                            [--data fmnist|IDX_FILE|DIR_OF_PNGS] [--steps N] [--every K]
                            [--out DIR] [--resume CKPT] [--limit N] [--seed S]

--model   a descriptor (fresh weights from its training.seed) or a checkpoint
--data    "fmnist" (default: Fashion-MNIST's train images from Debian's
          dataset-fashion-mnist, padded to the model's size), an idx3 file
          (gzip'd or not), or a folder of PNG files (resized to the model by
          area averaging, converted to its channels)
--steps   calls of model.train_step (one D update each, a G update every
          n_critic); default: until Ctrl-C
--every   save checkpoint.safetensors and samples_<d_steps>.png (64 EMA samples
          of seed 1, as train.c's) every K D steps and at the end (default 500;
          0: only at the end)
--out     output folder (default train-out; with --resume the checkpoint's)
--resume  continue from a checkpoint (weights, EMA, optimiser, step counters,
          RNG, and the data order for the same --seed, --data and --limit);
          with --model DESC.json the descriptor's settings replace the file's
--limit   use only the first N images
--seed    seed of the data order (default 1): each epoch is a permutation drawn
          by numpy's Generator from (seed, epoch), so the order at any step
          follows from d_steps alone

Ctrl-C (or SIGTERM) finishes the current step, saves and exits. Needs numpy
and PIL (Debian: python3-numpy python3-pil).
"""
import argparse
import gzip
import os
import signal
import sys
import time

import numpy as np
from PIL import Image

try:
    import transgan
except ImportError:  # not installed: the source tree this script is in
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import transgan

from sample_grid import grid_image, save_png  # noqa: E402  (this script's folder)

# Debian's dataset-fashion-mnist installs Fashion-MNIST here
FMNIST_PACKAGE = "dataset-fashion-mnist"
FMNIST_DIR = "/usr/share/datasets/fashion-mnist/"
FMNIST = FMNIST_DIR + "train-images-idx3-ubyte.gz"
SAMPLE_SEED, SAMPLE_N, PROGRESS_SECONDS = 1, 64, 5.0


# --------------------------------------------------------------------- data

def load_idx(path, size, channels, limit=0):
    """An idx3 file (gzip'd or plain) -> float32 [n, channels, size, size] in
    [-1, 1]: each image centred in a black (-1) frame, grey copied to R, G, B,
    alpha opaque. A missing Fashion-MNIST file names its Debian package."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
    except FileNotFoundError:
        if not path.startswith(FMNIST_DIR):
            raise
        raise FileNotFoundError("cannot open '%s': no such file; Fashion-MNIST comes with the "
                                "Debian package %s (apt-get install %s)"
                                % (path, FMNIST_PACKAGE, FMNIST_PACKAGE)) from None
    with (gzip.open if gz else open)(path, "rb") as f:
        hdr = f.read(16)
        if len(hdr) != 16 or hdr[:4] != b"\x00\x00\x08\x03":
            raise ValueError("'%s' is not an idx3 file of unsigned bytes (images); --data "
                             "must be fmnist, an idx3 file such as Fashion-MNIST's or a folder "
                             "of PNG files" % path)
        count, rows, cols = (int(v) for v in np.frombuffer(hdr[4:], dtype=">u4"))
        if not (0 < rows <= size and 0 < cols <= size):
            raise ValueError("'%s' holds %dx%d images, which do not fit the model's %dx%d"
                             % (path, rows, cols, size, size))
        if limit:
            count = min(count, limit)
        raw = f.read(count * rows * cols)
    if len(raw) != count * rows * cols:
        raise ValueError("'%s' is truncated" % path)
    grey = np.frombuffer(raw, dtype=np.uint8).reshape(count, rows, cols) / 127.5 - 1.0
    out = np.full((count, channels, size, size), -1.0, dtype=np.float32)
    top, left = (size - rows) // 2, (size - cols) // 2
    out[:, :min(channels, 3), top:top + rows, left:left + cols] = grey[:, None]
    if (rows, cols) != (size, size):
        print("train_folder: '%s' holds %dx%d images; each is centred on a black %dx%d frame, "
              "the model's image size" % (path, rows, cols, size, size), file=sys.stderr)
    if channels == 4:
        out[:, 3] = 1.0
    return out


def load_png_dir(folder, size, channels, limit=0):
    """The *.png files of a folder, in name order -> float32 [n, channels, size,
    size] in [-1, 1]. Resized by area averaging (PIL's BOX filter) in
    premultiplied alpha; 4 channels keep straight alpha, 3 and 1 composite over
    black (1: BT.601 luma). Files that cannot be decoded are skipped, with the
    reason on stderr; how many images were resized (or drawn over black) is said
    there too."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
    if not names:
        raise ValueError("folder '%s' has no .png files" % folder)
    images, skipped, resized, see_through = [], 0, [], 0
    for name in names:
        if limit and len(images) == limit:
            break
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as im:
                rgba = im.convert("RGBA")
        except (OSError, ValueError) as e:
            skipped += 1
            print("train_folder: skipping '%s': %s" % (path, _undecodable(path, e)),
                  file=sys.stderr)
            continue
        if rgba.size != (size, size):
            resized.append("'%s' is %dx%d" % ((name,) + rgba.size))
        if channels != 4 and rgba.getextrema()[3][0] < 255:
            see_through += 1
        pm = rgba.convert("RGBa").resize((size, size), Image.BOX)
        p = np.asarray(pm, dtype=np.float32) / 255.0  # [S, S, 4], colour premultiplied
        a = p[..., 3:]
        if channels == 4:
            rgb = np.where(a > 1e-6, p[..., :3] / np.maximum(a, 1e-6), 0.0)
            v = np.concatenate([np.minimum(rgb, 1.0), a], axis=-1)
        elif channels == 3:
            v = p[..., :3]
        else:
            v = (p[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        images.append(np.clip(v, 0.0, 1.0).transpose(2, 0, 1) * 2.0 - 1.0)
    if skipped:
        print("train_folder: %d file(s) of '%s' were skipped: they could not be read as PNG "
              "images" % (skipped, folder), file=sys.stderr)
    if resized:
        print("train_folder: %d of %d images are not %dx%d (%s); they were resized to %dx%d, "
              "the model's image size, each pixel the average of the area it covers"
              % (len(resized), len(images), size, size, resized[0], size, size), file=sys.stderr)
    if see_through:
        print("train_folder: %d of %d images have transparent pixels; the model has no alpha "
              "channel, so they were drawn over black" % (see_through, len(images)),
              file=sys.stderr)
    if not images:
        raise ValueError("no image of folder '%s' could be decoded" % folder)
    return np.stack(images).astype(np.float32)


def _undecodable(path, err):
    """Why PIL could not read a file, in words."""
    if os.path.isdir(path):
        return "it is a folder"
    if isinstance(err, Image.UnidentifiedImageError):
        return "it is not a PNG image (its name ends in .png but PIL cannot identify its contents)"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return "the PNG file is damaged or unsupported (%s)" % err


class DataOrder:
    """Endless epochs; epoch e is a permutation drawn from Generator((seed, e)).
    Position p of the sequence is image perm_{p // n}[p % n]."""

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch, self.perm = n, seed, None, None

    def __getitem__(self, pos):
        e = pos // self.n
        if e != self.epoch:
            self.perm = np.random.default_rng([self.seed, e]).permutation(self.n)
            self.epoch = e
        return self.perm[pos % self.n]


# -------------------------------------------------------------------- train

def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a TransGAN with the Python bindings.")
    ap.add_argument("--model", help="descriptor .json or checkpoint .safetensors")
    ap.add_argument("--data", default="fmnist", help="fmnist, an idx3 file or a PNG folder")
    ap.add_argument("--steps", type=int, default=None,
                    help="train_step calls (default: until Ctrl-C)")
    ap.add_argument("--every", type=int, default=500, help="save every K D steps (0: at the end)")
    ap.add_argument("--out", default=None, help="output folder (default train-out)")
    ap.add_argument("--resume", default=None, help="continue from this checkpoint")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--seed", type=int, default=1, help="seed of the data order (default 1)")
    args = ap.parse_args(argv)
    if not args.model and not args.resume:
        ap.error("give --model (or --resume)")
    if (args.steps is not None and args.steps < 0) or args.every < 0 or args.limit < 0 \
            or args.seed < 0:
        ap.error("--steps, --every, --limit and --seed must be >= 0")
    try:
        train(args)
    except (transgan.TransGANError, OSError, ValueError) as e:
        sys.exit("train_folder: %s" % e)


def train(args):
    # the model
    if args.model and args.model.endswith(".json"):
        m = transgan.Model(args.model)
        if args.resume:
            m.load_weights(args.resume)
    else:
        if args.model and args.resume and args.model != args.resume:
            raise ValueError("--model %s and --resume %s: give one checkpoint"
                             % (args.model, args.resume))
        m = transgan.Model.load(args.resume or args.model)
    S, C, dB = m.image_size, m.channels, m.d_batch

    # the data
    src = FMNIST if args.data == "fmnist" else args.data
    if os.path.isdir(src):
        images = load_png_dir(src, S, C, args.limit)
    else:
        images = load_idx(src, S, C, args.limit)
    order = DataOrder(len(images), args.seed)

    out = args.out or ((os.path.dirname(args.resume) or ".") if args.resume else "train-out")
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "checkpoint.safetensors")
    z_fixed = m.latent(SAMPLE_N, seed=SAMPLE_SEED)
    print("train_folder: %s: %dx%dx%d, G %.2fM D %.2fM params, d_batch %d, at d_steps %d "
          "g_steps %d" % (args.resume or args.model, S, S, C, m.g_params / 1e6,
                          m.d_params / 1e6, dB, m.d_steps, m.g_steps), flush=True)
    print("train_folder: %d images from %s (data seed %d); output in %s/"
          % (len(images), src, args.seed, out), flush=True)

    def save():
        m.save(ckpt)
        png = os.path.join(out, "samples_%d.png" % m.d_steps)
        save_png(grid_image(m.generate_uint8(z=z_fixed), cols=8), png)
        print("saved %s and %s" % (ckpt, png), flush=True)
        return m.d_steps

    stop = []

    def on_signal(sig, frame):
        stop.append(sig)
        signal.signal(sig, signal.SIG_DFL)  # a second one ends the program at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t0 = last = time.monotonic()
    calls, saved_at, acc = 0, None, []
    while (args.steps is None or calls < args.steps) and not stop:
        d = m.d_steps
        batch = images[[order[d * dB + j] for j in range(dB)]]
        st = m.train_step(batch)
        calls += 1
        acc.append(st)
        t = time.monotonic()
        if t - last >= PROGRESS_SECONDS or calls == args.steps:
            g = [s["g_loss"] for s in acc if s["g_updated"]]
            print("step %d%s  d %d g %d  %.2f steps/s  d_loss %.4f d_real %.4f d_fake %.4f "
                  "g_loss %s  elapsed %.0f s"
                  % (calls, "" if args.steps is None else "/%d" % args.steps, st["d_steps"],
                     st["g_steps"], len(acc) / max(t - last, 1e-9),
                     np.mean([s["d_loss"] for s in acc]), np.mean([s["d_real"] for s in acc]),
                     np.mean([s["d_fake"] for s in acc]),
                     "%.4f" % np.mean(g) if g else "-", t - t0), flush=True)
            last, acc = t, []
        if args.every and st["d_steps"] % args.every == 0:
            saved_at = save()
    if stop:
        print("train_folder: interrupted after %d calls; saving" % calls, flush=True)
    if saved_at != m.d_steps:
        save()
    m.close()


if __name__ == "__main__":
    main()
