"""Smoke test of `make quality` (bench/quality/quality.py): a 20-second run of
a tiny model writes the curve, the tables and the sample grids, with finite
FIDs, and the log's steps agree with the table. The benchmark itself (minutes
of training) is not part of `make test`."""
import json
import math
import os
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
