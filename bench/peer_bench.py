#!/usr/bin/python3
"""The PyTorch peer of `make bench`: the project's oracle (tests/reference/oracle.py),
timed on one descriptor as a user of plain PyTorch would run it.

  peer_bench.py DESC.json [--batches 1,16,64] [--train-calls 8] [--threads 2] [--no-train]

Prints one JSON line: generate images/s per batch size (raw generator, no
gradient, >= 3 s per batch size after a warm-up call), mean train_step seconds
per call over --train-calls calls (after one untimed call; with the descriptor's
DiffAugment, n_critic calls = one full G/D iteration) and the process's peak RSS.
bench/run.py runs it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so that
OpenBLAS picks its own kernel.
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "reference"))
import torch  # noqa: E402
import oracle as O  # noqa: E402

MIN_SECONDS = 3.0


def images_per_s(model, latent, batch):
    z = torch.randn(batch, latent)
    with torch.no_grad():
        model.generate(z)                                  # warm-up
        calls, t0 = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - t0 < MIN_SECONDS:
            model.generate(z)
            calls += 1
        return batch * calls / (time.perf_counter() - t0)


def train_step_s(st, calls):
    d, t = st.d, st.d["training"]
    L, S, C = d["latent_dim"], d["image"]["size"], d["image"]["channels"]
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(t["d_batch"], C, S, S) * 2 - 1

    def one():
        O.train_step(st, real, torch.randn(t["d_batch"], L), torch.randn(t["g_batch"], L),
                     torch.rand(t["d_batch"]),
                     lambda B, size: O.draw_aug(t["diffaug"], B, size, gen))

    one()                                                  # warm-up (and a G step)
    t0 = time.perf_counter()
    for _ in range(calls):
        one()
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("descriptor")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--train-calls", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-train", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    d = O.load_descriptor(a.descriptor)
    st = O.State(d, torch.float32, O.init_params(d, 1))
    out = {"descriptor": d["name"], "threads": a.threads, "torch": torch.__version__}
    out["generate_img_per_s"] = {b: round(images_per_s(st.model, d["latent_dim"], int(b)), 2)
                                 for b in a.batches.split(",")}
    if not a.no_train:
        out["train_step_s"] = round(train_step_s(st, a.train_calls), 4)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
