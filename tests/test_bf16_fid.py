"""bf16 inference against f32 by FID (make fid-test): 10,000 samples of the
shipped model models/pretrained/fmnist-mid.safetensors, scored by the in-repo
Fashion-MNIST evaluator (bench/fid), the bf16 FID within 3% of the f32 FID.

On a CPU without AVX512-BF16 (or with ONEDNN_MAX_CPU_ISA below
AVX512_CORE_BF16) asking for bf16 must keep f32: the test asserts that
fallback (same images bit for bit) instead."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "fid"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import fmnist_fid as fid  # noqa: E402
import transgan  # noqa: E402

PRETRAINED = os.path.join(ROOT, "models", "pretrained", "fmnist-mid.safetensors")
N = 10000

# oneDNN ISA caps that still allow bf16 (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA)
BF16_ISAS = {"", "ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX"}


def cpu_has_bf16():
    """What the library should find: the CPU flag, and no oneDNN cap below it."""
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
    return "avx512_bf16" in flags and cap in BF16_ISAS


@pytest.fixture(scope="module")
def samples():
    with transgan.Model.load(PRETRAINED) as m:
        m.threads = 2
        z = m.latent(N, seed=2024)
        f32 = m.generate(z=z)
        m.precision = "bf16"
        in_effect = m.precision
        bf16 = m.generate(z=z)
    return f32, bf16, in_effect


def test_bf16_fid_within_3_percent(samples):
    f32, bf16, in_effect = samples
    if not cpu_has_bf16():
        assert in_effect == "f32"
        assert np.array_equal(f32, bf16), "the f32 fallback must compute exactly as f32"
        return
    assert in_effect == "bf16"
    assert not np.array_equal(f32, bf16), "bf16 images equal f32's: the bf16 path did not run"
    fid.torch.set_num_threads(2)
    ev = fid.Evaluator()
    a, b = ev.score(f32)["fid"], ev.score(bf16)["fid"]
    print("FID of %d samples: f32 %.3f, bf16 %.3f (%+.2f%%)" % (N, a, b, 100 * (b - a) / a))
    assert abs(b - a) <= 0.03 * a, (a, b)
