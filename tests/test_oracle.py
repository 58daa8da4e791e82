"""Checks of the parts of the PyTorch oracle (tests/reference/oracle.py) that no
conformance fixture exercises: DiffAugment, descriptor validation, the gradient
penalty's second-order term.

  /usr/bin/python3 -m pytest tests/test_oracle.py -p no:cacheprovider
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# `make test` installs torch: a missing oracle is a failure, never a silent skip
try:
    import numpy as np
    import torch
except ImportError as e:
    raise RuntimeError(f"the PyTorch oracle needs torch and numpy ({e}): "
                       "run with /usr/bin/python3 after `make test-deps`") from e
sys.path.insert(0, os.path.join(HERE, "reference"))
import oracle as O  # noqa: E402

BASE = {"format": "transgan", "format_version": 1}


def _draw(B, **kw):
    return {k: torch.tensor(v) if isinstance(v, list) else v for k, v in kw.items()}


def test_translation_moves_pixels_and_fills_zero():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float64).reshape(2, 3, 5, 5) + 1
    y = O.apply_aug(x, ["translation"], _draw(2, ty=[1, -2], tx=[-1, 0]))
    for b, (ty, tx) in enumerate([(1, -1), (-2, 0)]):
        for r in range(5):
            for c in range(5):
                inside = 0 <= r - ty < 5 and 0 <= c - tx < 5
                want = x[b, :, r - ty, c - tx] if inside else torch.zeros(3, dtype=x.dtype)
                assert torch.equal(y[b, :, r, c], want), (b, r, c)


def test_cutout_hole_and_switch():
    x = torch.ones(2, 2, 6, 6, dtype=torch.float64)
    d = _draw(2, cut=True, cy=[0, 4], cx=[3, 6])
    y = O.apply_aug(x, ["cutout"], d)
    # h = 3: rows cy - 1 .. cy + 1, clipped
    want = torch.ones(2, 2, 6, 6, dtype=torch.float64)
    want[0, :, 0:2, 2:5] = 0
    want[1, :, 3:6, 5:6] = 0
    assert torch.equal(y, want)
    d["cut"] = False
    assert torch.equal(O.apply_aug(x, ["cutout"], d), x)


def test_color_formula():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    d = O.draw_aug(["color"], 2, 4, g)
    y = O.apply_aug(x, ["color"], d).numpy()
    for b in range(2):
        v = x[b].numpy() + float(d["bright"][b])
        mc = v.mean(0, keepdims=True)
        v = mc + (v - mc) * float(d["sat"][b])
        v = v.mean() + (v - v.mean()) * float(d["contr"][b])
        np.testing.assert_allclose(y[b], v, rtol=1e-12, atol=1e-12)


def test_color_keeps_alpha():
    """RGBA: the color op acts on R, G, B as on a 3-channel image; alpha passes."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 4, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    d = O.draw_aug(["color"], 2, 4, g)
    y = O.apply_aug(x, ["color"], d)
    assert torch.equal(y[:, 3], x[:, 3])
    assert torch.equal(y[:, :3], O.apply_aug(x[:, :3], ["color"], d))
    assert not torch.allclose(y[:, :3], x[:, :3])


def test_draws_are_in_range():
    g = torch.Generator().manual_seed(5)
    cuts = 0
    for _ in range(200):
        d = O.draw_aug(O.AUG_OPS, 3, 8, g)
        assert d["ty"].abs().max() <= 2 and d["tx"].abs().max() <= 2     # round(1.6) = 2
        assert 0 <= int(d["cy"].min()) and int(d["cx"].max()) <= 8
        assert float(d["bright"].abs().max()) <= 0.5
        assert 0 <= float(d["sat"].min()) and float(d["sat"].max()) < 2
        assert 0.5 <= float(d["contr"].min()) and float(d["contr"].max()) < 1.5
        cuts += d["cut"]
    assert 30 < cuts < 90                                   # probability 0.3


@pytest.mark.parametrize("body, path", [
    ({"generator": {"depthz": [1]}}, "generator.depthz"),
    ({"image": {"channels": 2}}, "image.channels"),
    ({"image": {"size": 30}}, "image.size"),
    ({"generator": {"heads": 5}}, "generator.heads"),
    ({"training": {"ema": {}}}, "training.ema"),
    ({"training": {"diffaug": ["color", "color"]}}, "training.diffaug"),
    ({"training": {"locality": {"stages": [3], "schedule": [[1, 1]]}}},
     "training.locality.stages[0]"),
    ({"training": {"loss": "hinge", "r1_gamma": -1}}, "training.r1_gamma"),
    ({"training": {"loss": "hinge", "r1_interval": 0}}, "training.r1_interval"),
    ({"training": {"r1_gamma": 0.1}}, "training.r1_gamma"),
    ({"training": {"lr_schedule": []}}, "training.lr_schedule"),
    ({"training": {"lr_schedule": [[0, 1], [5]]}}, "training.lr_schedule[1]"),
    ({"training": {"lr_schedule": [[-1, 1]]}}, "training.lr_schedule[0][0]"),
    ({"training": {"lr_schedule": [[0, -1]]}}, "training.lr_schedule[0][1]"),
    ({"training": {"lr_schedule": [[9, 1], [9, 0.5]]}}, "training.lr_schedule[1][0]"),
    ({"training": {"lr_schedule": [[2 ** 53 + 2, 1]]}}, "training.lr_schedule[0][0]"),
    ({"training": {"lr_schedule": [[i, 1] for i in range(33)]}}, "training.lr_schedule"),
    ({"generator": {"depths": [2], "bottom_width": 32}, "training": {"sr_aux_weight": 1}},
     "training.sr_aux_weight"),
    ({"format_version": 2}, "format_version"),
    ({"training": {"diffaug_p": 1.5}}, "training.diffaug_p"),
    ({"training": {"ada": 0.6}}, "training.ada"),
    ({"training": {"ada": {"target": 2}}}, "training.ada.target"),
    ({"training": {"ada": {"kimg": 0}}}, "training.ada.kimg"),
    ({"training": {"ada": {"interval": 0}}}, "training.ada.interval"),
    ({"training": {"ada": {}, "diffaug": []}}, "training.ada"),
    ({"training": {"class_loss_weight": 1}}, "training.class_loss_weight"),
    ({"num_classes": 2, "training": {"class_loss_weight": -1}}, "training.class_loss_weight"),
    ({"num_classes": 2, "class_names": ["a"], "discriminator": {"kind": "conv"}},
     "class_names"),
    ({"discriminator": {"kind": "cnn"}}, "discriminator.kind"),
    ({"discriminator": {"kind": "conv", "depth": 2}}, "discriminator.depth"),
    ({"discriminator": {"widths": [8]}}, "discriminator.widths"),
    ({"discriminator": {"kind": "conv", "widths": [8, 8]}}, "discriminator.blocks"),
    ({"discriminator": {"kind": "conv", "widths": [8, 0, 8]}}, "discriminator.widths[1]"),
    ({"discriminator": {"kind": "conv", "down": "max"}}, "discriminator.down"),
    ({"discriminator": {"kind": "conv", "residual": 1}}, "discriminator.residual"),
    ({"image": {"size": 12}, "generator": {"bottom_width": 3},
      "discriminator": {"kind": "conv", "widths": [8] * 4, "blocks": [1] * 4}},
     "discriminator.widths"),
])
def test_descriptor_errors_name_the_key(body, path):
    with pytest.raises(O.DescriptorError, match="^" + path.replace("[", r"\[").replace("]", r"\]")):
        O.load_descriptor(dict(BASE, **body))


def test_descriptor_defaults():
    d = O.load_descriptor(dict(BASE, training={"ema": {"warmup": 0.2}}))
    assert d["training"]["ema"] == {"half_life_kimg": 500, "warmup": 0.2}
    assert d["generator"] == O.DEFAULTS["generator"]


def test_lr_factor_is_piecewise_linear():
    """training.lr_schedule: constant before the first point and after the last,
    linear between; no schedule is factor 1; the stored JSON omits a null one."""
    d = O.load_descriptor(dict(BASE, training={"lr_schedule": [[10, 1], [20, 0.5], [30, 0.5],
                                                               [40, 0]]}))
    got = [O.lr_factor(d, s) for s in (0, 10, 15, 20, 25, 30, 32, 40, 10 ** 12)]
    assert got == [1, 1, 0.75, 0.5, 0.5, 0.5, 0.4, 0, 0]
    plain = O.load_descriptor(dict(BASE))
    assert plain["training"]["lr_schedule"] is None and O.lr_factor(plain, 7) == 1
    assert "lr_schedule" not in O.descriptor_json(plain)
    assert '"lr_schedule": [[10, 1]' in O.descriptor_json(d)


def test_conv_descriptor_defaults():
    """kind "conv" alone: AutoGAN's discriminator; the transformer's section has no kind."""
    d = O.load_descriptor(dict(BASE, discriminator={"kind": "conv"}))
    assert d["discriminator"] == O.CONV_DEFAULTS
    assert "kind" not in O.load_descriptor(dict(BASE))["discriminator"]
    assert "kind" not in O.load_descriptor(dict(BASE, discriminator={"kind": "transformer"}))[
        "discriminator"]


def test_penalty_gradient_is_second_order():
    """The weight gradient of the penalty matches central differences of it (a
    first-order-only gradient would not)."""
    d = O.load_descriptor(dict(BASE, image={"size": 4, "channels": 1}, latent_dim=3,
                               generator={"bottom_width": 4, "embed_dim": 4, "depths": [1],
                                          "heads": 1, "mlp_ratio": 1},
                               discriminator={"patch_size": 2, "embed_dim": 4, "depth": 1,
                                              "heads": 1, "mlp_ratio": 1}))
    st = O.State(d, torch.float64, O.init_params(d, 9))
    xh = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = st.params["discriminator.blocks.0.mlp.fc1.weight"]
    (g,) = torch.autograd.grad(O.gradient_penalty(st.model.discriminate, xh), [w])
    eps, num = 1e-6, torch.zeros_like(w)

    def penalty_at(i, step):
        with torch.no_grad():
            w.view(-1)[i] += step
        v = float(O.gradient_penalty(st.model.discriminate, xh))
        with torch.no_grad():
            w.view(-1)[i] -= step
        return v

    for i in range(w.numel()):
        num.view(-1)[i] = (penalty_at(i, eps) - penalty_at(i, -eps)) / (2 * eps)
    assert float(g.norm()) > 1e-3
    np.testing.assert_allclose(g.numpy(), num.numpy(), rtol=1e-5, atol=1e-8)



def test_diffaug_probability():
    """training.diffaug_p (docs/SPECIFICATION.md "DiffAugment"): the parameter
    draws of p = 1, then per image and op a uniform deciding u < p; a skipped
    op is the identity, so the result is per image the ops that apply."""
    policy = ["color", "cutout", "translation"]
    x = torch.rand(6, 3, 9, 9, dtype=torch.float64) * 2 - 1
    full = O.draw_aug(policy, 6, 9, torch.Generator().manual_seed(3))
    part = O.draw_aug(policy, 6, 9, torch.Generator().manual_seed(3), p=0.5)
    none = O.draw_aug(policy, 6, 9, torch.Generator().manual_seed(3), p=0.0)
    assert "on" not in full
    for k in full:
        assert torch.equal(torch.as_tensor(full[k]), torch.as_tensor(part[k])), k
    full["cut"] = part["cut"] = none["cut"] = True
    assert torch.equal(O.apply_aug(x, policy, none), x)
    flags = [f[op] for f in part["on"] for op in O.AUG_OPS]
    assert any(flags) and not all(flags)
    y = O.apply_aug(x, policy, part)
    for b in range(6):
        ops = [op for op in policy if part["on"][b][op]]
        one = {k: (v[b:b + 1] if torch.is_tensor(v) else v) for k, v in full.items()}
        assert torch.allclose(y[b:b + 1], O.apply_aug(x[b:b + 1], ops, one))
    # still linear plus a constant per image: the penalty's calculus holds
    z = torch.zeros_like(x)
    v = torch.rand_like(x)
    lin = O.apply_aug(x + v, policy, part) - O.apply_aug(x, policy, part)
    assert torch.allclose(lin, O.apply_aug(v, policy, part) - O.apply_aug(z, policy, part))


def test_ada_adjust_and_defaults():
    d = O.load_descriptor(dict(BASE, training={"ada": {"kimg": 0.03}}))
    assert d["training"]["ada"] == {"target": 0.6, "interval": 4, "kimg": 0.03}
    assert d["training"]["diffaug_p"] == 1.0
    assert O.load_descriptor(BASE)["training"]["ada"] is None
    # 6 images at kimg 0.03: a step of 0.2, its sign from mean(signs) vs the target
    assert O.ada_adjust(0.5, [1, 1, 1, 1, 1, -1], d) == pytest.approx(0.7)
    assert O.ada_adjust(0.5, [1, -1, 1, -1, 1, -1], d) == pytest.approx(0.3)
    assert O.ada_adjust(0.1, [-1] * 6, d) == 0.0
    assert O.ada_adjust(0.9, [1] * 6, d) == 1.0
