#!/usr/bin/python3
"""Train the Fashion-MNIST classifier whose features fmnist_fid.py measures FID in,
and write bench/fid/fmnist_cnn.safetensors (float16, ~340 KB).

  nice -n 10 /usr/bin/python3 bench/fid/train_classifier.py [--out PATH] [--epochs 5]

Deterministic: seed 0, CPU, 1 thread, torch's deterministic algorithms; the same
torch build gives the same file byte for byte. Prints the test accuracy of the
stored (float16-rounded) weights. Any change of the weights changes every FID:
numbers are comparable only with numbers made with the same file.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_fid as fid  # noqa: E402

BATCH = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=fid.WEIGHTS)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    # one thread: deterministic, and on 2 shared cores much faster than 2
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    try:
        images, labels = fid.train_set(a.data_dir)
        test_images, test_labels = fid.test_set(a.data_dir)
    except fid.EvalError as e:
        sys.exit("train_classifier: %s" % e)
    # the classifier's input convention: 28x28 in [-1, 1]
    x = torch.from_numpy(images[:, None] / np.float32(127.5) - 1)
    y = torch.from_numpy(labels)
    net = fid.Net()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    # a smaller step for the last epoch settles the weights
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [a.epochs - 1], 0.2)
    t0 = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        net.eval()
        pred = fid.features_and_probs(net, test_images)[1].argmax(1)
        print("epoch %d loss %.4f test accuracy %.4f (%.0f s)"
              % (epoch + 1, total / len(x), (pred == test_labels).mean(), time.time() - t0), flush=True)
    fid.round_to_stored(net)
    _, probs = fid.features_and_probs(net, test_images)
    acc = float((probs.argmax(1) == test_labels).mean())
    fid.save_weights(net, a.out, {"test_accuracy": "%.4f" % acc, "epochs": str(a.epochs), "seed": "0",
                                  "made_by": "bench/fid/train_classifier.py"})
    print("stored weights (float16): test accuracy %.4f on the 10,000 test images -> %s (%d bytes, %.0f s)"
          % (acc, a.out, os.path.getsize(a.out), time.time() - t0))


if __name__ == "__main__":
    main()
