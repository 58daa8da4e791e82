"""Check the committed conformance fixtures in tests/fixtures/ against the PyTorch reference.

  /usr/bin/python3 -m pytest tests/test_reference_io.py

- every fixture's descriptor is valid and matches the one inside its checkpoint;
- the expected outputs stored in NAME.io.safetensors are what the reference computes
  now from the stored checkpoint (so stale fixtures are caught);
- tests/fixtures/make_fixtures.py regenerates byte-identical files.

The reference is found at $TRANSGAN_REF or ../shared/reference (relative to the
repository root); without it these tests fail.  Needs only torch and numpy.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
FIXDIR = os.path.join(HERE, "fixtures")
SCRIPT = os.path.join(FIXDIR, "make_fixtures.py")
REF_DIR = os.environ.get("TRANSGAN_REF") or os.path.join(REPO_ROOT, "..", "shared", "reference")

# `make test` installs torch and CI has ../shared: a missing oracle is a failure,
# never a silent skip
if not os.path.exists(os.path.join(REF_DIR, "transgan_ref.py")):
    raise RuntimeError(f"reference model not found in {REF_DIR} (set TRANSGAN_REF)")
import numpy as np  # noqa: E402
import torch  # noqa: E402
sys.path.insert(0, os.path.abspath(REF_DIR))
import transgan_ref as R  # noqa: E402

NAMES = sorted(os.path.basename(p)[:-len(".io.safetensors")]
               for p in glob.glob(os.path.join(FIXDIR, "*.io.safetensors")))
RTOL = 1e-5


def _paths(name):
    return (os.path.join(FIXDIR, name + ".json"),
            os.path.join(FIXDIR, name + ".safetensors"),
            os.path.join(FIXDIR, name + ".io.safetensors"))


def _close(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-7 * scale, err_msg=what)


def test_fixtures_present():
    assert set(NAMES) >= {"tiny-ln", "gray-relbias-tanh", "rgba-locality", "rgb-sr"}
    for name in NAMES:
        for p in _paths(name):
            assert os.path.isfile(p), p


@pytest.mark.parametrize("name", NAMES)
def test_descriptor_and_checkpoint(name):
    jpath, cpath, _ = _paths(name)
    with open(jpath) as f:
        raw = json.load(f)
    assert raw["format"] == "transgan" and raw["format_version"] == 1 and raw["name"] == name
    d = R.load_descriptor(jpath)
    t, meta = R.st_load(cpath)
    assert meta["format"] == "transgan-checkpoint"
    assert json.loads(meta["descriptor"]) == d
    st = R.State(d).load(cpath)                       # all weights present, shapes right
    params = dict(st.model.named_parameters())
    gnames = [k for k in params if k.startswith("generator.")]
    for k in gnames:                                  # the EMA is stored and differs
        assert "ema." + k in t, k
        assert not np.array_equal(t["ema." + k], t[k]), k
    assert all(v.dtype == np.float32 for v in t.values())
    if d["training"]["sr_aux_weight"] > 0:
        assert "generator.sr_embed.weight" in t
    assert int(meta["d_steps"]) == st.d_steps and int(meta["g_steps"]) == st.g_steps


@pytest.mark.parametrize("name", NAMES)
def test_expected_outputs_match_reference(name):
    jpath, cpath, iopath = _paths(name)
    d = R.load_descriptor(jpath)
    io, _ = R.st_load(iopath)
    assert all(v.dtype == np.float32 for v in io.values())
    n, S, C = io["z"].shape[0], d["image"]["size"], d["image"]["channels"]
    assert io["z"].shape == (n, d["latent_dim"])
    assert io["images"].shape == (n, C, S, S)
    assert io["images"].min() >= -1 and io["images"].max() <= 1

    st = R.State(d, torch.float64).load(cpath)
    G, D = st.model.generator, st.model.discriminator
    masks = R.locality_masks(d, st.g_steps)
    z = torch.from_numpy(io["z"]).double()
    x = torch.from_numpy(io["images"]).double()
    with torch.no_grad():
        _close(D(x).numpy(), io["scores"].astype(np.float64), f"{name}: scores")
        _close(G(z, masks).numpy(), io["gen_raw"].astype(np.float64), f"{name}: gen_raw")
        if "sr_raw" in io:
            low = torch.nn.functional.avg_pool2d(x, S // G.res[1])
            _close(low.numpy(), io["sr_lowres"].astype(np.float64), f"{name}: sr_lowres")
            _close(G.forward_sr(low, masks).numpy(), io["sr_raw"].astype(np.float64),
                   f"{name}: sr_raw")
        for k, p in G.named_parameters():
            p.copy_(st.ema["generator." + k])
        _close(G(z, masks).numpy(), io["gen_ema"].astype(np.float64), f"{name}: gen_ema")
        if masks:                                     # the mask must matter
            assert not np.allclose(G(z, None).numpy(), io["gen_ema"], rtol=1e-3)
    assert not np.allclose(io["gen_ema"], io["gen_raw"], rtol=1e-3)


def test_regeneration_is_byte_identical(tmp_path):
    out = tmp_path / "fixtures"
    subprocess.run([sys.executable, SCRIPT, "--ref", REF_DIR, "--out", str(out)],
                   check=True, capture_output=True)
    made = sorted(os.listdir(out))
    committed = sorted(f for f in os.listdir(FIXDIR)
                       if f.endswith(".json") or f.endswith(".safetensors"))
    assert made == committed
    for f in made:
        with open(out / f, "rb") as a, open(os.path.join(FIXDIR, f), "rb") as b:
            assert a.read() == b.read(), f"{f} differs from the committed fixture: regenerate it"
