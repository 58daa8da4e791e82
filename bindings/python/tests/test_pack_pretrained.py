"""scripts/pack_pretrained.py: a small sharing copy of a checkpoint that the library loads."""
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

import transgan

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "pack_pretrained.py"

DESC = {
    "format": "transgan", "format_version": 1, "name": "pack-test",
    "image": {"size": 8, "channels": 1}, "latent_dim": 6,
    "generator": {"bottom_width": 4, "embed_dim": 16, "depths": [1, 1], "heads": 2, "mlp_ratio": 2},
    "discriminator": {"patch_size": 2, "embed_dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 2},
    "training": {"d_batch": 4, "g_batch": 4, "n_critic": 1, "seed": 3, "g_lr": 0.01, "d_lr": 0.01,
                 "ema": {"beta": 0.5}},
}


def pack(src, dst, *args):
    return subprocess.run([sys.executable, str(SCRIPT), str(src), str(dst), *args],
                          capture_output=True, text=True)


def header(path):
    b = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    return json.loads(b[8:8 + n])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint whose EMA differs from its generator, with Adam moments."""
    path = tmp_path_factory.mktemp("pack") / "full.safetensors"
    with transgan.Model(DESC) as m:
        real = np.random.default_rng(0).uniform(-1, 1, (4, 1, 8, 8)).astype(np.float32)
        for _ in range(3):
            m.train_step(real)
        m.save(path)
    return path


@pytest.mark.parametrize("dtype,atol", [("F32", 0.0), ("F16", 2e-2), ("BF16", 1e-1)])
def test_packed_file_samples_like_the_ema(trained, tmp_path, dtype, atol):
    out = tmp_path / ("packed-%s.safetensors" % dtype)
    r = pack(trained, out, "--dtype", dtype)
    assert r.returncode == 0, r.stderr
    h = header(out)
    names = [k for k in h if k != "__metadata__"]
    assert all(h[k]["dtype"] == dtype for k in names)
    assert not any(k.startswith(("ema.", "adam.")) for k in names)
    assert set(h["__metadata__"]) == {"format", "descriptor", "d_steps", "g_steps"}
    assert out.stat().st_size < trained.stat().st_size / (3 if dtype == "F32" else 6)
    with transgan.Model.load(trained) as full, transgan.Model.load(out) as small:
        assert (small.d_steps, small.g_steps) == (full.d_steps, full.g_steps) == (3, 3)
        assert small.descriptor == full.descriptor
        z = full.latent(5, seed=1)
        ema = full.generate(z=z, ema=True)
        assert np.abs(ema - full.generate(z=z, ema=False)).max() > 1e-3  # the EMA differs
        got_ema, got_raw = small.generate(z=z, ema=True), small.generate(z=z, ema=False)
        np.testing.assert_array_equal(got_ema, got_raw)        # the generator *is* the EMA
        np.testing.assert_allclose(got_ema, ema, rtol=0, atol=atol)
        x = full.generate(z=z)
        np.testing.assert_allclose(small.discriminate(x), full.discriminate(x), rtol=0.05,
                                   atol=max(atol, 1e-6) * 10)


def test_a_checkpoint_without_ema_keeps_its_generator(trained, tmp_path):
    src, out = tmp_path / "w.safetensors", tmp_path / "g.safetensors"
    with transgan.Model.load(trained) as m:
        m.save(src, weights_only=True)                 # no EMA tensors
    assert not any(k.startswith("ema.") for k in header(src))
    assert pack(src, out, "--dtype", "F32").returncode == 0
    with transgan.Model.load(src) as a, transgan.Model.load(out) as b:
        z = a.latent(3, seed=2)
        np.testing.assert_array_equal(a.generate(z=z, ema=False), b.generate(z=z, ema=False))


def test_raw_packs_the_trained_generator(trained, tmp_path):
    out = tmp_path / "raw.safetensors"
    r = pack(trained, out, "--dtype", "F32", "--raw")
    assert r.returncode == 0, r.stderr
    assert not any(k.startswith(("ema.", "adam.")) for k in header(out))
    with transgan.Model.load(trained) as full, transgan.Model.load(out) as small:
        z = full.latent(5, seed=1)
        raw = full.generate(z=z, ema=False)
        assert np.abs(raw - full.generate(z=z, ema=True)).max() > 1e-3
        np.testing.assert_array_equal(small.generate(z=z, ema=True), raw)  # F32: exact
        np.testing.assert_array_equal(small.generate(z=z, ema=False), raw)


def test_bad_inputs_fail_with_a_message(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    r = pack(short, tmp_path / "o.safetensors")
    assert r.returncode != 0 and "too short" in r.stderr
    other = tmp_path / "other.safetensors"
    h = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    other.write_bytes(struct.pack("<Q", len(h)) + h + b"\0\0\0\0")
    r = pack(other, tmp_path / "o.safetensors")
    assert r.returncode != 0 and "not a libtransgan checkpoint" in r.stderr
    assert not (tmp_path / "o.safetensors").exists()
