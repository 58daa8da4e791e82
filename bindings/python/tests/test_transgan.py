"""Tests of the Python bindings (bindings/python/transgan).

Run from the repository root after `make`:
    /usr/bin/python3 -m pytest -p no:cacheprovider bindings/python/tests
"""
import copy
import ctypes
import json
import math
import os
import pathlib
import pickle
import re
import shutil
import struct
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import transgan
from transgan import _lib

PKG_ROOT = pathlib.Path(__file__).resolve().parent.parent          # bindings/python
REPO = PKG_ROOT.parent.parent
HEADER = REPO / "include" / "transgan.h"
FIX = REPO / "tests" / "fixtures"
TINY = FIX / "tiny-ln.safetensors"          # 8x8x3, latent 10, with an EMA that differs
TINY_JSON = FIX / "tiny-ln.json"
GRAY = FIX / "gray-relbias-tanh.safetensors"  # 6x6x1, d_steps 7, g_steps 3

TRAIN_DESC = {
    "format": "transgan", "format_version": 1, "name": "tiny-train",
    "image": {"size": 8}, "latent_dim": 10,
    "generator": {"bottom_width": 4, "embed_dim": 24, "depths": [1, 2], "heads": 3,
                  "mlp_ratio": 2},
    "discriminator": {"patch_size": 2, "embed_dim": 12, "depth": 2, "heads": 3,
                      "mlp_ratio": 2},
    "training": {"d_batch": 3, "g_batch": 4, "n_critic": 2, "seed": 99},
}
STAT_KEYS = {"g_updated", "d_steps", "g_steps", "d_loss", "gp", "d_real", "d_fake", "g_loss",
             "sr_loss", "d_grad_norm", "g_grad_norm"}


def read_safetensors(path):
    """A tiny safetensors reader (F32 only) for the fixtures."""
    b = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
    return out


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def to_u8(x):
    """The header's rule: round((x + 1) * 127.5), halves away from zero, clamped."""
    v = (np.asarray(x, np.float32) + np.float32(1)) * np.float32(127.5)
    r = np.floor(v.astype(np.float64) + 0.5)
    return np.where(v > 0, np.minimum(r, 255), 0).astype(np.uint8)


@pytest.fixture
def tiny():
    m = transgan.Model.load(TINY)
    yield m
    m.close()


@pytest.fixture
def trainer():
    m = transgan.Model(TRAIN_DESC)
    yield m
    m.close()


def run_python(code, env_changes, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSGAN_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(PKG_ROOT)
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------- the library

def test_library_found_through_build_tree(tmp_path):
    r = run_python("import transgan; print(transgan.library_source); print(transgan.library_path)",
                   {}, tmp_path)
    assert r.returncode == 0, r.stderr
    source, path = r.stdout.splitlines()
    assert source == "build tree"
    assert pathlib.Path(path) == REPO / "build" / "libtransgan.so.0"
    if "TRANSGAN_LIBRARY" not in os.environ:
        assert transgan.library_source == "build tree"


def test_library_from_environment(tmp_path):
    so = sorted((REPO / "build").glob("libtransgan.so.0.*"))[0]
    r = run_python("import transgan; print(transgan.library_source, transgan.library_path)",
                   {"TRANSGAN_LIBRARY": str(so)}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TRANSGAN_LIBRARY", str(so)]
    # set but unloadable: an ImportError, no fallback to the build tree
    r = run_python("import transgan", {"TRANSGAN_LIBRARY": str(tmp_path / "nope.so")}, tmp_path)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "TRANSGAN_LIBRARY" in r.stderr and "nope.so" in r.stderr


def test_abi_check_rules():
    assert _lib.check_abi(100) == (0, 1, 0)
    assert _lib.check_abi(0 * 10000 + 1 * 100 + 3) == (0, 1, 3)
    with pytest.raises(ImportError, match=r"version 0\.7\.3.*made for 0\.1\.x"):
        _lib.check_abi(0 * 10000 + 7 * 100 + 3)  # before 1.0 a minor release may break
    with pytest.raises(ImportError, match=r"version 1\.0\.0 \(ABI major 1\).*ABI major 0"):
        _lib.check_abi(10000)
    with pytest.raises(ImportError, match=r"version 0\.0\.9.*made for 0\.1\.x"):
        _lib.check_abi(9)


@pytest.mark.parametrize("number,expect", [(10203, r"version 1\.2\.3 \(ABI major 1\)"),
                                           (5, r"version 0\.0\.5.*made for 0\.1\.x")])
def test_import_refuses_wrong_abi(tmp_path, number, expect):
    src = tmp_path / "fake.c"
    src.write_text("unsigned tg_version(void) { return %du; }\n"
                   "const char *tg_version_string(void) { return \"x\"; }\n" % number)
    so = tmp_path / "libfake.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    r = run_python("import transgan", {"TRANSGAN_LIBRARY": str(so)}, tmp_path)
    assert r.returncode != 0
    assert re.search("ImportError: transgan: .*" + expect, r.stderr), r.stderr


def test_every_header_function_is_declared():
    text = HEADER.read_text()
    decls = dict(re.findall(r"TG_API\s+[^;(]*?\b(tg_\w+)\s*\(([^)]*)\)\s*;", text, re.S))
    assert len(decls) >= 18
    assert set(decls) == set(_lib._SIGNATURES)
    for name, params in decls.items():
        fn = getattr(_lib.lib, name)
        restype, argtypes = _lib._SIGNATURES[name]
        assert fn.argtypes == argtypes and fn.restype is restype, name
        nparams = 0 if params.strip() == "void" else params.count(",") + 1
        assert len(argtypes) == nparams, name


def test_train_stats_layout_matches_header():
    body = re.search(r"typedef struct tg_train_stats \{(.*?)\} tg_train_stats;",
                     HEADER.read_text(), re.S).group(1)
    fields = re.findall(r"^\s*(uint32_t|uint64_t|double)\s+(\w+);", body, re.M)
    ctypes_of = {"uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64,
                 "double": ctypes.c_double}
    assert [(n, ctypes_of[t]) for t, n in fields] == list(_lib.TrainStats._fields_)
    assert ctypes.sizeof(_lib.TrainStats) == 88


def test_version():
    header = re.search(r'#define TG_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
    assert transgan.version() == header
    assert transgan.version() == "%d.%d.%d" % transgan.library_version
    assert transgan.library_version[0] == transgan.EXPECTED_MAJOR
    assert transgan.library_version >= transgan.MINIMUM_VERSION


def test_status_enum_matches_header():
    body = re.search(r"typedef enum tg_status \{(.*?)\} tg_status;", HEADER.read_text(),
                     re.S).group(1)
    pairs = re.findall(r"TG_(?:ERR_)?(\w+)\s*=\s*(\d+)", body)
    assert {k: int(v) for k, v in pairs} == {s.name: s.value for s in transgan.Status}


# ---------------------------------------------------------------- creating

def test_create_from_dict_text_and_path(tmp_path):
    desc = json.loads(TINY_JSON.read_text())
    outs = []
    for d in (desc, json.dumps(desc), "\n  " + json.dumps(desc), json.dumps(desc).encode(),
              str(TINY_JSON), TINY_JSON, bytes(TINY_JSON)):
        with transgan.Model(d, seed=5) as m:
            assert m.descriptor["name"] == "tiny-ln"
            outs.append(m.generate(2, seed=1))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_seed_none_uses_the_descriptor_seed():
    with transgan.Model(TRAIN_DESC) as a, transgan.Model(TRAIN_DESC, seed=99) as b, \
            transgan.Model(TRAIN_DESC, seed=100) as c:
        np.testing.assert_array_equal(a.generate(2), b.generate(2))
        assert not np.array_equal(a.generate(2), c.generate(2))
    assert transgan.TG_SEED_FROM_DESCRIPTOR == 2**64 - 1
    with transgan.Model(TRAIN_DESC, seed=transgan.TG_SEED_FROM_DESCRIPTOR) as d, \
            transgan.Model(TRAIN_DESC, seed=99) as b:
        np.testing.assert_array_equal(d.generate(2), b.generate(2))


def test_create_bad_arguments():
    with pytest.raises(TypeError):
        transgan.Model(42)
    with pytest.raises(TypeError):
        transgan.Model(TRAIN_DESC, seed="1")
    with pytest.raises(ValueError):
        transgan.Model(TRAIN_DESC, seed=-1)
    with pytest.raises(ValueError):
        transgan.Model(TRAIN_DESC, seed=2**64)
    with pytest.raises(ValueError):
        transgan.Model('{"format": "transgan"\0}')


def test_bad_descriptor_names_the_key_path():
    bad = dict(TRAIN_DESC, generator=dict(TRAIN_DESC["generator"], depths=[1, -2]))
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model(bad)
    e = ei.value
    assert isinstance(e, Exception)
    assert e.status == transgan.Status.DESCRIPTOR == 4 and isinstance(e.status, int)
    assert e.status_name == "invalid model descriptor"
    assert "generator.depths[1]" in e.message
    assert "invalid model descriptor" in str(e) and "generator.depths[1]" in str(e)


def test_bad_descriptor_unknown_key_and_malformed_json(tmp_path):
    with pytest.raises(transgan.TransGANError, match=r"generator\.color") as ei:
        transgan.Model(dict(TRAIN_DESC, generator={"color": 1}))
    assert ei.value.status == transgan.Status.DESCRIPTOR
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model('{"format": "transgan",\n  "format_version": }')
    assert ei.value.status == transgan.Status.DESCRIPTOR
    assert re.search(r"line 2, column \d+", ei.value.message), ei.value.message
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(dict(TRAIN_DESC, latent_dim=0)))
    with pytest.raises(transgan.TransGANError, match="latent_dim") as ei:
        transgan.Model(f)
    assert str(f) in ei.value.message


def test_missing_descriptor_file(tmp_path):
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model(tmp_path / "missing.json")
    assert ei.value.status == transgan.Status.IO
    assert ei.value.status_name == "input/output error"
    assert "missing.json" in ei.value.message


# -------------------------------------------------------------- properties

def test_properties(tiny):
    assert (tiny.image_size, tiny.channels, tiny.latent_dim) == (8, 3, 10)
    assert (tiny.d_batch, tiny.g_batch) == (64, 128)          # the defaults
    assert tiny.has_ema is True
    assert isinstance(tiny.g_params, int) and tiny.g_params > 0
    assert isinstance(tiny.d_params, int) and tiny.d_params > 0
    assert (tiny.d_steps, tiny.g_steps) == (0, 0)
    d = tiny.descriptor
    assert isinstance(d, dict) and d["name"] == "tiny-ln"
    assert d["generator"]["depths"] == [1, 2]
    assert d["training"]["n_critic"] == 4                     # defaults are filled in
    assert d == json.loads(json.dumps(d))
    assert not tiny.closed
    assert "tiny-ln" in repr(tiny)


def test_properties_of_another_fixture():
    with transgan.Model.load(GRAY) as m:
        assert (m.image_size, m.channels, m.latent_dim) == (6, 1, 7)
        assert (m.d_steps, m.g_steps) == (7, 3)
    with transgan.Model(TRAIN_DESC) as m:
        assert (m.d_batch, m.g_batch) == (3, 4)
        assert m.has_ema is True
    no_ema = dict(TRAIN_DESC, training=dict(TRAIN_DESC["training"], ema=None))
    with transgan.Model(no_ema) as m:
        assert m.has_ema is False
        np.testing.assert_array_equal(m.generate(2, ema=True), m.generate(2, ema=False))


def _cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
    return "avx512_bf16" in flags and cap in ("", "ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX")


def test_precision(tiny):
    assert tiny.precision == "f32"            # the default
    z = tiny.latent(3, seed=4)
    ref = tiny.generate(z=z)
    tiny.precision = "bf16"
    assert tiny.precision == ("bf16" if _cpu_has_bf16() else "f32")
    np.testing.assert_allclose(tiny.generate(z=z), ref, rtol=0, atol=0.05)
    tiny.precision = "f32"
    assert tiny.precision == "f32"
    np.testing.assert_array_equal(tiny.generate(z=z), ref)
    for bad, err in (("fp16", ValueError), ("BF16", ValueError), (1, TypeError), (None, TypeError)):
        with pytest.raises(err):
            tiny.precision = bad
    assert tiny.precision == "f32"


def test_threads(tiny):
    assert tiny.threads == 0                  # OpenMP's default
    z = tiny.latent(5, seed=2)
    ref = tiny.generate(z=z)
    for n in (1, 2, 0):
        tiny.threads = n
        assert tiny.threads == n
        np.testing.assert_allclose(tiny.generate(z=z), ref, rtol=0, atol=1e-5)
    for bad, err in ((-1, ValueError), (5000, ValueError), (1.5, TypeError), (True, TypeError),
                     ("2", TypeError)):
        with pytest.raises(err):
            tiny.threads = bad
    assert tiny.threads == 0


def test_parameter_counts_match_the_checkpoint(tiny):
    t = read_safetensors(TINY)
    g = sum(v.size for k, v in t.items() if k.startswith("generator."))
    d = sum(v.size for k, v in t.items() if k.startswith("discriminator."))
    assert (tiny.g_params, tiny.d_params) == (g, d)


# ------------------------------------------------------------------ latent

def test_latent(tiny):
    z = tiny.latent(4, seed=3)
    assert z.shape == (4, 10) and z.dtype == np.float32 and z.flags.c_contiguous
    np.testing.assert_array_equal(z, tiny.latent(4, seed=3))
    assert not np.array_equal(z, tiny.latent(4, seed=4))
    np.testing.assert_array_equal(tiny.latent(2, seed=3), z[:2])
    np.testing.assert_array_equal(tiny.latent(3), tiny.latent(3, seed=0))
    assert tiny.latent(0).shape == (0, 10)
    assert tiny.latent(1, seed=2**64 - 1).shape == (1, 10)
    big = tiny.latent(2000, seed=1)
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05
    with pytest.raises(ValueError):
        tiny.latent(-1)
    with pytest.raises(ValueError):
        tiny.latent(1, seed=-5)
    with pytest.raises(TypeError):
        tiny.latent(1.5)
    with pytest.raises(TypeError):
        tiny.latent(1, seed=None)


# ---------------------------------------------------------------- generate

def test_generate_matches_the_reference(tiny):
    io = read_safetensors(FIX / "tiny-ln.io.safetensors")
    assert rel_l2(tiny.generate(z=io["z"]), io["gen_ema"]) < 1e-4
    assert rel_l2(tiny.generate(z=io["z"], ema=False), io["gen_raw"]) < 1e-4
    assert rel_l2(tiny.discriminate(io["images"]), io["scores"]) < 1e-4


def test_generate_is_deterministic(tiny):
    a = tiny.generate(n=3, seed=11)
    assert a.shape == (3, 3, 8, 8) and a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, tiny.generate(n=3, seed=11))
    np.testing.assert_array_equal(a, tiny.generate(z=tiny.latent(3, seed=11)))
    assert not np.array_equal(a, tiny.generate(n=3, seed=12))
    np.testing.assert_array_equal(tiny.generate(2), tiny.generate(2, seed=0))
    assert not np.array_equal(a, tiny.generate(n=3, seed=11, ema=False))


def test_generate_z_conversions(tiny):
    z = tiny.latent(4, seed=2)
    ref = tiny.generate(z=z)
    np.testing.assert_array_equal(tiny.generate(z=z.astype(np.float64)), ref)
    np.testing.assert_array_equal(tiny.generate(z=np.asfortranarray(z)), ref)
    strided = np.zeros((8, 10), np.float32)
    strided[::2] = z
    np.testing.assert_array_equal(tiny.generate(z=strided[::2]), ref)
    np.testing.assert_array_equal(tiny.generate(z=z.tolist()), ref)
    np.testing.assert_array_equal(tiny.generate(n=4, z=z), ref)
    assert tiny.generate(z=np.zeros((2, 10), np.int32)).shape == (2, 3, 8, 8)
    assert tiny.generate(0).shape == (0, 3, 8, 8)


def test_generate_bad_arguments(tiny):
    z = tiny.latent(2)
    with pytest.raises(ValueError):
        tiny.generate()
    with pytest.raises(ValueError):
        tiny.generate(n=3, z=z)
    with pytest.raises(ValueError):
        tiny.generate(z=z, seed=1)
    with pytest.raises(ValueError):
        tiny.generate(z=np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError):
        tiny.generate(z=np.zeros(10, np.float32))
    with pytest.raises(TypeError):
        tiny.generate(z=np.array([["a"] * 10]))
    with pytest.raises(TypeError):
        tiny.generate(z=np.zeros((1, 10), complex))
    with pytest.raises(ValueError):
        tiny.generate(n=-1)
    z[1, 3] = np.nan
    with pytest.raises(transgan.TransGANError) as ei:
        tiny.generate(z=z)
    assert ei.value.status == transgan.Status.NONFINITE
    assert ei.value.status_name == "NaN or infinity"


def test_generate_uint8_is_consistent_with_generate(tiny):
    x = tiny.generate(n=5, seed=4)
    px = tiny.generate_uint8(n=5, seed=4)
    assert px.shape == (5, 8, 8, 3) and px.dtype == np.uint8
    np.testing.assert_array_equal(px, to_u8(x.transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(px, transgan.images_to_pixels(x))
    np.testing.assert_array_equal(px, tiny.generate_uint8(z=tiny.latent(5, seed=4)))
    np.testing.assert_array_equal(tiny.generate_uint8(n=5, seed=4, ema=False),
                                  transgan.images_to_pixels(tiny.generate(n=5, seed=4, ema=False)))
    rgba = tiny.generate_uint8(n=5, seed=4, format="rgba")
    assert rgba.shape == (5, 8, 8, 4)
    np.testing.assert_array_equal(rgba[..., :3], px)
    assert (rgba[..., 3] == 255).all()
    gray = tiny.generate_uint8(n=5, seed=4, format="gray")
    assert gray.shape == (5, 8, 8)
    assert np.abs(gray.astype(int) - transgan.images_to_pixels(x, "gray")).max() == 0
    np.testing.assert_array_equal(tiny.generate_uint8(n=5, seed=4, format=transgan.PixelFormat.RGB8),
                                  px)
    np.testing.assert_array_equal(tiny.generate_uint8(n=5, seed=4, format="RGB"), px)
    assert tiny.generate_uint8(0).shape == (0, 8, 8, 3)


def test_generate_uint8_default_format_follows_channels():
    with transgan.Model.load(GRAY) as m:
        px = m.generate_uint8(n=2, seed=1)
        assert px.shape == (2, 6, 6)
        np.testing.assert_array_equal(px, to_u8(m.generate(n=2, seed=1)[:, 0]))
    rgba = json.loads((FIX / "rgba-locality.json").read_text())
    with transgan.Model(rgba) as m:
        assert m.generate_uint8(n=1).shape == (1, 8, 8, 4)


def test_generate_uint8_bad_format(tiny):
    with pytest.raises(ValueError):
        tiny.generate_uint8(1, format="cmyk")
    with pytest.raises(ValueError):
        tiny.generate_uint8(1, format=2)
    with pytest.raises(TypeError):
        tiny.generate_uint8(1, format=3.0)
    with pytest.raises(ValueError):
        tiny.generate_uint8(z=np.zeros((1, 3)))


# -------------------------------------------------------- images_to_pixels

def test_images_to_pixels():
    x = np.array([-2, -1, -0.999, 0, 0.5, 1, 3, np.nan], np.float32)
    img = np.tile(x.reshape(1, 1, 1, 8), (2, 3, 8, 1))          # [2, 3, 8, 8]
    px = transgan.images_to_pixels(img)
    assert px.shape == (2, 8, 8, 3) and px.dtype == np.uint8
    np.testing.assert_array_equal(px[0, 0, :, 0], [0, 0, 0, 128, 191, 255, 255, 0])
    np.testing.assert_array_equal(px, to_u8(img.transpose(0, 2, 3, 1)))
    g = np.random.default_rng(0).uniform(-1, 1, (3, 1, 5, 5))
    gray = transgan.images_to_pixels(g)                         # float64 is converted
    assert gray.shape == (3, 5, 5)
    np.testing.assert_array_equal(gray, to_u8(g[:, 0]))
    rgb = transgan.images_to_pixels(g, format="rgb")
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=3))
    c = np.random.default_rng(1).uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32)
    luma = 0.299 * c[:, 0] + 0.587 * c[:, 1] + 0.114 * c[:, 2]
    assert np.abs(transgan.images_to_pixels(c, "gray").astype(int)
                  - to_u8(luma).astype(int)).max() <= 1
    a4 = np.random.default_rng(2).uniform(-1, 1, (1, 4, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(transgan.images_to_pixels(a4, "rgb"),
                                  to_u8(a4[:, :3].transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(transgan.images_to_pixels(a4)[..., 3], to_u8(a4[:, 3]))
    assert transgan.images_to_pixels(np.zeros((0, 3, 4, 4))).shape == (0, 4, 4, 3)


def test_images_to_pixels_bad_arguments():
    with pytest.raises(ValueError):
        transgan.images_to_pixels(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError):
        transgan.images_to_pixels(np.zeros((1, 2, 8, 8)))
    with pytest.raises(ValueError):
        transgan.images_to_pixels(np.zeros((1, 3, 8, 6)))
    with pytest.raises(TypeError):
        transgan.images_to_pixels(np.zeros((1, 3, 8, 8), dtype=object))
    with pytest.raises(TypeError):
        transgan.images_to_pixels(np.zeros((1, 3, 8, 8), dtype=bool))
    with pytest.raises(ValueError):
        transgan.images_to_pixels(np.zeros((1, 3, 8, 8)), format="bgr")


# ------------------------------------------------------------ discriminate

def test_discriminate(tiny):
    images = tiny.generate(n=4, seed=1)
    s = tiny.discriminate(images)
    assert s.shape == (4,) and s.dtype == np.float32
    np.testing.assert_array_equal(s, tiny.discriminate(images))
    np.testing.assert_allclose(tiny.discriminate(images.astype(np.float64)), s)
    np.testing.assert_array_equal(tiny.discriminate(images[1:3]), s[1:3])
    with pytest.raises(TypeError, match="floating point"):
        tiny.discriminate(np.zeros((2, 3, 8, 8), np.int64))
    assert tiny.discriminate(np.zeros((0, 3, 8, 8), np.float32)).shape == (0,)


def test_discriminate_bad_arguments(tiny):
    for shape in [(3, 8, 8), (2, 1, 8, 8), (2, 3, 8, 6), (2, 3, 16, 16), (2, 3 * 64)]:
        with pytest.raises(ValueError, match="images must have shape"):
            tiny.discriminate(np.zeros(shape, np.float32))
    with pytest.raises(TypeError):
        tiny.discriminate(np.full((1, 3, 8, 8), "x"))
    with pytest.raises(TypeError):
        tiny.discriminate(np.zeros((1, 3, 8, 8), dtype=object))
    x = np.zeros((2, 3, 8, 8), np.float32)
    x[1, 2, 3, 4] = np.inf
    with pytest.raises(transgan.TransGANError) as ei:
        tiny.discriminate(x)
    assert ei.value.status == transgan.Status.NONFINITE


# ---------------------------------------------------------------- training

def same_stats(a, b):
    """Equal dicts of train_step statistics, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
        for k in a)


def real_batch(m, seed=0):
    return np.random.default_rng(seed).uniform(
        -1, 1, (m.d_batch, m.channels, m.image_size, m.image_size)).astype(np.float32)


def test_train_step_stats_and_counters(trainer):
    assert (trainer.d_steps, trainer.g_steps) == (0, 0)
    s1 = trainer.train_step(real_batch(trainer, 0))
    assert set(s1) == STAT_KEYS
    assert s1["g_updated"] is True
    assert (s1["d_steps"], s1["g_steps"]) == (1, 1)
    assert type(s1["d_steps"]) is int and type(s1["g_steps"]) is int
    for k in STAT_KEYS - {"g_updated", "d_steps", "g_steps"}:
        assert type(s1[k]) is float and math.isfinite(s1[k]), k
    assert s1["gp"] >= 0 and s1["d_grad_norm"] > 0 and s1["g_grad_norm"] > 0
    assert s1["sr_loss"] == 0.0
    assert (trainer.d_steps, trainer.g_steps) == (1, 1)

    s2 = trainer.train_step(real_batch(trainer, 1))
    assert s2["g_updated"] is False
    assert (s2["d_steps"], s2["g_steps"]) == (2, 1)
    assert math.isnan(s2["g_loss"]) and math.isnan(s2["g_grad_norm"])
    assert math.isfinite(s2["d_loss"])
    assert (trainer.d_steps, trainer.g_steps) == (2, 1)

    s3 = trainer.train_step(real_batch(trainer, 2))             # n_critic 2: G again
    assert s3["g_updated"] is True and (s3["d_steps"], s3["g_steps"]) == (3, 2)


def test_train_step_changes_the_model(trainer):
    before_g = trainer.generate(2, seed=1, ema=False)
    before_d = trainer.discriminate(before_g)
    trainer.train_step(real_batch(trainer))
    assert not np.array_equal(trainer.generate(2, seed=1, ema=False), before_g)
    assert not np.array_equal(trainer.discriminate(before_g), before_d)


def test_train_step_with_given_noise_is_deterministic():
    rng = np.random.default_rng(5)
    with transgan.Model(TRAIN_DESC) as a, transgan.Model(TRAIN_DESC) as b:
        real = real_batch(a)
        z_d = rng.standard_normal((3, 10))                      # float64: converted
        z_g = rng.standard_normal((4, 10)).astype(np.float32)
        alpha = rng.uniform(size=3)
        sa = a.train_step(real, z_d=z_d, z_g=z_g, alpha=alpha)
        sb = b.train_step(real.astype(np.float64), z_d=z_d, z_g=z_g, alpha=alpha)
        assert same_stats(sa, sb)
        sc = b.train_step(real, z_d=z_d * 0.5, z_g=z_g, alpha=alpha)
        sa2 = a.train_step(real, z_d=z_d, z_g=z_g, alpha=alpha)
        assert sc["d_steps"] == sa2["d_steps"] == 2
        assert sc["d_loss"] != sa2["d_loss"]


def test_train_step_bad_arguments(trainer):
    real = real_batch(trainer)
    z_d, z_g, alpha = np.zeros((3, 10)), np.zeros((4, 10)), np.zeros(3)
    bad = [dict(real=real[:2]), dict(real=np.zeros((3, 1, 8, 8))), dict(real=real[0]),
           dict(real=real, z_d=z_g), dict(real=real, z_d=np.zeros((3, 9))),
           dict(real=real, z_g=z_d), dict(real=real, z_g=np.zeros(40)),
           dict(real=real, alpha=np.zeros(4)), dict(real=real, alpha=np.zeros((3, 1)))]
    for kw in bad:
        with pytest.raises(ValueError):
            trainer.train_step(**kw)
    with pytest.raises(TypeError):
        trainer.train_step(real.astype(object))
    with pytest.raises(TypeError):
        trainer.train_step(real, z_d=z_d.astype(str))
    with pytest.raises(TypeError):
        trainer.train_step(real, alpha=alpha.astype(bool))
    assert (trainer.d_steps, trainer.g_steps) == (0, 0)
    trainer.train_step(real, z_d=z_d, z_g=z_g, alpha=alpha)


def test_train_step_nonfinite_leaves_the_model_unchanged(trainer):
    trainer.train_step(real_batch(trainer))
    g = trainer.generate(2, seed=3, ema=False)
    real = real_batch(trainer)
    real[0, 0, 0, 0] = np.nan
    with pytest.raises(transgan.TransGANError) as ei:
        trainer.train_step(real)
    assert ei.value.status == transgan.Status.NONFINITE and "real" in ei.value.message
    assert (trainer.d_steps, trainer.g_steps) == (1, 1)
    np.testing.assert_array_equal(trainer.generate(2, seed=3, ema=False), g)


def test_data_parallel_replicas_in_threads_match_one_model():
    """Two replicas (2 images each, in two threads, summing through numpy
    behind a barrier) train the model one process trains with 4 images."""
    desc = json.loads(json.dumps(TRAIN_DESC))
    desc["training"].update(d_batch=4, g_batch=4)
    data = [np.random.default_rng(s).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)
            for s in range(4)]
    one = transgan.Model(desc)
    one.threads = 1
    reps = [transgan.Model(desc) for _ in range(2)]
    barrier, bufs, kinds = threading.Barrier(2), [None, None], []

    def allreduce_for(rank):
        def allreduce(kind, buf):
            bufs[rank] = buf
            barrier.wait()
            total = bufs[0] + bufs[1]            # the same order on both
            if rank == 0:
                kinds.append((kind, buf.size))
            barrier.wait()
            buf[:] = total
        return allreduce

    for r, m in enumerate(reps):
        m.threads = 1
        m.set_data_parallel(r, 2, allreduce_for(r))
    stats = [[], []]

    def run(r):
        for x in data:
            stats[r].append(reps[r].train_step(x[2 * r:2 * r + 2]))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = [one.train_step(x) for x in data]
    assert len(stats[0]) == len(stats[1]) == 4
    assert (kinds[0], kinds[1][0], kinds[2][0]) == ((3, 1), 1, 3)  # drift sum, D grad, stats
    # the flat gradients: every tensor padded to 16 floats
    g_sizes = {n for k, n in kinds if k == 2}
    assert one.d_params <= kinds[1][1] < one.d_params + 16 * 40 and len(g_sizes) == 1
    assert one.g_params <= g_sizes.pop() < one.g_params + 16 * 60
    for a, b, r in zip(stats[0], stats[1], ref):
        assert same_stats(a, b)
        assert a["d_steps"] == r["d_steps"] and a["g_updated"] == r["g_updated"]
        assert a["d_loss"] == pytest.approx(r["d_loss"], rel=1e-4, abs=1e-5)
    z = one.latent(3, seed=4)
    g0, g1, g = (m.generate(z=z, ema=False) for m in (reps[0], reps[1], one))
    np.testing.assert_array_equal(g0, g1)
    np.testing.assert_allclose(g0, g, rtol=0, atol=1e-5)
    np.testing.assert_allclose(reps[0].discriminate(g), one.discriminate(g), rtol=1e-5,
                               atol=1e-5)
    # an exception in the all-reduce fails the step, chained; the replica is unchanged
    def broken(kind, buf):
        raise RuntimeError("network down")
    reps[0].set_data_parallel(0, 2, broken)
    with pytest.raises(transgan.TransGANError) as ei:
        reps[0].train_step(data[0][:2])
    assert ei.value.status == transgan.Status.IO
    assert isinstance(ei.value.__cause__, RuntimeError)
    assert reps[0].d_steps == 4
    with pytest.raises(TypeError):
        reps[0].set_data_parallel(0, 2)
    with pytest.raises(transgan.TransGANError):
        reps[0].set_data_parallel(0, 3, broken)        # 3 does not divide d_batch 4
    reps[0].set_data_parallel(0, 1)                    # back to one process: 4 images
    reps[0].train_step(data[0])
    for m in reps + [one]:
        m.close()


# ------------------------------------------------------------- checkpoints

def test_save_load_round_trip(tmp_path, trainer):
    for i in range(3):
        trainer.train_step(real_batch(trainer, i))
    path = tmp_path / "m.safetensors"
    trainer.save(path)
    with transgan.Model.load(path) as m:
        assert m.descriptor == trainer.descriptor
        assert (m.d_steps, m.g_steps) == (3, 2)
        for ema in (True, False):
            np.testing.assert_array_equal(m.generate(3, seed=7, ema=ema),
                                          trainer.generate(3, seed=7, ema=ema))
        imgs = trainer.generate(3, seed=8)
        np.testing.assert_array_equal(m.discriminate(imgs), trainer.discriminate(imgs))
        # optimiser moments and the RNG are saved too: training continues identically
        s_loaded = m.train_step(real_batch(m, 9))
        s_orig = trainer.train_step(real_batch(trainer, 9))
        assert same_stats(s_loaded, s_orig)
        assert s_loaded["g_updated"] is False and math.isnan(s_loaded["g_loss"])
    with transgan.Model.load(str(path)) as m:
        assert m.d_steps == 3


def test_save_weights_only_and_load_weights(tmp_path, trainer):
    for i in range(2):
        trainer.train_step(real_batch(trainer, i))
    full, light = tmp_path / "full.safetensors", tmp_path / "light.safetensors"
    trainer.save(full)
    trainer.save(str(light), weights_only=True)
    assert light.stat().st_size < full.stat().st_size
    shared = tmp_path / "shared.safetensors"
    trainer.save(shared, optimizer=False)  # weights + EMA, no optimiser state
    assert light.stat().st_size < shared.stat().st_size < full.stat().st_size
    with transgan.Model.load(shared) as m:
        np.testing.assert_array_equal(m.generate(2, seed=1), trainer.generate(2, seed=1))
    with transgan.Model.load(light) as m:
        np.testing.assert_array_equal(m.generate(2, seed=1, ema=False),
                                      trainer.generate(2, seed=1, ema=False))
    with transgan.Model(TRAIN_DESC, seed=1234) as other:
        assert not np.array_equal(other.generate(2, seed=1), trainer.generate(2, seed=1))
        assert other.load_weights(full) is None
        for ema in (True, False):
            np.testing.assert_array_equal(other.generate(2, seed=1, ema=ema),
                                          trainer.generate(2, seed=1, ema=ema))
        assert (other.d_steps, other.g_steps) == (trainer.d_steps, trainer.g_steps)


def test_missing_checkpoint(tmp_path, tiny):
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model.load(tmp_path / "missing.safetensors")
    assert ei.value.status == transgan.Status.IO and "missing.safetensors" in ei.value.message
    with pytest.raises(transgan.TransGANError) as ei:
        tiny.load_weights(tmp_path / "missing.safetensors")
    assert ei.value.status == transgan.Status.IO


def test_truncated_checkpoint(tmp_path, tiny):
    data = TINY.read_bytes()
    before = tiny.generate(2, seed=1)
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        p = tmp_path / ("cut%d.safetensors" % cut)
        p.write_bytes(data[:cut])
        with pytest.raises(transgan.TransGANError) as ei:
            transgan.Model.load(p)
        assert ei.value.status == transgan.Status.FORMAT, (cut, ei.value)
        assert ei.value.status_name == "malformed checkpoint"
        assert p.name in ei.value.message
        with pytest.raises(transgan.TransGANError) as ei:
            tiny.load_weights(p)
        assert ei.value.status == transgan.Status.FORMAT
    np.testing.assert_array_equal(tiny.generate(2, seed=1), before)   # unchanged


def test_load_weights_of_another_model_fails_and_changes_nothing(tiny):
    before = tiny.generate(2, seed=1)
    with pytest.raises(transgan.TransGANError) as ei:
        tiny.load_weights(GRAY)
    assert ei.value.status in (transgan.Status.SHAPE, transgan.Status.MISSING)
    np.testing.assert_array_equal(tiny.generate(2, seed=1), before)


def test_save_errors(tmp_path, tiny):
    with pytest.raises(transgan.TransGANError) as ei:
        tiny.save(tmp_path / "no" / "such" / "dir" / "m.safetensors")
    assert ei.value.status == transgan.Status.IO
    with pytest.raises(ValueError):
        tiny.save(str(tmp_path / "a\0b"))
    with pytest.raises(TypeError):
        tiny.save(3.5)
    with pytest.raises(TypeError):
        transgan.Model.load(None)


# ------------------------------------------------- memory and sampling only

def test_load_bytes_equals_load(tiny):
    data = TINY.read_bytes()
    for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        with transgan.Model.load_bytes(buf) as m:
            assert m.descriptor == tiny.descriptor and not m.sampling_only
            for ema in (True, False):
                np.testing.assert_array_equal(m.generate(3, seed=5, ema=ema),
                                              tiny.generate(3, seed=5, ema=ema))
            x = tiny.generate(2, seed=1)
            np.testing.assert_array_equal(m.discriminate(x), tiny.discriminate(x))
    # the model keeps nothing of the caller's buffer
    buf = bytearray(data)
    m = transgan.Model.load_bytes(buf)
    buf[:] = b"\xff" * len(buf)
    np.testing.assert_array_equal(m.generate(2, seed=5), tiny.generate(2, seed=5))
    m.close()


def test_load_bytes_refuses_bad_buffers(tiny):
    data = TINY.read_bytes()
    for cut in (0, 4, 8, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(transgan.TransGANError) as ei:
            transgan.Model.load_bytes(data[:cut])
        assert ei.value.status == transgan.Status.FORMAT, (cut, ei.value)
        assert "<memory>" in ei.value.message
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model.load_bytes(TINY_JSON.read_bytes())
    assert "looks like a JSON descriptor" in ei.value.message
    with pytest.raises(TypeError):
        transgan.Model.load_bytes(str(TINY))
    with pytest.raises(TypeError):
        transgan.Model.load_bytes(None)
    with pytest.raises(ValueError):
        transgan.Model.load_bytes(memoryview(data)[::2])
    with pytest.raises(TypeError):
        transgan.Model.load_bytes(data, sampling_only="yes")


def test_sampling_only(tmp_path, tiny):
    for m in (transgan.Model.load(TINY, sampling_only=True),
              transgan.Model.load_bytes(TINY.read_bytes(), sampling_only=True)):
        assert m.sampling_only and m.has_ema and not tiny.sampling_only
        assert (m.g_params, m.d_params, m.descriptor) == (tiny.g_params, tiny.d_params,
                                                            tiny.descriptor)
        np.testing.assert_array_equal(m.generate(3, seed=5), tiny.generate(3, seed=5))
        np.testing.assert_array_equal(m.generate_uint8(2, seed=5), tiny.generate_uint8(2, seed=5))
        x = tiny.generate(1, seed=1)
        for call in (lambda: m.generate(1, ema=False), lambda: m.discriminate(x),
                     lambda: m.save(tmp_path / "so.safetensors"),
                     lambda: m.load_weights(TINY),
                     lambda: m.train_step(np.zeros((m.d_batch, 3, 8, 8), np.float32))):
            with pytest.raises(transgan.TransGANError) as ei:
                call()
            assert ei.value.status == transgan.Status.STATE
            assert "sampling only" in ei.value.message
        assert not (tmp_path / "so.safetensors").exists()
        m.close()
    # without an EMA in the file the raw generator is kept, and ema=False works
    tiny.save(tmp_path / "w.safetensors", weights_only=True)
    with transgan.Model.load(tmp_path / "w.safetensors", sampling_only=True) as m:
        assert m.sampling_only and not m.has_ema
        np.testing.assert_array_equal(m.generate(2, seed=5, ema=False),
                                      tiny.generate(2, seed=5, ema=False))
    with pytest.raises(TypeError):
        transgan.Model.load(TINY, sampling_only=1)


def test_devices_are_not_checkpoints():
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model.load("/dev/zero")
    assert ei.value.status == transgan.Status.IO
    assert "not a regular file" in ei.value.message


# ------------------------------------------------------------------- close

def test_close_is_idempotent_and_closed_models_refuse(tiny):
    tiny.close()
    tiny.close()
    assert tiny.closed
    assert "closed" in repr(tiny)
    calls = [lambda: tiny.generate(1), lambda: tiny.generate_uint8(1), lambda: tiny.latent(1),
             lambda: tiny.discriminate(np.zeros((1, 3, 8, 8))),
             lambda: tiny.train_step(np.zeros((64, 3, 8, 8))),
             lambda: tiny.save("/tmp/never.safetensors"), lambda: tiny.load_weights(TINY)]
    for name in ["descriptor", "image_size", "channels", "latent_dim", "d_steps", "g_steps",
                 "d_batch", "g_batch", "g_params", "d_params", "has_ema", "threads", "precision"]:
        calls.append(lambda name=name: getattr(tiny, name))
    for call in calls:
        with pytest.raises(ValueError, match="model is closed"):
            call()
    with pytest.raises(ValueError, match="model is closed"):
        with tiny:
            pass
    with pytest.raises(ValueError, match="model is closed"):
        tiny.threads = 1
    # closed wins over bad arguments
    with pytest.raises(ValueError, match="model is closed"):
        tiny.discriminate(np.zeros((1, 3, 8, 8), dtype=object))
    with pytest.raises(ValueError, match="model is closed"):
        tiny.train_step("not an array")
    with pytest.raises(ValueError, match="model is closed"):
        tiny.save(3.5)


def test_context_manager_and_del():
    with transgan.Model.load(TINY) as m:
        assert m.generate(1).shape == (1, 3, 8, 8)
    assert m.closed
    with pytest.raises(ValueError, match="model is closed"):
        m.generate(1)
    m2 = transgan.Model.load(TINY)
    m2.__del__()
    assert m2.closed
    m3 = transgan.Model.load(TINY)
    del m3                                                       # no crash, no leak
    try:
        with transgan.Model.load(TINY) as m4:
            raise KeyError("boom")
    except KeyError:
        pass
    assert m4.closed


def test_models_cannot_be_copied_or_pickled(tiny):
    with pytest.raises(TypeError):
        copy.copy(tiny)
    with pytest.raises(TypeError):
        copy.deepcopy(tiny)
    with pytest.raises(TypeError):
        pickle.dumps(tiny)


# ----------------------------------------------------------------- threads

def test_one_model_from_several_threads(tiny):
    expect = {s: tiny.generate(4, seed=s) for s in range(6)}
    errors, results = [], {}

    def work(s):
        try:
            for _ in range(5):
                results[s] = tiny.generate(4, seed=s)
                tiny.discriminate(results[s])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in range(6):
        np.testing.assert_array_equal(results[s], expect[s])


def test_error_message_is_per_thread():
    # a failure on another thread does not overwrite this thread's message
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model(dict(TRAIN_DESC, latent_dim=-3))
    other = []
    t = threading.Thread(target=lambda: other.append(pytest.raises(
        transgan.TransGANError, transgan.Model, "/no/such/file.json")))
    t.start()
    t.join()
    assert "latent_dim" in ei.value.message
    assert other and "file.json" in other[0].value.message


# ---------------------------------------------------------------- packaging

def test_pyproject_version_matches_the_package():
    import tomllib
    project = tomllib.loads((PKG_ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == transgan.__version__
    assert project["dependencies"] == ["numpy"]
    build = tomllib.loads((PKG_ROOT / "pyproject.toml").read_text())["build-system"]
    assert build["requires"] == []


def test_build_backend_makes_a_wheel(tmp_path):
    sys.path.insert(0, str(PKG_ROOT / "_build"))
    try:
        import transgan_build
    finally:
        sys.path.remove(str(PKG_ROOT / "_build"))
    name = transgan_build.build_wheel(str(tmp_path))
    assert name == "transgan-%s-py3-none-any.whl" % transgan.__version__
    with zipfile.ZipFile(tmp_path / name) as z:
        names = set(z.namelist())
        info = "transgan-%s.dist-info/" % transgan.__version__
        assert {"transgan/__init__.py", "transgan/_lib.py", "transgan/_model.py",
                info + "METADATA", info + "WHEEL", info + "RECORD"} <= names
        assert "Requires-Dist: numpy" in z.read(info + "METADATA").decode()
        assert len(z.read(info + "RECORD").decode().splitlines()) == len(names)
    sdist = transgan_build.build_sdist(str(tmp_path))
    assert (tmp_path / sdist).exists()


def test_pip_installs_offline(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                        "--no-cache-dir", "--disable-pip-version-check", "--quiet",
                        "--target", str(target), str(PKG_ROOT)],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PIP_NO_INPUT="1"))
    assert r.returncode == 0, r.stdout + r.stderr
    so = REPO / "build" / "libtransgan.so.0"
    r = subprocess.run([sys.executable, "-c",
                        "import transgan; print(transgan.__file__); print(transgan.library_source);"
                        "m = transgan.Model.load(%r); print(m.generate(2).shape)" % str(TINY)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env=dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                                PYTHONPATH=str(target), TRANSGAN_LIBRARY=str(so)))
    assert r.returncode == 0, r.stderr
    where, source, shape = r.stdout.splitlines()
    assert where.startswith(str(target))
    assert source == "TRANSGAN_LIBRARY" and shape == "(2, 3, 8, 8)"


# ------------------------------------------------------ class-conditional

COND = FIX / "cond-ln.safetensors"
COND_TRAIN = dict(TRAIN_DESC, num_classes=3, class_names=["boot", "bag", "shirt"])


def test_train_labels_layout_matches_header():
    body = re.search(r"typedef struct tg_train_labels \{(.*?)\} tg_train_labels;",
                     HEADER.read_text(), re.S).group(1)
    fields = re.findall(r"^\s*(uint32_t|const int32_t \*)\s*(\w+);", body, re.M)
    assert [n for _, n in fields] == [n for n, _ in _lib.TrainLabels._fields_]
    assert ctypes.sizeof(_lib.TrainLabels) == 8 + 3 * ctypes.sizeof(ctypes.c_void_p)


def test_conditional_facts(tiny):
    with transgan.Model.load(COND) as m:
        assert m.num_classes == 3
        assert m.class_names == ["boot", "bag", "shirt"]
        assert m.descriptor["num_classes"] == 3
    assert tiny.num_classes == 0 and tiny.class_names is None


def test_conditional_generate_matches_fixture():
    io = read_safetensors(FIX / "cond-ln.io.safetensors")
    labels = io["labels"].astype(int)
    with transgan.Model.load(COND) as m:
        names = [m.class_names[k] for k in labels]
        for y in (labels.tolist(), names, np.asarray(labels, np.int64)):
            assert rel_l2(m.generate(z=io["z"], labels=y, ema=False), io["gen_raw"]) < 1e-4
        assert rel_l2(m.discriminate(io["images"], labels=names), io["scores"]) < 1e-4
        # one class for all; a list alone sets n; uint8 agrees with float
        a = m.generate(n=4, seed=3, labels="bag")
        assert np.array_equal(a, m.generate(n=4, seed=3, labels=[1, 1, 1, 1]))
        assert m.generate(labels=[0, 2], seed=3).shape == (2, 3, 8, 8)
        px = m.generate_uint8(n=4, seed=3, labels=1)
        assert np.array_equal(px, transgan.images_to_pixels(a))
        # no labels: each z picks a class, the same as tg_generate
        assert not np.array_equal(m.generate(n=4, seed=3, labels=0), a)


def test_conditional_label_mistakes(tiny):
    with transgan.Model.load(COND) as m:
        with pytest.raises(ValueError, match="'sock' is not a class"):
            m.generate(n=2, labels="sock")
        with pytest.raises(transgan.TransGANError, match=r"labels\[1\] = 3 is out of range"):
            m.generate(n=2, labels=[0, 3])
        with pytest.raises(ValueError, match="2 labels for 3 images"):
            m.generate(n=3, labels=[0, 1])
        with pytest.raises(TypeError, match="int or a class name"):
            m.generate(n=1, labels=[1.5])
    with pytest.raises(transgan.TransGANError, match="unconditional"):
        tiny.generate(n=1, labels=[0])
    with pytest.raises(ValueError, match="no class names"):
        tiny.generate(n=1, labels="boot")


def test_conditional_train_step():
    with transgan.Model(COND_TRAIN) as m, transgan.Model(COND_TRAIN) as m2:
        real = np.random.default_rng(0).uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
        with pytest.raises(transgan.TransGANError, match="class-conditional"):
            m.train_step(real)
        with pytest.raises(ValueError, match="'sock' is not a class"):
            m.train_step(real, labels=["boot", "sock", "bag"])
        assert m.d_steps == 0
        st = m.train_step(real, labels=["boot", "bag", "bag"])
        st2 = m2.train_step(real, labels=[0, 1, 1])
        assert st == st2 and st["g_updated"] and st["gp"] > 0
        st = m.train_step(real, labels=[2, 2, 2], fake_labels_d=[0, 0, 0])
        assert st["d_steps"] == 2
