"""Smoke test of `make quality` (bench/quality/quality.py): a 20-second run of
a tiny model writes the curve, the tables and the sample grids, with finite
FIDs, and the log's steps agree with the table. The benchmark itself (minutes
of training) is not part of `make test`."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "quality", "quality.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") \
            and not os.environ.get("FMNIST_DIR"):
        pytest.fail("needs the Debian package dataset-fashion-mnist (scripts/install-deps.sh test)")
    p = subprocess.run([sys.executable, SCRIPT, "run", os.path.join(ROOT, "tests/data/tiny-train.json"),
                        "--minutes", "0.34", "--every", "0.17", "--samples", "500",
                        "--limit", "500", "--out", str(out),
                        "--build", os.environ.get("QUALITY_BUILD", os.path.join(ROOT, "build"))],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return out, p.stdout


def test_outputs_exist(run):
    out, stdout = run
    for name in ("curve.png", "quality.md", "quality.json", "run/log.tsv"):
        assert (out / name).stat().st_size > 0, name
    q = json.loads((out / "quality.json").read_text())
    assert len(q["rows"]) >= 2  # the timed save(s) and the final one
    for r in q["rows"]:
        assert (out / ("samples_%d.png" % r["d_steps"])).exists()
    assert "baselines" in stdout and "real images" in stdout


def test_fid_finite_and_steps_consistent(run):
    out, _ = run
    q = json.loads((out / "quality.json").read_text())
    d_prev = 0
    for r in q["rows"]:
        assert math.isfinite(r["fid"]) and r["fid"] > 0
        assert r["n"] == 500
        assert r["d_steps"] > d_prev
        assert r["images_seen"] == r["d_steps"] * 4  # tiny-train's d_batch
        d_prev = r["d_steps"]
    # the budget bounds the training loop: the last save is at the budget's end
    assert q["rows"][-1]["minutes"] <= 0.34 + 0.2
    assert 0.3 < q["baselines"]["train 10k (real)"] < 2  # the evaluator's real-vs-real
    table = (out / "quality.md").read_text()
    assert "| %d |" % q["rows"][-1]["d_steps"] in table


def test_continue_extends_the_curve(run, tmp_path):
    """`continue` trains a finished run on from its last checkpoint and scores
    every checkpoint again: the old rows stay, new ones follow with larger step
    counts and minutes on the same clock, and the table says how it was made."""
    out = tmp_path / "q"
    shutil.copytree(run[0], out)  # the module's run stays as it was for the other tests
    before = json.loads((out / "quality.json").read_text())
    p = subprocess.run([sys.executable, SCRIPT, "continue", str(out), "--minutes", "0.17",
                        "--samples", "500",
                        "--build", os.environ.get("QUALITY_BUILD", os.path.join(ROOT, "build"))],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    q = json.loads((out / "quality.json").read_text())
    old = [(r["d_steps"], r["minutes"]) for r in before["rows"]]
    assert [(r["d_steps"], r["minutes"]) for r in q["rows"][:len(old)]] == old
    new = q["rows"][len(old):]
    assert new and new[0]["d_steps"] > old[-1][0] and new[-1]["minutes"] > old[-1][1]
    # the resumed run also saves at its budget's end: about 0.34 + 0.17 minutes in all
    assert new[-1]["minutes"] <= 0.34 + 0.17 + 0.3
    assert q["minutes_budget"] == pytest.approx(0.34 + 0.17)
    assert q["continued"][0]["minutes"] == 0.17 and q["continued"][0]["every"] == 0.17
    table = (out / "quality.md").read_text()
    assert "Continued for 0.17 min" in table and "0.51 min of training in all" in table
    assert "| %d |" % new[-1]["d_steps"] in table
    # without a run folder there is nothing to continue: a message, not a traceback
    shutil.rmtree(out / "run")
    p = subprocess.run([sys.executable, SCRIPT, "continue", str(out), "--minutes", "0.1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "needs the run folder" in p.stderr and "Traceback" not in p.stderr


def test_conditional_run_reports_class_accuracy(tmp_path):
    """A class-conditional descriptor trains on the labels (`train --labels
    fmnist`) and each checkpoint is scored for class accuracy: samples asked for
    class i mod 10 (`generate --class cycle`) against the evaluator's classifier."""
    p = subprocess.run([sys.executable, SCRIPT, "run",
                        os.path.join(ROOT, "tests/data/tiny-cond-train.json"),
                        "--minutes", "0.17", "--every", "0.17", "--samples", "500",
                        "--limit", "500", "--out", str(tmp_path),
                        "--build", os.environ.get("QUALITY_BUILD", os.path.join(ROOT, "build"))],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    q = json.loads((tmp_path / "quality.json").read_text())
    for r in q["rows"]:
        assert 0.0 <= r["class_accuracy"] <= 1.0
        assert len(r["per_class"]) == 10  # every class asked for (500 samples cycle 0..9)
        assert math.isfinite(r["fid"])
    table = (tmp_path / "quality.md").read_text()
    assert "class accuracy" in table and "| %.1f %% |" % (100 * q["rows"][-1]["class_accuracy"]) in table
    assert "class accuracy" in p.stdout


# ---- bench/quality/sprite_stats.py (the emoji model's measures)
sys.path.insert(0, os.path.join(ROOT, "bench", "quality"))
import numpy as np  # noqa: E402
import sprite_stats  # noqa: E402


def discs(n, seed, haze=0.0):
    """n RGBA sprites [n, 4, 32, 32] in [-1, 1]: a disc of a random colour and
    radius on a transparent background; haze > 0 lifts every alpha to it and
    spreads the disc's colour under it (a tinted haze, as an untrained
    generator paints)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    x = np.zeros((n, 4, 32, 32), np.float32)
    for i in range(n):
        r = rng.uniform(6, 14)
        inside = (yy ** 2 + xx ** 2 <= r * r).astype(np.float32)
        x[i, :3] = rng.uniform(0, 1, (3, 1, 1)) * (inside if haze == 0 else 1)
        x[i, 3] = np.maximum(inside, haze)
    return x * 2 - 1


def test_sprite_stats_separates_clean_from_hazy():
    real = discs(400, 1)
    same = sprite_stats.evaluate(discs(400, 2), real)
    hazy = sprite_stats.evaluate(discs(400, 2, haze=0.5), real)
    s, h = same[0], hazy[0]
    assert s["set"] == "samples" and s["n"] == 400
    # the same distribution: clean edges, nothing semi-transparent, close features
    assert s["edge"] == 0 and s["semi"] == 0 and s["empty"] == 0
    assert h["edge"] == pytest.approx(0.5) and h["semi"] > 0.5
    assert s["fd"] < h["fd"]
    # the reference rows: real vs real is the closest, noise and blur add distance
    ref = {r["set"]: r for r in same[1:]}
    assert ref["real, half vs half"]["fd"] < ref["real half, blurred (3x3)"]["fd"]
    assert ref["real half, blurred (3x3)"]["semi"] > 0


def test_sprite_stats_refuses_bad_input(tmp_path):
    with pytest.raises(sprite_stats.SpriteError, match="RGBA"):
        sprite_stats.evaluate(np.zeros((10, 1, 32, 32), np.float32), discs(10, 1))
    bad = discs(10, 1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(sprite_stats.SpriteError, match="NaN"):
        sprite_stats.evaluate(bad, discs(10, 1))
    np.save(tmp_path / "s.npy", discs(4, 1))
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "quality", "sprite_stats.py"),
                        str(tmp_path / "s.npy"), str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "sprite_stats:" in p.stderr and "Traceback" not in p.stderr


def test_perf_waits_attributes_worker_waits(tmp_path):
    """bench/perf_waits.py: worker samples in libgomp are counted under the main
    thread's nearest sample; worker samples doing work are not counted."""
    def sample(tid, t, frames):
        return "%d %.6f:\n" % (tid, t) + "".join(
            "\t%x %s (%s)\n" % (0x1000 + i, s, d) for i, (s, d) in enumerate(frames)) + "\n"
    lib = "/x/libtransgan.so.0.1.0"
    gomp = "/usr/lib/libgomp.so.1.0.0"
    text = sample(10, 1.000000, [("main", "/x/lib_bench")])  # main thread starts first
    for k in range(10):
        t = 1.001 + k * 0.001
        main = [("fwd_bf16_onepass_4", lib)] if k < 6 else [("ln_rows.avx512f", lib)]
        text += sample(10, t, main)
        worker = [("0x1f7da", gomp)] if k % 2 == 0 else [("fwd_bf16_onepass_4", lib)]
        text += sample(11, t + 0.0001, worker)
    f = tmp_path / "perf.txt"
    f.write_text(text)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "perf_waits.py"), str(f)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    # 10 worker samples; waits at k = 0, 2, 4 (main in attention) and 6, 8 (LayerNorm)
    assert "worker waiting 50.0%" in last, last
    assert "attention 30.0%" in last and "LayerNorm 20.0%" in last, last
