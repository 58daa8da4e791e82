"""Check the committed conformance fixtures in tests/fixtures/ against the project's
PyTorch oracle (tests/reference/oracle.py).

  /usr/bin/python3 -m pytest tests/test_reference_io.py

- every fixture's descriptor is valid and matches the one inside its checkpoint;
- the expected outputs stored in NAME.io.safetensors are what the oracle computes
  now from the stored checkpoint (so stale fixtures are caught);
- tests/fixtures/make_fixtures.py regenerates byte-identical files.

Needs torch and numpy (/usr/bin/python3); without them these tests fail.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXDIR = os.path.join(HERE, "fixtures")
SCRIPT = os.path.join(FIXDIR, "make_fixtures.py")

# `make test` installs torch: a missing oracle is a failure, never a silent skip
try:
    import numpy as np
    import torch
except ImportError as e:
    raise RuntimeError(f"the PyTorch oracle needs torch and numpy ({e}): "
                       "run with /usr/bin/python3 after `make test-deps`") from e
sys.path.insert(0, os.path.join(HERE, "reference"))
import oracle as O  # noqa: E402

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
    assert set(NAMES) >= {"tiny-ln", "gray-relbias-tanh", "rgba-locality", "rgb-sr", "cond-conv"}
    for name in NAMES:
        for p in _paths(name):
            assert os.path.isfile(p), p


@pytest.mark.parametrize("name", NAMES)
def test_descriptor_and_checkpoint(name):
    jpath, cpath, _ = _paths(name)
    with open(jpath) as f:
        raw = json.load(f)
    assert raw["format"] == "transgan" and raw["format_version"] == 1 and raw["name"] == name
    d = O.load_descriptor(jpath)
    t, meta = O.st_read(cpath)
    assert meta["format"] == "transgan-checkpoint"
    assert O.load_descriptor(meta["descriptor"]) == d   # class keys may be left out
    assert meta["descriptor"] == O.descriptor_json(d)
    st = O.State.load(cpath, d)                       # all weights present, shapes right
    table = O.parameter_table(d)
    assert set(t) == {n for n, _, _ in table} | {"ema." + n for n in st.names("generator")}
    for k in st.names("generator"):                   # the EMA is stored and differs
        assert not np.array_equal(t["ema." + k], t[k]), k
    assert all(v.dtype == np.float32 for v in t.values())
    if d["training"]["sr_aux_weight"] > 0:
        assert "generator.sr_embed.weight" in t
    assert int(meta["d_steps"]) == st.d_steps and int(meta["g_steps"]) == st.g_steps


@pytest.mark.parametrize("name", NAMES)
def test_expected_outputs_match_oracle(name):
    jpath, cpath, iopath = _paths(name)
    d = O.load_descriptor(jpath)
    io, _ = O.st_read(iopath)
    assert all(v.dtype == np.float32 for v in io.values())
    n, S, C = io["z"].shape[0], d["image"]["size"], d["image"]["channels"]
    assert io["z"].shape == (n, d["latent_dim"])
    assert io["images"].shape == (n, C, S, S)
    assert io["images"].min() >= -1 and io["images"].max() <= 1
    assert ("sr_raw" in io) == (d["training"]["sr_aux_weight"] > 0)

    assert ("labels" in io) == (d["num_classes"] > 0)
    y = None
    if "labels" in io:                                # integers in [0, num_classes)
        assert io["labels"].shape == (n,)
        y = torch.from_numpy(io["labels"].astype(np.int64))
        assert np.array_equal(y.numpy(), io["labels"]) and 0 <= int(y.min())
        assert int(y.max()) < d["num_classes"]
    st = O.State.load(cpath, d, torch.float64)
    masks = O.locality_masks(d, st.g_steps)
    z = torch.from_numpy(io["z"]).double()
    x = torch.from_numpy(io["images"]).double()
    with torch.no_grad():
        _close(st.model.discriminate(x, y).numpy(), io["scores"].astype(np.float64),
               f"{name}: scores")
        _close(st.model.generate(z, masks, y).numpy(), io["gen_raw"].astype(np.float64),
               f"{name}: gen_raw")
        if "sr_raw" in io:
            low = st.model.sr_lowres(x)
            assert low.shape[-1] == O.stage_widths(d)[1]
            _close(low.numpy(), io["sr_lowres"].astype(np.float64), f"{name}: sr_lowres")
            _close(st.model.generate_sr(low, masks, y).numpy(), io["sr_raw"].astype(np.float64),
                   f"{name}: sr_raw")
        ema = st.ema_model()
        _close(ema.generate(z, masks, y).numpy(), io["gen_ema"].astype(np.float64),
               f"{name}: gen_ema")
        if y is not None:                             # the classes must matter
            other = (y + 1) % d["num_classes"]
            assert not np.allclose(ema.generate(z, masks, other).numpy(), io["gen_ema"], rtol=1e-3)
            assert not np.allclose(st.model.discriminate(x, other).numpy(), io["scores"],
                                   rtol=1e-3)
        if masks:                                     # the mask must matter
            assert not np.allclose(ema.generate(z, None).numpy(), io["gen_ema"], rtol=1e-3)
    assert not np.allclose(io["gen_ema"], io["gen_raw"], rtol=1e-3)


def test_regeneration_is_byte_identical(tmp_path):
    out = tmp_path / "fixtures"
    subprocess.run([sys.executable, SCRIPT, "--out", str(out)], check=True, capture_output=True)
    made = sorted(os.listdir(out))
    committed = sorted(f for f in os.listdir(FIXDIR)
                       if f.endswith(".json") or f.endswith(".safetensors"))
    assert made == committed
    for f in made:
        with open(out / f, "rb") as a, open(os.path.join(FIXDIR, f), "rb") as b:
            assert a.read() == b.read(), f"{f} differs from the committed fixture: regenerate it"
