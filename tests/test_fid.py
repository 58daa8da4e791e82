"""The in-repo Fashion-MNIST FID evaluator (bench/fid): weights, classifier,
Frechet distance, input handling. Runs in a few seconds (make fid-test)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "fid"))
import fmnist_fid as fid  # noqa: E402

SCRIPT = os.path.join(ROOT, "bench", "fid", "fmnist_fid.py")


@pytest.fixture(scope="module")
def ev():
    fid.torch.set_num_threads(1)
    return fid.Evaluator()


@pytest.fixture(scope="module")
def test_data():
    return fid.test_set()


def test_weights_are_small_and_load(ev):
    assert os.path.getsize(fid.WEIGHTS) < 400_000      # float16, 171k parameters
    tensors, meta = fid.read_weights(fid.WEIGHTS)
    assert meta["format"] == fid.WEIGHTS_FORMAT
    assert sum(v.size for v in tensors.values()) == sum(p.numel() for p in ev.net.parameters())
    assert float(meta["test_accuracy"]) >= 0.90


def test_accuracy_on_test_slice(ev, test_data):
    images, labels = test_data
    acc = ev.test_accuracy(1000)
    assert acc > 0.88, acc
    # the 32x32 path (pad as examples/train does, crop back) sees the same images
    pred, _ = ev.classify(fid.pad32(images[:1000]))
    assert np.array_equal(pred, ev.classify(images[:1000])[0])
    assert (pred == labels[:1000]).mean() == acc


def test_frechet_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt v1 - sqrt v2)^2
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert abs(got - want) < 1e-9
    # invariant under a common rotation, zero for identical Gaussians
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    got = fid.frechet_distance(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert abs(got - want) < 1e-9
    c = np.cov(rng.normal(size=(50, 4)), rowvar=False)
    assert abs(fid.frechet_distance(mu1, c, mu1, c)) < 1e-9


def test_fid_small_for_real_large_for_noise(ev, test_data):
    images, _ = test_data
    a, b = fid.pad32(images[:1000]), fid.pad32(images[1000:2000])
    ref = fid.gaussian(fid.features_and_probs(ev.net, a)[0])
    same = ev.score(b, ref)
    noise = ev.score(np.random.default_rng(0).uniform(-1, 1, b.shape).astype(np.float32), ref)
    # 1,000 vs 1,000 real images: only the small-sample bias (a few units)
    assert same["fid"] < 15, same
    assert noise["fid"] > 20 * same["fid"], (same, noise)
    assert same["classifier_score"] > 5 > noise["classifier_score"]
    assert same["border"] == 0.0 and noise["border"] > 0.4


def test_class_report(ev, test_data):
    images, labels = test_data
    r = ev.class_report(images[:1000], labels[:1000])
    assert r["n"] == 1000 and r["accuracy"] == round(ev.test_accuracy(1000), 4)
    assert sum(sum(row) for row in r["confusion"]) == 1000
    assert sum(p["n"] for p in r["per_class"].values()) == 1000
    trousers = images[labels == 1][:100]
    r = ev.class_report(trousers, 1)
    assert list(r["per_class"]) == ["1"] and r["per_class"]["1"]["accuracy"] > 0.9
    r = ev.class_report(trousers, 9)              # asked for ankle boots
    assert r["per_class"]["9"]["accuracy"] < 0.05


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 3, 32, 32), np.float32), "3 channels"),
    (np.zeros((4, 1, 64, 64), np.float32), "expected [N, 1, 32, 32]"),
    (np.zeros((4, 32, 28), np.float32), "expected [N, 1, 32, 32]"),
    (np.zeros((0, 1, 32, 32), np.float32), "no samples"),
    (np.full((2, 1, 32, 32), np.nan, np.float32), "NaN"),
    (np.zeros((2, 32, 32), np.int32), "dtype int32"),
])
def test_bad_samples(ev, bad, message):
    with pytest.raises(fid.EvalError, match=None) as e:
        ev.score(bad)
    assert message in str(e.value)


def test_bad_targets(ev, test_data):
    images, _ = test_data
    for t, message in [(np.zeros(5, np.int64), "5 labels for 10 samples"),
                       (np.full(10, 10), "0..9"), (-1, "0..9"),
                       (np.full(10, 0.5), "whole class numbers")]:
        with pytest.raises(fid.EvalError) as e:
            ev.class_report(images[:10], t)
        assert message in str(e.value)
    with pytest.raises(fid.EvalError, match="shapes"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_png_grid_matches_npy(ev, tmp_path, test_data):
    from PIL import Image
    images, _ = test_data
    x = fid.pad32(images[:7])
    # the layout of examples/generate --png: 3 columns, 1-pixel gaps and blank cells of grey 128
    grid = np.full((3 * 33 - 1, 3 * 33 - 1), 128, np.uint8)
    for i in range(7):
        r, c = divmod(i, 3)
        grid[r * 33:r * 33 + 32, c * 33:c * 33 + 32] = np.round((x[i, 0] + 1) * 127.5)
    Image.fromarray(grid).save(tmp_path / "grid.png")
    got = fid.load_samples(str(tmp_path / "grid.png"))
    assert got.shape == (7, 32, 32)
    assert np.array_equal(ev.classify(got)[0], ev.classify(images[:7])[0])
    Image.fromarray(grid[:50, :70]).save(tmp_path / "odd.png")
    with pytest.raises(fid.EvalError, match="neither one 28x28/32x32 image nor a grid"):
        fid.load_samples(str(tmp_path / "odd.png"))


def test_missing_files(tmp_path):
    with pytest.raises(fid.EvalError, match="dataset-fashion-mnist"):
        fid.load_idx("t10k-images-idx3-ubyte.gz", str(tmp_path))
    with pytest.raises(fid.EvalError, match="train_classifier.py"):
        fid.load_net(str(tmp_path / "none.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{junk")
    with pytest.raises(fid.EvalError, match="not a readable safetensors"):
        fid.load_net(str(tmp_path / "junk.safetensors"))


def test_cli(tmp_path, test_data):
    images, labels = test_data
    np.save(tmp_path / "s.npy", fid.pad32(images[:200]))
    np.save(tmp_path / "y.npy", labels[:200])
    r = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "s.npy"), "--targets",
                        str(tmp_path / "y.npy"), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 200 and out["fid"] > 0 and out["class_report"]["accuracy"] > 0.85
    np.save(tmp_path / "bad.npy", np.zeros((3, 2, 2), np.float32))
    r = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "bad.npy")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("fmnist_fid: samples have shape (3, 2, 2)")
