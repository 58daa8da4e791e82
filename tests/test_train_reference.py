"""Check the committed training-step fixtures in tests/fixtures/train/ against the
project's PyTorch oracle (tests/reference/oracle.py).

  /usr/bin/python3 -m pytest tests/test_train_reference.py -p no:cacheprovider

- every fixture is complete and self-consistent (descriptor, checkpoints, inputs,
  statistics, step counters, G-step schedule);
- re-running the oracle's train_step in float64 from NAME.init.safetensors with
  the stored inputs gives the stored deltas, after-checkpoint (weights, EMA, Adam
  moments) and statistics, so stale fixtures are caught;
- for the SGD / lr 1 / no clip / one-call fixtures, every delta is minus the gradient
  of the loss written out here from docs/SPECIFICATION.md "Training step" (a check
  of the oracle's train_step that does not go through it);
- tests/fixtures/make_train_fixtures.py regenerates byte-identical files.

Needs torch and numpy (/usr/bin/python3); without them these tests fail.
"""
import glob
import json
import math
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXDIR = os.path.join(HERE, "fixtures", "train")
SCRIPT = os.path.join(HERE, "fixtures", "make_train_fixtures.py")

# `make test` installs torch: a missing oracle is a failure, never a silent skip
try:
    import numpy as np
    import torch
except ImportError as e:
    raise RuntimeError(f"the PyTorch oracle needs torch and numpy ({e}): "
                       "run with /usr/bin/python3 after `make test-deps`") from e
sys.path.insert(0, os.path.join(HERE, "reference"))
import oracle as O  # noqa: E402

F = torch.nn.functional
EXPECTED = {"sgd-wgan-gp-eps", "sgd-wgan-gp", "sgd-hinge", "sgd-lsgan", "sgd-mtct",
            "sgd-locality", "sgd-gray-pixelnorm", "sgd-clip", "adam-recipe", "adam-clip",
            "sgd-cond", "sgd-conv-res", "sgd-conv-plain", "sgd-cond-conv", "sgd-cond-cls",
            "sgd-cond-conv-cls", "sgd-lr-schedule", "sgd-r1-conv", "sgd-r1-lsgan"}
NAMES = sorted(os.path.basename(p)[:-len(".delta.safetensors")]
               for p in glob.glob(os.path.join(FIXDIR, "*.delta.safetensors")))
SUFFIXES = (".json", ".init.safetensors", ".io.safetensors", ".after.safetensors",
            ".delta.safetensors")
RTOL = 1e-6            # relative L2, per tensor
MAX_BYTES = 2_300_000  # 19 fixtures: the conv D and the conditional ones added ~0.4 MB, R1's 0.16


def _path(name, suffix):
    return os.path.join(FIXDIR, name + suffix)


def _rel(actual, expected):
    """Relative L2 distance; an all-zero expectation must be matched exactly."""
    a = np.asarray(actual, np.float64).ravel()
    e = np.asarray(expected, np.float64).ravel()
    assert a.shape == e.shape
    err, ref = float(np.linalg.norm(a - e)), float(np.linalg.norm(e))
    return err / ref if ref > 0 else (0.0 if err == 0 else math.inf)


def _load(name):
    d = O.load_descriptor(_path(name, ".json"))
    io, io_meta = O.st_read(_path(name, ".io.safetensors"))
    return d, io, int(io_meta["steps"])


def _labels(io):
    """A conditional fixture's classes as train_step's keyword arguments."""
    return {k: torch.from_numpy(io[k].astype(np.int64))
            for k in ("labels", "fake_d", "fake_g") if k in io}


def _g_calls(d, K):
    """1-based calls with a G update (d_steps starts at 0 in every fixture)."""
    return [k for k in range(1, K + 1) if (k - 1) % d["training"]["n_critic"] == 0]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fixtures_present_and_small():
    assert set(NAMES) >= EXPECTED
    total = 0
    for name in NAMES:
        for s in SUFFIXES:
            assert os.path.isfile(_path(name, s)), _path(name, s)
    for f in os.listdir(FIXDIR):
        total += os.path.getsize(os.path.join(FIXDIR, f))
    assert total < MAX_BYTES, f"tests/fixtures/train holds {total} bytes"


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_consistent(name):
    with open(_path(name, ".json")) as f:
        raw = json.load(f)
    assert raw["format"] == "transgan" and raw["format_version"] == 1 and raw["name"] == name
    d, io, K = _load(name)
    t = d["training"]
    assert t["diffaug"] == []
    init, imeta = O.st_read(_path(name, ".init.safetensors"))
    after, ameta = O.st_read(_path(name, ".after.safetensors"))
    delta, _ = O.st_read(_path(name, ".delta.safetensors"))
    for meta in (imeta, ameta):
        assert meta["format"] == "transgan-checkpoint"
        assert O.load_descriptor(meta["descriptor"]) == d
        assert meta["descriptor"] == O.descriptor_json(d)
    params = {n: shape for n, shape, _ in O.parameter_table(d)}
    gnames = [k for k in params if k.startswith("generator.")]
    # the starting checkpoint
    assert int(imeta["d_steps"]) == 0 and int(imeta["g_steps"]) == 0
    want = set(params) | ({"ema." + k for k in gnames} if t["ema"] else set())
    assert set(init) == want
    for k in gnames if t["ema"] else []:
        assert not np.array_equal(init["ema." + k], init[k]), k
    # the checkpoint after K calls
    g_calls = _g_calls(d, K)
    assert int(ameta["d_steps"]) == K and int(ameta["g_steps"]) == len(g_calls)
    if t["optimizer"] == "adam":
        want |= {f"adam.{mv}.{k}" for k in params for mv in "mv"}
    assert set(after) == want
    assert set(delta) == set(params)
    for k in params:
        assert delta[k].shape == init[k].shape == after[k].shape == params[k], k
    # inputs and statistics
    S, C, L = d["image"]["size"], d["image"]["channels"], d["latent_dim"]
    shapes = {"real": (t["d_batch"], C, S, S), "zd": (t["d_batch"], L),
              "zg": (t["g_batch"], L), "alpha": (t["d_batch"],)}
    if d["num_classes"]:
        shapes.update(labels=(t["d_batch"],), fake_d=(t["d_batch"],), fake_g=(t["g_batch"],))
        for k, v in _labels(io).items():
            assert np.array_equal(v.numpy(), io[k]), k
            assert 0 <= int(v.min()) and int(v.max()) < d["num_classes"], k
    shapes.update({"stats." + s: (K,) for s in ("d_loss", "gp", "g_loss", "d_grad_norm",
                                                "g_grad_norm")})
    assert {k: v.shape for k, v in io.items()} == shapes
    for tensors in (init, after, delta, io):
        assert all(v.dtype == np.float32 for v in tensors.values())
    assert io["real"].min() >= -1 and io["real"].max() <= 1
    assert io["alpha"].min() >= 0 and io["alpha"].max() < 1
    has_g = np.array([k + 1 in g_calls for k in range(K)])
    for s in ("g_loss", "g_grad_norm"):
        assert np.array_equal(np.isnan(io["stats." + s]), ~has_g), s
    assert np.isfinite(io["stats.d_loss"]).all() and np.isfinite(io["stats.d_grad_norm"]).all()
    if t["loss"] in ("wgan-gp", "wgan-gp-eps"):
        assert (io["stats.gp"] > 0).all()
    elif t["r1_gamma"] > 0:                 # R1 on the D steps it is due, 0 on the others
        due = np.array([k % t["r1_interval"] == 0 for k in range(K)])
        assert ((io["stats.gp"] > 0) == due).all()
    else:
        assert (io["stats.gp"] == 0).all()
    # every parameter moves, except those whose gradient vanishes identically
    still = sorted(k for k, v in delta.items() if not v.any())
    allowed = ([k for k in ("discriminator.head.bias", "discriminator.norm.bias") if k in params]
               if t["loss"] == "wgan-gp" else [])
    assert still == allowed
    # the float32 delta agrees with the float32 checkpoints to their rounding
    for k in params:
        diff = after[k].astype(np.float64) - init[k].astype(np.float64)
        scale = max(1.0, np.abs(init[k]).max(), np.abs(after[k]).max())
        assert np.abs(diff - delta[k]).max() <= 1e-6 * scale, k


@pytest.mark.parametrize("name", NAMES)
def test_oracle_rerun_matches(name):
    d, io, K = _load(name)
    st = O.State.load(_path(name, ".init.safetensors"), d, torch.float64)
    init = {k: p.detach().clone() for k, p in st.params.items()}
    x = {k: torch.from_numpy(io[k]).double() for k in ("real", "zd", "zg", "alpha")}
    stats = [O.train_step(st, x["real"], x["zd"], x["zg"], x["alpha"], **_labels(io))
             for _ in range(K)]

    delta, _ = O.st_read(_path(name, ".delta.safetensors"))
    after, ameta = O.st_read(_path(name, ".after.safetensors"))
    bad = {}
    for k, p in st.params.items():
        for what, got, want in (("delta", (p.detach() - init[k]).numpy(), delta[k]),
                                ("after", p.detach().numpy(), after[k])):
            r = _rel(got, want)
            if not r <= RTOL:
                bad[f"{what} {k}"] = r
    for k, v in (st.ema or {}).items():
        r = _rel(v.numpy(), after["ema." + k])
        if not r <= RTOL:
            bad["ema." + k] = r
    for k, (m, v) in st.adam.items():
        for mv, got in (("m", m), ("v", v)):
            r = _rel(got.numpy(), after[f"adam.{mv}.{k}"])
            if not r <= RTOL:
                bad[f"adam.{mv}.{k}"] = r
    assert not bad, f"{name}: stale or wrong fixture (relative L2 errors): {bad}"
    assert int(ameta["d_steps"]) == st.d_steps and int(ameta["g_steps"]) == st.g_steps
    nan = float("nan")
    for key, got in (("d_loss", [s["d_loss"] for s in stats]),
                     ("gp", [s["gp"] for s in stats]),
                     ("g_loss", [s.get("g_loss", nan) for s in stats]),
                     ("d_grad_norm", [s["d_grad_norm"] for s in stats]),
                     ("g_grad_norm", [s.get("g_grad_norm", nan) for s in stats])):
        np.testing.assert_allclose(np.array(got), io["stats." + key].astype(np.float64),
                                   rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=key)


def _class_ce(h, E, y):
    """docs/SPECIFICATION.md "Class conditioning": the class loss, cross entropy
    of the logits h E^T (written out: logsumexp minus the label's logit)."""
    logits = h @ E.t()
    return (torch.logsumexp(logits, 1) - logits.gather(1, y.long().view(-1, 1)).view(-1)).mean()


def _spec_d_loss(t, D, real, fake, alpha, yr=None, yf=None, E=None):
    """docs/SPECIFICATION.md "Training step" 1, without augmentation (a
    conditional model: real and interpolates with yr, fakes with yf; E the
    class embedding, for the class loss on the real batch)."""
    if t["r1_gamma"] > 0:                   # R1 (due on D step 1) on the real batch
        r = real.detach().clone().requires_grad_(True)
        g, = torch.autograd.grad(D(r, yr).sum(), r, create_graph=True)
        r1 = (g.flatten(1) ** 2).sum(dim=1).mean()
        return (_spec_d_loss(dict(t, r1_gamma=0), D, real, fake, alpha, yr, yf, E)
                + t["r1_gamma"] / 2 * t["r1_interval"] * r1)
    dr, hr = D(real, yr, features=True)
    df = D(fake, yf)
    kind = t["loss"]
    if t["class_loss_weight"] > 0:
        cls = t["class_loss_weight"] * _class_ce(hr, E, yr)
        return _spec_d_loss(dict(t, class_loss_weight=0), D, real, fake, alpha, yr, yf) + cls
    if kind == "hinge":
        return F.relu(1 - dr).mean() + F.relu(1 + df).mean()
    if kind == "lsgan":
        return ((dr - 1) ** 2).mean() + (df ** 2).mean()
    loss = -dr.mean() + df.mean()
    if kind == "wgan-gp-eps":
        loss = loss + t["drift_weight"] * dr.mean() ** 2
    a = alpha.view(-1, 1, 1, 1)
    xh = (a * real + (1 - a) * fake).requires_grad_(True)
    g, = torch.autograd.grad(D(xh, yr).sum(), xh, create_graph=True)
    return loss + t["gp_weight"] * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _plain_sgd(name):
    """One SGD call at lr 1 without clipping: the delta is minus the gradient."""
    t = O.load_descriptor(_path(name, ".json"))["training"]
    return t["optimizer"] == "sgd" and t["g_lr"] == t["d_lr"] == 1 and t["grad_clip"] == 0


@pytest.mark.parametrize("name", [n for n in NAMES if _plain_sgd(n)])
def test_sgd_delta_is_minus_gradient(name):
    d, io, K = _load(name)
    t = d["training"]
    assert K == 1
    delta, _ = O.st_read(_path(name, ".delta.safetensors"))
    st = O.State.load(_path(name, ".init.safetensors"), d, torch.float64)
    G, D = st.model.generate, st.model.discriminate
    x = {k: torch.from_numpy(io[k]).double() for k in ("real", "zd", "zg", "alpha")}
    masks = O.locality_masks(d, 0)
    dp = {k: st.params[k] for k in st.names("discriminator")}
    gp = {k: st.params[k] for k in st.names("generator")}
    y = _labels(io)
    yr, yd, yg = y.get("labels"), y.get("fake_d"), y.get("fake_g")
    # D: gradient at the initial weights
    with torch.no_grad():
        fake = G(x["zd"], masks, yd)
    E = dp.get("discriminator.class_embed")
    loss = _spec_d_loss(t, D, x["real"], fake, x["alpha"], yr, yd, E)
    grads = torch.autograd.grad(loss, list(dp.values()))
    bad = {k: _rel(-g.numpy(), delta[k]) for k, g in zip(dp, grads)}
    # G: gradient with D already updated
    with torch.no_grad():
        for k, p in dp.items():
            p.add_(torch.from_numpy(delta[k]).double())
    out, hg = D(G(x["zg"], masks, yg), yg, features=True)
    loss = ((out - 1) ** 2).mean() if t["loss"] == "lsgan" else -out.mean()
    if t["class_loss_weight"] > 0:
        loss = loss + t["class_loss_weight"] * _class_ce(hg, E, yg)
    if t["sr_aux_weight"] > 0:
        low = F.avg_pool2d(x["real"], d["image"]["size"] // O.stage_widths(d)[1])
        loss = loss + t["sr_aux_weight"] * ((st.model.generate_sr(low, masks, yr) - x["real"]) ** 2).mean()
    grads = torch.autograd.grad(loss, list(gp.values()))
    bad.update({k: _rel(-g.numpy(), delta[k]) for k, g in zip(gp, grads)})
    # the D update above used the float32-rounded delta: allow for that in G's gradient
    bad = {k: r for k, r in bad.items() if not r <= 1e-5}
    assert not bad, f"{name}: delta != -gradient (relative L2 errors): {bad}"


def test_regeneration_is_byte_identical(tmp_path):
    out = tmp_path / "train"
    subprocess.run([sys.executable, SCRIPT, "--out", str(out)], check=True, capture_output=True)
    made = sorted(os.listdir(out))
    committed = sorted(f for f in os.listdir(FIXDIR)
                       if f.endswith(".json") or f.endswith(".safetensors"))
    assert made == committed
    for f in made:
        with open(out / f, "rb") as a, open(os.path.join(FIXDIR, f), "rb") as b:
            assert a.read() == b.read(), f"{f} differs from the committed fixture: regenerate it"
