#!/usr/bin/python3
"""FID of generated Fashion-MNIST images, measured with this repository's own
small classifier (bench/fid/fmnist_cnn.safetensors, made by train_classifier.py).

  fmnist_fid.py SAMPLES [SAMPLES ...]      FID etc. of each sample set
  fmnist_fid.py --baselines [SAMPLES ...]  the same, beside reference sets for scale
  fmnist_fid.py SAMPLES --target K         also: how many samples the classifier
  fmnist_fid.py SAMPLES --targets Y.npy      puts in the class they were asked for
  add --json for one JSON line instead of the table (what scripts/eval_fid.sh reads)

SAMPLES is
  - a .npy of float32 [N, 1, 32, 32] (or [N, 32, 32]) in [-1, 1], the library's
    image convention, as `build/examples/generate CKPT --n 10000 --npy OUT.npy`
    writes it; 28x28 and uint8 (0..255) arrays are accepted too;
  - a .png: one 28x28 or 32x32 image, or a grid of 32x32 cells with 1-pixel
    gaps as `generate --png` writes it (blank cells at the end are skipped);
    PNGs hold 8-bit grey, so they score slightly differently from the .npy;
  - a directory of such .png files (sorted by name).
Use N >= 5000, ideally 10000: FID is biased upwards for small N.

Input to the classifier: Fashion-MNIST images are 28x28; examples/train pads them
to 32x32 with a 2-pixel black border (examples/common/imageio.c, io_load_idx), so
a 32x32 sample is mapped back by cropping that border: rows and columns 2..29.
No interpolation, so real images make the round trip exactly. What a generator
paints in the border is invisible to the classifier; the `border` column reports
it instead: the mean grey level of the cropped border in [0, 1] (0 for real,
padded images).

Numbers reported:
  fid              Frechet distance between Gaussians fitted to the classifier's
                   128 penultimate features (after ReLU) of the samples and of
                   the 10,000 Fashion-MNIST test images; lower is better.
  classifier_score the Inception-Score analogue exp(E_x KL(p(y|x) || p(y))) with
                   this classifier: 1 .. 10, higher means confident and varied.
  class_entropy    entropy (nats) of the mean predicted class distribution;
                   ln 10 = 2.303 for perfectly balanced classes.
  class_histogram  samples per predicted class (0 T-shirt/top .. 9 Ankle boot).
These numbers are only comparable with numbers from the same classifier file:
not with FIDs from Inception features, nor with other Fashion-MNIST classifiers.

Needs the Debian packages python3-torch, python3-numpy, python3-pil (PNG input
only) and dataset-fashion-mnist (the images under /usr/share/datasets/fashion-mnist;
FMNIST_DIR or --data-dir point elsewhere).
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "fmnist_cnn.safetensors")
DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
DATA_PACKAGE = "dataset-fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SIDE = 28        # the classifier's input
PAD = 2          # examples/train's border: 28 + 2 * 2 = 32
FEATURES = 128   # penultimate width, the FID feature space
WEIGHTS_FORMAT = "libtransgan-fmnist-cnn-1"


class EvalError(Exception):
    """Bad input or a missing file; the message says what to do."""


# ------------------------------------------------------------------ data

def load_idx(name, data_dir=None):
    """One idx file of the Fashion-MNIST distribution as a uint8 array."""
    path = os.path.join(data_dir or DATA_DIR, name)
    if not os.path.exists(path):
        raise EvalError("%s not found: install the Debian package %s (apt-get install %s) "
                        "or point FMNIST_DIR / --data-dir at a folder with the Fashion-MNIST "
                        "idx files" % (path, DATA_PACKAGE, DATA_PACKAGE))
    with gzip.open(path) as f:
        raw = f.read()
    if len(raw) < 8 or raw[0] or raw[1] or raw[2] != 8 or raw[3] not in (1, 3):
        raise EvalError("%s is not an idx file of unsigned bytes" % path)
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    if len(raw) != 4 + 4 * ndim + int(np.prod(dims)):
        raise EvalError("%s: size does not match its header %s" % (path, dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def test_set(data_dir=None):
    return (load_idx("t10k-images-idx3-ubyte.gz", data_dir),
            load_idx("t10k-labels-idx1-ubyte.gz", data_dir).astype(np.int64))


def train_set(data_dir=None):
    return (load_idx("train-images-idx3-ubyte.gz", data_dir),
            load_idx("train-labels-idx1-ubyte.gz", data_dir).astype(np.int64))


def pad32(images):
    """uint8 [N, 28, 28] -> float32 [N, 1, 32, 32] in [-1, 1], as examples/train sees them."""
    x = np.full((len(images), 1, SIDE + 2 * PAD, SIDE + 2 * PAD), -1.0, np.float32)
    x[:, 0, PAD:PAD + SIDE, PAD:PAD + SIDE] = images / np.float32(127.5) - 1
    return x


def _as_images(x):
    """Check an array of images; return float32 [N, 1, S, S] in [-1, 1] (S = 28 or 32)."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] != 1:
        raise EvalError("samples have %d channels (shape %s); Fashion-MNIST is grey: "
                        "expected [N, 1, 32, 32] or [N, 32, 32]" % (x.shape[1], x.shape))
    if x.ndim == 4:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] not in (SIDE, SIDE + 2 * PAD):
        raise EvalError("samples have shape %s; expected [N, 1, 32, 32], [N, 32, 32], "
                        "[N, 1, 28, 28] or [N, 28, 28]" % (x.shape,))
    if len(x) == 0:
        raise EvalError("no samples (N = 0)")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(127.5) - 1
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise EvalError("samples contain NaN or infinite values (%d of %d)"
                            % (int((~np.isfinite(x)).sum()), x.size))
        # the generator ends in tanh; clipping only matters for foreign input
        x = np.clip(x, -1, 1)
    else:
        raise EvalError("samples have dtype %s; expected float32 in [-1, 1] or uint8" % x.dtype)
    return x[:, None]


def to_classifier_input(x):
    """Samples -> float32 tensor [N, 1, 28, 28] in [-1, 1]: 32x32 loses its 2-pixel border."""
    x = _as_images(x)
    if x.shape[-1] != SIDE:
        x = x[:, :, PAD:PAD + SIDE, PAD:PAD + SIDE]
    return torch.from_numpy(np.ascontiguousarray(x))


def border_level(x):
    """Mean grey level in [0, 1] of the 2-pixel border of 32x32 samples (None for 28x28)."""
    x = _as_images(x)
    if x.shape[-1] == SIDE:
        return None
    inner = x[:, :, PAD:PAD + SIDE, PAD:PAD + SIDE]
    n_border = x[0].size - inner[0].size
    total = (x + 1).sum(dtype=np.float64) - (inner + 1).sum(dtype=np.float64)
    return float(total / 2 / (n_border * len(x)))


def _png_images(path, size):
    try:
        from PIL import Image
    except ImportError:
        raise EvalError("reading PNG needs the Debian package python3-pil")
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))
    except OSError as e:
        raise EvalError("%s: cannot read as an image (%s)" % (path, e))
    h, w = a.shape
    if h == w and h in (SIDE, SIDE + 2 * PAD):
        return a[None]
    if (w + 1) % (size + 1) or (h + 1) % (size + 1):
        raise EvalError("%s is %dx%d: neither one 28x28/32x32 image nor a grid of %dx%d "
                        "cells with 1-pixel gaps (as examples/generate --png writes)"
                        % (path, w, h, size, size))
    rows, cols = (h + 1) // (size + 1), (w + 1) // (size + 1)
    cells = []
    for r in range(rows):
        for c in range(cols):
            cells.append(a[r * (size + 1):r * (size + 1) + size, c * (size + 1):c * (size + 1) + size])
    # the grid fills its last row with gap grey (128): drop those cells
    last = len(cells)
    while last > (rows - 1) * cols and np.all(cells[last - 1] == 128):
        last -= 1
    return np.stack(cells[:last])


def load_samples(path, size=SIDE + 2 * PAD):
    """Read a .npy, a .png (image or grid) or a folder of .png files."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png"))
        if not names:
            raise EvalError("folder %s has no .png files" % path)
        parts = [_png_images(os.path.join(path, n), size) for n in names]
        if len({p.shape[1:] for p in parts}) != 1:
            raise EvalError("the PNGs in %s do not all have the same image size" % path)
        return np.concatenate(parts)
    if not os.path.exists(path):
        raise EvalError("%s: no such file" % path)
    if path.lower().endswith(".png"):
        return _png_images(path, size)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise EvalError("%s: not a .npy array, a .png or a folder of .png files (%s)" % (path, e))


# ------------------------------------------------------------ classifier

class Net(nn.Module):
    """28x28 grey -> 10 classes, 171k parameters; features() is the FID space.

    Strided convolutions instead of pooling: a third of the work, which matters
    on a small shared CPU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5, stride=2, padding=2)    # 28 -> 14
        self.conv2 = nn.Conv2d(24, 48, 3, stride=2, padding=1)   # 14 -> 7
        self.conv3 = nn.Conv2d(48, 64, 3, stride=2, padding=1)   # 7 -> 4
        self.fc1 = nn.Linear(64 * 4 * 4, FEATURES)
        self.fc2 = nn.Linear(FEATURES, len(CLASSES))

    def features(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.features(x))


def save_weights(net, path, metadata):
    """Write the weights as float16 safetensors, byte for byte reproducible."""
    header, blobs, off = {}, [], 0
    for name, t in sorted(net.state_dict().items()):
        raw = t.detach().numpy().astype("<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = dict(metadata, format=WEIGHTS_FORMAT)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)     # the data starts 8-byte aligned
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    os.replace(path + ".tmp", path)


def round_to_stored(net):
    """Round the weights to what save_weights stores (float16), in place."""
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())
    return net


def read_weights(path):
    """safetensors -> ({name: float32 array}, metadata)."""
    if not os.path.exists(path):
        raise EvalError("%s not found: the classifier's weights are committed as "
                        "bench/fid/fmnist_cnn.safetensors (bench/fid/train_classifier.py "
                        "remakes them)" % path)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        meta = header.pop("__metadata__", {})
        data = memoryview(blob)[8 + n:]
        out = {}
        for name, t in header.items():
            a, b = t["data_offsets"]
            dt = {"F16": "<f2", "F32": "<f4"}[t["dtype"]]
            if not 0 <= a <= b <= len(data):
                raise ValueError("%s lies outside the file" % name)
            out[name] = np.frombuffer(data[a:b], dt).reshape(t["shape"]).astype(np.float32)
    except (struct.error, ValueError, KeyError, TypeError) as e:
        raise EvalError("%s is not a readable safetensors file of this classifier (%s)" % (path, e))
    return out, meta


def load_net(path=WEIGHTS):
    tensors, meta = read_weights(path)
    net = Net()
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = {k: v.shape for k, v in tensors.items()}
    if meta.get("format") != WEIGHTS_FORMAT or want != have:
        raise EvalError("%s does not hold this classifier (format %r, tensors %s; expected %s)"
                        % (path, meta.get("format"), sorted(have), sorted(want)))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    net.eval()
    return net


# -------------------------------------------------------------- measures

def features_and_probs(net, x, batch=1000):
    """Penultimate features (float64 [N, 128]) and class probabilities (float64 [N, 10])."""
    x = x if isinstance(x, torch.Tensor) else to_classifier_input(x)
    feats, probs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            f = net.features(x[i:i + batch])
            feats.append(f.double())
            probs.append(F.softmax(net.fc2(f).double(), 1))
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def gaussian(feats):
    """Mean and covariance (float64) of features [N, D]; N >= 2."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise EvalError("need features [N >= 2, D], got shape %s" % (feats.shape,))
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2):
    """|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2) of two Gaussians.

    tr (C1 C2)^1/2 = tr (C1^1/2 C2 C1^1/2)^1/2: the second form is symmetric, so
    both roots come from eigh on symmetric matrices (stable, real)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if d < 1 or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise EvalError("frechet_distance: shapes %s %s %s %s do not match ([D], [D, D])"
                        % (mu1.shape, cov1.shape, mu2.shape, cov2.shape))
    w, v = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ cov2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def classifier_score(probs):
    """exp(E_x KL(p(y|x) || p(y))), the Inception-Score formula with this classifier."""
    p = np.asarray(probs, np.float64)
    py = p.mean(0)
    kl = (p * (np.log(p + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
    return float(np.exp(kl))


class Evaluator:
    """The classifier and the test set's feature statistics, loaded once."""

    def __init__(self, weights=WEIGHTS, data_dir=None):
        self.net = load_net(weights)
        self.data_dir = data_dir
        self._ref = None

    def reference(self):
        """Gaussian of the 10,000 test images' features."""
        if self._ref is None:
            images, _ = test_set(self.data_dir)
            self._ref = gaussian(features_and_probs(self.net, pad32(images))[0])
        return self._ref

    def score(self, samples, ref=None):
        """FID to the test set (or to ref = (mu, cov)) and the classifier's view of samples."""
        feats, probs = features_and_probs(self.net, samples)
        if len(feats) < 2:
            raise EvalError("FID needs at least 2 samples, got %d" % len(feats))
        mu, cov = gaussian(feats)
        ref_mu, ref_cov = ref if ref is not None else self.reference()
        py = probs.mean(0)
        return {"fid": round(frechet_distance(mu, cov, ref_mu, ref_cov), 3),
                "classifier_score": round(classifier_score(probs), 3),
                "class_entropy": round(float(-(py * np.log(py + 1e-12)).sum()), 3),
                "class_histogram": np.bincount(probs.argmax(1), minlength=10).tolist(),
                "border": None if border_level(samples) is None else round(border_level(samples), 4),
                "n": int(len(feats))}

    def classify(self, samples):
        """Predicted class (int64 [N]) and probabilities (float64 [N, 10])."""
        _, probs = features_and_probs(self.net, samples)
        return probs.argmax(1), probs

    def class_report(self, samples, targets):
        """How often samples asked for class k are classified as k.

        targets: one class index per sample (int array [N]) or one int for all.
        Returns n, accuracy (over all samples), per_class {k: {n, correct,
        accuracy}} for each k asked for, class_histogram of the predictions and
        confusion[k][j] = samples asked for k classified as j."""
        pred, _ = self.classify(samples)
        t = np.asarray(targets)
        if t.ndim == 0:
            t = np.full(len(pred), t)
        if t.ndim != 1 or len(t) != len(pred):
            raise EvalError("targets: %s labels for %d samples; give one class per sample"
                            % (t.shape[0] if t.ndim == 1 else "shape %s" % (t.shape,), len(pred)))
        if not np.issubdtype(t.dtype, np.integer) and not np.all(t == np.round(t)):
            raise EvalError("targets must be whole class numbers 0..9, got dtype %s" % t.dtype)
        t = t.astype(np.int64)
        if t.min() < 0 or t.max() > 9:
            raise EvalError("targets must be class numbers 0..9, got %d..%d" % (t.min(), t.max()))
        conf = np.zeros((10, 10), np.int64)
        np.add.at(conf, (t, pred), 1)
        per = {}
        for k in range(10):
            nk = int(conf[k].sum())
            if nk:
                per[str(k)] = {"name": CLASSES[k], "n": nk, "correct": int(conf[k, k]),
                               "accuracy": round(conf[k, k] / nk, 4)}
        return {"n": int(len(pred)), "accuracy": round(float((pred == t).mean()), 4),
                "per_class": per, "class_histogram": np.bincount(pred, minlength=10).tolist(),
                "confusion": conf.tolist()}

    def test_accuracy(self, n=None):
        """Accuracy on the first n (default all 10,000) test images."""
        images, labels = test_set(self.data_dir)
        pred, _ = self.classify(images[:n])
        return float((pred == labels[:n]).mean())

    def baselines(self, n=10000, seed=0):
        """FID of real and degraded real sets against the test set, for scale.

        All go through the samples' path: 28x28 training images padded to 32x32
        as examples/train pads them, changed, then cropped back."""
        images, labels = train_set(self.data_dir)
        rng = np.random.default_rng(seed)
        real = pad32(images[rng.choice(len(images), n, replace=False)])
        g = np.exp(-0.5 * np.arange(-2, 3) ** 2)            # Gaussian, sigma 1 pixel
        g = torch.from_numpy(np.outer(g, g) / np.outer(g, g).sum()).float()[None, None]
        blur = F.conv2d(F.pad(torch.from_numpy(real), (2, 2, 2, 2), value=-1.0), g).numpy()
        noise = np.clip(real + 0.2 * rng.standard_normal(real.shape).astype(np.float32), -1, 1)
        shift = np.roll(real, (2, 2), axis=(2, 3))           # the border is black: no wrap
        sets = [("train %dk (real)" % (n // 1000), real),
                ("train, blurred (sigma 1 px)", blur),
                ("train, noise (sigma 0.2)", noise),
                ("train, shifted 2 px", shift),
                ("train, one class (T-shirt)", pad32(images[labels == 0][:n])),
                ("uniform noise", rng.uniform(-1, 1, real.shape).astype(np.float32))]
        ref = self.reference()
        return {name: self.score(x, ref) for name, x in sets}


# ------------------------------------------------------------------ CLI

def _table(rows):
    out = ["%-32s %6s %9s %7s %8s %7s" % ("", "n", "FID", "score", "entropy", "border")]
    for name, r in rows:
        border = "-" if r["border"] is None else "%.4f" % r["border"]
        out.append("%-32s %6d %9.2f %7.2f %8.3f %7s" % (name[-32:], r["n"], r["fid"],
                                                         r["classifier_score"], r["class_entropy"], border))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fmnist_fid.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", nargs="*", help=".npy, .png or folder of .png")
    ap.add_argument("--baselines", action="store_true", help="also score reference sets, for scale")
    ap.add_argument("--target", type=int, help="all samples were asked to be of this class (0..9)")
    ap.add_argument("--targets", help=".npy of one class index per sample")
    ap.add_argument("--size", type=int, default=SIDE + 2 * PAD, help="cell size of PNG grids (32)")
    ap.add_argument("--weights", default=WEIGHTS)
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST idx files (%s)" % DATA_DIR)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a small shared machine 2 are slower)")
    ap.add_argument("--json", action="store_true", help="one JSON line on stdout")
    a = ap.parse_args(argv)
    if not a.samples and not a.baselines:
        ap.error("give SAMPLES and/or --baselines")
    if a.target is not None and a.targets:
        ap.error("--target and --targets exclude each other")
    if (a.target is not None or a.targets) and len(a.samples) != 1:
        ap.error("--target/--targets go with exactly one SAMPLES")
    torch.set_num_threads(max(1, a.threads))
    try:
        ev = Evaluator(a.weights, a.data_dir)
        results, report = [], None
        for path in a.samples:
            x = load_samples(path, a.size)
            results.append((path, ev.score(x)))
            if results[-1][1]["n"] < 5000:
                print("fmnist_fid: note: %s has %d samples; FID is biased upwards for small N, "
                      "quoted numbers use 10,000" % (path, results[-1][1]["n"]), file=sys.stderr)
            if a.target is not None or a.targets:
                t = a.target if a.target is not None else load_samples(a.targets)
                report = ev.class_report(x, t)
        base = ev.baselines() if a.baselines else None
        acc = ev.test_accuracy() if a.baselines else None
    except EvalError as e:
        print("fmnist_fid: %s" % e, file=sys.stderr)
        return 2
    if a.json:
        out = {}
        if len(results) == 1 and not a.baselines:
            out = dict(results[0][1])
        else:
            out["samples"] = {p: r for p, r in results}
        if report is not None:
            out["class_report"] = report
        if base is not None:
            out["baselines"] = base
            out["classifier_test_accuracy"] = acc
        print(json.dumps(out))
        return 0
    rows = list(results)
    if base is not None:
        rows += list(base.items())
    print(_table(rows))
    if base is not None:
        print("FID against the 10,000 Fashion-MNIST test images; classifier test accuracy %.4f" % acc)
    if report is not None:
        print("asked-for class classified as asked: %.4f of %d" % (report["accuracy"], report["n"]))
        for k, r in report["per_class"].items():
            print("  %d %-12s %5d asked, %5d classified so (%.4f)" % (int(k), r["name"], r["n"],
                                                                      r["correct"], r["accuracy"]))
        print("  predicted histogram %s" % report["class_histogram"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
