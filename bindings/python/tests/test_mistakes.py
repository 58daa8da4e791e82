"""Common mistakes get clear errors: integer pixels as images, channels-last
arrays, a missing file, a descriptor and a checkpoint swapped; grey pixels in
the shape PIL takes; the system library lookup reads /etc/ld.so.conf.

Run from the repository root after `make` (make py-test).
"""
import errno
import pathlib

import numpy as np
import pytest
from PIL import Image

import transgan
from transgan import _lib

REPO = pathlib.Path(__file__).resolve().parent.parent.parent.parent
FIX = REPO / "tests" / "fixtures"
TINY = FIX / "tiny-ln.safetensors"            # 8x8x3
TINY_JSON = FIX / "tiny-ln.json"
GRAY = FIX / "gray-relbias-tanh.safetensors"  # 6x6x1


@pytest.fixture
def tiny():
    m = transgan.Model.load(TINY)
    yield m
    m.close()


# ------------------------------------------------------- integer images

@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.uint32])
def test_integer_images_are_refused(tiny, dtype):
    px = np.full((tiny.d_batch, 3, 8, 8), 200, dtype)
    with pytest.raises(TypeError, match=r"floating point.*astype\(np\.float32\) / 127\.5 - 1"):
        tiny.discriminate(px)
    with pytest.raises(TypeError, match="real must be floating point"):
        tiny.train_step(px)
    with pytest.raises(TypeError, match="floating point"):
        transgan.images_to_pixels(px)
    assert tiny.d_steps == 0  # nothing was trained
    # the conversion the message gives is accepted
    assert tiny.discriminate(px[:2].astype(np.float32) / 127.5 - 1).shape == (2,)


def test_float16_images_are_accepted(tiny):
    x = tiny.generate(2, seed=3)
    np.testing.assert_allclose(tiny.discriminate(x.astype(np.float16)), tiny.discriminate(x),
                               atol=1e-2)


def test_channels_last_images_say_how_to_transpose(tiny):
    x = tiny.generate(2, seed=1)
    with pytest.raises(ValueError, match=r"transpose\(0, 3, 1, 2\)"):
        tiny.discriminate(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(tiny.discriminate(x.transpose(0, 2, 3, 1).transpose(0, 3, 1, 2)),
                                  tiny.discriminate(x))
    with transgan.Model.load(GRAY) as g:
        with pytest.raises(ValueError, match=r"images\[:, None\]"):
            g.discriminate(np.zeros((2, 6, 6), np.float32))


# ---------------------------------------------------------- grey pixels

def test_grey_pixels_are_2d_images_that_pil_takes():
    with transgan.Model.load(GRAY) as m:
        px = m.generate_uint8(n=3, seed=2)
        assert px.shape == (3, 6, 6) and px.dtype == np.uint8
        im = Image.fromarray(px[1])
        assert im.mode == "L" and im.size == (6, 6)
        np.testing.assert_array_equal(np.asarray(im), px[1])
        np.testing.assert_array_equal(px, transgan.images_to_pixels(m.generate(n=3, seed=2)))
        # "rgb" of a grey model repeats the grey value
        rgb = m.generate_uint8(n=3, seed=2, format="rgb")
        assert rgb.shape == (3, 6, 6, 3)
        np.testing.assert_array_equal(rgb, np.repeat(px[..., None], 3, axis=3))
        assert Image.fromarray(rgb[0]).mode == "RGB"
        assert m.generate_uint8(n=0).shape == (0, 6, 6)


def test_rgb_and_rgba_pixels_keep_their_channel_axis(tiny):
    assert tiny.generate_uint8(n=2).shape == (2, 8, 8, 3)
    assert tiny.generate_uint8(n=2, format="rgba").shape == (2, 8, 8, 4)
    assert Image.fromarray(tiny.generate_uint8(n=1, format="rgba")[0]).mode == "RGBA"
    assert tiny.generate_uint8(n=2, format="gray").shape == (2, 8, 8)


# ---------------------------------------------------------- missing files

def test_missing_files_raise_file_not_found(tmp_path, tiny):
    cases = [lambda p: transgan.Model.load(p), lambda p: transgan.Model(p),
             lambda p: tiny.load_weights(p)]
    for i, call in enumerate(cases):
        p = tmp_path / ("missing%d.safetensors" % i)
        with pytest.raises(FileNotFoundError) as ei:
            call(p)
        e = ei.value
        assert isinstance(e, transgan.TransGANError) and isinstance(e, OSError)
        assert isinstance(e, transgan.TransGANFileNotFoundError)
        assert e.status == transgan.Status.IO and e.status_name == "input/output error"
        assert e.errno == errno.ENOENT and e.filename == str(p)
        assert str(p) in e.message and str(e).startswith("input/output error: ")
    # saving into a folder that does not exist
    with pytest.raises(FileNotFoundError) as ei:
        tiny.save(tmp_path / "no-such-folder" / "m.safetensors")
    assert ei.value.status == transgan.Status.IO


def test_other_io_errors_stay_plain(tmp_path, tiny):
    # a folder exists: not "not found", but still a TransGANError with status IO
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model.load(tmp_path)
    assert ei.value.status == transgan.Status.IO
    assert not isinstance(ei.value, FileNotFoundError)


# ------------------------------------------------ descriptor vs checkpoint

def test_descriptor_given_as_checkpoint(tiny):
    before = tiny.generate(2, seed=1)
    for call in (lambda: transgan.Model.load(TINY_JSON), lambda: tiny.load_weights(TINY_JSON)):
        with pytest.raises(transgan.TransGANError) as ei:
            call()
        assert ei.value.status == transgan.Status.FORMAT
        assert "looks like a JSON descriptor" in ei.value.message
        assert "use transgan.Model(path)" in ei.value.message
        assert "absurd" not in ei.value.message
    np.testing.assert_array_equal(tiny.generate(2, seed=1), before)


def test_checkpoint_given_as_descriptor():
    with pytest.raises(transgan.TransGANError) as ei:
        transgan.Model(TINY)
    assert "looks like a safetensors checkpoint" in ei.value.message
    assert "use transgan.Model.load(path) (tg_model_load)" in ei.value.message


# ------------------------------------------------------ library lookup

def test_ld_so_conf_dirs(tmp_path):
    d = tmp_path / "ld.so.conf.d"
    d.mkdir()
    (d / "b.conf").write_text("# multiarch\n/usr/local/lib/x86_64-linux-gnu\n/opt/b/lib\n")
    (d / "a.conf").write_text("/opt/a/lib  # trailing comment\n\nrelative/ignored\n")
    (d / "loop.conf").write_text("include %s/*.conf\n" % d)   # includes itself: read once
    (d / "skip.txt").write_text("/opt/not-a-conf\n")
    conf = tmp_path / "ld.so.conf"
    conf.write_text("/usr/local/lib\ninclude ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n"
                    "/opt/c/lib,/opt/d/lib=libc6\n/usr/local/lib\n")
    assert _lib.ld_so_conf_dirs(str(conf)) == [
        "/usr/local/lib", "/opt/a/lib", "/usr/local/lib/x86_64-linux-gnu", "/opt/b/lib",
        "/opt/c/lib", "/opt/d/lib"]
    assert _lib.ld_so_conf_dirs(str(tmp_path / "absent.conf")) == []


def test_build_tree_is_used_only_from_the_repository(tmp_path, monkeypatch):
    # this copy is the repository's: its build/ is a candidate
    assert _lib._build_tree_candidate() == str(REPO / "build" / _lib.SONAME)
    # a copy elsewhere (site-packages) with a build/ two levels up is not
    pkg = tmp_path / "lib" / "site" / "transgan"
    pkg.mkdir(parents=True)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / _lib.SONAME).write_bytes(b"")
    monkeypatch.setattr(_lib, "__file__", str(pkg / "_lib.py"))
    assert _lib._build_tree_candidate() is None
